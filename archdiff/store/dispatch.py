"""Picking a store: from the file name, as Keras picks its loader, or from the format the reader found.

Keras chooses by name (``.keras`` -> zip, ``.weights.h5`` -> weights,
``.h5``/``.hdf5`` -> legacy HDF5), and so does :func:`store_for_path`
(``.weights.json`` -> sharded). Where the file's content has already been
read (``Architecture.source.format``), :func:`store_class` maps that format to
its store, so a Keras 3 layout saved under a plain ``.h5`` name is read as the
layout it holds.
"""
from __future__ import annotations

import os

from archdiff.errors import UnsupportedFormatError
from archdiff.store.base import WeightStore
from archdiff.store.h5file import Keras3WeightsStore
from archdiff.store.keras_zip import KerasZipStore
from archdiff.store.legacy import LegacyH5Store
from archdiff.store.preset import TaskPresetStore
from archdiff.store.sharded import ShardedStore

#: Every store, most specific file name ending first.
STORES: tuple[type[WeightStore], ...] = (KerasZipStore, ShardedStore, Keras3WeightsStore, LegacyH5Store)

#: The reader's ``Source.format`` -> the store of that layout.
_BY_FORMAT: dict[str, type[WeightStore]] = {
    "keras": KerasZipStore,
    "weights.json": ShardedStore,
    "weights.h5": Keras3WeightsStore,
    "preset": Keras3WeightsStore,  # a keras-hub preset's model.weights.h5 (the Architecture's source path)
    "task-preset": TaskPresetStore,  # a keras-hub task preset folder: task.weights.h5 + the backbone's weights
    "h5": LegacyH5Store,
    "h5-weights": LegacyH5Store,
}


def store_class(fmt: str) -> type[WeightStore] | None:
    """The store for a format as the reader names it (``Source.format``), or None (a config holds no weights)."""
    return _BY_FORMAT.get(fmt)


def store_for_path(path) -> type[WeightStore]:
    """The store Keras' file naming implies for ``path``."""
    lower = os.fspath(path).lower()
    for store in STORES:
        if lower.endswith(store.suffixes):
            return store
    endings = ", ".join(s for store in STORES for s in store.suffixes)
    raise UnsupportedFormatError(f"no weight store for the file name '{os.path.basename(os.fspath(path))}'",
                                 path=os.fspath(path), hint=f"weights are read from files ending {endings}")


def open_store(path, *, format: str | None = None, mode: str = "r", where: str | None = None,
               **options) -> WeightStore:
    """Open ``path`` with the store of ``format`` (the reader's name for it), else the one its name implies.

    ``options`` go to the store (``shards=`` for a sharded index whose shards
    are already resolved). Use the result as a context manager.
    """
    store = store_class(format) if format is not None else store_for_path(path)
    if store is None:
        raise UnsupportedFormatError(f"a {format} file holds no weights", path=os.fspath(path),
                                     hint="give a .keras, .h5, .weights.h5 or .weights.json file")
    return store(path, mode=mode, where=where, **options)
