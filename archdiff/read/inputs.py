"""Inputs that are not plain files: stdin (``-``), pipes and FIFOs (``<(git show ...)``), and git ``REV:PATH``.

Every reader needs a regular, seekable file (HDF5 and zip both seek), so such
an input is first copied, within a size bound, into a private temporary
folder that lives as long as the process; the reader then sees an ordinary
file whose name carries the format (``--input-format``, or the content's:
zip -> ``.keras``, HDF5 -> ``.h5``, text -> ``.json`` / ``.yaml``). The
Architecture keeps the user's spelling as ``source.label`` for reports. A git
spec is read with ``git cat-file`` exactly as ``git show REV:PATH`` reads it
(PATH relative to the repository's top, or ``./``-relative to the current
folder), so ``archdiff diff HEAD~1:models/m.keras models/m.keras`` works.
"""
from __future__ import annotations

import atexit
import os
import re
import select
import shutil
import stat
import subprocess
import sys
import tempfile

from archdiff.errors import InputError, LimitExceededError, UsageError
from archdiff.limits import MAX_STREAM_BYTES

#: ``--input-format`` choices and the file name each gives the copied input.
INPUT_FORMATS = {"keras": ".keras", "h5": ".h5", "weights.h5": ".weights.h5", "json": ".json", "yaml": ".yaml"}
#: The names a git spec's PATH must end with to be taken as a model file (not a module:callable factory).
_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".json", ".yaml", ".yml")
_GIT_SPEC = re.compile(r"^(?P<rev>[^:\s][^:]*):(?P<path>.+)$")

_folder: str | None = None


def _scratch() -> str:
    global _folder
    if _folder is None or not os.path.isdir(_folder):
        _folder = tempfile.mkdtemp(prefix="archdiff-input-")  # 0700: private to this user
        atexit.register(shutil.rmtree, _folder, True)
    return _folder


def _copy_stream(stream, label: str, suffix: str | None) -> str:
    """Copy at most MAX_STREAM_BYTES of ``stream`` into the scratch folder; the new file's path."""
    head = stream.read(8)
    if suffix is None:
        suffix = _suffix_from_content(head, stream)
    fd, path = tempfile.mkstemp(dir=_scratch(), prefix="input-", suffix=suffix)
    total = len(head)
    with os.fdopen(fd, "wb") as out:
        out.write(head)
        while True:
            chunk = stream.read(1 << 20)
            if not chunk:
                break
            total += len(chunk)
            if total > MAX_STREAM_BYTES:
                raise LimitExceededError(f"the input is larger than archdiff's limit of {MAX_STREAM_BYTES} bytes "
                                         "for a stream", path=label, hint="give the model as a regular file")
            out.write(chunk)
    if total == 0:
        raise InputError("the input is empty", path=label, hint="give a model file's bytes")
    return path


def _suffix_from_content(head: bytes, stream) -> str:
    if head.startswith(b"PK\x03\x04"):
        return ".keras"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return ".h5"
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return ".json"
    if text:
        return ".yaml"
    return ".bin"


def _git(args: list[str], label: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], capture_output=True, timeout=120)
    except FileNotFoundError:
        raise InputError("reading a git revision needs git, which is not installed", path=label) from None
    except subprocess.TimeoutExpired:
        raise InputError("git did not answer within 120 s", path=label) from None


def looks_like_git_spec(spec: str) -> bool:
    """``REV:PATH`` whose PATH names a model file (``package.module:callable`` never ends so)."""
    m = _GIT_SPEC.match(spec)
    return m is not None and m.group("path").lower().endswith(_MODEL_SUFFIXES) and not os.path.lexists(spec)


def _from_git(spec: str, suffix: str | None) -> str:
    m = _GIT_SPEC.match(spec)
    assert m is not None
    size = _git(["cat-file", "-s", spec], spec)
    if size.returncode != 0:
        message = " ".join(size.stderr.decode("utf-8", "replace").split())[:200] or "git could not find it"
        raise InputError(f"not in the repository at that revision ({message})", path=spec,
                         hint="give REV:PATH as `git show` takes it (PATH from the repository's top, or ./PATH)")
    if int(size.stdout.strip() or 0) > MAX_STREAM_BYTES:
        raise LimitExceededError(f"the file is larger than archdiff's limit of {MAX_STREAM_BYTES} bytes", path=spec)
    blob = _git(["cat-file", "blob", spec], spec)
    if blob.returncode != 0:
        raise InputError("git could not read the file at that revision", path=spec)
    name = os.path.basename(m.group("path"))
    folder = tempfile.mkdtemp(dir=_scratch(), prefix="git-")
    path = os.path.join(folder, name if suffix is None else "input" + suffix)
    with open(path, "wb") as out:
        out.write(blob.stdout)
    return path


def resolve(spec: str, input_format: str | None = None) -> tuple[str, str | None]:
    """The regular file to read for ``spec``, and the label to show for it (None: the path itself)."""
    if input_format is not None and input_format not in INPUT_FORMATS:
        raise UsageError(f"unknown --input-format '{input_format}'", hint=f"choose one of {', '.join(INPUT_FORMATS)}")
    suffix = INPUT_FORMATS.get(input_format) if input_format else None
    if spec == "-":
        return _copy_stream(sys.stdin.buffer, "<stdin>", suffix), "<stdin>"
    if looks_like_git_spec(spec):
        return _from_git(spec, suffix), spec
    try:
        st = os.stat(spec)
    except OSError:
        return spec, None  # the reader says what is wrong with it
    if stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        if stat.S_ISCHR(st.st_mode) and os.path.realpath(spec) in ("/dev/zero", "/dev/urandom", "/dev/random"):
            raise InputError("an endless device is not a model file", path=spec)
        name_suffix = os.path.splitext(spec)[1].lower()
        keep = suffix or (name_suffix if name_suffix in (".keras", ".h5", ".hdf5", ".json", ".yaml", ".yml") else None)
        try:
            with _open_stream(spec, stat.S_ISFIFO(st.st_mode)) as stream:
                return _copy_stream(stream, spec, keep), spec
        except OSError as exc:
            raise InputError(f"cannot read the stream ({exc.strerror})", path=spec) from None
    return spec, None


def _writer_wait() -> float:
    """Seconds to wait for a writer on a named FIFO: ARCHDIFF_STREAM_WAIT, default 60."""
    try:
        return max(0.0, float(os.environ.get("ARCHDIFF_STREAM_WAIT", "60")))
    except ValueError:
        return 60.0


def _open_stream(spec: str, fifo: bool):
    """``spec`` opened for reading; a FIFO nobody writes into within ``_writer_wait()`` s is an error, not a hang.

    A plain ``open()`` of a FIFO blocks until a writer comes, forever if none
    does; opening it non-blocking and polling bounds the wait. A pipe that
    already has its writer (``<(git show ...)``) is readable at once.
    """
    if not fifo:
        return open(spec, "rb")
    fd = os.open(spec, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        wait = _writer_wait()
        if not poller.poll(int(wait * 1000)):
            raise InputError(f"a FIFO that nobody wrote into within {wait:.0f} s", path=spec,
                             hint="start the process that writes the model into it first "
                                  "(or raise ARCHDIFF_STREAM_WAIT), or give the model as a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
