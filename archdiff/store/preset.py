"""The task-preset store: a keras-hub task preset folder's two weight files as one Keras 3 layout.

``task.save_to_preset(folder)`` writes the task's own weights to
``task.weights.h5`` (the backbone left out) and the backbone's to
``model.weights.h5``. Keras' ``task.save_weights`` would write both into one
file, the backbone under ``layers/<its class, snake case>/``; this store
hands out datasets by that one file's locations and maps each to the file
that holds it (see :mod:`archdiff.read.preset`). A backbone saved in shards
(``model.weights.json``) is read through the sharded store.

A transfer writes a task-preset target as a new preset folder: every file of
the target folder copied, the two weight files with the matched datasets
overwritten (``mode="r+"`` over those copies, given as ``files=``).
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Iterator

from archdiff.errors import InputError
from archdiff.read import hdf5 as h5
from archdiff.store.base import Dataset, DatasetIndex, StoredVariable, WeightStore
from archdiff.store.h5file import keras3_variables


class TaskPresetStore(WeightStore):
    """A task preset folder (``task.json``, ``task.weights.h5``, ``model.weights.h5``) as one weights layout."""

    format = "task-preset"
    label = "keras-hub task preset"
    suffixes = ()
    writable = True
    in_place = True

    def __init__(self, path, *, mode: str = "r", where: str | None = None, files=None,
                 check_datasets: bool = True):
        from archdiff.read.preset import SHARDED, task_document, task_files

        if mode not in ("r", "r+"):
            raise ValueError(f"mode must be 'r' or 'r+', not {mode!r}")
        self.path = os.fspath(path)
        self.where = where or self.path
        self.mode = mode
        self.key = task_document(self.path)[1]
        self.prefix = f"layers/{self.key}/"
        task_path, backbone_path = files if files is not None else task_files(self.path)
        self.task_path, self.backbone_path = task_path, backbone_path
        self._stack = ExitStack()
        self.task_index: DatasetIndex | None = None
        self.backbone: WeightStore | DatasetIndex | None = None
        try:
            if task_path is not None:
                f = self._open(task_path)
                self.task_file = f
                self.task_index = DatasetIndex(f, where=task_path, check_datasets=check_datasets)
            if backbone_path is not None:
                if backbone_path.endswith(SHARDED):
                    from archdiff.store.sharded import ShardedStore

                    self.backbone = self._stack.enter_context(
                        ShardedStore(backbone_path, mode=mode, where=self.where, check_datasets=check_datasets))
                else:
                    f = self._open(backbone_path)
                    self.backbone_file = f
                    self.backbone = DatasetIndex(f, where=backbone_path, check_datasets=check_datasets)
        except BaseException:
            self._stack.close()
            raise

    def _open(self, path: str):
        if self.mode == "r":
            return self._stack.enter_context(h5.open_h5(path, where=path))
        f = h5._h5py().File(path, "r+")  # a copy archdiff just wrote (see H5FileStore)
        self._stack.callback(f.close)
        return f

    @classmethod
    def companion_files(cls, path: str) -> tuple[str, ...]:
        """The weight files the folder holds (and a sharded backbone's shards)."""
        from archdiff.read.preset import SHARDED, task_files
        from archdiff.store.sharded import ShardedStore

        task, backbone = task_files(os.fspath(path))
        out = [p for p in (task, backbone) if p is not None]
        if backbone is not None and backbone.endswith(SHARDED):
            out += ShardedStore.companion_files(backbone)
        return tuple(out)

    @classmethod
    def check_writable(cls, path: str) -> None:
        from archdiff.errors import UnsupportedFormatError
        from archdiff.read.preset import SHARDED, task_files

        backbone = task_files(os.fspath(path))[1]
        if backbone is not None and backbone.endswith(SHARDED):
            raise UnsupportedFormatError("a transfer into a task preset whose backbone is sharded is not written "
                                         "yet", path=os.fspath(path),
                                         hint="transfer into the backbone's model.weights.json, then copy the "
                                              "folder's other files beside it")

    def close(self) -> None:
        self._stack.close()

    def _where(self, location: str) -> tuple[WeightStore | DatasetIndex | None, str]:
        key = location.strip("/")
        if key.startswith(self.prefix):
            return self.backbone, key[len(self.prefix):]
        return self.task_index, key

    def has(self, location: str) -> bool:
        held, inner = self._where(location)
        return held is not None and held.has(inner)

    def dataset(self, location: str) -> Dataset:
        held, inner = self._where(location)
        if held is None:
            raise InputError(f"no weights file of the preset holds '{location}'", path=self.where)
        return held.dataset(inner)

    def part(self, location: str) -> int:
        """0 when ``task.weights.h5`` holds ``location``, 1 when the backbone's file does."""
        return 1 if location.strip("/").startswith(self.prefix) else 0

    def _list(self) -> Iterator[StoredVariable]:
        from archdiff.read.preset import task_tree

        tree = task_tree(self.path, files=(self.task_path, self.backbone_path))
        return keras3_variables(tree, where=self.where)
