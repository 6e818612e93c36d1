"""Where output goes: regular files atomically, devices and FIFOs as streams, never replaced; the rest refused.

Runs as root on this machine and in CI, where a rename onto a device node
would replace it for the whole machine: the devices here are made with
os.mknod in a temporary folder (the real /dev/null and /dev/full are only
written to, never removed), and each test checks the node is still a device
afterwards.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support import FIXTURES, ROOT

from archdiff.errors import OutputError
from archdiff.output import atomic_path, output_kind, write_text

MODEL = FIXTURES / "keras3" / "sequential.json"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def device(tmp_path: Path, name: str, minor: int) -> Path:
    """A character device like /dev/null (minor 3) or /dev/full (7): made here as root, else the real one."""
    if not IS_ROOT:
        return Path({3: "/dev/null", 7: "/dev/full"}[minor])
    path = tmp_path / name
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, minor))
    except (PermissionError, OSError):
        return Path({3: "/dev/null", 7: "/dev/full"}[minor])
    return path


def is_char_device(path: Path) -> bool:
    return stat.S_ISCHR(os.stat(path).st_mode)


def read_fifo(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def reader():
        with open(path, "rb") as fh:
            got.append(fh.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    return thread, got


def test_a_regular_file_is_replaced_atomically_and_a_symlink_kept(tmp_path, cli):
    out = tmp_path / "m.json"
    out.write_text("old")
    assert output_kind(str(out)) == "file"
    assert cli("export", MODEL, "-o", out)[0] == 0
    assert json.loads(out.read_text())["class_name"] == "Sequential"
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert cli("export", MODEL, "-o", link)[0] == 0
    assert link.is_symlink() and json.loads(real.read_text())["class_name"] == "Sequential"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "m.json", "real.json"]


@pytest.mark.parametrize("minor", [3, 7])
def test_a_character_device_is_written_as_a_stream_never_replaced(tmp_path, minor, cli):
    node = device(tmp_path, "dev.json", minor)
    assert output_kind(str(node)) == "stream"
    code, out, err = cli("export", MODEL, "--format", "json", "-o", node)
    if minor == 3:
        assert code == 0 and err == ""
    else:  # /dev/full: every write fails with ENOSPC, and that is one error line
        assert code == 2 and err.count("\n") == 1 and "No space left on device" in err
    assert is_char_device(node)
    assert [p.name for p in tmp_path.iterdir()] in ([], ["dev.json"])  # no temporary file left beside it


def test_export_to_dev_full_as_root_keeps_the_device(tmp_path):
    """The issue's case, with the real /dev/full: exit 2, one line, and /dev/full is still a device."""
    assert is_char_device(Path("/dev/null")), "/dev/null was replaced before this test ran (not by it)"
    before = os.stat("/dev/full")
    proc = subprocess.run([sys.executable, "-m", "archdiff", "export", str(MODEL), "-o", "/dev/full", "--format",
                           "json"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino
    proc = subprocess.run([sys.executable, "-m", "archdiff", "export", str(MODEL), "-o", "/dev/null", "--format",
                           "json"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_dev_stdout_is_the_stream_it_names(tmp_path):
    redirected = tmp_path / "redirected.json"
    with open(redirected, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "archdiff", "export", str(MODEL), "-o", "/dev/stdout",
                               "--format", "json"], stdout=fh, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(redirected.read_text())["class_name"] == "Sequential"
    assert not stat.S_ISREG(os.lstat("/dev/stdout").st_mode)  # the link (or device) itself was not replaced
    piped = subprocess.run([sys.executable, "-m", "archdiff", "diff", str(MODEL), str(MODEL), "-o", "/dev/stdout"],
                           capture_output=True, text=True, cwd=ROOT)
    assert piped.returncode == 0 and "identical" in piped.stdout


def test_a_fifo_is_written_as_a_stream(tmp_path, cli):
    fifo = tmp_path / "report.json"
    os.mkfifo(fifo)
    thread, got = read_fifo(fifo)
    code, _, err = cli("diff", MODEL, FIXTURES / "keras3" / "functional.json", "--format", "json", "-o", fifo)
    thread.join(30)
    assert code == 1, err
    assert json.loads(got[0])["classification"] == "topology-changing"
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and os.listdir(tmp_path) == ["report.json"]


def test_weight_files_refuse_a_device_or_fifo(tmp_path, cli):
    fifo = tmp_path / "out.keras"
    os.mkfifo(fifo)
    node = device(tmp_path, "null.keras", 3)
    for out in (fifo, node):
        code, _, err = cli("transfer", FIXTURES / "demo" / "source.keras", FIXTURES / "demo" / "target.keras",
                           "-o", out)
        assert code == 2 and "device or a pipe" in err and err.count("\n") == 1
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and is_char_device(node)
    with pytest.raises(OutputError, match="device or a pipe"):
        with atomic_path(str(fifo)):
            pass


def test_other_special_files_are_refused(tmp_path, cli):
    sock_path = tmp_path / "s.json"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        code, _, err = cli("export", MODEL, "--format", "json", "-o", sock_path)
        assert code == 2 and "a socket, not a regular file" in err
        with pytest.raises(OutputError, match="socket"):
            write_text(str(sock_path), "x")
    finally:
        server.close()
    assert stat.S_ISSOCK(os.stat(sock_path).st_mode)
    folder = tmp_path / "dir.json"
    folder.mkdir()
    assert cli("export", MODEL, "-o", folder)[0] == 2

    block = tmp_path / "disk.json"
    try:
        os.mknod(block, 0o600 | stat.S_IFBLK, os.makedev(7, 0))  # loop0's numbers; never opened
    except OSError:
        block = None  # not root: no block device can be made, and none of the machine's is touched
    if block is not None:
        code, _, err = cli("export", MODEL, "--format", "json", "-o", block)
        assert code == 2 and "a block device" in err
        assert stat.S_ISBLK(os.stat(block).st_mode)
