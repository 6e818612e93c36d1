"""Files valid as two formats at once, and files whose content contradicts their name.

Keras picks the reader from the file name; archdiff must never show a model
Keras would not load from that file. Each polyglot here is built from the
fixtures with h5py and zipfile alone, and Keras itself says what it loads.
"""
from __future__ import annotations

import shutil
import struct
import zipfile
from pathlib import Path

import h5py
import pytest
from support import FIXTURES

K3 = FIXTURES / "keras3"


def _copy_into(src: Path, dst: Path, *, userblock: int = 0) -> None:
    """An HDF5 file with the same content as ``src``, optionally behind a user block."""
    with h5py.File(src, "r") as a, h5py.File(dst, "w", userblock_size=userblock or None) as b:
        for key, value in a.attrs.items():
            b.attrs[key] = value
        for key in a:
            a.copy(a[key], b, name=key)


def zip_appended_to_hdf5(tmp_path: Path, name: str) -> Path:
    """functional.h5 (HDF5 at byte 0) with sequential.keras's zip appended: both readers succeed."""
    out = tmp_path / name
    shutil.copyfile(K3 / "functional.h5", out)
    with zipfile.ZipFile(K3 / "sequential.keras") as src, zipfile.ZipFile(out, "a") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
    return out


def zip_in_user_block(tmp_path: Path, name: str) -> Path:
    """sequential.keras's entries in the user block of functional.h5, its central directory at the end."""
    zbytes = (K3 / "sequential.keras").read_bytes()
    eocd = zbytes.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", zbytes[eocd + 12:eocd + 20])
    entries, central = zbytes[:cd_offset], zbytes[cd_offset:eocd]
    userblock = 512
    while userblock < len(entries):
        userblock *= 2
    out = tmp_path / name
    _copy_into(K3 / "functional.h5", out, userblock=userblock)
    body = bytearray(out.read_bytes())
    body[:len(entries)] = entries
    new_cd_offset = len(body)
    tail = bytearray(zbytes[eocd:eocd + 22])
    tail[16:20] = struct.pack("<I", new_cd_offset)
    out.write_bytes(bytes(body) + central + bytes(tail))
    return out


TRICKS = {"zip-appended-to-hdf5": zip_appended_to_hdf5, "zip-in-user-block": zip_in_user_block}


@pytest.mark.parametrize("trick", sorted(TRICKS))
@pytest.mark.parametrize("name", ["model.h5", "model.keras", "model.bin"])
def test_a_file_valid_as_zip_and_hdf5_is_refused(tmp_path, cli, trick, name):
    path = TRICKS[trick](tmp_path, name)
    assert zipfile.is_zipfile(path) and h5py.is_hdf5(path)  # the trick works: both formats open it
    before = path.read_bytes()
    for command in ("layers", "summary", "textconv"):
        code, out, err = cli(command, path)
        if command == "textconv":
            continue  # textconv's own fallback is tested with git
        assert code == 2, (command, out)
        assert out == "" and "both a zip archive and an HDF5 file" in err and err.count("\n") == 1
    assert path.read_bytes() == before


def test_a_keras_zip_named_h5_is_refused_as_keras_refuses_it(tmp_path, cli):
    path = tmp_path / "model.h5"
    shutil.copyfile(K3 / "functional.keras", path)
    code, out, err = cli("layers", path)
    assert code == 2 and out == "" and "zip archive" in err and "rename it to .keras" in err


def test_an_h5_model_named_keras_is_refused_as_keras_refuses_it(tmp_path, cli):
    path = tmp_path / "model.keras"
    shutil.copyfile(K3 / "functional.h5", path)
    code, out, err = cli("layers", path)
    assert code == 2 and out == "" and "must be a zip archive" in err and "HDF5" in err


def test_an_unknown_name_is_read_by_content(tmp_path, cli):
    for fixture in ("functional.keras", "functional.h5"):
        path = tmp_path / f"blob-{fixture.replace('.', '-')}"
        shutil.copyfile(K3 / fixture, path)
        code, out, _ = cli("layers", path, "--format", "json")
        assert code == 0 and '"main_output"' in out


def test_a_real_keras_file_whose_weights_land_on_an_aligned_offset_is_still_read(tmp_path, cli):
    """A .keras zip stores model.weights.h5 uncompressed: if its data starts at 512*2**k, h5py sees HDF5 there.

    That is the zip's own member, not a second model, so the file is read as the zip it is named for.
    """
    src = zipfile.ZipFile(K3 / "functional.keras")
    members = [(i, src.read(i.filename)) for i in src.infolist()]
    for pad in range(0, 4096):
        path = tmp_path / "aligned.keras"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
            for info, data in members:
                zinfo = zipfile.ZipInfo(info.filename)
                if info.filename == "model.weights.h5":  # padding in the local header's extra field
                    zinfo.extra = b"\xfe\xca" + struct.pack("<H", pad) + b"\0" * pad
                dst.writestr(zinfo, data)
        if h5py.is_hdf5(path):
            break
    else:
        pytest.fail("could not align the weights member on an HDF5 superblock offset")
    code, out, err = cli("layers", path, "--format", "json")
    assert code == 0, err
    assert '"main_output"' in out


@pytest.mark.tensorflow
@pytest.mark.parametrize("trick", sorted(TRICKS))
def test_keras_reads_each_name_of_a_polyglot_as_a_different_model(tmp_path, trick):
    """The oracle: why refusing is right. Keras loads the HDF5 model as .h5 and the zip model as .keras."""
    from archdiff.lazy import require_keras

    keras = require_keras()
    as_h5 = TRICKS[trick](tmp_path, "model.h5")
    as_keras = tmp_path / "model.keras"
    shutil.copyfile(as_h5, as_keras)
    h5_names = [layer.name for layer in keras.models.load_model(as_h5, compile=False).layers]
    zip_names = [layer.name for layer in keras.models.load_model(as_keras, compile=False).layers]
    assert h5_names != zip_names
    assert "main_output" in h5_names
