"""Bench rows for weight values in `archdiff diff`: speed on a ResNet50 pair, peak memory on a large pair.

Rows (fresh processes, same run):

* ``archdiff diff A.keras B.keras`` on two ResNet50-size Keras 3 files (``keras.applications.ResNet50``,
  weights=None, seed 0; B is A with the last stage and the head perturbed, so some variables changed
  and the rest are bitwise equal) vs a bare h5py + numpy loop that reads every dataset of both files'
  weights (the same bytes, extracted from the zips before timing) and compares them
  (``np.array_equal``): the least a user would write. Target: within 1.5x (speedup >= 0.67).
* The same bare loop reading the ``.keras`` zips' members through Python file objects (what a user
  writes without extracting them), for reference.
* The same pair with ``--values equal`` and with ``--topology-only`` (what reading the architectures
  costs by itself), for reference.
* Peak memory (``ru_maxrss`` of the child) of ``archdiff diff`` on a pair of Keras 3 ``.weights.h5``
  files written with h5py for the bench (a few big float32 tensors, B another seed: every big variable
  changed, every figure computed), vs the bare loop. By default four 128 MiB tensors per file;
  ``ARCHDIFF_BENCH_BIG=1`` writes the 2 GB pair (four 512 MiB tensors per file, about 4.3 GB of disk,
  removed afterwards). Target: peak RSS < 2x the largest variable + 150 MB.
"""
from __future__ import annotations

import os
import tempfile
import textwrap
import zipfile
from pathlib import Path

from bench.bench_transfer import _cpu_note, _measure, _peak, _write_big
from bench.common import CACHE, PYTHON, archdiff_argv, ensure_application, row, run_python

#: Variables of B perturbed: every dataset under these layer-name prefixes (ResNet50's last stage, its head).
PERTURBED = ("conv5_block3", "predictions")


def _perturbed_copy(src: Path, dst: Path) -> tuple[int, int]:
    """``dst``: the ``.keras`` ``src`` with the weights of :data:`PERTURBED` layers scaled; (changed, total)."""
    weights = dst.with_suffix(".weights-tmp.h5")
    with zipfile.ZipFile(src) as zf:
        weights.write_bytes(zf.read("model.weights.h5"))
        members = {i.filename: zf.read(i.filename) for i in zf.infolist() if i.filename != "model.weights.h5"}
    done = run_python(f"""
        import h5py, numpy as np
        gen = np.random.default_rng(1)
        changed = total = 0
        with h5py.File({str(weights)!r}, "r+") as f:
            def visit(name, obj):
                global changed, total
                if isinstance(obj, h5py.Dataset):
                    total += 1
                    owner = obj.parent.attrs.get("name", "")
                    owner = owner.decode() if isinstance(owner, bytes) else str(owner)
                    if owner.startswith({PERTURBED!r}):
                        old = obj[...]
                        new = old * (1 + 0.01 * gen.standard_normal(obj.shape)).astype(obj.dtype)
                        obj[...] = new
                        changed += int(not np.array_equal(old, new))  # a zero bias stays zero
            f.visititems(visit)
        print(changed, total)
    """)
    changed, total = (int(x) for x in done.stdout.split())
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED) as out:
        for name, data in members.items():
            out.writestr(name, data)
        out.write(weights, "model.weights.h5")
    weights.unlink()
    return changed, total


def _extract(keras_file: Path, dst: Path) -> Path:
    with zipfile.ZipFile(keras_file) as zf:
        dst.write_bytes(zf.read("model.weights.h5"))
    return dst


def _bare_loop(a: Path, b: Path) -> str:
    """What a user writes without archdiff: read every dataset of both files, compare, count."""
    return textwrap.dedent(f"""
        import h5py, numpy as np
        changed = 0
        with h5py.File({str(a)!r}, "r") as fa, h5py.File({str(b)!r}, "r") as fb:
            names = []
            fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in names:
                if not np.array_equal(fa[n][()], fb[n][()]):
                    changed += 1
        print(changed)
    """)


def _bare_zip_loop(a: Path, b: Path) -> str:
    """The same loop on the ``.keras`` files themselves: h5py on each zip's member as a Python file object."""
    return textwrap.dedent(f"""
        import zipfile, h5py, numpy as np
        changed = 0
        with zipfile.ZipFile({str(a)!r}) as za, zipfile.ZipFile({str(b)!r}) as zb, \\
                za.open("model.weights.h5") as ma, zb.open("model.weights.h5") as mb, \\
                h5py.File(ma, "r") as fa, h5py.File(mb, "r") as fb:
            names = []
            fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in names:
                if not np.array_equal(fa[n][()], fb[n][()]):
                    changed += 1
        print(changed)
    """)


def run() -> list[dict]:
    rows = []
    a = ensure_application("ResNet50", "keras")
    with tempfile.TemporaryDirectory(prefix="archdiff-bench-values-", dir=CACHE) as tmp:
        work = Path(tmp)
        b = work / "resnet50_retrained.keras"
        changed, total = _perturbed_copy(a, b)
        wa, wb = _extract(a, work / "a.weights.h5"), _extract(b, work / "b.weights.h5")
        ours, ours_cpu = _measure(archdiff_argv("diff", str(a), str(b), "--format", "json", "--fail-on", "none"))
        bare, bare_cpu = _measure([PYTHON, "-c", _bare_loop(wa, wb)])
        size = a.stat().st_size
        rows.append(row(f"diff values ResNet50 .keras pair ({size / 2**20:.0f} MB each; {changed} of {total} "
                        "variables changed)", ours, "bare h5py + numpy loop: read and compare every dataset",
                        bare, target="within 1.5x (speedup >= 0.67)",
                        note="archdiff also reads both configs and diffs the architecture; "
                             + _cpu_note(ours_cpu, bare_cpu)))
        bare_zip, bare_zip_cpu = _measure([PYTHON, "-c", _bare_zip_loop(a, b)])
        rows.append(row("diff values ResNet50 .keras pair (the same)", ours,
                        "the bare loop on the .keras zips (h5py on each member as a Python file object)", bare_zip,
                        note=_cpu_note(ours_cpu, bare_zip_cpu)))
        equal, equal_cpu = _measure(archdiff_argv("diff", str(a), str(b), "--format", "json", "--fail-on", "none",
                                                  "--values", "equal"))
        rows.append(row("diff --values equal ResNet50 .keras pair (no figures)", equal,
                        "bare h5py + numpy loop: read and compare every dataset", bare,
                        note=_cpu_note(equal_cpu, bare_cpu)))
        topology, topology_cpu = _measure(archdiff_argv("diff", str(a), str(b), "--format", "json", "--fail-on",
                                                        "none", "--topology-only"))
        rows.append(row("diff --topology-only ResNet50 .keras pair (the architecture alone: what values add to)",
                        topology, "bare h5py + numpy loop: read and compare every dataset", bare,
                        note=f"values add {ours - topology:.2f} s wall, {ours_cpu - topology_cpu:.2f} s CPU to it; "
                             + _cpu_note(topology_cpu, bare_cpu)))
    rows.append(big_row())
    return rows


# -- peak memory on a large pair ---------------------------------------------------------
def big_row() -> dict:
    big = os.environ.get("ARCHDIFF_BENCH_BIG") == "1"
    shape = (8192, 16384) if big else (4096, 8192)
    tensors = 4
    with tempfile.TemporaryDirectory(prefix="archdiff-bench-values-big-", dir=CACHE) as tmp:
        work = Path(tmp)
        a, b = work / "big_a.weights.h5", work / "big_b.weights.h5"
        _write_big(a, 0, tensors=tensors, big_shape=shape)
        _write_big(b, 1, tensors=tensors, big_shape=shape)
        size = a.stat().st_size
        largest = shape[0] * shape[1] * 4
        ours_s, ours_rss = _peak(archdiff_argv("diff", str(a), str(b), "--format", "json", "--fail-on", "none"))
        bare_s, bare_rss = _peak([PYTHON, "-c", _bare_loop(a, b)])
        limit = 2 * largest + 150 * 2**20
        result = row(f"diff values of two {size / 2**30:.2f} GB weights files, every big variable changed "
                     "(peak memory)", ours_s, "bare h5py + numpy loop: read and compare every dataset", bare_s,
                     target=f"peak RSS < 2x largest variable + 150 MB ({limit / 2**20:.0f} MB)",
                     note=(f"archdiff peak RSS {ours_rss / 2**20:.0f} MB "
                           f"({'met' if ours_rss < limit else 'MISSED'}); bare loop {bare_rss / 2**20:.0f} MB; "
                           f"largest variable {largest / 2**20:.0f} MB"
                           + ("" if big else "; ARCHDIFF_BENCH_BIG=1 runs the 2 GB pair")))
        result["archdiff_peak_rss_mb"] = round(ours_rss / 2**20, 1)
        result["baseline_peak_rss_mb"] = round(bare_rss / 2**20, 1)
        return result
