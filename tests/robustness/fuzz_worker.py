"""A long-lived process that loads mutated files for test_robust_fuzz, one JSON line per file.

    python tests/robustness/fuzz_worker.py      # reads {"path": ...} lines, answers {"outcome": ...}

Mutated HDF5 can make libhdf5 loop forever inside C code that holds the GIL
(docs/robustness.md, "Known gaps"); in the test process that would hang the
whole run. Here the parent times each file and replaces a stuck or crashed
worker. Outcomes: ``ok``, the ArchdiffError subclass's name, or
``crash: <traceback>`` for any other exception.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def exercise(arch, good) -> None:
    """What the commands do with a model that loaded."""
    from archdiff.diff import diff
    from archdiff.diff.canonical import text_form
    from archdiff.errors import ArchdiffError
    from archdiff.transfer import plan_transfer
    from archdiff.views import layer_rows, summary

    diff(arch, good["model"])
    diff(good["k2"], arch)
    layer_rows(arch)
    summary(arch)
    text_form(arch)
    for source, target in ((arch, good["weights"]), (good["model"], arch)):
        try:
            plan_transfer(source, target)
        except ArchdiffError:
            pass


def main() -> int:
    import archdiff
    from archdiff.errors import ArchdiffError

    fixtures = ROOT / "fixtures"
    good = {
        "model": archdiff.load(fixtures / "keras3" / "sequential.keras"),
        "k2": archdiff.load(fixtures / "keras2" / "functional.h5"),
        "weights": archdiff.load(fixtures / "keras3" / "sequential.weights.h5"),
    }
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            arch = archdiff.load(request["path"])
            exercise(arch, good)
            outcome = "ok"
        except ArchdiffError as exc:
            outcome = type(exc).__name__
        except BaseException as exc:  # noqa: BLE001 - anything else is the finding
            bug = harness.known_bug(exc) if isinstance(exc, Exception) else None
            outcome = f"known-bug {bug}" if bug else "crash: " + traceback.format_exc()
        print(json.dumps({"outcome": outcome}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
