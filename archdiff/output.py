"""Writing output files safely: regular files atomically, streams as streams, nothing else.

What OUT names decides how it is written (:func:`output_kind`):

- a regular file, or nothing yet: a temporary file beside the target, renamed
  into place (:func:`atomic_path`), so an interrupted run leaves nothing at
  the target. A symlink to a regular file is written where it points (the
  link stays a link).
- a character device or a FIFO (``-o /dev/stdout``, ``-o /dev/null``, a
  named pipe): written as a stream by :func:`write_text`, never replaced.
  Run as root, a rename onto ``/dev/null`` or ``/dev/full`` would replace the
  device node for the whole machine. Outputs that must be files (the weight
  files ``transfer`` writes) refuse them.
- anything else (a directory, a block device, a socket): refused, exit 2.

Inputs are never the target (:func:`refuse_overwriting_inputs`).
"""
from __future__ import annotations

import os
import stat
import tempfile
from contextlib import contextmanager
from typing import Iterator

from archdiff.errors import OutputError, UsageError


def refuse_overwriting_inputs(target: str, inputs: list[str]) -> None:
    """OUT equal to an input (same file, whatever the spelling) is refused."""
    for src in inputs:
        try:
            if os.path.exists(target) and os.path.exists(src) and os.path.samefile(target, src):
                raise UsageError(f"the output '{target}' is the input '{src}'",
                                 hint="write to a new path; archdiff never changes its inputs")
        except OSError:
            continue
        if os.path.abspath(target) == os.path.abspath(src):
            raise UsageError(f"the output '{target}' is the input '{src}'",
                             hint="write to a new path; archdiff never changes its inputs")


def _through_proc(path: str) -> bool:
    """Whether ``path`` is, or links through, /proc (``/dev/stdout`` -> ``/proc/self/fd/1``): an open file's alias."""
    seen = 0
    current = os.path.abspath(path)
    while seen < 40:
        if current.startswith("/proc/"):
            return True
        if not os.path.islink(current):
            return False
        link = os.readlink(current)
        current = os.path.normpath(os.path.join(os.path.dirname(current), link))
        seen += 1
    return False


def output_kind(target: str) -> str:
    """``"file"`` (write beside it and rename) or ``"stream"`` (write into it as it is); refuse the rest.

    Raises :class:`~archdiff.errors.OutputError` for a directory, a block
    device, a socket or anything else that is neither.
    """
    try:
        info = os.stat(target)  # follows symlinks: what the name leads to decides
    except FileNotFoundError:
        return "file"  # nothing there yet (a dangling symlink is replaced by the file, as before)
    except OSError as exc:
        raise OutputError(f"cannot look at the output path ({exc.strerror})", path=target,
                          hint="choose another output path") from None
    mode = info.st_mode
    if stat.S_ISREG(mode):
        return "stream" if _through_proc(target) else "file"
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return "stream"
    if stat.S_ISDIR(mode):
        raise OutputError("the output path is a directory", path=target, hint="give a file name")
    what = "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a special file"
    raise OutputError(f"the output path is {what}, not a regular file", path=target,
                      hint="write to a regular file (archdiff never writes into devices or sockets)")


def _rename_target(target: str) -> str:
    """Where the rename goes: a symlink's regular-file target, so that the link is kept."""
    return os.path.realpath(target) if os.path.islink(target) and os.path.isfile(target) else target


@contextmanager
def atomic_path(target: str, *, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``target``; rename it into place on success.

    For outputs that must be regular files: a character device or FIFO as
    ``target`` is refused (it would be replaced by the rename), and so is
    every other special file (:func:`output_kind`).
    """
    if output_kind(target) == "stream":
        raise OutputError("the output is a device or a pipe, and this output must be a file: writing it beside "
                          "and renaming it into place would replace the device", path=target,
                          hint="give a regular file path")
    target = _rename_target(target)
    folder = os.path.dirname(os.path.abspath(target)) or "."
    if not os.path.isdir(folder):
        raise OutputError(f"the folder '{folder}' does not exist", path=target,
                          hint="create it first or choose another output path")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=f"{suffix}.tmp", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write in '{folder}' ({exc.strerror})", path=target,
                          hint="check the folder's permissions and free space") from None
    try:
        os.close(fd)
        yield tmp
        # mkstemp makes the file private; give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if output_kind(target) != "file":  # it became a device or a pipe meanwhile: never replace one
            raise OutputError("the output path became a device or a pipe while archdiff wrote it", path=target,
                              hint="give a regular file path")
        os.replace(tmp, target)
    except OSError as exc:
        _unlink(tmp)
        raise OutputError(f"cannot write the output ({exc.strerror})", path=target,
                          hint="check the folder's permissions and free space") from None
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def write_stream(target: str, data: bytes) -> None:
    """Write ``data`` into a character device or FIFO as it is: never created, truncated or replaced.

    A FIFO waits for its reader, as ``echo > fifo`` does.
    """
    try:
        flags = os.O_WRONLY | getattr(os, "O_NOCTTY", 0)
        if _through_proc(target) and os.path.isfile(target):
            flags |= os.O_TRUNC  # /dev/stdout redirected to a file: replace its contents, as the shell's > would
        fd = os.open(target, flags)
    except OSError as exc:
        raise OutputError(f"cannot open the output ({exc.strerror})", path=target) from None
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except BrokenPipeError:
        raise OutputError("the output pipe was closed before the report was written", path=target) from None
    except OSError as exc:
        raise OutputError(f"cannot write the output ({exc.strerror})", path=target,
                          hint="check the device or free space") from None
    finally:
        os.close(fd)


def write_text(target: str, text: str) -> None:
    """``text`` (UTF-8) at ``target``: atomically for a file, as a stream for a device or FIFO."""
    if output_kind(target) == "stream":
        write_stream(target, text.encode("utf-8", "surrogateescape"))
        return
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
