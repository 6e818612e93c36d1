"""The CI hook in tests/conftest.py: with ``CI`` set, a skip of a test that needs an install step fails.

Runs pytest on a small generated suite (the real conftest copied beside it)
with and without ``CI`` and reads the outcomes from its JUnit XML.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent

SUITE = '''
import pytest

@pytest.mark.tensorflow
def test_marked_tensorflow():
    pytest.skip("TensorFlow is not installed")

@pytest.mark.browser
def test_marked_browser():
    pytest.skip("no browser")

@pytest.mark.git
@pytest.mark.skipif(True, reason="git is not installed")
def test_marked_git():
    pass

@pytest.mark.tmpfs
def test_marked_tmpfs():
    pytest.skip("cannot mount")

def test_unmarked_but_names_jax():
    pytest.skip("could not import 'jax': No module named 'jax'")  # what pytest.importorskip("jax") says

def test_unrelated_skip():
    pytest.skip("the properties did not run in this session")

@pytest.mark.tensorflow
@pytest.mark.xfail(strict=True, reason="a known bug")
def test_xfail_stays_an_xfail():
    assert False
'''


def outcomes(tmp_path: Path, ci: str | None) -> dict[str, str]:
    folder = tmp_path / ("ci" if ci else "dev")
    folder.mkdir()
    shutil.copy(HERE / "conftest.py", folder / "conftest.py")
    shutil.copy(HERE / "support.py", folder / "support.py")
    markers = "".join(f"    {m}\n" for m in ("tensorflow", "browser", "jax", "git", "tmpfs"))
    (folder / "pytest.ini").write_text("[pytest]\nmarkers =\n" + markers)
    (folder / "test_suite.py").write_text(SUITE)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    report = folder / "report.xml"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                    "--rootdir", str(folder), str(folder / "test_suite.py")], cwd=folder, env=env,
                   capture_output=True, text=True, timeout=300)
    out = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "skipped", "error")]
        # A skipif skips in setup, so its converted report is an error of setup: red all the same.
        out[case.get("name")] = {"error": "failure"}.get(kinds[0], kinds[0]) if kinds else "passed"
    assert out, "the generated suite ran no test"
    return out


def test_in_ci_a_skip_that_needs_an_install_fails(tmp_path):
    got = outcomes(tmp_path, "true")
    assert got == {"test_marked_tensorflow": "failure", "test_marked_browser": "failure",
                   "test_marked_git": "failure", "test_marked_tmpfs": "failure",
                   "test_unmarked_but_names_jax": "failure", "test_unrelated_skip": "skipped",
                   "test_xfail_stays_an_xfail": "skipped"}


def test_outside_ci_they_skip(tmp_path):
    got = outcomes(tmp_path, None)
    assert set(got.values()) == {"skipped"} and len(got) == 7
