"""A read-only or full output folder: one clear error line, exit 2, nothing left behind, inputs unchanged.

Where the test may mount (root, Linux), the folders are real: a read-only
tmpfs, and a 64 KiB tmpfs that fills up mid-write. Everywhere, the same is
also checked without privileges: a file-size limit (RLIMIT_FSIZE, SIGXFSZ
ignored) makes writes fail with EFBIG as a full disk would, and the
read-only folder is simulated in-process (mkstemp raising EROFS).
"""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import harness
import pytest

BIG = harness.FIXTURES / "keras3" / "resnet_small.keras"
BIG_WEIGHTS = harness.FIXTURES / "keras3" / "resnet_small.weights.h5"


def _commands(out_dir: Path) -> list[tuple[str, list[str], Path]]:
    """(label, argv, OUT) for every command that writes a file."""
    return [
        ("export:graphml", ["export", str(BIG), "-o", str(out_dir / "model.graphml")], out_dir / "model.graphml"),
        ("export:json", ["export", str(BIG), "-o", str(out_dir / "model.json")], out_dir / "model.json"),
        ("export:html", ["export", str(BIG), "-o", str(out_dir / "model.html")], out_dir / "model.html"),
        ("diff", ["diff", str(BIG), str(harness.FIXTURES / "keras2" / "resnet_small.h5"), "--format", "json",
                  "-o", str(out_dir / "report.json")], out_dir / "report.json"),
        ("transfer:weights.h5", ["transfer", str(BIG_WEIGHTS), str(BIG_WEIGHTS.with_name("resnet_small.weights.h5")),
                                 "-o", str(out_dir / "new.weights.h5"), "--no-progress"], out_dir / "new.weights.h5"),
        ("transfer:keras", ["transfer", str(BIG), str(BIG), "-o", str(out_dir / "new.keras"), "--no-progress"],
         out_dir / "new.keras"),
    ]


def _check(label: str, proc: subprocess.CompletedProcess, out_dir: Path, out: Path, words: str) -> list[str]:
    import re

    problems = []
    err = proc.stderr.decode("utf-8", "replace")
    lines = err.splitlines()
    if proc.returncode != 2:
        problems.append(f"{label}: exit {proc.returncode}, expected 2; stderr: {err[-800:]}")
    if len(lines) != 1 or not harness.ERROR_LINE.match(lines[0] if lines else ""):
        problems.append(f"{label}: stderr is not one 'archdiff: error:' line: {err[-1500:]!r}")
    elif not re.search(words, lines[0], re.I):
        problems.append(f"{label}: the error does not say what went wrong (/{words}/): {lines[0]}")
    if out.exists() or list(out_dir.iterdir()):
        problems.append(f"{label}: left {sorted(p.name for p in out_dir.iterdir())}")
    return problems


def _mount(target: Path, options: str) -> bool:
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, f"archdiff-{uuid.uuid4().hex[:8]}", str(target)],
                          capture_output=True)
    return done.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], capture_output=True)


def _inputs_unchanged(before):
    return {p: harness.sha256(p) for p in before} == before


@pytest.fixture
def inputs_before():
    paths = [BIG, BIG_WEIGHTS, harness.FIXTURES / "keras2" / "resnet_small.h5"]
    return {p: harness.sha256(p) for p in paths}


@pytest.mark.tmpfs
def test_read_only_folder_mounted(tmp_path, inputs_before, canary_env):
    out_dir = tmp_path / "ro"
    if not _mount(out_dir, "ro,size=1m"):
        pytest.skip("cannot mount a read-only tmpfs here (needs root on Linux); the in-process test covers it")
    try:
        problems = []
        for label, argv, out in _commands(out_dir):
            proc = subprocess.run([sys.executable, "-m", "archdiff", *argv], capture_output=True, timeout=300,
                                  env=harness.child_env(canary_env), preexec_fn=harness.limit_memory)
            problems += _check(label, proc, out_dir, out, "read-only|cannot write")
        assert not problems, "\n".join(problems)
    finally:
        _umount(out_dir)
    assert _inputs_unchanged(inputs_before)


@pytest.mark.tmpfs
def test_full_disk_mounted(tmp_path, inputs_before, canary_env):
    out_dir = tmp_path / "full"
    if not _mount(out_dir, "size=64k"):
        pytest.skip("cannot mount a small tmpfs here (needs root on Linux); the file-size-limit test covers it")
    try:
        problems = []
        failed = 0
        for label, argv, out in _commands(out_dir):
            proc = subprocess.run([sys.executable, "-m", "archdiff", *argv], capture_output=True, timeout=300,
                                  env=harness.child_env(canary_env), preexec_fn=harness.limit_memory)
            if proc.returncode == 0 and out.exists() and out.stat().st_size < 64 * 1024:
                out.unlink()  # small enough to fit: nothing to prove
                continue
            failed += 1
            problems += _check(label, proc, out_dir, out, "space|full|cannot write")
        assert not problems, "\n".join(problems)
        assert failed >= 3
    finally:
        _umount(out_dir)
    assert _inputs_unchanged(inputs_before)


def _file_size_limit(limit: int):
    def preexec():
        harness.limit_memory()
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_writes_failing_midway(tmp_path, inputs_before, canary_env):
    """Without privileges: a 32 KiB file-size limit fails writes with EFBIG, as a full disk fails them."""
    out_dir = tmp_path / "limited"
    out_dir.mkdir()
    problems = []
    failed = 0
    for label, argv, out in _commands(out_dir):
        proc = subprocess.run([sys.executable, "-m", "archdiff", *argv], capture_output=True, timeout=300,
                              env=harness.child_env(canary_env), preexec_fn=_file_size_limit(32 * 1024))
        if proc.returncode == 0 and out.exists() and out.stat().st_size < 32 * 1024:
            out.unlink()  # small enough to fit: nothing to prove
            continue
        failed += 1
        problems += _check(label, proc, out_dir, out, "too large|space|cannot write")
    assert not problems, "\n".join(problems)
    assert failed >= 3
    assert _inputs_unchanged(inputs_before)


def test_read_only_folder_in_process(tmp_path, monkeypatch, capsys, inputs_before):
    """Without privileges: creating the temporary file fails with EROFS, as in a read-only folder."""
    import tempfile

    from archdiff.cli.main import main

    def refuse(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    out_dir = tmp_path / "ro"
    out_dir.mkdir()
    problems = []
    for label, argv, out in _commands(out_dir):
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err
        proc = subprocess.CompletedProcess(argv, code, b"", err.encode())
        problems += _check(label, proc, out_dir, out, "read-only|cannot write")
    assert not problems, "\n".join(problems)
    assert _inputs_unchanged(inputs_before)
