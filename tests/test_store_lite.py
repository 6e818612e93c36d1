"""Weight values read without h5py (archdiff.store.lite) against h5py's reading of the same files.

Expected values are h5py's (libhdf5's): every dataset of every Keras 3 fixture
and of files built with h5py reads to the same shape, dtype and bytes, whole
and block by block; what the metadata reader declines goes to h5py; a value
comparison gives the same report either way, on one thread or several; a file
that changes under the comparison gives one error line.
"""
from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import FIXTURES
from test_hdf5_lite import DECLINED, READ, _keras3_like

from archdiff.diff.values import compare as values_compare
from archdiff.diff.values import compare_weights
from archdiff.errors import InputError
from archdiff.store import blocks, open_store
from archdiff.store.lite import LiteStore, open_lite_store


def _format(path: Path) -> str:
    return "keras" if path.suffix == ".keras" else "weights.h5"


def _fixtures() -> list[Path]:
    out = []
    for folder in ("keras3", "keras_hub", "demo"):
        out += sorted(p for p in (FIXTURES / folder).rglob("*") if p.name.endswith((".keras", ".weights.h5")))
    return out


def _same(lite_ds, h5_ds, sel=None) -> None:
    got, want = lite_ds.read(sel), np.asarray(h5_ds.read(sel))
    assert got.shape == want.shape and got.dtype == want.dtype, (lite_ds, sel)
    assert got.tobytes() == np.ascontiguousarray(want).tobytes(), (lite_ds, sel)


def _assert_reads_as_h5py(path: Path) -> int:
    """Every dataset of ``path`` read by the lite store as h5py reads it; the number of datasets."""
    fmt = _format(path)
    with open_lite_store(str(path), format=fmt) as lite, \
            open_store(str(path), format=fmt, check_datasets=False) as store:
        locations = sorted("/" + key for key, kind in store.index.kinds.items() if kind == "dataset")
        assert lite.locations() == locations
        for location in locations:
            a, b = lite.dataset(location), store.dataset(location)
            assert (a.shape, a.dtype, a.nbytes) == (b.shape, b.dtype, b.nbytes)
            _same(a, b)
            assert a.checksum() == b.checksum()
            # Block reads, at budgets from one element up: each block is h5py's ``ds[sel]``.
            for budget in (a.dtype.itemsize, 3 * a.dtype.itemsize, 100, 4096):
                for n, sel in enumerate(blocks(a.shape, a.dtype.itemsize, budget)):
                    if n >= 40:
                        break
                    _same(a, b, sel)
        return len(locations)


def test_every_keras3_fixture_reads_its_values_as_h5py_does():
    opened = datasets = 0
    for path in _fixtures():
        if open_lite_store(str(path), format=_format(path)) is None:
            continue
        opened += 1
        datasets += _assert_reads_as_h5py(path)
    # Most of them are what the reader reads (the rest go to h5py, tested below).
    assert opened >= 15 and datasets >= 150, (opened, datasets)


@pytest.mark.parametrize("case", sorted(READ))
def test_what_the_reader_knows_reads_the_values_h5py_reads(case, tmp_path):
    path = _keras3_like(tmp_path / "m.weights.h5", build=READ[case])
    assert open_lite_store(str(path), format="weights.h5") is not None
    assert _assert_reads_as_h5py(path) >= 2


@pytest.mark.parametrize("case", sorted(DECLINED))
def test_what_the_reader_declines_goes_to_h5py(case, tmp_path):
    build, kwargs = DECLINED[case]
    path = _keras3_like(tmp_path / "m.weights.h5", build=build, **kwargs)
    assert open_lite_store(str(path), format="weights.h5") is None


def test_other_formats_a_deflated_keras_and_the_switch_go_to_h5py(tmp_path, monkeypatch):
    source = FIXTURES / "keras3" / "functional.keras"
    assert open_lite_store(str(source), format="keras") is not None
    assert open_lite_store(str(FIXTURES / "keras2" / "functional.h5"), format="h5") is None
    deflated = tmp_path / "deflated.keras"
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    assert open_lite_store(str(deflated), format="keras") is None
    monkeypatch.setenv("ARCHDIFF_LITE_HDF5", "0")
    assert open_lite_store(str(source), format="keras") is None


def _perturbed(tmp_path: Path) -> tuple[Path, Path]:
    """A Keras 3 .weights.h5 and a copy whose values moved in every way the figures tell apart."""
    a = FIXTURES / "keras3" / "resnet_small.weights.h5"
    b = tmp_path / "b.weights.h5"
    shutil.copyfile(a, b)
    rng = np.random.default_rng(5)
    with h5py.File(b, "r+") as f:
        names = []
        f.visit(lambda n: names.append(n) if isinstance(f[n], h5py.Dataset) else None)
        names.sort()
        assert len(names) >= 8
        for i, name in enumerate(names[:8]):
            ds = f[name]
            x = ds[()]
            if i == 0:
                x = x + rng.normal(size=x.shape).astype(x.dtype)
            elif i == 1:
                x = np.zeros_like(x)
            elif i == 2:
                x = x.copy()
                x.reshape(-1)[0] = np.nan
            elif i == 3:
                x = x.copy()
                x.reshape(-1)[-1] = np.inf
            elif i == 4:
                x = np.full_like(x, 0.5)
            elif i == 5:
                x = x * 2
            else:
                continue  # unchanged
            ds[...] = x
    return a, b


def _report(a, b, **kwargs) -> dict:
    return compare_weights(str(a), str(b), **kwargs).to_dict()


def test_a_value_comparison_reports_alike_with_and_without_h5py_on_any_number_of_threads(tmp_path, monkeypatch):
    a, b = _perturbed(tmp_path)
    opened = []
    real = values_compare._open
    monkeypatch.setattr(values_compare, "_open", lambda arch, stack: opened.append(real(arch, stack)) or opened[-1])
    pairs = [(a, b), (FIXTURES / "keras3" / "nested.keras", FIXTURES / "keras3" / "nested.weights.h5"),
             (FIXTURES / "demo" / "source.keras", FIXTURES / "demo" / "target.keras")]
    for x, y in pairs:
        for mode in ("figures", "equal"):
            with monkeypatch.context() as m:
                m.setenv("ARCHDIFF_LITE_HDF5", "0")
                want = _report(x, y, mode=mode)
            assert opened and not any(isinstance(s, LiteStore) for s in opened)
            opened.clear()
            for workers in (1, 2, 4):
                with monkeypatch.context() as m:
                    m.setattr(values_compare, "MAX_WORKERS", workers)
                    m.setattr(values_compare.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
                    assert _report(x, y, mode=mode) == want, (x, y, mode, workers)
                assert opened and all(isinstance(s, LiteStore) for s in opened)
                opened.clear()
    # Variables over the block size are compared block by block: the same figures as h5py's blocks give.
    monkeypatch.setattr(values_compare, "BLOCK_BYTES", 64)
    with monkeypatch.context() as m:
        m.setenv("ARCHDIFF_LITE_HDF5", "0")
        want = _report(a, b)
    assert _report(a, b) == want
    changed = [lv for lv in want["layers"] if lv["status"] == "changed"]
    assert changed and any(lv["nan_introduced"] for lv in changed) and any(lv["inf_introduced"] for lv in changed)


def test_threads_follow_the_cores_and_only_without_h5py(monkeypatch, tmp_path):
    path = str(FIXTURES / "keras3" / "functional.keras")
    with open_lite_store(path, format="keras") as lite, open_store(path, format="keras") as store:
        monkeypatch.setattr(values_compare.os, "sched_getaffinity", lambda pid: {0})
        assert values_compare._workers(lite, lite, 100) == 1
        monkeypatch.setattr(values_compare.os, "sched_getaffinity", lambda pid: set(range(16)))
        assert values_compare._workers(lite, lite, 100) == values_compare.MAX_WORKERS
        assert values_compare._workers(lite, lite, 1) == 1
        assert values_compare._workers(lite, store, 100) == 1  # h5py's global lock: threads would only wait


def test_a_file_cut_short_while_compared_is_one_error_line(tmp_path):
    path = tmp_path / "m.weights.h5"
    shutil.copyfile(FIXTURES / "keras3" / "resnet_small.weights.h5", path)
    with open_lite_store(str(path), format="weights.h5") as lite:
        location = max(lite.locations(), key=lambda loc: lite.dataset(loc).nbytes)
        ds = lite.dataset(location)
        before = ds.read()
        with open(path, "r+b") as f:
            f.truncate(ds._offset + ds.nbytes // 2)  # halfway through its bytes
        with pytest.raises(InputError) as exc:
            ds.read()
    line = exc.value.one_line()
    assert "changed since it was read" in line and str(path) in line and "\n" not in line
    assert before.size


@pytest.mark.parametrize("name,seed", [("resnet_small.weights.h5", 21), ("nested.keras", 22)])
def test_damaged_copies_read_the_values_h5py_reads_or_go_to_h5py(name, seed, tmp_path):
    """Bytes flipped in the metadata (a dataset's address or size among them): where the store opens a
    damaged copy, h5py opens it too and reads every dataset to the same bytes."""
    import random

    from test_hdf5_lite import _metadata_bytes

    from archdiff.read import hdf5 as h5
    from archdiff.read.hdf5_lite import open_lite

    source = FIXTURES / "keras3" / name
    data = source.read_bytes()
    offset, size = 0, len(data)
    if name.endswith(".keras"):
        with zipfile.ZipFile(source) as zf:
            info = zf.getinfo("model.weights.h5")
        offset, size = h5.stored_member_offset(str(source), info), info.file_size
    positions = _metadata_bytes(open_lite(str(source), offset=offset, size=size))
    rng = random.Random(seed)
    opened = declined = 0
    for i in range(80):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            damaged[offset + rng.choice(positions)] ^= 1 << rng.randrange(8)
        path = tmp_path / f"d{i}{''.join(source.suffixes)}"
        path.write_bytes(damaged)
        lite = open_lite_store(str(path), format=_format(path))
        if lite is None:
            declined += 1
        else:
            lite.close()
            opened += 1
            try:
                _assert_reads_as_h5py(path)
            except InputError as exc:
                raise AssertionError(f"copy {i}: the store read it, h5py refuses it: {exc.one_line()}") from None
        path.unlink()
    assert opened >= 10 and declined >= 10, (opened, declined)


def test_a_value_diff_of_keras3_files_imports_no_h5py():
    from test_hdf5_lite import _imports_after

    a, b = str(FIXTURES / "demo" / "source.keras"), str(FIXTURES / "demo" / "target.keras")
    assert _imports_after(["diff", a, b]) == {"numpy"}
    assert _imports_after(["diff", a, b], ARCHDIFF_LITE_HDF5="0") == {"h5py", "numpy"}


def test_a_comparison_whose_file_is_cut_short_stops_with_one_error_line_and_no_thread_left(tmp_path, monkeypatch):
    import threading

    from archdiff.read import load
    from archdiff.store import lite

    a, b = _perturbed(tmp_path)
    arch_a, arch_b = load(str(a)), load(str(b))
    real = lite.open_lite_store

    def then_cut(path, **kwargs):
        store = real(path, **kwargs)
        if path == str(b):  # B loses its last half once its store is open: its datasets' bytes are gone
            with open(b, "r+b") as f:
                f.truncate(b.stat().st_size // 2)
        return store

    monkeypatch.setattr(lite, "open_lite_store", then_cut)
    monkeypatch.setattr(values_compare.os, "sched_getaffinity", lambda pid: {0, 1})
    with pytest.raises(InputError) as exc:
        compare_weights(arch_a, arch_b)
    assert "changed since it was read" in exc.value.one_line() and str(b) in exc.value.one_line()
    assert not [t for t in threading.enumerate() if t.name.startswith("archdiff-values")]


def test_an_encrypted_weights_member_goes_to_h5py_which_refuses_it(tmp_path):
    """A stored member flagged encrypted holds no HDF5 bytes to read in place (the reader refuses it)."""
    source = FIXTURES / "keras3" / "functional.keras"
    flagged = tmp_path / "flagged.keras"
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo("model.weights.h5")
    assert info.compress_type == zipfile.ZIP_STORED
    data[info.header_offset + 6] |= 0x1  # the local header's flags
    name = info.filename.encode()
    at = data.find(b"PK\x01\x02")
    while data[at + 46:at + 46 + len(name)] != name:  # the member's central directory entry
        at = data.find(b"PK\x01\x02", at + 4)
    data[at + 8] |= 0x1
    flagged.write_bytes(bytes(data))
    with zipfile.ZipFile(flagged) as zf:
        assert zf.getinfo("model.weights.h5").flag_bits & 0x1
    assert open_lite_store(str(flagged), format="keras") is None
    with pytest.raises(InputError) as exc:
        open_store(str(flagged), format="keras")
    assert "encrypted" in exc.value.one_line()
