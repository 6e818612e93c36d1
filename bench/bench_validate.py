"""Bench rows for `archdiff validate --budget quick` on a ResNet50-sized port: time and peak memory.

The port: ResNet50's body (Keras 3, seeded random weights) transferred by
``archdiff transfer`` into ResNet50 with a new 10-class head. Rows (fresh
processes, same run, TensorFlow start-up included):

* validate ``--budget quick`` (all four checks) vs what Keras alone costs a
  user who only rebuilds the target, loads the weights and predicts one
  batch. Target: under 60 s on 2 CPU cores.
* its peak resident memory (``peak_rss_mb`` of the JSON report, the
  process' own ``ru_maxrss``). Target: under 2.5 GB.
* ``ARCHDIFF_BENCH_STANDARD=1`` adds the standard budget (today's default;
  several minutes on 2 cores).
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time

from bench.common import CACHE, ENV, archdiff_argv, row, run_python, time_python

_SOURCE = """
    import keras
    keras.utils.set_random_seed(0)
    keras.applications.ResNet50(weights=None).save(OUT)
"""
_TARGET = """
    import keras
    keras.utils.set_random_seed(1)
    base = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(224, 224, 3))
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    out = keras.layers.Dense(10, activation="softmax", name="new_predictions")(x)
    keras.Model(base.input, out, name="resnet50_new_head").save(OUT)
"""


def _cached(name: str, code: str):
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / name
    if not out.exists():
        tmp = out.with_name(out.name + ".part.keras")
        run_python(f"OUT = {str(tmp)!r}\n" + textwrap.dedent(code))
        tmp.rename(out)
    return out


def port():
    """(source, target, transferred weights) in bench/.cache."""
    source = _cached("validate_ResNet50_source.keras", _SOURCE)
    target = _cached("validate_ResNet50_target.keras", _TARGET)
    out = CACHE / "validate_ResNet50_port.keras"
    if not out.exists():
        subprocess.run(archdiff_argv("transfer", str(source), str(target), "-o", str(out)), env=ENV,
                       capture_output=True, text=True)
    return source, target, out


def _validate(budget: str, source, target, out) -> tuple[float, dict]:
    argv = archdiff_argv("validate", str(target), "--weights", str(out), "--source", str(source), "--budget", budget,
                         "--format", "json", "--no-progress")
    start = time.perf_counter()
    done = subprocess.run(argv, env=dict(ENV, CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"validate failed: {done.stderr[-500:]}")
    return wall, json.loads(done.stdout)


def run() -> list[dict]:
    source, target, out = port()
    keras_alone = time_python(f"""
        import numpy as np, keras
        m = keras.models.load_model({str(target)!r}, compile=False)
        m.load_weights({str(out)!r})
        m.predict(np.zeros((2, 224, 224, 3), "float32"), verbose=0)
    """, repeat=1, warmup=0)
    wall, report = _validate("quick", source, target, out)
    checks = ", ".join(f"{k} {v}" for k, v in report["checks"].items())
    rows = [
        row("validate --budget quick, ResNet50 port (s)", wall, "Keras: load, load_weights, predict", keras_alone,
            target="< 60 s on 2 CPU cores", note=f"exit {report['exit_code']}; {checks}"),
        row("validate --budget quick, ResNet50 port: peak RSS (MB)", report.get("peak_rss_mb") or 0.0,
            "2.5 GB limit", 2560.0, target="< 2560 MB",
            note="stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in (report.get("timings") or {}).items())),
    ]
    if os.environ.get("ARCHDIFF_BENCH_STANDARD"):
        standard, data = _validate("standard", source, target, out)
        rows.append(row("validate --budget standard, ResNet50 port (s)", standard, "validate --budget quick", wall,
                        note=f"peak RSS {data.get('peak_rss_mb')} MB"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
