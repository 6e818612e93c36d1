"""Writing weight files: streamed, chunked dataset copies and the ``.keras`` zip.

This module owns the byte-moving half of a weight transfer: copying a file
without loading it (leaving out the bytes about to be overwritten), copying
one store dataset into another block by block with a running checksum (hashed
on a worker thread), re-hashing a dataset to verify it, rebuilding a ``.keras``
zip around a new ``model.weights.h5``, the scratch file beside OUT, and turning
SIGTERM/SIGHUP into an exception so the temporary files are removed. It knows
no file layout: datasets come from :mod:`archdiff.store`. Nothing here holds
more than one block of a tensor in memory.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import threading
import time
import zipfile
from contextlib import contextmanager
from typing import Callable, Iterator

from archdiff.errors import OutputError
from archdiff.store import BLOCK_BYTES as STORE_BLOCK_BYTES
from archdiff.store import CHECKSUM, Dataset, InlineHashing, blocks, plain_dtype  # noqa: F401 - blocks, CHECKSUM: API

#: Bytes of one tensor held in memory at a time while copying or hashing.
BLOCK_BYTES = STORE_BLOCK_BYTES
#: Bytes per read/write while copying whole files or zip members.
FILE_CHUNK = 4 * 1024 * 1024


def new_hasher():
    return hashlib.new(CHECKSUM)


# -- copying ------------------------------------------------------------------------
class Checksums:
    """Checksums computed on one worker thread while the caller reads and writes.

    hashlib releases the GIL on large buffers, so hashing overlaps with HDF5 I/O.
    The worker takes blocks in order (one thread), and at most ``limit`` bytes wait
    for it, which bounds the memory held. Use as a context manager; ``start()``
    begins a checksum, ``update()`` feeds it, ``finish()`` returns a future digest
    (the hashing protocol of :class:`archdiff.store.InlineHashing`).
    """

    def __init__(self, limit: int | None = None):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self.limit = 2 * BLOCK_BYTES if limit is None else limit
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="archdiff-hash")
        self._waiting = deque()
        self._bytes = 0

    def start(self):
        return new_hasher()

    def update(self, hasher, block) -> None:
        import numpy as np

        data = block.reshape(-1).view(np.uint8)
        while self._waiting and self._bytes + data.nbytes > self.limit:
            future, n = self._waiting.popleft()
            future.result()
            self._bytes -= n
        self._waiting.append((self._pool.submit(hasher.update, data), data.nbytes))
        self._bytes += data.nbytes

    def finish(self, hasher):
        return self._pool.submit(hasher.hexdigest)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._waiting.clear()
        self._bytes = 0

    def __enter__(self) -> "Checksums":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def copy_dataset(src: Dataset, dst: Dataset, *, dtype=None, progress: Callable[[int], None] | None = None,
                 checksums: Checksums | None = None):
    """Copy the store dataset ``src`` into the existing store dataset ``dst`` block by block.

    ``dtype`` is the dtype stored in ``dst`` (values are cast to it). Returns the
    checksum of the bytes written (C order): a str without ``checksums``, else a
    future of it. A tensor under ``BLOCK_BYTES`` moves in one read and one write.
    """
    import numpy as np

    hashing = checksums or InlineHashing()
    src_dtype = src.dtype
    dtype = np.dtype(dtype if dtype is not None else dst.dtype)
    hasher = hashing.start()
    shape = src.shape
    itemsize = max(src_dtype.itemsize, dtype.itemsize)
    if _size(shape) * itemsize <= BLOCK_BYTES and plain_dtype(src_dtype) and plain_dtype(dtype):
        block = np.ascontiguousarray(src.read().astype(dtype, copy=False))
        dst.write(block)
        hashing.update(hasher, block)
        if progress is not None:
            progress(block.nbytes)
    else:
        for sel in blocks(shape, itemsize, BLOCK_BYTES):
            block = np.ascontiguousarray(src.read(sel).astype(dtype, copy=False))
            dst.write(block, sel)
            hashing.update(hasher, block)
            if progress is not None:
                progress(block.nbytes)
    digest = hashing.finish(hasher)
    return digest if checksums is not None else digest.result()


def checksum_dataset(ds: Dataset, *, progress: Callable[[int], None] | None = None,
                     checksums: Checksums | None = None):
    """The checksum of a store dataset's bytes in C order, read block by block (a future with ``checksums``)."""
    return ds.checksum(progress=progress, hashing=checksums, budget=BLOCK_BYTES)


def copy_file(src: str, dst: str) -> None:
    """Copy a file's bytes (the kernel copies where it can; never the whole file in memory)."""
    try:
        shutil.copyfile(src, dst)
    except OSError as exc:
        raise OutputError(f"cannot copy '{src}' ({exc.strerror})", path=dst,
                          hint="check free space and permissions") from None


def _merge(ranges: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for offset, size in sorted(ranges):
        start, end = max(0, offset), min(total, offset + size)
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b - a) for a, b in merged]


def _copy_range(src_fd: int, dst_fd: int, src_offset: int, dst_offset: int, count: int) -> None:
    fast = hasattr(os, "copy_file_range")
    while count > 0:
        if fast:
            try:
                n = os.copy_file_range(src_fd, dst_fd, min(count, 1 << 30), src_offset, dst_offset)
            except OSError:
                fast = False
                continue
        else:
            data = os.pread(src_fd, min(count, FILE_CHUNK), src_offset)
            n = os.pwrite(dst_fd, data, dst_offset) if data else 0
        if n <= 0:
            raise OSError(5, "the source file ended early")
        src_offset += n
        dst_offset += n
        count -= n


def copy_file_except(src: str, dst: str, holes: list[tuple[int, int]], *, start: int = 0,
                     length: int | None = None) -> None:
    """Copy bytes ``[start, start + length)`` of ``src`` into ``dst``, leaving ``holes`` unwritten.

    ``holes`` are ``(offset, size)`` relative to ``start``: the raw data of
    datasets that will be overwritten. They stay sparse (they read as zeros
    until written), so every byte of OUT is written once. The kernel copies the
    rest (``copy_file_range``), falling back to reads and writes.
    """
    try:
        with open(src, "rb") as s, open(dst, "wb") as d:
            total = (os.fstat(s.fileno()).st_size - start) if length is None else length
            pos = 0
            for offset, size in _merge(holes, total):
                _copy_range(s.fileno(), d.fileno(), start + pos, pos, offset - pos)
                pos = offset + size
            _copy_range(s.fileno(), d.fileno(), start + pos, pos, total - pos)
            d.truncate(total)
    except OSError as exc:
        raise OutputError(f"cannot copy '{src}' ({exc.strerror or exc})", path=dst,
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


@contextmanager
def syncing(*paths: str | None, where: str) -> Iterator[None]:
    """Flush ``paths`` to the disk on a worker thread while the block runs (the read-back check): both are
    done when it ends, before anything is renamed into place.

    ``os.fsync`` waits on the disk without the GIL, and the check reads what was written from the page cache
    either way, so the two overlap (a ResNet50 transfer: about 40 ms of fsync). An error of either is raised
    once the other has finished, the block's own first; a failed flush is an :class:`OutputError` on
    ``where`` (the output the user named), not an error on the temporary file's name.
    """
    failed: list[OSError] = []

    def flush() -> None:
        try:
            for path in paths:
                if path is not None:
                    fsync_path(path)
        except OSError as exc:  # handed to the caller's thread below
            failed.append(exc)

    worker = threading.Thread(target=flush, name="archdiff-fsync", daemon=True)
    worker.start()
    try:
        yield
    finally:
        worker.join()
    if failed:
        exc = failed[0]
        raise OutputError(f"cannot flush the output to the disk ({exc.strerror or exc})", path=where,
                          hint="check the disk (its space and health) and run the transfer again") from None


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
