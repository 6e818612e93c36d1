"""Bench rows for ``--build`` (issue 18): a keras-hub backbone's layer table from the model Keras builds, with an
empty build cache and with the cache filled, against loading the model with keras-hub (what a user runs to get
``model.layers``)."""
from __future__ import annotations

import statistics
import subprocess
import tempfile
import time

from bench.common import ENV, ROOT, archdiff_argv, row, time_python

BERT = ROOT / "fixtures" / "keras_hub" / "bert2.keras"


def _median(argv: list[str], env: dict, repeat: int, fresh_cache: bool) -> float:
    times = []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="bench-build-") as cache:
            run_env = {**env, "ARCHDIFF_CACHE_DIR": cache if fresh_cache else env["ARCHDIFF_CACHE_DIR"]}
            start = time.perf_counter()
            subprocess.run(argv, env=run_env, capture_output=True, check=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[dict]:
    baseline = time_python(f"""
        import keras, keras_hub
        m = keras.saving.load_model({str(BERT)!r}, compile=False)
        for i, l in enumerate(m.layers):
            print(i, l.name, type(l).__name__)
    """, repeat=3)
    with tempfile.TemporaryDirectory(prefix="bench-build-cache-") as cache:
        env = {**ENV, "ARCHDIFF_CACHE_DIR": cache}
        argv = archdiff_argv("layers", "--build", str(BERT))
        cold = _median(argv, env, 3, fresh_cache=True)
        subprocess.run(argv, env=env, capture_output=True, check=True)  # fills the cache
        warm = _median(argv, env, 5, fresh_cache=False)
    return [
        row("layers --build bert2.keras (keras-hub BERT), empty build cache", cold,
            "keras-hub: load_model + model.layers", baseline, target="for reference (no target set)",
            note="the build imports Keras and keras-hub in a child and builds without loading weights"),
        row("layers --build bert2.keras, build cached", warm, "keras-hub: load_model + model.layers", baseline,
            target="imports no Keras", note="the cached record answers; the weights file is read for locations"),
    ]
