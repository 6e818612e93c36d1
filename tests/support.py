"""Shared test helpers: fixture paths, running the CLI, Keras' recorded answers.

A module of its own (not conftest) so that test files import it by a name no
other folder's conftest shadows.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
EXPECTED = FIXTURES / "expected"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def expected_for(path: Path) -> dict | None:
    """Keras' own answer for a fixture, recorded by fixtures/make_fixtures.py."""
    rel = Path(path).resolve().relative_to(FIXTURES)
    candidate = EXPECTED / ("__".join(rel.parts) + ".json")
    if candidate.exists():
        return json.loads(candidate.read_text())
    return None


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """archdiff in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "archdiff", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, env={**os.environ, **(env or {})}, timeout=600)


class hang_guard:  # noqa: N801 - used as a context manager, reads as a phrase
    """Fail with "hung" if the block runs past ``seconds`` (SIGALRM; main thread only). A guard against an
    endless loop, not a speed check: speed is measured by bench/, never asserted."""

    def __init__(self, seconds: int, what: str):
        self.seconds, self.what = seconds, what

    def _fire(self, signum, frame):
        raise AssertionError(f"{self.what} hung: still running after {self.seconds} s")

    def __enter__(self):
        import signal

        self._previous = signal.signal(signal.SIGALRM, self._fire)
        signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        import signal

        signal.alarm(0)
        signal.signal(signal.SIGALRM, self._previous)
        return False
