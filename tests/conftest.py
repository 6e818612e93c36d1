"""Shared pytest fixtures and hooks; the plain helpers live in support.py.

In CI (``CI`` set), a test that needs an install step (TensorFlow, JAX, git,
Chromium, a tmpfs mount) and skips is reported as a failure with its skip
reason: a missing install step turns CI red instead of quietly shrinking the
suite. A developer's machine without them still skips.

One exception, by decision and named: tests marked ``torch`` (PyTorch's Keras
backend). CI does not install PyTorch (PyPI's Linux wheel pulls ~2.5 GB of
CUDA libraries and the CPU-only index is not reachable from CI), so they
skip there with that reason; they run wherever PyTorch is installed
(scripts/gpu_check.sh validates on torch too on the GPU machine).
"""
from __future__ import annotations

import os
import re

import pytest
import support  # noqa: F401 - sets TF_CPP_MIN_LOG_LEVEL before any test imports Keras

#: Markers of tests that need something installed or mounted (registered in pyproject.toml).
NEEDS_INSTALL = ("tensorflow", "browser", "jax", "torch", "git", "tmpfs")
#: A skip reason that names one of them is the same finding, marker or not.
_INSTALL_WORDS = re.compile(r"\b(tensorflow|tf[_-]keras|keras|jax|pytorch|torch|git|chromium|playwright|tmpfs|mount)\b",
                            re.I)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def needs_install(item: pytest.Item, reason: str) -> bool:
    return any(item.get_closest_marker(m) for m in NEEDS_INSTALL) or bool(_INSTALL_WORDS.search(reason))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if item.get_closest_marker("torch") and "PyTorch is not installed" in reason:
        return  # the named exception above: CI does not install PyTorch
    if needs_install(item, reason):
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI, which must run it: {reason} (CI is set; an install step is missing, "
                           "see `make install` / `make chromium`)")


@pytest.fixture
def cli(capsys):
    """archdiff in this process: ``cli(*args) -> (exit_code, stdout, stderr)``."""
    from archdiff.cli.main import main

    def call(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return call


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory):
    """One --build cache (archdiff.read.build) for the session, never the user's own."""
    return tmp_path_factory.mktemp("build-cache")


@pytest.fixture(autouse=True)
def _own_build_cache(monkeypatch, build_cache):
    """--build reads a cache in the user's cache folder: the tests use the session's, so that what a user's
    machine built never answers for Keras here. Tests of the cache set their own."""
    monkeypatch.setenv("ARCHDIFF_CACHE_DIR", str(build_cache))


@pytest.fixture(autouse=True)
def _no_job_summary(monkeypatch):
    """archdiff appends to $GITHUB_STEP_SUMMARY when set (archdiff.ci): keep the tests off the summary of the
    CI that runs them. Tests of the summary set it themselves."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
