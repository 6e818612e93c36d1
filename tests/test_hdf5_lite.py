"""The HDF5 metadata reader without h5py (archdiff.read.hdf5_lite) against h5py itself.

The reader must give exactly what the h5py-based reader gives, or decline so
that h5py reads the file: never an answer of its own. Expected values here are
h5py's (libhdf5's) answers, read with ``ARCHDIFF_LITE_HDF5=0`` in a supervised
child, on every fixture, on files built with h5py to hold each thing the
reader declines, and on a seeded corpus of damaged copies of the fixtures
(bytes flipped in their metadata): where libhdf5 refuses a damaged file, the
reader must have declined it.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import FIXTURES, ROOT

from archdiff.errors import ArchdiffError
from archdiff.read import dispatch
from archdiff.read import hdf5 as h5
from archdiff.read.contain import contained
from archdiff.read.hdf5_lite import Decline, LiteFile, open_lite

K3 = FIXTURES / "keras3"


def _answer(path) -> tuple:
    """What archdiff's reader says about ``path``, in a supervised child: the Architecture and every layer's
    weights, or the error line."""
    try:
        arch = contained(dispatch._load_path, str(path))
    except ArchdiffError as exc:
        return ("error", exc.one_line())
    return ("ok", arch, [layer.weights for layer in arch.layers])


def _by_h5py(path, monkeypatch) -> tuple:
    with monkeypatch.context() as m:
        m.setenv("ARCHDIFF_LITE_HDF5", "0")
        return _answer(path)


def _lite_tree(path):
    """The lite reader's tree of ``path`` (a .keras or a Keras 3 .weights.h5) as archdiff's readers take it,
    None where it declines, or the error archdiff's reader raises first (a broken zip)."""
    from archdiff.read import keras_zip, legacy_h5

    path = str(path)
    try:
        if path.endswith(".keras"):
            try:
                zf = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError):
                return None
            with zf:
                if "model.weights.h5" not in zf.namelist():
                    return None
                return keras_zip._lite_tree(path, zf, path)
        return legacy_h5._lite_tree(path)
    except Decline:
        return None
    except ArchdiffError as exc:
        return exc


def _fixture_files() -> list[Path]:
    out = []
    for folder in ("keras3", "keras2", "keras_hub", "broken", "demo"):
        out += sorted(p for p in (FIXTURES / folder).glob("*") if p.suffix in (".keras", ".h5"))
    return out


def test_the_fixtures_read_alike_with_and_without_h5py(monkeypatch):
    files = _fixture_files()
    assert len(files) > 100
    taken = 0
    for path in files:
        taken += isinstance(_lite_tree(path), h5.SaveableNode)
        assert _answer(path) == _by_h5py(path, monkeypatch), path.name
    # Not a vacuous pass: the reader answers for most of the Keras 3 fixtures.
    assert taken >= 20


def test_the_fixtures_trees_are_h5pys_object_by_object():
    """Below the Architecture: every path, kind, shape, dtype and ``vars`` name, as h5py reads them."""
    from archdiff.read.hdf5_keras3 import _vars_name

    checked = 0
    for path in sorted(K3.glob("*.keras")) + sorted(K3.glob("*.weights.h5")):
        if path.suffix == ".keras":
            zf = zipfile.ZipFile(path)
            info = zf.getinfo("model.weights.h5")
            lite = open_lite(str(path), offset=h5.stored_member_offset(str(path), info), size=info.file_size)
            opened = h5.open_zip_member_h5(str(path), zf, "model.weights.h5", where=str(path))
        else:
            lite = open_lite(str(path))
            opened = h5.open_h5(str(path), where=str(path))
        assert lite is not None, path.name
        with opened as f:
            kinds = h5.scan(f, where=str(path))
            assert lite.kinds() == kinds
            for name, kind in kinds.items():
                if kind == "dataset":
                    info = h5._fast_dataset_info(f, name, "v", where=str(path))
                    assert lite.dataset(name) == (info.shape, info.dtype)
                    checked += 1
                elif name.rsplit("/", 1)[-1] == "vars":
                    assert lite.vars_name(name) == _vars_name(f, name, where=str(path))
    assert checked > 100


# -- files that hold what the reader declines ------------------------------------------
def _keras3_like(path: Path, *, build=None, **file_kwargs) -> Path:
    """A small Keras 3 weights layout written with h5py: layers/dense/vars/{0,1}, a ``name`` on vars;
    ``build(f)`` adds the case under test."""
    with h5py.File(path, "w", **file_kwargs) as f:
        g = f.create_group("layers/dense/vars")
        g.attrs["name"] = "dense"
        g.create_dataset("0", data=np.arange(12, dtype="float32").reshape(3, 4))
        g.create_dataset("1", data=np.zeros(4, dtype="float32"))
        f.create_group("vars")
        if build is not None:
            build(f)
    return path


def _chunked(f):
    f["layers/dense/vars"].create_dataset("2", data=np.ones((8, 8), "float32"), chunks=(4, 4))


def _compressed(f):
    f["layers/dense/vars"].create_dataset("2", data=np.ones((8, 8), "float32"), compression="gzip")


def _soft_link(f):
    f["layers/dense/vars/2"] = h5py.SoftLink("/layers/dense/vars/0")


def _external_link(f):
    f["layers/dense/vars/2"] = h5py.ExternalLink("other.h5", "/x")


def _hard_link(f):
    f["layers/dense/vars/2"] = f["layers/dense/vars/0"]


def _big_endian(f):
    f["layers/dense/vars"].create_dataset("2", data=np.ones(3, ">f4"))


def _booleans(f):
    f["layers/dense/vars"].create_dataset("2", data=np.ones(3, bool))


def _text(f):
    f["layers/dense/vars"].create_dataset("2", data=np.array([b"abc"]))


def _other_attribute(f):
    f["layers/dense/vars"].attrs["other"] = 1


def _fixed_length_name(f):
    f["layers/dense/vars"].attrs["name"] = np.bytes_("dense")


def _ordered_group(f):
    f.create_group("layers/ordered", track_order=True).create_group("vars").create_dataset("0", data=[1.0])


def _unicode_group(f):
    # h5py writes a group whose name is not ASCII in the newer layout (link messages).
    f.create_group("layers/\u00e9t\u00e9_\u4e2d/vars").create_dataset("0", data=np.ones(2, "float32"))


def _root_attribute(f):
    f.attrs["layer_names"] = [b"dense"]


DECLINED = {
    "chunked": (_chunked, {}), "compressed": (_compressed, {}), "soft link": (_soft_link, {}),
    "external link": (_external_link, {}), "hard link": (_hard_link, {}), "big-endian": (_big_endian, {}),
    "booleans": (_booleans, {}), "text": (_text, {}),
    "another attribute": (_other_attribute, {}),
    "fixed-length name": (_fixed_length_name, {}), "ordered group": (_ordered_group, {}),
    "root attribute": (_root_attribute, {}), "non-ASCII group": (_unicode_group, {}),
    "latest format": (None, {"libver": "latest"}),
    "user block": (None, {"userblock_size": 512}),
}


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_what_the_reader_does_not_know_goes_to_h5py(case, tmp_path, monkeypatch):
    build, kwargs = DECLINED[case]
    path = _keras3_like(tmp_path / "m.weights.h5", build=build, **kwargs)
    assert _lite_tree(path) is None
    # ... and the answer is h5py's, whatever it is (a reading, or a refusal of the link).
    assert _answer(path) == _by_h5py(path, monkeypatch)


def _float16(f):
    f["layers/dense/vars"].create_dataset("2", data=np.ones((2, 5), "float16"))


def _integers(f):
    for i, dtype in enumerate(("int8", "uint8", "int16", "int32", "int64", "uint64", "float64")):
        f["layers/dense/vars"].create_dataset(str(2 + i), data=np.arange(6, dtype=dtype))


def _compact(f):
    space = h5py.h5s.create_simple((4,))
    plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    plist.set_layout(h5py.h5d.COMPACT)
    plist.set_obj_track_times(False)  # as h5py's create_dataset, which Keras calls
    h5py.h5d.create(f["layers/dense/vars"].id, b"2", h5py.h5t.IEEE_F32LE, space, plist)


def _empty(f):
    f["layers/dense/vars"].create_dataset("2", data=np.zeros((0, 3), "float32"))


def _many_layers(f):
    # Enough members to split a group's B-tree into several nodes and levels.
    for i in range(300):
        g = f.create_group(f"layers/dense_{i}/vars")
        g.attrs["name"] = f"dense_{i}"
        g.create_dataset("0", data=np.full(2, i, "float32"))


def _unicode_name(f):
    f["layers/dense/vars"].attrs["name"] = "\u00e9t\u00e9 \u4e2d"


READ = {"float16": _float16, "integers and doubles": _integers, "compact": _compact, "empty": _empty,
        "a 300-layer model": _many_layers, "a non-ASCII layer name": _unicode_name}


@pytest.mark.parametrize("case", sorted(READ))
def test_what_the_reader_knows_it_reads_as_h5py_does(case, tmp_path, monkeypatch):
    path = _keras3_like(tmp_path / "m.weights.h5", build=READ[case])
    assert isinstance(_lite_tree(path), h5.SaveableNode), "the reader declined a file h5py writes by default"
    got = _answer(path)
    assert got[0] == "ok" and got == _by_h5py(path, monkeypatch)


# -- damaged files -----------------------------------------------------------------------
def _metadata_bytes(lite: LiteFile) -> list[int]:
    out, start = [], 0
    for begin, end in lite.extents() + [(lite.size, lite.size)]:
        out += range(start, begin)
        start = max(start, end)
    return out


@pytest.mark.parametrize("name,seed", [("resnet_small.keras", 11), ("nested.keras", 12),
                                       ("functional.weights.h5", 13)])
def test_damaged_copies_are_read_as_h5py_reads_them_or_declined(name, seed, tmp_path, monkeypatch):
    """Bytes flipped in the metadata (not in the weights' data): libhdf5 refuses many such files; the reader
    must then have declined, and where it answers, its answer must be libhdf5's."""
    source = K3 / name
    data = source.read_bytes()
    if name.endswith(".keras"):
        with zipfile.ZipFile(source) as zf:
            info = zf.getinfo("model.weights.h5")
        offset, size = h5.stored_member_offset(str(source), info), info.file_size
    else:
        offset, size = 0, len(data)
    lite = open_lite(str(source), offset=offset, size=size)
    assert lite is not None
    positions = _metadata_bytes(lite)
    rng = random.Random(seed)
    answered = declined = 0
    for i in range(120):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            at = offset + rng.choice(positions)
            damaged[at] ^= (1 << rng.randrange(8)) if rng.random() < 0.7 else rng.randrange(1, 256)
        path = tmp_path / f"d{i}{''.join(source.suffixes)}"
        path.write_bytes(damaged)
        tree = _lite_tree(path)
        if not isinstance(tree, h5.SaveableNode):
            declined += 1
        else:
            answered += 1
            assert _answer(path) == _by_h5py(path, monkeypatch), f"copy {i}: the reader answered, libhdf5 differs"
        path.unlink()
    assert answered >= 20 and declined >= 20, (answered, declined)


# -- what it is for -------------------------------------------------------------------------
def _imports_after(args: list[str], **env) -> set[str]:
    code = ("import sys\nfrom archdiff.cli.main import main\nmain(sys.argv[1:])\n"
            "sys.stderr.write(' '.join(m for m in ('h5py', 'numpy') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "ARCHDIFF_CONTAIN": "0", **env}, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return set(proc.stderr.split())


def test_layers_and_a_topology_diff_of_keras_files_need_neither_h5py_nor_numpy():
    a, b = str(K3 / "functional.keras"), str(K3 / "nested.keras")
    assert _imports_after(["layers", a]) == set()
    assert _imports_after(["diff", "--topology-only", a, b]) == set()
    assert _imports_after(["layers", str(K3 / "functional.weights.h5")]) == set()
    # The switch that hands every file to h5py.
    assert _imports_after(["layers", a], ARCHDIFF_LITE_HDF5="0") == {"h5py", "numpy"}
