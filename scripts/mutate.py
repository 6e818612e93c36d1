"""``make mutate``: mutation testing (mutmut 3) over archdiff's core, within a time budget.

    python scripts/mutate.py                         # the default modules (DEFAULT below)
    python scripts/mutate.py archdiff.read.sniff     # chosen modules (dotted names; a trailing .* is added)
    python scripts/mutate.py --all                   # every module in CORE
    python scripts/mutate.py --survivors [MODULE ...] # run again the survivors not listed as equivalent
    python scripts/mutate.py --report [MODULE ...]    # rewrite the report from the results kept, run nothing
    MUTATE_BUDGET=600 MUTATE_JOBS=2 python scripts/mutate.py

mutmut copies the project into ``mutants/`` (git-ignored), makes every
mutant of the modules in ``[tool.mutmut] only_mutate`` (pyproject.toml),
records which tests reach which function (one run of the runner: the fast
light tests in ``pytest_add_cli_args_test_selection``), then runs, for each
mutant of the chosen modules, only the tests that reach it. Results are
kept in ``mutants/`` between runs, so a second run goes on where the first
stopped. After ``MUTATE_BUDGET`` seconds of wall clock (default 1200) the run
is interrupted and what was decided so far is reported.

Writes docs/mutation-report.md: killed / total per module, and every
surviving mutant with its diff, marked where docs/mutation.md lists it as
equivalent (with the reason). Not part of CI.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "docs" / "mutation-report.md"
EQUIVALENTS = ROOT / "docs" / "mutation.md"

#: The core: readers, config parsing, shapes, the diff engine and matching, transfer planning and writing,
#: the escaping, validate's checks. Dotted module prefixes (mutmut names mutants module.x_function__mutmut_N).
CORE = ["archdiff.read", "archdiff.shapes", "archdiff.diff.engine", "archdiff.diff.kinds", "archdiff.diff.result",
        "archdiff.diff.canonical", "archdiff.diff.matching", "archdiff.transfer.plan", "archdiff.transfer.write",
        "archdiff.safetext", "archdiff.names", "archdiff.validate.arrival", "archdiff.validate.outputs"]
#: What fits a working session (about 20 minutes on 2 cores).
DEFAULT = ["archdiff.safetext", "archdiff.names", "archdiff.read.sniff", "archdiff.shapes.registry",
           "archdiff.read.config"]


def status_of(code: int | None) -> str:
    """A mutant's status from the exit code mutmut recorded (mutmut.stats.status_by_exit_code)."""
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


def mutmut(*args: str, timeout: float | None = None) -> int:
    """Run ``python -m mutmut ARGS`` in the repository; SIGINT (mutmut stops cleanly, keeping results) at timeout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": os.environ.get(
        "MUTATE_PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "mutmut", *args], cwd=ROOT, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print("mutate: the budget is spent; stopping mutmut (results so far are kept)", file=sys.stderr)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            return proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()


def results(modules: list[str]) -> dict[str, dict[str, str]]:
    """module -> {mutant name: status}, read from mutmut's .meta files, for the chosen modules."""
    out: dict[str, dict[str, str]] = {}
    for meta in sorted((ROOT / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            module = re.split(r"\.x(?:_|ǁ)", name, maxsplit=1)[0]
            if not any(module == m or module.startswith(m + ".") for m in modules):
                continue
            out.setdefault(module, {})[name] = status_of(code)
    return out


def equivalents() -> dict[str, str]:
    """Mutants docs/mutation.md lists as equivalent: lines ``- `NAME`: reason``."""
    if not EQUIVALENTS.exists():
        return {}
    return dict(re.findall(r"^- `([\w.ǁ]+__mutmut_\d+)`: (.+)$", EQUIVALENTS.read_text(), re.M))


def show(name: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": os.environ.get(
        "MUTATE_PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    lines = [line for line in done.stdout.splitlines() if line.startswith(("+", "-")) and
             not line.startswith(("+++", "---"))]
    return "\n".join(lines[:12])


def write_report(modules: list[str], found: dict[str, dict[str, str]], seconds: float, budget: float) -> None:
    known = equivalents()
    total = killed = 0
    lines = ["# Mutation testing: the latest run", "",
             f"Written by `make mutate` (scripts/mutate.py, mutmut 3) on {time.strftime('%Y-%m-%d %H:%M')}: "
             f"modules {', '.join(f'`{m}`' for m in modules)}; {seconds / 60:.1f} min of a {budget / 60:.0f}-min "
             "budget. How to read it and the equivalent mutants: [mutation.md](mutation.md).", "",
             "| module | mutants | killed | survived | equivalent | timeout | no tests | not checked |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    survivors = []
    for module in sorted(found):
        statuses = found[module]
        count = {s: sum(1 for v in statuses.values() if v == s) for s in set(statuses.values())}
        alive = [n for n, s in statuses.items() if s == "survived"]
        equivalent = [n for n in alive if n in known]
        survivors += [(n, known.get(n)) for n in alive]
        decided = len(statuses) - count.get("not checked", 0)
        total += decided - len(equivalent) - count.get("no tests", 0)
        killed += count.get("killed", 0) + count.get("timeout", 0) + count.get("segfault", 0)
        lines.append(f"| `{module}` | {len(statuses)} | {count.get('killed', 0)} | {len(alive) - len(equivalent)} "
                     f"| {len(equivalent)} | {count.get('timeout', 0)} | {count.get('no tests', 0)} "
                     f"| {count.get('not checked', 0)} |")
    lines += ["", f"**Killed {killed} of {total}** mutants that were run, reached by a test and not equivalent"
              + (f" ({100 * killed / total:.1f} %)." if total else "."), ""]
    lines += ["## Survivors", ""]
    if not survivors:
        lines.append("None.")
    for name, reason in sorted(survivors):
        lines += [f"### `{name}`" + (" (equivalent)" if reason else ""), ""]
        if reason:
            lines += [reason, ""]
        lines += ["```diff", show(name), "```", ""]
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"mutate: killed {killed} of {total}; report in {REPORT.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    # Where mutmut is installed when it is not in this environment (MUTATE_PYTHONPATH, also given to mutmut).
    sys.path[:0] = [p for p in os.environ.get("MUTATE_PYTHONPATH", "").split(os.pathsep) if p]
    flags = {a for a in argv if a.startswith("--")}
    names = [a.removesuffix(".*") for a in argv if not a.startswith("--")]
    modules = CORE if "--all" in flags else names or DEFAULT
    budget = float(os.environ.get("MUTATE_BUDGET", "1200"))
    jobs = os.environ.get("MUTATE_JOBS", str(os.cpu_count() or 2))
    start = time.monotonic()
    code = 0
    if "--report" not in flags:
        targets = [f"{m}.*" for m in modules]
        if "--survivors" in flags:
            known = equivalents()  # an equivalent mutant survives again, at the cost of every test that reaches it
            targets = [n for statuses in results(modules).values() for n, s in statuses.items()
                       if s == "survived" and n not in known]
        if targets:
            code = mutmut("run", "--max-children", jobs, *targets, timeout=budget)
    seconds = time.monotonic() - start
    found = results(modules)
    decided = sum(1 for statuses in found.values() for s in statuses.values() if s != "not checked")
    if not decided:
        print(f"mutate: mutmut decided no mutant of {modules} (exit {code}); its output above says why",
              file=sys.stderr)
        return 2
    write_report(modules, found, seconds, budget)
    return 0 if code in (0, -signal.SIGINT, 130) or seconds >= budget else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
