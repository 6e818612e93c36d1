"""Run many archdiff command lines in one interpreter, each as a user would see it.

    python tests/robustness/driver.py JOBS.json RESULTS.jsonl

JOBS.json: ``{"jobs": [{"id": ..., "argv": [...], "timeout": seconds}, ...]}``.
For each job the driver calls ``archdiff.cli.main(argv)`` with file
descriptors 1 and 2 redirected to temporary files (so that output written by
C libraries, such as HDF5's error stack, is caught too), and appends one JSON
line to RESULTS: ``{"id", "event": "start"}`` before it runs, then ``{"id",
"event": "done", "code", "stdout", "stdout_bytes", "stderr", "seconds",
"crash", "canary"}``. ``crash`` is the traceback of any exception that escaped
``main`` (SystemExit from argparse is an exit code, not a crash); ``canary``
says whether ``$ARCHDIFF_CANARY`` exists after the job. A job that runs past
its timeout is interrupted (SIGALRM) and reported with ``crash`` starting
``hung``; a job stuck in C code is only caught by the caller's own timeout,
and the last ``start`` line names it.

Starting one interpreter and reusing it keeps thousands of runs affordable;
tests also run a sample of commands in fresh processes.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback


class JobTimeout(BaseException):
    """Raised by SIGALRM inside a job: BaseException, so that no ``except Exception`` swallows it."""


def _alarm(signum, frame):
    raise JobTimeout()


def _read(path: str, limit: int = 4000) -> tuple[str, int]:
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(limit)
    return head.decode("utf-8", "replace"), size


def run_job(job: dict, main, canary: str | None) -> dict:
    out_fd, out_path = tempfile.mkstemp(prefix="archdiff-driver-out-")
    err_fd, err_path = tempfile.mkstemp(prefix="archdiff-driver-err-")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    crash = None
    code = None
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(job.get("timeout", 60)))
    try:
        code = main(list(job["argv"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except JobTimeout:
        crash = f"hung: still running after {job.get('timeout', 60)} s"
    except BaseException:  # noqa: BLE001 - anything escaping main() is what we look for
        crash = traceback.format_exc()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        seconds = time.perf_counter() - start
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a broken stream is reported through the output
            pass
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, out_fd, err_fd):
            os.close(fd)
    stdout, stdout_bytes = _read(out_path)
    stderr, _ = _read(err_path, 20000)
    os.unlink(out_path)
    os.unlink(err_path)
    return {"id": job["id"], "event": "done", "code": code, "stdout": stdout, "stdout_bytes": stdout_bytes,
            "stderr": stderr, "seconds": round(seconds, 4), "crash": crash,
            "canary": bool(canary and os.path.lexists(canary))}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    jobs_path, results_path = argv
    with open(jobs_path, encoding="utf-8") as fh:
        jobs = json.load(fh)["jobs"]
    from archdiff.cli.main import main as cli_main

    canary = os.environ.get("ARCHDIFF_CANARY")
    with open(results_path, "a", encoding="utf-8") as results:
        for job in jobs:
            results.write(json.dumps({"id": job["id"], "event": "start"}) + "\n")
            results.flush()
            try:
                result = run_job(job, cli_main, canary)
            except JobTimeout:
                # The alarm went off just as the job ended, outside run_job's own handler.
                signal.setitimer(signal.ITIMER_REAL, 0)
                result = {"id": job["id"], "event": "done", "code": None, "stdout": "", "stdout_bytes": 0,
                          "stderr": "", "seconds": None,
                          "crash": f"hung: still running after {job.get('timeout', 60)} s",
                          "canary": bool(canary and os.path.lexists(canary))}
            results.write(json.dumps(result) + "\n")
            results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
