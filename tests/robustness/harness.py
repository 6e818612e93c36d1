"""What the robustness tests run on every broken file, and what each run must show.

Shared by the tests in this folder: the corpus and its manifest, the command
lines for one input (every command, both sides of a diff and a transfer),
running many of them in one driver process under a memory cap, and checking
one result against what the manifest expects.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
CORPUS = FIXTURES / "broken"
DRIVER = Path(__file__).resolve().parent / "driver.py"

#: Good files on the other side of a diff or a transfer.
GOOD_MODEL = FIXTURES / "keras3" / "sequential.keras"
GOOD_TARGET = FIXTURES / "keras3" / "sequential.weights.h5"

#: Address space a run may use: archdiff needs about 200 MB; the worst config
#: under the size cap needs about 25x the cap in Python objects.
MEMORY_LIMIT = 3 << 30
#: A hang guard, not a speed check: a run still going after this many seconds is reported as hung (a bad
#: file fails in milliseconds; bench/bench_robust.py times them).
JOB_SECONDS = 120.0

EXPORT_FORMATS = {"json": ".json", "yaml": ".yaml", "graphml": ".graphml", "gexf": ".gexf", "dot": ".dot",
                  "node-link": ".node-link.json", "html": ".html"}
#: Command lines per input (see jobs_for).
COMMANDS_PER_FILE = 9 + len(EXPORT_FORMATS)

ERROR_LINE = re.compile(r"^archdiff: error: \S.*$")


#: Bugs found by this suite in modules still being written by others: (id, exception type, file, function).
#: A failure matching one is counted as that bug instead of failing the fuzz; each has a strict xfail test
#: in test_robust_known_bugs.py, and when its owner fixes it the xfail passes and both entries go.
KNOWN_BUGS: list[tuple[str, type, str, str]] = [
    # None at the moment. Fixed: ("canonical-unhashable-class-name", TypeError, "archdiff/canonical.py",
    # "_normalize") and ("transfer-unruled-claims", AttributeError, "archdiff/transfer.py", "_match").
]


def known_bug(exc: BaseException) -> str | None:
    """The KNOWN_BUGS id an exception matches (by its type and the innermost archdiff frame), else None."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/archdiff/" in f.filename.replace("\\", "/")]
    if not frames:
        return None
    last = frames[-1]
    for bug, kind, filename, function in KNOWN_BUGS:
        if isinstance(exc, kind) and last.filename.replace("\\", "/").endswith(filename) and last.name == function:
            return bug
    return None


def manifest() -> dict:
    return json.loads((CORPUS / "MANIFEST.json").read_text())


def cases() -> list[dict]:
    return manifest()["cases"]


def limit_memory() -> None:
    """preexec_fn: cap the address space, so that runaway memory is an error, not a swap storm."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file under ``folder``: content hash and mode (mtime changes when a file is rewritten unchanged)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(folder))] = (sha256(p), st.st_mtime_ns)
    return out


@dataclass
class Job:
    """One command line on one input, and what it writes."""

    id: str
    command: str
    argv: list[str]
    case: dict
    #: The input under test.
    path: Path
    #: The file the command writes, if it writes one; its folder starts empty.
    out: Path | None = None
    #: Where the canary would appear.
    canary: Path | None = None
    extra: dict = field(default_factory=dict)


def _transfer_out_name(path: Path) -> str:
    lower = path.name.lower()
    for suffix in (".keras", ".weights.h5", ".h5", ".hdf5"):
        if lower.endswith(suffix):
            return "out" + suffix
    return "out.h5"


def jobs_for(case: dict, path: Path, work: Path, *, commands: tuple[str, ...] | None = None) -> list[Job]:
    """Every command on one input. ``work`` gets one empty output folder per writing command."""
    name = case["file"]
    jobs: list[Job] = []

    def add(command: str, argv: list[str], out_name: str | None = None) -> None:
        if commands is not None and command.split(":")[0] not in commands:
            return
        job_id = f"{name}::{command}"
        out = None
        if out_name:
            folder = work / re.sub(r"[^\w.-]", "_", job_id)
            folder.mkdir(parents=True, exist_ok=True)
            out = folder / out_name
            argv = [a.replace("{OUT}", str(out)) for a in argv]
        jobs.append(Job(job_id, command, argv, case, path, out))

    p = str(path)
    add("layers", ["layers", p])
    add("layers:json", ["layers", p, "--format", "json"])
    add("summary", ["summary", p])
    for fmt, suffix in EXPORT_FORMATS.items():
        add(f"export:{fmt}", ["export", p, "--format", fmt, "-o", "{OUT}"], "out" + suffix)
    add("diff:a", ["diff", p, str(GOOD_MODEL)])
    add("diff:b", ["diff", str(GOOD_MODEL), p, "--format", "json", "-o", "{OUT}"], "report.json")
    add("textconv", ["textconv", p])
    add("textconv:strict", ["textconv", "--no-fallback", p])
    add("transfer:source", ["transfer", p, str(GOOD_TARGET), "-o", "{OUT}", "--no-progress"], "out.weights.h5")
    add("transfer:target", ["transfer", str(GOOD_MODEL), p, "-o", "{OUT}", "--no-progress"],
        _transfer_out_name(path))
    return jobs


def child_env(canary_env: dict, extra: dict | None = None) -> dict:
    """The environment of a run: the canary's path, and its module importable (so importing it would fire)."""
    path = os.pathsep.join([str(ROOT), str(canary_env["module_dir"])])
    return {**os.environ, "ARCHDIFF_CANARY": str(canary_env["canary"]), "PYTHONPATH": path, **(extra or {})}


def run_fresh(job: Job, canary_env: dict, *, cwd: Path, timeout: float = 120.0) -> dict:
    """One job as a user runs it: a new process, capped in memory and time; a result like the driver's."""
    import time

    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "archdiff", *job.argv], cwd=cwd, env=child_env(canary_env),
                              capture_output=True, timeout=timeout, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        return {"id": job.id, "code": None, "stdout": "", "stdout_bytes": 0, "stderr": "", "seconds": None,
                "canary": False, "crash": f"hung: still running after {timeout} s"}
    seconds = time.perf_counter() - start
    crash = None
    if proc.returncode < 0:
        crash = f"killed by signal {-proc.returncode}: {proc.stderr.decode('utf-8', 'replace')[-2000:]}"
    return {"id": job.id, "code": proc.returncode, "stdout": proc.stdout[:4000].decode("utf-8", "replace"),
            "stdout_bytes": len(proc.stdout), "stderr": proc.stderr.decode("utf-8", "replace"),
            "seconds": seconds, "crash": crash, "canary": canary_env["canary"].exists()}


def run_driver(jobs: list[Job], work: Path, *, canary_env: dict, timeout: float = 900.0,
               env: dict | None = None) -> dict[str, dict]:
    """Run ``jobs`` in driver processes (memory-capped); results by job id.

    A driver that dies (a segfault in a C library) or hangs is charged to the
    job it was running, and a new driver goes on with the rest.
    """
    results: dict[str, dict] = {}
    remaining = list(jobs)
    full_env = child_env(canary_env, env)
    run_dir = work / "cwd"
    run_dir.mkdir(parents=True, exist_ok=True)
    rounds = 0
    while remaining:
        rounds += 1
        jobs_file = work / f"jobs{rounds}.json"
        results_file = work / f"results{rounds}.jsonl"
        jobs_file.write_text(json.dumps({"jobs": [{"id": j.id, "argv": j.argv,
                                                   "timeout": j.extra.get("seconds", JOB_SECONDS)}
                                                  for j in remaining]}))
        try:
            proc = subprocess.run([sys.executable, str(DRIVER), str(jobs_file), str(results_file)], cwd=run_dir,
                                  env=full_env, capture_output=True, text=True, timeout=timeout,
                                  preexec_fn=limit_memory)
        except subprocess.TimeoutExpired:
            proc = None
        last_started = None
        if results_file.exists():
            for line in results_file.read_text().splitlines():
                record = json.loads(line)
                if record["event"] == "start":
                    last_started = record["id"]
                else:
                    results[record["id"]] = record
                    last_started = None
        if proc is not None and proc.returncode == 0:
            break
        detail = "hung" if proc is None else f"died with exit status {proc.returncode}: {proc.stderr[-2000:]}"
        if last_started is None:
            # Died before or between jobs: charge the first job without a result.
            last_started = next((j.id for j in remaining if j.id not in results), None)
        if last_started is None:
            break
        results[last_started] = {"id": last_started, "event": "done", "code": None, "stdout": "",
                                 "stdout_bytes": 0, "stderr": "", "seconds": None, "canary": False,
                                 "crash": f"the process {detail} while running this job"}
        remaining = [j for j in remaining if j.id not in results]
    return results


#: The exit code of each command on each corpus file, stated by hand (see its "about").
EXITS_FILE = Path(__file__).resolve().parent / "expected_exits.json"


def stated_exits() -> dict:
    return json.loads(EXITS_FILE.read_text())


_EXITS = stated_exits()["cases"]


def expected_codes(job: Job) -> set[int]:
    """The one exit code ``job`` must give: the case's own ``exits``, or expected_exits.json's entry for a
    corpus file; a case without either must be an error (2; textconv shows a broken file raw, 0)."""
    exits = job.case.get("exits")
    if exits is None and Path(job.path).parent == CORPUS:
        exits = _EXITS.get(job.case["file"])
    if exits is not None:
        return {exits.get(job.command, exits["*"])}
    if job.case["expect"] != "error":
        raise AssertionError(f"{job.case['file']}: a readable case must state its exit codes ('exits')")
    return {0} if job.command == "textconv" else {2}


def problems(job: Job, result: dict | None) -> list[str]:
    """Everything wrong with one result; empty when the run behaved."""
    if result is None:
        return ["no result (the driver never reached this job)"]
    out: list[str] = []
    if result.get("crash"):
        return [f"crashed: {result['crash'].strip().splitlines()[-1][:300]}\n{result['crash'][-3000:]}"]
    code = result["code"]
    stderr = result["stderr"]
    lines = stderr.splitlines()
    if code not in expected_codes(job):
        out.append(f"exit {code}, expected {sorted(expected_codes(job))}; stderr: {stderr.strip()[:500]}")
    if "Traceback" in stderr:
        out.append(f"traceback on stderr: {stderr[-1500:]}")
    if code == 2:
        if len(lines) != 1 or not ERROR_LINE.match(lines[0]):
            out.append(f"stderr is not exactly one 'archdiff: error:' line: {stderr[:800]!r}")
        elif "out of memory" in stderr:
            out.append(f"failed by running out of memory, not by a check: {stderr.strip()}")
        pattern = job.case.get("message")
        if (pattern and job.case["expect"] == "error" and job.command != "textconv"
                and not re.search(pattern, stderr, re.I)):
            out.append(f"the error does not say why (expected /{pattern}/): {stderr.strip()}")
    else:
        # export says on stderr what it rewrote for Keras 3 ("note: ..." lines); nothing else may appear.
        unexplained = [line for line in stderr.splitlines()
                       if line.strip() and not (job.command.startswith("export") and line.startswith("note: "))]
        if "archdiff: error" in stderr or (unexplained and job.command != "textconv"):
            out.append(f"exit {code} but stderr says: {stderr[:500]!r}")
    if job.command == "textconv" and code == 0 and result["stdout_bytes"] == 0:
        out.append("textconv printed nothing")
    if result.get("canary"):
        out.append("THE CANARY FIRED: something in this file was executed")
    if job.out is not None:
        left = sorted(p.name for p in job.out.parent.iterdir())
        if code in (0, 1) and not job.extra.get("dry_run"):
            if left != [job.out.name]:
                out.append(f"exit {code}: the output folder holds {left}, expected exactly [{job.out.name!r}]")
            else:
                why = output_invalid(job)
                if why:
                    out.append(f"exit {code} but the output is not a complete, valid file: {why}")
        elif left:
            out.append(f"exit {code} but the output folder holds {left}")
    return out


def output_invalid(job: Job) -> str | None:
    """Why the file a successful command wrote is not a valid one (None when it is)."""
    path = job.out
    assert path is not None
    data = path.read_bytes()
    if not data:
        return "empty"
    command = job.command
    try:
        if command in ("export:json", "export:node-link") or command == "diff:b":
            json.loads(data)
        elif command == "export:yaml":
            import yaml

            yaml.safe_load(data)
        elif command in ("export:graphml", "export:gexf"):
            import xml.etree.ElementTree as ET

            ET.fromstring(data)
        elif command == "export:dot":
            if b"digraph" not in data[:200]:
                return "no digraph header"
        elif command == "export:html":
            if not data.lstrip().lower().startswith(b"<!doctype html") or not data.rstrip().endswith(b"</html>"):
                return "not a whole HTML page"
        elif command.startswith("transfer"):
            import archdiff

            arch = archdiff.load(path)
            if not arch.has_weights:
                return "the written file holds no weights"
    except Exception as exc:  # noqa: BLE001 - any failure to read it back is the finding
        return f"{type(exc).__name__}: {exc}"
    return None
