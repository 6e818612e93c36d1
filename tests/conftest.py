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
