"""Writing weight files: streamed, chunked dataset copies and the ``.keras`` zip.

This module owns the byte-moving half of a weight transfer: copying a file
without loading it, resolving a dataset path in a file being written (links
refused, as when reading), copying one dataset block by block with a running
checksum, re-hashing a dataset to verify it, rebuilding a ``.keras`` zip around
a new ``model.weights.h5``, and turning SIGTERM/SIGHUP into an exception so
the temporary files are removed. Nothing here holds more than one block of a
tensor in memory.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from contextlib import contextmanager
from typing import Callable, Iterator

from . import h5
from .errors import InputError, OutputError

#: Bytes of one tensor held in memory at a time while copying or hashing.
BLOCK_BYTES = 32 * 1024 * 1024
#: Bytes per read/write while copying whole files or zip members.
FILE_CHUNK = 4 * 1024 * 1024

#: The checksum recorded for every copied variable (bytes as stored, C order).
CHECKSUM = "sha256"


def new_hasher():
    return hashlib.new(CHECKSUM)


# -- blocks ------------------------------------------------------------------------
def blocks(shape: tuple[int, ...], itemsize: int, budget: int | None = None) -> Iterator[tuple]:
    """Index tuples that cover an array of ``shape`` in C order, each at most ``budget`` bytes.

    A block is a run of whole slices along one axis, so concatenating the blocks'
    bytes gives the array's bytes in C order (the checksum does not depend on the
    block size). Where even one element row exceeds the budget, the outer axes are
    walked one index at a time.
    """
    budget = BLOCK_BYTES if budget is None else max(1, int(budget))
    shape = tuple(int(d) for d in shape)
    if not shape:
        yield ()
        return
    if any(d == 0 for d in shape):
        return
    n = len(shape)
    suffix = [1] * (n + 1)
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] * shape[i]
    itemsize = max(1, int(itemsize))
    axis = n - 1
    for i in range(n):
        if suffix[i + 1] * itemsize <= budget:
            axis = i
            break
    step = max(1, budget // (suffix[axis + 1] * itemsize))
    for outer in itertools.product(*(range(shape[j]) for j in range(axis))):
        for start in range(0, shape[axis], step):
            yield outer + (slice(start, min(start + step, shape[axis])),)


# -- safe access -------------------------------------------------------------------
def resolve(f, location: str, *, where: str):
    """The dataset at ``location`` (``/a/b/c``), walking one link-checked step at a time."""
    obj = f
    for part in location.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise InputError(f"dataset path '{location}' climbs out of the file", path=where)
        obj = h5.child(obj, part, where=where)
    if not h5.is_dataset(obj):
        raise InputError(f"'{location}' is not a dataset", path=where)
    return obj


# -- copying ------------------------------------------------------------------------
def copy_dataset(src, dst, *, dtype=None, progress: Callable[[int], None] | None = None) -> str:
    """Copy ``src`` into the existing dataset ``dst`` block by block; return the checksum written.

    ``dtype`` is the dtype stored in ``dst`` (values are cast to it). The checksum is
    of the bytes written, in C order.
    """
    import numpy as np

    dtype = np.dtype(dtype if dtype is not None else dst.dtype)
    hasher = new_hasher()
    shape = tuple(src.shape or ())
    for sel in blocks(shape, max(src.dtype.itemsize, dtype.itemsize)):
        block = src[sel] if sel else src[()]
        block = np.ascontiguousarray(np.asarray(block).astype(dtype, copy=False))
        if sel:
            dst[sel] = block
        else:
            dst[()] = block
        hasher.update(block.reshape(-1).view(np.uint8))
        if progress is not None:
            progress(block.nbytes)
    return hasher.hexdigest()


def checksum_dataset(ds, *, progress: Callable[[int], None] | None = None) -> str:
    """The checksum of a dataset's bytes in C order, read block by block."""
    import numpy as np

    hasher = new_hasher()
    for sel in blocks(tuple(ds.shape or ()), ds.dtype.itemsize):
        block = np.ascontiguousarray(ds[sel] if sel else ds[()])
        hasher.update(block.reshape(-1).view(np.uint8))
        if progress is not None:
            progress(block.nbytes)
    return hasher.hexdigest()


def copy_file(src: str, dst: str) -> None:
    """Copy a file's bytes (the kernel copies where it can; never the whole file in memory)."""
    try:
        shutil.copyfile(src, dst)
    except OSError as exc:
        raise OutputError(f"cannot copy '{src}' ({exc.strerror})", path=dst,
                          hint="check free space and permissions") from None


def copy_zip_member(zip_path: str, member: str, dst: str) -> None:
    """Stream one member of a zip into a new file."""
    with zipfile.ZipFile(zip_path) as zf, zf.open(member) as src, open(dst, "wb") as out:
        shutil.copyfileobj(src, out, FILE_CHUNK)


def rebuild_keras_zip(target_zip: str, replacements: dict[str, str], out: str) -> None:
    """Write ``out``: ``target_zip``'s members in order, those in ``replacements`` from files.

    Other members are copied byte for byte (re-compressed only if they were
    compressed); each member keeps its compression, date and permissions, as
    Keras wrote them, except that a replaced member gets the current time.
    """
    now = time.localtime()[:6]
    with zipfile.ZipFile(target_zip) as zin, zipfile.ZipFile(out, "w", allowZip64=True) as zout:
        for info in zin.infolist():
            new = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            new.compress_type = info.compress_type
            new.external_attr = info.external_attr
            new.create_system = info.create_system
            if info.filename in replacements:
                path = replacements[info.filename]
                new.date_time = now
                new.file_size = os.path.getsize(path)
                with open(path, "rb") as src, zout.open(new, "w", force_zip64=new.file_size >= (1 << 31)) as dst:
                    shutil.copyfileobj(src, dst, FILE_CHUNK)
            else:
                new.file_size = info.file_size
                with zin.open(info) as src, zout.open(new, "w", force_zip64=info.file_size >= (1 << 31)) as dst:
                    shutil.copyfileobj(src, dst, FILE_CHUNK)


# -- files beside the output --------------------------------------------------------
@contextmanager
def scratch_file(beside: str, suffix: str) -> Iterator[str]:
    """A hidden temporary file in the folder of ``beside``, removed on exit whatever happens."""
    folder = os.path.dirname(os.path.abspath(beside)) or "."
    try:
        fd, path = tempfile.mkstemp(prefix=f".{os.path.basename(beside)}.", suffix=suffix, dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write in '{folder}' ({exc.strerror})", path=beside,
                          hint="check the folder's permissions and free space") from None
    os.close(fd)
    try:
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def default_file_mode(path: str) -> None:
    """Give a temp file (created 0600) the mode a normally created file would have."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.chmod(path, 0o666 & ~mask)
    except OSError:
        pass


# -- signals ---------------------------------------------------------------------------
@contextmanager
def exit_on_termination() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into SystemExit while writing, so cleanup code runs.

    SIGINT already raises KeyboardInterrupt. Outside the main thread signal
    handlers cannot be set, and nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SystemExit(128 + signum)

    previous = {}
    for sig in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)):
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):
            continue
    try:
        yield
    finally:
        for sig, old in previous.items():
            try:
                signal.signal(sig, old)
            except (ValueError, OSError):
                pass
