"""The weight store interface, and what every store hands out: variables, dataset handles, blocks.

A *store* is one open weight file in one on-disk layout (after Keras'
``H5IOStore`` / ``ShardedH5IOStore`` in ``keras/src/saving/saving_lib.py``):
open once, list the variables of each layer path, read one dataset, overwrite
one dataset, checksum one dataset, close. The implementations live beside this
module, one per layout; :mod:`archdiff.store.dispatch` picks one from a file
name or from the format the reader detected.

The read side is lazy so that a caller can walk a model variable by variable
and never hold more than one tensor (or one block of it) in memory:
:meth:`WeightStore.variables` yields :class:`StoredVariable` records (layer
path, variable name and position, dataset location, shape, dtype) from the
file's metadata, and :meth:`WeightStore.datasets` pairs each with its
:class:`Dataset` handle, opened only when the iteration reaches it.

The stores talk to h5py and :mod:`archdiff.read.hdf5`, which keeps owning the
safety checks: links refused (one scan per file, :class:`DatasetIndex`),
bounded attribute reads, bomb ratios and external storage (``check_dataset``
on every dataset a store hands out, unless it was opened with
``check_datasets=False`` on files already checked).
"""
from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import ClassVar, Iterator

from archdiff.errors import InputError, UsageError
from archdiff.read import hdf5 as h5

#: Bytes of one tensor held in memory at a time when reading by blocks.
BLOCK_BYTES = 32 * 1024 * 1024

#: The checksum of a dataset: SHA-256 of its bytes as stored, in C order.
CHECKSUM = "sha256"


def new_hasher():
    return hashlib.new(CHECKSUM)


# -- what a store lists --------------------------------------------------------------
@dataclass(frozen=True)
class StoredVariable:
    """One variable as the file stores it.

    ``layer`` is the layer path as the file names it (``base/conv1``: the
    layer's real name where the file records one, else the group key Keras
    made up); pairing it with a config's layers is the reader's job.
    ``name`` is relative to the layer (``kernel``, ``d1/kernel`` in a legacy
    nested model, ``0`` or ``cell/0`` in Keras 3 files, which number their
    variables); ``position`` is its index among the layer's variables, in the
    file's order. ``location`` is the dataset's path inside the HDF5 file.
    """

    layer: str
    name: str
    position: int
    location: str
    shape: tuple[int, ...]
    dtype: str


# -- blocks ------------------------------------------------------------------------
def blocks(shape: tuple[int, ...], itemsize: int, budget: int | None = None) -> Iterator[tuple]:
    """Index tuples that cover an array of ``shape`` in C order, each at most ``budget`` bytes.

    A block is a run of whole slices along one axis, so concatenating the blocks'
    bytes gives the array's bytes in C order (a checksum does not depend on the
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


def plain_dtype(dtype) -> bool:
    """A fixed-size numeric dtype that HDF5 reads straight into a numpy buffer."""
    return dtype.kind in "biufc" and not dtype.hasobject


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


class InlineHashing:
    """Checksums computed on the calling thread.

    The hashing protocol (``start() -> hasher``, ``update(hasher, block)``,
    ``finish(hasher) -> future of the hex digest``) lets a caller pass a worker
    instead (``archdiff.transfer.write.Checksums`` hashes on a thread while
    HDF5 reads).
    """

    def start(self):
        return new_hasher()

    def update(self, hasher, block) -> None:
        import numpy as np

        hasher.update(block.reshape(-1).view(np.uint8))

    def finish(self, hasher):
        from concurrent.futures import Future

        done: Future = Future()
        done.set_result(hasher.hexdigest())
        return done


# -- one dataset ---------------------------------------------------------------------
class Dataset:
    """A handle on one HDF5 dataset of a store: shape, dtype, reads and writes, whole or by block.

    It wraps h5py's low-level dataset id, which is much cheaper than an
    ``h5py.Dataset`` for the whole-tensor reads and writes that make up most
    of a model; block reads and writes go through ``h5py.Dataset`` (made on
    first use) for its slicing.
    """

    __slots__ = ("id", "location", "where", "_high")

    def __init__(self, dsid, location: str, where: str):
        self.id = dsid
        self.location = location
        self.where = where
        self._high = None

    def __repr__(self) -> str:
        return f"<Dataset {self.location} {self.shape} {self.dtype} in {self.where}>"

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in (self.id.shape or ()))

    @property
    def dtype(self):
        return self.id.dtype

    @property
    def nbytes(self) -> int:
        return _size(self.shape) * self.dtype.itemsize

    def _dataset(self):
        if self._high is None:
            self._high = h5._h5py().Dataset(self.id)
        return self._high

    def read(self, sel: tuple | None = None):
        """The whole dataset as a numpy array (``sel`` None), or the block ``sel`` (an index tuple)."""
        import numpy as np

        if sel is None:
            buf = np.empty(self.shape, dtype=self.dtype)
            if buf.size:
                h5py = h5._h5py()
                self.id.read(h5py.h5s.ALL, h5py.h5s.ALL, buf)
            return buf
        ds = self._dataset()
        return np.asarray(ds[sel] if sel else ds[()])

    def write(self, block, sel: tuple | None = None) -> None:
        """Overwrite the whole dataset (``sel`` None: ``block`` is C-contiguous, in the stored dtype) or a block."""
        if sel is None:
            if block.size:
                h5py = h5._h5py()
                self.id.write(h5py.h5s.ALL, h5py.h5s.ALL, block)
            return
        ds = self._dataset()
        if sel:
            ds[sel] = block
        else:
            ds[()] = block

    def iter_blocks(self, budget: int | None = None) -> Iterator:
        """The dataset's values as C-contiguous arrays of at most ``budget`` bytes, in C order."""
        import numpy as np

        budget = BLOCK_BYTES if budget is None else budget
        dtype = self.dtype
        shape = self.shape
        if _size(shape) * dtype.itemsize <= budget and plain_dtype(dtype):
            yield self.read()
            return
        for sel in blocks(shape, dtype.itemsize, budget):
            yield np.ascontiguousarray(self.read(sel))

    def checksum(self, *, progress=None, hashing=None, budget: int | None = None):
        """The checksum of the bytes in C order: a str, or a future of it when ``hashing`` is given."""
        hashes = hashing or InlineHashing()
        hasher = hashes.start()
        for block in self.iter_blocks(budget):
            hashes.update(hasher, block)
            if progress is not None:
                progress(block.nbytes)
        digest = hashes.finish(hasher)
        return digest if hashing is not None else digest.result()

    def raw_range(self) -> tuple[int, int] | None:
        """``(offset, size)`` of the raw data in the HDF5 file, or None (chunked, compressed, unallocated)."""
        try:
            offset = self.id.get_offset()
            size = self.id.get_storage_size()
        except (OSError, RuntimeError, ValueError):
            return None
        if offset is not None and size:
            return int(offset), int(size)
        return None


class DatasetIndex:
    """Datasets of one open HDF5 file by path, after one check of the whole file.

    ``h5.scan`` walks every link in C once and refuses the file if any is soft or
    external (or hard-linked twice, or its global heap is corrupt); after that a
    dataset path can be opened directly, which is much faster than checking each
    path component from Python. Each dataset handed out is checked once with
    ``h5.check_dataset`` (numbers only, no external or virtual storage, no shape
    or compression bomb) unless ``check_datasets`` is False, which is for files
    whose datasets archdiff has just written itself from checked inputs (a
    transfer's copy of its target, and reading that copy back): there the check
    would only cost time.
    """

    def __init__(self, f, *, where: str, check_datasets: bool = True):
        self.file = f
        self.where = where
        self.kinds = h5.scan(f, where=where)
        self.check_datasets = check_datasets
        self._checked: set[str] = set()

    def has(self, location: str) -> bool:
        return self.kinds.get(location.strip("/")) == "dataset"

    def dataset(self, location: str) -> Dataset:
        """The dataset at ``location``, refused as ``h5.check_dataset`` refuses (once per location)."""
        key = location.strip("/")
        kind = self.kinds.get(key)
        if kind != "dataset":
            raise InputError(f"'{location}' is {'not a dataset' if kind else 'missing'}", path=self.where)
        try:
            h5py = h5._h5py()
            dsid = h5py.h5d.open(self.file.id, key.encode("utf-8"))
        except (KeyError, OSError, ValueError, RuntimeError) as exc:
            raise InputError(f"cannot open the dataset '{location}' ({exc})", path=self.where) from None
        if self.check_datasets and key not in self._checked:
            h5.check_dataset(dsid, "/" + key, tuple(int(d) for d in (dsid.shape or ())), dsid.dtype,
                             where=self.where)
            self._checked.add(key)
        return Dataset(dsid, location, self.where)


# -- the interface -------------------------------------------------------------------
class WeightStore:
    """One open weight file in one layout. Use as a context manager; ``close()`` is idempotent.

    Subclasses set the class attributes and implement ``_list`` (the
    variables, lazily), ``has``, ``dataset`` and ``close``; everything else
    is built on those.
    """

    #: The reader's ``Source.format`` of files in this layout.
    format: ClassVar[str] = ""
    #: How reports name the layout.
    label: ClassVar[str] = ""
    #: File name endings that pick this store (see :func:`archdiff.store.dispatch.store_for_path`).
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: Whether a transfer can write a file in this layout (a copy of it, never the file itself).
    writable: ClassVar[bool] = True
    #: Whether ``mode="r+"`` opens the file to overwrite datasets in place.
    in_place: ClassVar[bool] = False

    path: str
    where: str
    mode: str = "r"

    # -- opening and closing
    @classmethod
    def check_writable(cls, path: str) -> None:
        """Raise the layout's own error if a transfer cannot write a file in it."""

    @classmethod
    def companion_files(cls, path: str) -> tuple[str, ...]:
        """The other files this layout reads besides ``path`` (a sharded index's shards)."""
        return ()

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the read side
    def _list(self) -> Iterator[StoredVariable]:
        raise NotImplementedError

    def variables(self) -> Iterator[StoredVariable]:
        """Every variable, layer by layer in the file's order, from the metadata only (no tensor data)."""
        return self._list()

    def layers(self) -> Iterator[tuple[str, tuple[StoredVariable, ...]]]:
        """``(layer path, its variables)`` for each layer with variables, in the file's order."""
        for layer, group in itertools.groupby(self.variables(), key=lambda v: v.layer):
            yield layer, tuple(group)

    def datasets(self) -> Iterator[tuple[StoredVariable, Dataset]]:
        """Each variable with its dataset handle, opened only when the iteration reaches it."""
        for var in self.variables():
            yield var, self.dataset(var.location)

    def has(self, location: str) -> bool:
        raise NotImplementedError

    def dataset(self, location: str) -> Dataset:
        raise NotImplementedError

    def read(self, location: str):
        """One dataset's values as a numpy array (one tensor in memory, never the file)."""
        return self.dataset(location).read()

    def checksum(self, location: str, *, progress=None, hashing=None):
        """SHA-256 of one dataset's bytes in C order, read block by block (a future with ``hashing``)."""
        return self.dataset(location).checksum(progress=progress, hashing=hashing)

    def raw_ranges(self, locations) -> list[tuple[int, int]]:
        """``(offset, size)`` in the HDF5 file of each contiguous dataset's raw data at ``locations``.

        A transfer leaves those bytes out when it copies the file, because it
        overwrites them. Chunked or compressed datasets have no single range
        and are left out.
        """
        ranges = []
        for location in locations:
            found = self.dataset(location).raw_range()
            if found is not None:
                ranges.append(found)
        return ranges

    # -- the write side
    def write(self, location: str, value) -> None:
        """Overwrite one dataset with ``value`` (same shape; cast to the stored dtype). Needs ``mode="r+"``."""
        import numpy as np

        if self.mode != "r+":
            raise UsageError(f"the {self.label} is open read-only; writing '{location}' needs mode='r+'",
                             path=self.where)
        ds = self.dataset(location)
        array = np.asarray(value)
        if tuple(array.shape) != ds.shape:
            raise UsageError(f"'{location}' holds shape {ds.shape}; the value has shape {tuple(array.shape)}",
                             path=self.where)
        block = np.ascontiguousarray(array.astype(ds.dtype, copy=False))
        if plain_dtype(block.dtype):
            ds.write(block)
        else:
            ds.write(block, ())
