"""The ``archdiff`` command line: ``main`` plus one module per command (argument parsing and calls into the API)."""
from __future__ import annotations

from archdiff.cli.main import build_parser, main  # noqa: F401

__all__ = ["build_parser", "main"]
