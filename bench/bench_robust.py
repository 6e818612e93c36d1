"""Timings the tests used to assert, as bench rows: the tests keep only hang guards that say "hung".

Rows:

* ``match_layers`` on a 3,000-layer chain with one layer inserted (renames to
  find all along it), in process. Target: well under 60 s (a quadratic
  alignment would take minutes); the baseline column holds the 300-layer
  chain, so the ratio shows how it grows (10x the layers).
* The big broken files that must fail by their size, not by reading them
  (a config one byte over the 64 MiB cap as JSON and YAML, a .keras with
  100,001 members): a fresh ``archdiff layers`` on each. Target: < 5 s.
* Every command on every file of ``fixtures/broken`` (the robustness
  corpus, in one driver process as tests/robustness runs it): the slowest
  run and the median. Target: the slowest < 20 s.

Run: ``.venv/bin/python -m bench.run robust``.
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, archdiff_argv, row


def _chain(n: int, insert: bool):
    import json

    sys.path.insert(0, str(ROOT / "tests"))
    from test_diff_support import mlp

    from archdiff.read import load

    units = [8 + (i % 7) for i in range(n)]
    if insert:
        units = units[:10] + [99] + units[10:]
    folder = Path(tempfile.mkdtemp(prefix="archdiff-bench-"))
    path = folder / f"chain_{n}_{insert}.json"
    path.write_text(json.dumps(mlp(units)))
    return load(path)


def _time_matching(n: int) -> float:
    from archdiff.diff.matching import match_layers

    a, b = _chain(n, False), _chain(n, True)
    start = time.perf_counter()
    m = match_layers(a, b)
    took = time.perf_counter() - start
    assert len(m.only_b) == 1 and not m.only_a  # the timing is of a correct answer
    return took


def _matching_rows() -> list[dict]:
    small, big = _time_matching(300), _time_matching(3000)
    return [row("match_layers: 3,000-layer chain, one layer inserted (in-process)", big,
                "the same at 300 layers", small, target="< 60 s (was a test's assertion)",
                note=f"growth for 10x the layers: {big / small:.1f}x" if small else "")]


def _big_case_rows() -> list[dict]:
    sys.path.insert(0, str(ROOT / "fixtures"))
    import make_broken

    folder = Path(tempfile.mkdtemp(prefix="archdiff-bench-big-"))
    cases = make_broken.generate_big(folder)
    rows = []
    for case in cases:
        name = case["file"]
        if "over_cap" not in name and "many_members" not in name:
            continue
        argv = archdiff_argv("layers", str(folder / name))
        took = _time_failing(argv)
        rows.append(row(f"layers on {name} (fails by its size, fresh process)", took, "", 0.0,
                        target="< 5 s (was a test's assertion)"))
    return rows


def _time_failing(argv: list[str], repeat: int = 3) -> float:
    import subprocess

    from bench.common import ENV

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, env=ENV, capture_output=True)
        times.append(time.perf_counter() - start)
        assert done.returncode == 2, done.stderr[-500:]
    return statistics.median(times)


def _corpus_rows() -> list[dict]:
    sys.path.insert(0, str(ROOT / "tests" / "robustness"))
    sys.path.insert(0, str(ROOT / "fixtures"))
    import harness
    import make_broken

    work = Path(tempfile.mkdtemp(prefix="archdiff-bench-corpus-"))
    (work / "canary").mkdir()
    (work / "canary" / f"{make_broken.CANARY_MODULE}.py").write_text(make_broken.CANARY_MODULE_SOURCE)
    canary_env = {"module_dir": work / "canary", "canary": work / "canary" / "FIRED"}
    jobs = [j for c in harness.cases() for j in harness.jobs_for(c, harness.CORPUS / c["file"], work / "out")]
    results = harness.run_driver(jobs, work, canary_env=canary_env)
    seconds = {j.id: results[j.id]["seconds"] for j in jobs if results.get(j.id, {}).get("seconds") is not None}
    slowest = max(seconds, key=seconds.get)
    return [row(f"every command on every corpus file ({len(seconds)} runs, one driver)", seconds[slowest],
                "median run", statistics.median(seconds.values()), target="slowest < 20 s (was a test's assertion)",
                note=f"slowest: {slowest}")]


def run() -> list[dict]:
    return _matching_rows() + _big_case_rows() + _corpus_rows()


if __name__ == "__main__":
    for r in run():
        print(r)
