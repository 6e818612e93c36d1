"""Stores over one HDF5 file on disk: the shared machinery, and Keras 3's ``.weights.h5``.

:class:`H5FileStore` opens one HDF5 file (read-only through
``archdiff.read.hdf5.open_h5``, or ``r+`` to overwrite datasets in a copy),
scans it once (:class:`~archdiff.store.base.DatasetIndex`) and hands out
datasets by location. :class:`Keras3WeightsStore` adds the Keras 3 layout's
listing (``layers/<auto name>/vars/<position>``, the real layer name in the
``vars`` group's ``name`` attribute); ``keras3_variables`` is that listing,
shared with the ``.keras`` zip and the sharded stores.
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Iterator

from archdiff.errors import InputError
from archdiff.read import hdf5 as h5
from archdiff.store.base import Dataset, DatasetIndex, StoredVariable, WeightStore


class H5FileStore(WeightStore):
    """One HDF5 file, opened once and scanned once; subclasses say how its variables are listed.

    ``mode="r"`` opens read-only, turning errors into one clear
    :class:`~archdiff.errors.InputError`. ``mode="r+"`` opens a file archdiff
    itself just wrote (a transfer's temporary copy of the target) to overwrite
    datasets: there h5py's own ``OSError`` (a full disk, a read-only folder) is
    left to propagate, so that the caller's temporary-file handling reports it
    as a failed write, and closing flushes and may raise. ``check_datasets``:
    see :class:`~archdiff.store.base.DatasetIndex`.
    """

    in_place = True

    def __init__(self, path, *, mode: str = "r", where: str | None = None, check_datasets: bool = True):
        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}")
        self.path = os.fspath(path)
        self.where = where or self.path
        self.mode = mode
        self._stack = ExitStack()
        try:
            if mode == "r":
                self.file = self._stack.enter_context(h5.open_h5(self.path, where=self.where))
            else:
                self.file = h5._h5py().File(self.path, "r+")
                self._stack.callback(self.file.close)
            self.index = DatasetIndex(self.file, where=self.where, check_datasets=check_datasets)
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        self._stack.close()

    def has(self, location: str) -> bool:
        return self.index.has(location)

    def dataset(self, location: str) -> Dataset:
        return self.index.dataset(location)


class Keras3WeightsStore(H5FileStore):
    """Keras 3 ``.weights.h5`` (also tf-keras' and Keras 2.13-2.15's, keyed by auto names only)."""

    format = "weights.h5"
    label = "Keras 3 .weights.h5"
    suffixes = (".weights.h5",)

    def _list(self) -> Iterator[StoredVariable]:
        tree = h5.read_keras3_tree([self.file], where=self.where)
        return keras3_variables(tree, where=self.where)


def keras3_variables(tree: h5.SaveableNode, *, where: str) -> Iterator[StoredVariable]:
    """The variables of a Keras 3 node tree, layer by layer, as ``archdiff layers`` lists a weights file.

    A layer's path joins real names where the file records them, else the
    group keys; a subclassed model (no ``layers`` container) lists its
    attributes' objects as its layers. Models nest; a layer's own variables
    come first, then its sub-objects' (``cell/0``).
    """
    if not tree.layers and tree.objects:
        tree = h5.SaveableNode(tree.key, tree.path, tree.real_name, tree.variables,
                               layers=[tree.objects[k] for k in sorted(tree.objects, key=h5.natural_key)])
    # Depth first, in file order: a nested model's layers right after its place.
    pending: list[Iterator] = [iter(_members(tree, "", where))]
    while pending:
        try:
            node, path = next(pending[-1])
        except StopIteration:
            pending.pop()
            continue
        if node.is_model:
            pending.append(iter(_members(node, path, where)))
            continue
        for position, info in enumerate(node.all_variables()):
            yield StoredVariable(path, info.name, position, info.location, tuple(info.shape), info.dtype)


def _members(node: h5.SaveableNode, parent: str, where: str) -> list[tuple[h5.SaveableNode, str]]:
    names = [item.real_name or item.key for item in node.layers]
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise InputError(f"two layers of the weights file are called '{twice}' (one by its name, one by "
                         "Keras' auto name)", path=where, hint="the file is corrupt or was not written by Keras")
    return [(item, f"{parent}/{name}" if parent else name) for item, name in zip(node.layers, names)]
