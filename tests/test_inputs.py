"""Inputs that are not plain files: stdin, process substitution, FIFOs and git REV:PATH.

What each must give is what the same bytes give as a regular file (h5py and
zipfile need to seek, so archdiff copies them, bounded, first).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import pytest
from support import FIXTURES, ROOT, run_cli

K3 = FIXTURES / "keras3"


def _layers_json(*args, **kw):
    result = run_cli("layers", *args, "--format", "json", **kw)
    assert result.returncode == 0, result.stderr
    return [(r["path"], r["index"], r["class_name"]) for r in json.loads(result.stdout)["layers"]]


@pytest.mark.parametrize("fixture", ["functional.keras", "functional.h5", "functional.json", "functional.weights.h5"])
def test_stdin_reads_like_the_file(fixture):
    expected = _layers_json(K3 / fixture)
    assert expected
    with open(K3 / fixture, "rb") as fh:
        result = subprocess.run([sys.executable, "-m", "archdiff", "layers", "-", "--format", "json"], stdin=fh,
                                capture_output=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    got = [(r["path"], r["index"], r["class_name"]) for r in json.loads(result.stdout)["layers"]]
    assert got == expected


def test_input_format_overrides_the_content_guess():
    with open(K3 / "functional.json", "rb") as fh:
        result = subprocess.run([sys.executable, "-m", "archdiff", "summary", "-", "--input-format", "yaml",
                                 "--format", "json"], stdin=fh, capture_output=True, cwd=ROOT, timeout=120)
    # JSON is YAML too: read as YAML it is the same model
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "functional_model"


def test_empty_stdin_is_one_error_line():
    result = subprocess.run([sys.executable, "-m", "archdiff", "layers", "-"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert "the input is empty" in result.stderr and result.stderr.count("\n") == 1


def test_process_substitution_diff_as_in_the_issue():
    if not shutil.which("bash"):
        pytest.fail("bash is needed for process substitution")
    cmd = (f"{sys.executable} -m archdiff diff <(cat {K3 / 'functional.keras'}) {K3 / 'functional.h5'} "
           "--format json")
    result = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert report["a"]["path"].startswith("/dev/fd/")
    assert report["classification"] in ("identical", "cosmetic")


def test_a_fifo_is_read_through_a_copy(tmp_path):
    fifo = tmp_path / "model.keras"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as out:
            out.write((K3 / "functional.keras").read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        got = _layers_json(fifo)
    finally:
        writer.join(timeout=60)
    assert got == _layers_json(K3 / "functional.keras")
    assert fifo.exists() and not fifo.is_file()  # the FIFO itself is left as it was


def test_a_fifo_waits_for_a_late_writer_and_refuses_when_none_comes(tmp_path):
    fifo = tmp_path / "late.keras"
    os.mkfifo(fifo)
    ready = threading.Event()

    def feed():
        ready.wait(60)
        with open(fifo, "wb") as out:  # blocks until archdiff has opened its end
            out.write((K3 / "functional.keras").read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    timer = threading.Timer(2.0, ready.set)  # the writer starts 2 s after archdiff
    timer.start()
    try:
        got = _layers_json(fifo, env={"ARCHDIFF_STREAM_WAIT": "30"})
    finally:
        ready.set()
        writer.join(timeout=60)
    assert got == _layers_json(K3 / "functional.keras")
    lonely = tmp_path / "lonely.keras"
    os.mkfifo(lonely)
    result = run_cli("layers", lonely, env={"ARCHDIFF_STREAM_WAIT": "1"})
    assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1
    assert "a FIFO that nobody wrote into within 1 s" in result.stderr and "ARCHDIFF_STREAM_WAIT" in result.stderr


def test_git_rev_path_reads_the_committed_model(tmp_path):
    if not shutil.which("git"):
        pytest.fail("git is needed")
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    git = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True, env=env)  # noqa: E731
    git("init", "-q")
    shutil.copyfile(K3 / "sequential.keras", repo / "models" / "m.keras")
    git("add", ".")
    git("commit", "-qm", "first")
    shutil.copyfile(K3 / "functional.keras", repo / "models" / "m.keras")  # the work tree moves on
    old = _layers_json("HEAD:models/m.keras", cwd=repo)
    assert old == _layers_json(K3 / "sequential.keras")
    result = run_cli("diff", "HEAD:models/m.keras", "models/m.keras", "--format", "json", cwd=repo)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["a"]["path"] == "HEAD:models/m.keras"
    missing = run_cli("layers", "HEAD:models/nope.keras", cwd=repo)
    assert missing.returncode == 2 and "not in the repository at that revision" in missing.stderr


def test_factory_specs_are_not_taken_for_git_specs():
    from archdiff.read.inputs import looks_like_git_spec

    assert looks_like_git_spec("HEAD~1:models/m.keras")
    assert looks_like_git_spec("main:m.h5")
    assert not looks_like_git_spec("keras.applications:ResNet50")
    assert not looks_like_git_spec("mypkg.models:build")
