"""A Keras 3 weights file's values read without h5py, where :mod:`archdiff.read.hdf5_lite` reads its tree.

A value comparison (``archdiff diff`` with weights on both sides) reads every
paired variable of two files once. Through h5py that costs an import, a scan
of each whole file (links, cycles, heaps: :class:`~archdiff.store.base.DatasetIndex`)
and libhdf5's per-dataset work, which for a ResNet pair is more than the
arithmetic. The files Keras 3 writes (a ``.weights.h5``, or a ``.keras`` zip's
stored ``model.weights.h5``) hold each variable as one contiguous run of
little-endian bytes, or inside its object header (compact) when small:
:class:`~archdiff.read.hdf5_lite.LiteFile` reads where each run lies, with
the checks that reader makes (it declines, and h5py reads, anything it does not
know or that does not check out), and this store reads those bytes with
``os.preadv`` straight into numpy arrays: the bytes libhdf5 would copy out of
the same places for a dataset with no filters and no type conversion.

:func:`open_lite_store` returns None wherever the reader declines the file,
the format is another, the zip member is deflated, or ``ARCHDIFF_LITE_HDF5=0``:
then the caller opens the h5py store, as before this module. Only what a value
comparison needs is here (``dataset(location)`` and the handle's ``shape``,
``dtype``, ``nbytes``, ``read(sel)``) and textconv's digests (``checksum``); a
transfer, which writes, and everything else keep h5py.
"""
from __future__ import annotations

import os
import sys

from archdiff.errors import InputError
from archdiff.read import hdf5_lite
from archdiff.store.base import Dataset
from archdiff.store.keras_zip import KerasZipStore

#: The stored bytes are little-endian (the reader declines any other order); numpy's dtypes are the machine's.
_BIG_ENDIAN = sys.byteorder == "big"

#: The formats (``Source.format``) this store reads.
FORMATS = ("keras", "weights.h5")


class LiteDataset:
    """One dataset's values: its shape and dtype, read whole or by block (an index tuple of
    :func:`archdiff.store.base.blocks`: whole indices on the outer axes, then one slice)."""

    __slots__ = ("location", "where", "shape", "dtype", "_store", "_offset", "_compact")

    def __init__(self, store: LiteStore, location: str, shape: tuple[int, ...], dtype, offset: int | None,
                 compact: bytes | None):
        self._store = store
        self.location = location
        self.where = store.where
        self.shape = shape
        self.dtype = dtype
        self._offset = offset
        self._compact = compact

    def __repr__(self) -> str:
        return f"<LiteDataset {self.location} {self.shape} {self.dtype} in {self.where}>"

    def _span(self, sel: tuple | None) -> tuple[tuple[int, ...], int]:
        """The block's shape (as h5py's ``ds[sel]`` gives it) and its first element's index in C order."""
        if sel is None or sel == ():
            return self.shape, 0
        shape = self.shape
        axis = len(sel) - 1
        last = sel[axis]
        if len(sel) > len(shape) or not isinstance(last, slice) or last.step not in (None, 1):
            raise ValueError(f"not a block of {shape}: {sel!r}")
        start, stop, _ = last.indices(shape[axis])
        first = 0
        for j, d in enumerate(shape):
            index = sel[j] if j < axis else (start if j == axis else 0)
            if isinstance(index, slice) or not 0 <= index < d:
                raise ValueError(f"not a block of {shape}: {sel!r}")
            first = first * d + index
        return (max(0, stop - start),) + shape[axis + 1:], first

    def read(self, sel: tuple | None = None):
        """The whole dataset as a numpy array (``sel`` None), or the block ``sel``."""
        import numpy as np

        shape, first = self._span(sel)
        out = np.empty(shape, dtype=self.dtype)
        if not out.size:
            return out
        start = first * self.dtype.itemsize
        raw = out.reshape(-1).view(np.uint8)
        if self._compact is not None:
            raw[:] = np.frombuffer(self._compact, dtype=np.uint8, count=out.nbytes, offset=start)
        elif self._offset is None:
            raise InputError(f"the dataset '{self.location}' holds no data; the file changed since it was read",
                             path=self.where, hint="run the command again on files nothing is writing")
        else:
            self._store.read_into(raw, self._offset + start, self.location)
        if _BIG_ENDIAN and self.dtype.itemsize > 1:
            out.byteswap(inplace=True)  # stored little-endian; handed out in the machine's order, as h5py does
        return out

    # Size, blocks and checksums as every store's datasets give them (through ``shape``, ``dtype``, ``read``).
    nbytes = Dataset.nbytes
    iter_blocks = Dataset.iter_blocks
    checksum = Dataset.checksum


class LiteStore:
    """One Keras 3 weights HDF5, open for reading values (a context manager; ``close()`` is idempotent)."""

    def __init__(self, fd: int, base: int, size: int, lite: hdf5_lite.LiteFile, *, path: str, where: str):
        self._fd: int | None = fd
        self._base = base
        self._size = size
        self._lite = lite
        self.path = path
        self.where = where

    def __enter__(self) -> LiteStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def locations(self) -> list[str]:
        """Every dataset's location (``/layers/dense/vars/0``), sorted."""
        return sorted("/" + path for path, kind in self._lite.kinds().items() if kind == "dataset")

    def dataset(self, location: str) -> LiteDataset:
        import numpy as np

        found = self._lite.data(location.strip("/"))
        if found is None:
            raise InputError(f"'{location}' is missing", path=self.where)
        shape, dtype, offset, compact = found
        return LiteDataset(self, location, shape, np.dtype(dtype), offset, compact)

    def read_into(self, raw, offset: int, location: str) -> None:
        """Fill the byte array ``raw`` from ``offset`` in the HDF5 bytes; the file must still hold them all."""
        fd = self._fd
        if fd is None:
            raise ValueError("the store is closed")
        if offset + len(raw) > self._size:
            raise InputError(f"the dataset '{location}' lies past the file's end; the file changed since it was "
                             "read", path=self.where, hint="run the command again on files nothing is writing")
        view = memoryview(raw)
        done = 0
        while done < len(view):
            try:
                n = os.preadv(fd, [view[done:]], self._base + offset + done)
            except OSError as exc:
                raise InputError(f"cannot read the dataset '{location}' ({exc.strerror or exc})",
                                 path=self.where) from None
            if n <= 0:
                raise InputError(f"the file ended inside the dataset '{location}'; it changed since it was read",
                                 path=self.where, hint="run the command again on files nothing is writing")
            done += n


def open_lite_store(path: str, *, format: str, where: str | None = None) -> LiteStore | None:
    """The file's values store without h5py, or None where the h5py store must read it (see the module)."""
    if format not in FORMATS or not hdf5_lite.enabled():
        return None
    path = os.fspath(path)
    where = where or path
    base, size = 0, None
    if format == "keras":
        span = _stored_member(path)
        if span is None:
            return None
        base, size = span
        where = f"{where}:{KerasZipStore.MEMBER}"  # as the .keras store names it
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        lite = hdf5_lite.lite_from_fd(fd, offset=base, size=size, where=where)
        if lite is None:
            os.close(fd)
            return None
        return LiteStore(fd, base, lite.size, lite, path=path, where=where)
    except BaseException:
        os.close(fd)
        raise


def _stored_member(path: str) -> tuple[int, int] | None:
    """``(offset, size)`` of the ``.keras`` zip's stored weights member, or None (deflated, missing, odd):
    the h5py store then opens the zip and gives its own error line where there is one."""
    try:
        return KerasZipStore.weights_span(path)
    except (OSError, InputError):
        return None
