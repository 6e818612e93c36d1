"""Writing output files safely: a temporary file beside the target, renamed into place.

An interrupted run leaves nothing at the target; inputs are never the target.
"""
from __future__ import annotations

import os
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


@contextmanager
def atomic_path(target: str, *, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``target``; rename it into place on success."""
    folder = os.path.dirname(os.path.abspath(target)) or "."
    if not os.path.isdir(folder):
        raise OutputError(f"the folder '{folder}' does not exist", path=target,
                          hint="create it first or choose another output path")
    if os.path.isdir(target):
        raise OutputError("the output path is a directory", path=target, hint="give a file name")
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


def write_text(target: str, text: str) -> None:
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
