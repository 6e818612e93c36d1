"""Weight stores: one object per on-disk layout, with one small interface (see ``base.py``).

``.keras`` zips (:class:`KerasZipStore`), Keras 3 ``.weights.h5``
(:class:`Keras3WeightsStore`), sharded ``*.weights.json`` (:class:`ShardedStore`,
read-only), legacy ``.h5`` full models and weights-only files, Keras 2 and
Keras 3 naming (:class:`LegacyH5Store`); :func:`open_store` /
:func:`store_for_path` / :func:`store_class` pick one. The stores are the only
way the transfer stage reaches HDF5; they talk to h5py and
:mod:`archdiff.read.hdf5`, which owns the safety checks.
"""
from __future__ import annotations

from archdiff.store.base import (  # noqa: F401
    BLOCK_BYTES,
    CHECKSUM,
    Dataset,
    DatasetIndex,
    InlineHashing,
    StoredVariable,
    WeightStore,
    blocks,
    plain_dtype,
)
from archdiff.store.dispatch import STORES, open_store, store_class, store_for_path  # noqa: F401
from archdiff.store.h5file import H5FileStore, Keras3WeightsStore  # noqa: F401
from archdiff.store.keras_zip import KerasZipStore  # noqa: F401
from archdiff.store.legacy import LegacyH5Store  # noqa: F401
from archdiff.store.sharded import ShardedStore  # noqa: F401

__all__ = ['BLOCK_BYTES', 'CHECKSUM', 'Dataset', 'DatasetIndex', 'InlineHashing', 'StoredVariable', 'WeightStore',
           'blocks', 'plain_dtype', 'H5FileStore', 'Keras3WeightsStore', 'KerasZipStore', 'LegacyH5Store', 'ShardedStore',
           'STORES', 'open_store', 'store_class', 'store_for_path']
