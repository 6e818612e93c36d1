"""Fixtures for the robustness suite: the corpus, its snapshot, the canary, the big cases."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1] / "fixtures"))

import harness  # noqa: E402


@pytest.fixture(scope="session")
def corpus_before():
    """The corpus (and the good files beside it) as they were before any test ran."""
    return harness.snapshot(harness.FIXTURES)


@pytest.fixture(scope="session")
def canary_env(tmp_path_factory):
    """A folder holding the canary module, and the path every payload would create."""
    import make_broken

    folder = tmp_path_factory.mktemp("canary")
    (folder / f"{make_broken.CANARY_MODULE}.py").write_text(make_broken.CANARY_MODULE_SOURCE)
    return {"module_dir": folder, "canary": folder / "CANARY-FIRED"}


@pytest.fixture(scope="session")
def big_cases(tmp_path_factory):
    """The cases too big to commit, written once per session (sparse where possible)."""
    import make_broken

    folder = tmp_path_factory.mktemp("big")
    return folder, make_broken.generate_big(folder)
