"""Shared pieces of the benchmarks: cached Keras-built models and fresh-process timing.

Every bench row times a *fresh process* (what a user or a CI job pays), runs
archdiff and the baseline side by side in the same run, and reports ratios.
Models are built once with Keras from seeded random weights (weights=None)
and cached in bench/.cache/ (ignored by git).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
PYTHON = sys.executable
# A user's installed package has its bytecode cached; this sandbox sets
# PYTHONDONTWRITEBYTECODE, which would make every fresh process recompile
# archdiff (and numpy, h5py ...) from source and time that instead.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")


def precompile() -> None:
    """Write the bytecode a normal install has, once, before anything is timed."""
    import compileall

    compileall.compile_dir(str(ROOT / "archdiff"), quiet=1)


def run_python(code: str, *, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-c", textwrap.dedent(code)], env=ENV, capture_output=True, text=True,
                          check=check)


def ensure_application(name: str, fmt: str = "keras", **kwargs) -> Path:
    """A keras.applications model (weights=None, seed 0) saved as .keras / .h5 / .json / .weights.h5."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tag = "_".join(f"{k}-{v}" for k, v in sorted(kwargs.items()))
    stem = f"{name}{'_' + tag if tag else ''}"
    suffix = {"keras": ".keras", "h5": ".h5", "json": ".json", "weights": ".weights.h5"}[fmt]
    out = CACHE / f"{stem}{suffix}"
    if out.exists():
        return out
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    tmp = out.with_name(out.name + ".part" + suffix)
    save = {
        "keras": f"m.save({str(tmp)!r})",
        "h5": f"m.save({str(tmp)!r})",
        "json": f"open({str(tmp)!r}, 'w').write(m.to_json())",
        "weights": f"m.save_weights({str(tmp)!r})",
    }[fmt]
    run_python(f"""
        import keras
        keras.utils.set_random_seed(0)
        m = keras.applications.{name}(weights=None{', ' + args if args else ''})
        {save}
    """)
    tmp.rename(out)
    return out


def time_command(argv: list[str], *, repeat: int = 5, warmup: int = 1, env: dict | None = None) -> float:
    """Median wall time of a fresh process, in seconds (``env``: variables set on top of the bench's)."""
    environ = {**ENV, **(env or {})}
    for _ in range(warmup):
        subprocess.run(argv, env=environ, capture_output=True, check=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, env=environ, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_python(code: str, **kw) -> float:
    return time_command([PYTHON, "-c", textwrap.dedent(code)], **kw)


def archdiff_argv(*args: str) -> list[str]:
    return [PYTHON, "-m", "archdiff", *args]


def row(name: str, ours: float, baseline_name: str, baseline: float, *, target: str = "", note: str = "") -> dict:
    """One result row: times in seconds; ratio = baseline / archdiff (>1 means archdiff is faster)."""
    return {
        "bench": name,
        "archdiff_s": round(ours, 4),
        "baseline": baseline_name,
        "baseline_s": round(baseline, 4),
        "speedup": round(baseline / ours, 2) if ours else None,
        "target": target,
        "note": note,
    }
