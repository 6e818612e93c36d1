"""Benchmarks of ``archdiff diff``: a fresh process against what a user would otherwise run.

Rows (each timed as a fresh process, side by side in one run):

* ``archdiff diff ResNet50.keras ResNet101.keras`` against (a) loading both
  with Keras and comparing ``model.layers`` names, (b) ``deepdiff`` over the
  two raw ``config.json``, (c) a bare Python process that only parses both
  ``config.json``. Targets (issue 19): >= 15x faster than (a) with weight
  values compared (the default), >= 30x with ``--topology-only`` (topology,
  configs and weight shapes); faster than (b).
* The same pair as ``.json`` files against (c): within 3x.
* Scaling: synthetic Functional configs (plain JSON written here, no Keras)
  of 1,000 / 10,000 / 50,000 layers, B with 1% of layers changed and a few
  Conv2D layers inserted early (so Keras auto names shift: renames to find),
  diffed with rename detection. ``archdiff_s`` is the in-process time of
  ``diff()`` (inputs already loaded); the baseline column holds the
  fresh-process CLI time (read both files, diff, render). Target: 10,000
  layers in under 2 s, growing about linearly.

* Issue 19's scaling (first rows): two synthetic N-layer JSON configs (10,000 /
  30,000 / 100,000 layers, the generator above, no Keras), a fresh-process
  ``archdiff diff`` with the default text report against bare ``json.load`` of
  both files, with archdiff's peak memory against the files' size. Targets:
  within 3x, 100k / 10k <= 11x, peak <= 4x the files (the note gives the
  peak of ``json.load`` of both files alone beside it)
  (``json_scaling_rows()`` alone: ``python -c "import bench.bench_diff as b; print(b.json_scaling_rows())"``).

Run: ``.venv/bin/python -c "import bench.bench_diff as b; print(b.run())"``.
"""
from __future__ import annotations

import copy
import json
import random
import time
from pathlib import Path

from bench.common import CACHE, PYTHON, archdiff_argv, ensure_application, precompile, row, time_command, time_python

SIZES = (1_000, 10_000, 50_000)


# -- synthetic models ---------------------------------------------------------------------
_DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def _snake(class_name: str) -> str:
    return {"Conv2D": "conv2d", "BatchNormalization": "batch_normalization", "Activation": "activation",
            "Add": "add", "GlobalAveragePooling2D": "global_average_pooling2d", "Dense": "dense",
            "InputLayer": "input_layer"}[class_name]


def _ops(n_layers: int) -> list[dict]:
    """A residual conv net as abstract ops: ``{"cls", "cfg", "inputs": [op ids]}``, about n_layers long."""
    ops: list[dict] = [{"cls": "InputLayer", "cfg": {"batch_shape": [None, 16, 16, 8]}, "inputs": []}]

    def add(cls, cfg, inputs):
        ops.append({"cls": cls, "cfg": cfg, "inputs": inputs})
        return len(ops) - 1

    def conv(src):
        return add("Conv2D", {"filters": 8, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
                              "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                              "activation": "linear", "use_bias": False}, [src])

    def bn(src):
        return add("BatchNormalization", {"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True,
                                          "scale": True}, [src])

    def act(src):
        return add("Activation", {"activation": "relu"}, [src])

    x = 0
    while len(ops) + 7 + 2 <= n_layers:
        y = act(bn(conv(x)))
        y = bn(conv(y))
        x = act(add("Add", {}, [x, y]))
    pooled = add("GlobalAveragePooling2D", {"data_format": "channels_last", "keepdims": False}, [x])
    add("Dense", {"units": 10, "activation": "softmax", "use_bias": True}, [pooled])
    return ops


def _config(ops: list[dict], name: str) -> dict:
    """Keras 3 JSON for the ops, with Keras' auto names (per-class counters in order)."""
    counters: dict[str, int] = {}
    names = []
    for op in ops:
        stem = _snake(op["cls"])
        k = counters.get(stem, 0)
        counters[stem] = k + 1
        names.append(stem if k == 0 else f"{stem}_{k}")
    layers = []
    for op, lname in zip(ops, names):
        cfg = {"name": lname, "trainable": True, "dtype": dict(_DTYPE), **copy.deepcopy(op["cfg"])}
        args = [{"class_name": "__keras_tensor__", "config": {"shape": None, "dtype": "float32",
                                                               "keras_history": [names[i], 0, 0]}}
                for i in op["inputs"]]
        nodes = [] if not args else [{"args": args if len(args) == 1 else [args], "kwargs": {}}]
        layers.append({"module": "keras.layers", "class_name": op["cls"], "config": cfg, "registered_name": None,
                       "name": lname, "inbound_nodes": nodes})
    return {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": name, "trainable": True, "layers": layers,
                       "input_layers": [names[0], 0, 0], "output_layers": [names[-1], 0, 0]},
            "keras_version": "3.15.1", "backend": "tensorflow"}


def synthetic_pair(n_layers: int, *, changed: float = 0.01, inserted: int | None = None, seed: int = 0):
    """Configs (A, B) and what B changed: ~1% of layers edited, a few Conv2D inserted early and midway."""
    rng = random.Random(seed)
    ops_a = _ops(n_layers)
    ops_b = copy.deepcopy(ops_a)
    n_changed = max(1, int(len(ops_b) * changed))
    for i in rng.sample(range(1, len(ops_b) - 2), n_changed):
        op = ops_b[i]
        if op["cls"] == "Conv2D":
            op["cfg"]["dilation_rate"] = [2, 2]
        elif op["cls"] == "BatchNormalization":
            op["cfg"]["momentum"] = 0.9
        elif op["cls"] == "Activation":
            op["cfg"]["activation"] = "gelu"
        else:
            op["cfg"]["trainable_note"] = "edited"  # an Add: a config key only B has
    inserted = max(1, n_layers // 2000) if inserted is None else inserted
    # Insert a Conv2D after an Activation early on (and spread out): later conv auto names all shift.
    acts = [i for i, op in enumerate(ops_b) if op["cls"] == "Activation"]
    spots = sorted({acts[min(len(acts) - 1, 1 + k * max(1, len(acts) // (inserted + 1)))] for k in range(inserted)})
    for spot in reversed(spots):
        consumer = next(j for j in range(spot + 1, len(ops_b)) if ops_b[j]["cls"] == "Conv2D"
                        and ops_b[j]["inputs"] == [spot])
        new = {"cls": "Conv2D", "cfg": copy.deepcopy(ops_b[consumer]["cfg"]), "inputs": [spot]}
        ops_b.insert(spot + 1, new)
        for op in ops_b[spot + 2:]:
            op["inputs"] = [i + 1 if i > spot else i for i in op["inputs"]]
        ops_b[consumer + 1]["inputs"] = [spot + 1]
    return _config(ops_a, "synthetic_a"), _config(ops_b, "synthetic_b"), {"changed": n_changed,
                                                                         "inserted": len(spots)}


def write_synthetic(n_layers: int) -> tuple[Path, Path, dict]:
    folder = CACHE / "synthetic"
    folder.mkdir(parents=True, exist_ok=True)
    a_path, b_path = folder / f"a_{n_layers}.json", folder / f"b_{n_layers}.json"
    meta_path = folder / f"meta_{n_layers}.json"
    if not (a_path.exists() and b_path.exists() and meta_path.exists()):
        a, b, meta = synthetic_pair(n_layers)
        a_path.write_text(json.dumps(a))
        b_path.write_text(json.dumps(b))
        meta_path.write_text(json.dumps(meta))
    return a_path, b_path, json.loads(meta_path.read_text())


# -- rows -----------------------------------------------------------------------------
def _keras_names_code(a: Path, b: Path) -> str:
    return f"""
        import os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import keras
        a = keras.models.load_model({str(a)!r}, compile=False)
        b = keras.models.load_model({str(b)!r}, compile=False)
        na, nb = [l.name for l in a.layers], [l.name for l in b.layers]
        shared, only_a, only_b = set(na) & set(nb), set(na) - set(nb), set(nb) - set(na)
    """


def _deepdiff_code(a: Path, b: Path) -> str:
    return f"""
        import json, zipfile
        from deepdiff import DeepDiff
        ca = json.loads(zipfile.ZipFile({str(a)!r}).read("config.json"))
        cb = json.loads(zipfile.ZipFile({str(b)!r}).read("config.json"))
        DeepDiff(ca, cb)
    """


def _bare_zip_code(a: Path, b: Path) -> str:
    return f"""
        import json, zipfile
        json.loads(zipfile.ZipFile({str(a)!r}).read("config.json"))
        json.loads(zipfile.ZipFile({str(b)!r}).read("config.json"))
    """


def _bare_json_code(a: Path, b: Path) -> str:
    return f"""
        import json
        json.load(open({str(a)!r}))
        json.load(open({str(b)!r}))
    """


def _time_archdiff(*args: str, repeat: int = 5) -> float:
    # diff exits 1 when the models differ: time it through a wrapper that maps 1 to 0.
    code = ("import sys; from archdiff.cli import main; "
            f"sys.argv = ['archdiff', *{list(args)!r}]; code = main(sys.argv[1:]); sys.exit(0 if code in (0, 1) else code)")
    return time_command([PYTHON, "-c", code], repeat=repeat)


#: Issue 19's scaling rows: two N-layer JSON configs, a fresh-process diff with the default report.
JSON_SIZES = (10_000, 30_000, 100_000)


def _peak_mb(*args: str) -> float:
    """Peak resident memory of one fresh-process ``archdiff`` run, in MB."""
    code = ("import resource, sys; from archdiff.cli import main; code = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    return _peak_of(code, *args)


def _peak_of(code: str, *args: str) -> float:
    """Peak resident memory of a fresh ``python -c code args`` that prints its ru_maxrss (KB) last on stderr."""
    import subprocess

    proc = subprocess.run([PYTHON, "-c", code, *args], capture_output=True, text=True)
    return int(proc.stderr.strip().splitlines()[-1]) / 1024


def _bare_json_peak_mb(a: Path, b: Path) -> float:
    """Peak resident memory of the floor itself: a fresh python that json.load()s both files, in MB."""
    code = ("import json, resource, sys; x = json.load(open(sys.argv[1])); y = json.load(open(sys.argv[2])); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    return _peak_of(code, str(a), str(b))


def json_scaling_rows() -> list[dict]:
    """``diff`` of two N-layer Keras 3 JSON configs against bare ``json.load`` of both, in one run."""
    rows, times = [], {}
    for n in JSON_SIZES:
        a_path, b_path, _ = write_synthetic(n)
        out = CACHE / "diff_out.txt"
        ours = _time_archdiff("diff", str(a_path), str(b_path), "-o", str(out), repeat=3)
        bare = time_python(_bare_json_code(a_path, b_path), repeat=3)
        peak = _peak_mb("diff", str(a_path), str(b_path), "-o", str(out))
        floor_peak = _bare_json_peak_mb(a_path, b_path)
        size_mb = (a_path.stat().st_size + b_path.stat().st_size) / 1e6
        times[n] = ours
        growth = f"; {n // 1000}k / 10k: {ours / times[10_000]:.1f}x the time" if n != 10_000 else ""
        rows.append(row(f"diff two {n:,}-layer JSON configs (fresh process, default report)", ours,
                        "bare python: json.load both files", bare,
                        target="within 3x (speedup >= 0.33); 100k / 10k <= 11x; peak <= 4x the files",
                        note=f"peak {peak:.0f} MB for {size_mb:.0f} MB of files ({peak / size_mb:.1f}x; "
                             f"json.load of both alone peaks at {floor_peak:.0f} MB, {floor_peak / size_mb:.1f}x)"
                             f"{growth}"))
    return rows


def run() -> list[dict]:
    rows = json_scaling_rows()
    precompile()
    r50 = ensure_application("ResNet50", "keras")
    r101 = ensure_application("ResNet101", "keras")
    ours = _time_archdiff("diff", str(r50), str(r101), "--format", "json", "-o", str(CACHE / "diff_out.json"))
    keras_s = time_python(_keras_names_code(r50, r101), repeat=3, warmup=1)
    rows.append(row("diff ResNet50.keras ResNet101.keras (weight values compared, the default)", ours,
                    "(a) Keras: load_model both + compare model.layers names", keras_s,
                    target=">= 15x faster (issue 19)"))
    topo = _time_archdiff("diff", str(r50), str(r101), "--topology-only", "--format", "json",
                          "-o", str(CACHE / "diff_out.json"))
    rows.append(row("diff --topology-only ResNet50.keras ResNet101.keras (topology, configs, weight shapes)", topo,
                    "(a) Keras: load_model both + compare model.layers names", keras_s,
                    target=">= 30x faster (issue 19)"))
    deep_s = time_python(_deepdiff_code(r50, r101), repeat=3)
    rows.append(row("diff ResNet50.keras ResNet101.keras", ours, "(b) deepdiff over the two raw config.json",
                    deep_s, target="faster"))
    bare_s = time_python(_bare_zip_code(r50, r101))
    rows.append(row("diff ResNet50.keras ResNet101.keras", ours, "(c) bare python: parse both config.json (zip)",
                    bare_s, note="for reference; archdiff also reads both weight files' shapes"))

    j50 = ensure_application("ResNet50", "json")
    j101 = ensure_application("ResNet101", "json")
    ours_json = _time_archdiff("diff", str(j50), str(j101), "--format", "json", "-o", str(CACHE / "diff_out.json"))
    bare_json = time_python(_bare_json_code(j50, j101))
    rows.append(row("diff ResNet50.json ResNet101.json", ours_json, "(c) bare python: json.load both files",
                    bare_json, target="within 3x (speedup >= 0.33)"))

    from archdiff.diff import diff
    from archdiff.read import load

    for n in SIZES:
        a_path, b_path, meta = write_synthetic(n)
        a, b = load(a_path), load(b_path)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            d = diff(a, b)
            times.append(time.perf_counter() - start)
        in_process = min(times)
        cli = _time_archdiff("diff", str(a_path), str(b_path), "-o", str(CACHE / "diff_out.txt"),
                             repeat=3 if n < 50_000 else 1)
        s = d.summary()
        rows.append(row(f"diff synthetic {len(a.layers):,} layers (in-process diff(), renames on)", in_process,
                        "fresh-process archdiff diff (read + diff + render)", cli,
                        target="10,000 layers < 2 s; ~linear",
                        note=f"B: {meta['changed']} changed, {meta['inserted']} inserted -> "
                             f"{s['renamed']} renamed, {s['changed']} changed, {s['added']} added, "
                             f"{s['removed']} removed"))
    return rows


__all__ = ["archdiff_argv", "run", "synthetic_pair", "write_synthetic"]
