"""Shared pytest fixtures; the plain helpers live in support.py."""
from __future__ import annotations

import pytest

import support  # noqa: F401 - sets TF_CPP_MIN_LOG_LEVEL before any test imports Keras


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


@pytest.fixture(autouse=True)
def _no_job_summary(monkeypatch):
    """archdiff appends to $GITHUB_STEP_SUMMARY when set (archdiff.ci): keep the tests off the summary of the
    CI that runs them. Tests of the summary set it themselves."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
