"""The sharded store: Keras 3 ``*.weights.json`` and the ``.weights.h5`` shards it names.

Keras' ``ShardedH5IOStore`` writes an index (``weight_map``: object path ->
shard file name) beside shards that each hold part of the Keras 3 layout.
This store reads them as one: the shard names are checked to be plain file
names in the index's folder, each shard is opened and scanned once, a dataset
is looked up in the first shard that holds it, and the listing merges the
shards' trees (``archdiff.read.hdf5.read_keras3_tree``).

A transfer writes a sharded target the way Keras would have: new shards
named after OUT as Keras names them (``out.weights.json`` ->
``out_00000.weights.h5``, ``out_00001.weights.h5`` ...; :func:`shard_names`),
each a copy of the target's shard with the matched datasets overwritten
(``mode="r+"`` over those copies), and an index whose ``weight_map`` names
the new shards (:func:`rewrite_index`). The variables stay in the shards the
target keeps them in, so the index's map stays true.
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Iterator

from archdiff.errors import InputError, UnsafeInputError
from archdiff.read import hdf5 as h5
from archdiff.store.base import Dataset, DatasetIndex, StoredVariable, WeightStore
from archdiff.store.h5file import keras3_variables


class ShardedStore(WeightStore):
    """An index ``*.weights.json`` and its shards; ``mode="r+"`` overwrites datasets in shards archdiff copied."""

    format = "weights.json"
    label = "sharded Keras 3 weights"
    suffixes = (".weights.json",)
    writable = True
    in_place = True

    def __init__(self, path, *, mode: str = "r", where: str | None = None, shards=None,
                 check_datasets: bool = True):
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}")
        self.path = os.fspath(path)
        self.where = where or self.path
        self.mode = mode
        #: The shard files, resolved from the index unless given (a plan resolves them once).
        self.shards = tuple(shards) if shards is not None else self.companion_files(self.path)
        self._stack = ExitStack()
        try:
            self.files = []
            self.indexes = []
            for shard in self.shards:
                if mode == "r":
                    f = self._stack.enter_context(h5.open_h5(shard, where=shard))
                else:
                    # A copy archdiff just wrote: h5py's own OSError (a full disk) propagates, as in H5FileStore.
                    f = h5._h5py().File(shard, "r+")
                    self._stack.callback(f.close)
                self.files.append(f)
                self.indexes.append(DatasetIndex(f, where=shard, check_datasets=check_datasets))
        except BaseException:
            self._stack.close()
            raise

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

    def shard_of(self, location: str) -> int:
        """The position (in :attr:`shards`) of the first shard holding the dataset ``location``."""
        for i, index in enumerate(self.indexes):
            if index.has(location):
                return i
        raise InputError(f"no shard holds the dataset '{location}'", path=self.where)

    def dataset(self, location: str) -> Dataset:
        for index in self.indexes:
            if index.has(location):
                return index.dataset(location)
        raise InputError(f"no shard holds the dataset '{location}'", path=self.where)

    def _list(self) -> Iterator[StoredVariable]:
        tree = h5.read_keras3_tree(self.files, where=self.where)
        return keras3_variables(tree, where=self.where)


def shard_names(out: str, count: int) -> tuple[str, ...]:
    """The shard paths Keras' ``ShardedH5IOStore`` gives an index at ``out``: ``<base>_00000.weights.h5`` ...

    ``<base>`` is the index's name without ``.weights.json`` (Keras: the stem, ``.weights`` removed).
    """
    folder = os.path.dirname(os.fspath(out))
    name = os.path.basename(os.fspath(out))
    stem = name[:-len(".json")] if name.lower().endswith(".json") else name
    base = stem.replace(".weights", "")
    return tuple(os.path.join(folder, f"{base}_{i:05}.weights.h5") for i in range(count))


def rewrite_index(index_path: str, renamed: dict[str, str]) -> str:
    """The JSON text of the index at ``index_path`` with its shard file names replaced (``old name -> new``).

    The rest (``metadata``, the order of ``weight_map``) is kept; written with the
    4-space indent Keras uses.
    """
    import json

    from archdiff.read import read_json_file

    index = read_json_file(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict):
        raise InputError("'weight_map' is not a mapping", path=index_path)
    out = dict(index)
    out["weight_map"] = {key: ([renamed.get(v, v) for v in value] if isinstance(value, list)
                               else renamed.get(value, value))
                         for key, value in weight_map.items()}
    return json.dumps(out, indent=4)
