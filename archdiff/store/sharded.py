"""The sharded store: Keras 3 ``*.weights.json`` and the ``.weights.h5`` shards it names.

Keras' ``ShardedH5IOStore`` writes an index (``weight_map``: object path ->
shard file name) beside shards that each hold part of the Keras 3 layout.
This store reads them as one: the shard names are checked to be plain file
names in the index's folder, each shard is opened and scanned once, a dataset
is looked up in the first shard that holds it, and the listing merges the
shards' trees (``archdiff.read.hdf5.read_keras3_tree``).

Writing sharded weights is not supported: :meth:`ShardedStore.check_writable`
says so with the way out (an unsharded target), and the store opens read-only.
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Iterator

from archdiff.errors import InputError, UnsafeInputError, UsageError
from archdiff.read import hdf5 as h5
from archdiff.store.base import Dataset, DatasetIndex, StoredVariable, WeightStore
from archdiff.store.h5file import keras3_variables


class ShardedStore(WeightStore):
    """An index ``*.weights.json`` and its shards, read-only."""

    format = "weights.json"
    label = "sharded Keras 3 weights"
    suffixes = (".weights.json",)
    writable = False

    def __init__(self, path, *, mode: str = "r", where: str | None = None, shards=None,
                 check_datasets: bool = True):
        self.path = os.fspath(path)
        self.where = where or self.path
        if mode != "r":
            self.check_writable(self.where)
        self.mode = mode
        #: The shard files, resolved from the index unless given (a plan resolves them once).
        self.shards = tuple(shards) if shards is not None else self.companion_files(self.path)
        self._stack = ExitStack()
        try:
            self.files = []
            self.indexes = []
            for shard in self.shards:
                f = self._stack.enter_context(h5.open_h5(shard, where=shard))
                self.files.append(f)
                self.indexes.append(DatasetIndex(f, where=shard, check_datasets=check_datasets))
        except BaseException:
            self._stack.close()
            raise

    @classmethod
    def check_writable(cls, path: str) -> None:
        raise UsageError("writing sharded weights is not supported", path=path,
                         hint="give the target as .keras or an unsharded .weights.h5")

    @classmethod
    def companion_files(cls, path: str) -> tuple[str, ...]:
        """The shard paths the index names, in order, each once; a name that is not a plain file name is refused."""
        from archdiff.read import read_json_file

        path = os.fspath(path)
        index = read_json_file(path)
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise InputError("'weight_map' is not a mapping", path=path)
        folder = os.path.dirname(os.path.abspath(path))
        out: list[str] = []
        for value in weight_map.values():
            for name in value if isinstance(value, list) else [value]:
                if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
                    raise UnsafeInputError(f"shard name {name!r} is not a plain file name", path=path)
                full = os.path.join(folder, name)
                if full not in out:
                    out.append(full)
        return tuple(out)

    def close(self) -> None:
        self._stack.close()

    def has(self, location: str) -> bool:
        return any(index.has(location) for index in self.indexes)

    def dataset(self, location: str) -> Dataset:
        for index in self.indexes:
            if index.has(location):
                return index.dataset(location)
        raise InputError(f"no shard holds the dataset '{location}'", path=self.where)

    def _list(self) -> Iterator[StoredVariable]:
        tree = h5.read_keras3_tree(self.files, where=self.where)
        return keras3_variables(tree, where=self.where)
