"""Run every bench row in one run and write bench/results.md (and .json).

Usage: python -m bench.run [NAME ...]   (names: layers, build, diff, values, transfer, html, validate, robust, contain)
Each row: archdiff and the baseline a user would otherwise run, both timed as
fresh processes on the same machine in the same run; speedup = baseline /
archdiff (> 1: archdiff is faster).
"""
from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

SUITES = ("layers", "build", "diff", "values", "transfer", "html", "validate", "robust", "contain")
OUT = Path(__file__).resolve().parent / "results.md"


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    from bench.common import precompile

    precompile()
    rows = []
    for name in names:
        try:
            module = importlib.import_module(f"bench.bench_{name}")
        except ModuleNotFoundError:
            print(f"bench: no suite '{name}'", file=sys.stderr)
            continue
        started = time.perf_counter()
        got = module.run()
        print(f"bench {name}: {len(got)} rows in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        rows.extend(got)
    header = (f"# archdiff bench results\n\nMachine: {platform.machine()}, {platform.system()}, "
              f"Python {platform.python_version()}; run {time.strftime('%Y-%m-%d %H:%M')}.\n"
              "Times are medians of fresh processes; speedup = baseline / archdiff.\n\n")
    cols = ["bench", "archdiff_s", "baseline", "baseline_s", "speedup", "target", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    text = header + "\n".join(lines) + "\n"
    if not argv:
        OUT.write_text(text)
        OUT.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
