"""The global-heap check: libhdf5 loops forever on some corrupt variable-length string heaps.

One byte changed in a weights file's global heap collection made libhdf5
1.14.6 loop forever with the GIL held. Before HDF5 reads any attribute,
:func:`check_global_heaps` parses every collection ("GCOL") in the file and
refuses one whose objects do not tile it exactly. (Crash containment in
``archdiff.read.contain`` is the general guard; this check gives the precise
error line and costs a few milliseconds.)
"""
from __future__ import annotations

import os
import re

from archdiff.errors import InputError


def _h5py():
    import h5py

    return h5py


#: A global heap collection: "GCOL", version 1, three reserved bytes, then its size.
_GCOL = re.compile(rb"GCOL\x01\x00\x00\x00")


_GCOL_MIN_SIZE = 4096


def check_global_heaps(f, kinds: dict[str, str], *, where: str) -> None:
    """Refuse a global heap collection whose objects do not tile it exactly.

    The global heap holds variable-length data, such as the strings of the
    ``name`` attributes Keras 3 writes. libhdf5 (1.14) parses a collection by
    stepping from object to object by their sizes, and loops forever, holding
    the GIL where no timeout can reach, when a corrupt size lands it on an
    empty free-space record. So the collections are parsed here first, the
    same way, in the file's metadata only (the bytes outside the datasets'
    data), before HDF5 reads any attribute. Files with 4-byte lengths, or
    without a superblock at offset 0, are left to HDF5.
    """
    raw = _raw_bytes(f)
    if raw is None:
        return
    read, size, close = raw
    try:
        head = read(0, 16)
        if head[:8] != b"\x89HDF\r\n\x1a\n":
            return
        lengths = head[14] if head[8] in (0, 1) else head[10]
        if lengths != 8:
            return
        check_heap_regions(read, size, _dataset_extents(f, kinds), where=where)
    finally:
        close()


def check_heap_regions(read, size: int, extents: list[tuple[int, int]], *, where: str) -> None:
    """The check of :func:`check_global_heaps` on the bytes ``read(offset, n)`` of a file of ``size`` bytes
    whose datasets' data lies at ``extents`` (sorted): every collection in the rest is parsed."""
    start = 0
    for begin, end in extents + [(size, size)]:
        if begin > start:
            _check_region(read, start, begin, size, where)
        start = max(start, end)


def _raw_bytes(f):
    """``(read(offset, n), size, close)`` over the bytes of an open HDF5 file, or None."""
    window = getattr(f, "archdiff_raw", None)
    if window is not None:
        def read_window(offset: int, n: int) -> bytes:
            window.seek(offset)
            return window.read(n) or b""

        return read_window, window._size, lambda: None
    name = f.filename
    if not isinstance(name, str) or not os.path.isfile(name):
        return None
    try:
        fh = open(name, "rb")
    except OSError:
        return None

    def read_file(offset: int, n: int) -> bytes:
        return os.pread(fh.fileno(), n, offset)

    return read_file, os.fstat(fh.fileno()).st_size, fh.close


def _dataset_extents(f, kinds: dict[str, str]) -> list[tuple[int, int]]:
    """Where the datasets' data lies (contiguous ones), sorted; the rest of the file is metadata."""
    h5py = _h5py()
    extents = []
    for path, kind in kinds.items():
        if kind != "dataset":
            continue
        try:
            dsid = h5py.h5d.open(f.id, path.encode("utf-8"))
            offset = dsid.get_offset()
            if offset is not None:
                extents.append((offset, offset + dsid.get_storage_size()))
        except (KeyError, OSError, RuntimeError, ValueError, TypeError):
            continue  # HDF5 reports it when the dataset is read
    return sorted(extents)


def _check_region(read, begin: int, end: int, size: int, where: str) -> None:
    step = 1 << 20
    at = begin
    while at < end:
        chunk = read(at, min(step, end - at) + 7)
        for match in _GCOL.finditer(chunk):
            offset = at + match.start()
            if offset < end:
                _check_collection(read, offset, size, where)
        at += step


def _check_collection(read, offset: int, file_size: int, where: str) -> None:
    import struct

    def corrupt(why: str) -> InputError:
        return InputError(f"the HDF5 global heap at byte {offset} is corrupt ({why})", path=where,
                          hint="the file is damaged; HDF5 cannot read it safely; save the model again with Keras")

    (collection,) = struct.unpack("<Q", read(offset + 8, 8).ljust(8, b"\0"))
    if collection < _GCOL_MIN_SIZE or offset + collection > file_size:
        raise corrupt(f"it claims {collection} bytes")
    data = read(offset, collection)
    at = 16
    while at < collection:
        if at + 16 > collection:
            break  # too small for an object: free space, as HDF5 reads it
        index, _, _, length = struct.unpack_from("<HHIQ", data, at)
        need = 16 + (length + 7) // 8 * 8 if index else length
        if need <= 0 or at + need > collection:
            raise corrupt(f"object {index} at byte {offset + at} claims {length} bytes")
        at += need
