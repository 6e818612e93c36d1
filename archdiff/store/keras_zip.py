"""The ``.keras`` store: the weights HDF5 inside a Keras 3 model zip, read in place.

A ``.keras`` file is a zip of ``config.json``, ``metadata.json`` and
``model.weights.h5``, which Keras stores uncompressed: h5py reads that member
straight from the archive through a window on the zip file, with no copy
(``archdiff.read.hdf5.open_zip_member_h5``; a deflated member, which other zip
tools write, is inflated into a bounded temporary copy). The weights inside
follow the Keras 3 layout, listed as :class:`~archdiff.store.h5file.Keras3WeightsStore`
lists a ``.weights.h5``.

A zip cannot be rewritten in place, so this store opens read-only. A transfer
writes a ``.keras`` target by copying its ``model.weights.h5`` out
(:meth:`KerasZipStore.weights_span` says where its bytes lie), overwriting
datasets in that copy as a ``.weights.h5``, and zipping the target's other
members around it; :meth:`KerasZipStore.compare_members` checks the result.
"""
from __future__ import annotations

import os
import zipfile
from contextlib import ExitStack
from typing import Iterator

from archdiff.errors import InputError, OutputError
from archdiff.read import hdf5 as h5
from archdiff.store.base import Dataset, DatasetIndex, StoredVariable, WeightStore
from archdiff.store.h5file import keras3_variables


class KerasZipStore(WeightStore):
    """The ``model.weights.h5`` of a ``.keras`` zip, opened in place, read-only."""

    format = "keras"
    label = ".keras model"
    suffixes = (".keras",)
    #: The zip member holding the weights.
    MEMBER = "model.weights.h5"

    def __init__(self, path, *, mode: str = "r", where: str | None = None, check_datasets: bool = True):
        if mode != "r":
            raise ValueError("a .keras zip opens read-only: a transfer writes its model.weights.h5 as a copy "
                             "(a Keras3WeightsStore) and zips it anew")
        self.path = os.fspath(path)
        self.where = where or self.path
        self.mode = mode
        #: How errors name the HDF5 inside the zip.
        self.member_where = f"{self.where}:{self.MEMBER}"
        self._stack = ExitStack()
        try:
            zf = self._stack.enter_context(_open_zip(self.path, self.where))
            try:
                zf.getinfo(self.MEMBER)
            except KeyError:
                raise InputError(f"the .keras zip holds no {self.MEMBER}", path=self.where,
                                 hint="save the model with its weights: model.save('model.keras')") from None
            self.zip = zf
            self.file = self._stack.enter_context(h5.open_zip_member_h5(self.path, zf, self.MEMBER,
                                                                        where=self.member_where))
            self.index = DatasetIndex(self.file, where=self.member_where, check_datasets=check_datasets)
        except BaseException:
            self._stack.close()
            raise

    def close(self) -> None:
        self._stack.close()

    def has(self, location: str) -> bool:
        return self.index.has(location)

    def dataset(self, location: str) -> Dataset:
        return self.index.dataset(location)

    def _list(self) -> Iterator[StoredVariable]:
        tree = h5.read_keras3_tree([self.file], where=self.member_where)
        return keras3_variables(tree, where=self.member_where)

    # -- rewriting
    @classmethod
    def weights_span(cls, path: str) -> tuple[int, int] | None:
        """``(offset, size)`` of the stored ``model.weights.h5`` bytes in the zip, or None when compressed;
        refused where those bytes are not the HDF5 (encrypted), as the readers refuse it."""
        with _open_zip(path, path) as zf:
            try:
                info = zf.getinfo(cls.MEMBER)
            except KeyError:
                raise InputError(f"the .keras zip holds no {cls.MEMBER}", path=path) from None
            h5.check_zip_member(info, where=path)
            if info.compress_type != zipfile.ZIP_STORED:
                return None
            return h5.stored_member_offset(path, info), info.file_size

    @classmethod
    def compare_members(cls, original: str, rebuilt: str, *, where: str) -> None:
        """Refuse ``rebuilt`` unless it lists ``original``'s members in order, all but the weights unchanged."""
        with _open_zip(original, original) as before, _open_zip(rebuilt, where) as after:
            old = {i.filename: i for i in before.infolist()}
            new = {i.filename: i for i in after.infolist()}
        if list(old) != list(new):
            raise OutputError("the new zip does not list the target's members", path=where)
        for name, info in old.items():
            if name != cls.MEMBER and (info.CRC != new[name].CRC or info.file_size != new[name].file_size):
                raise OutputError(f"'{name}' differs from the target's after writing", path=where)


def _open_zip(path: str, where: str) -> zipfile.ZipFile:
    """The zip, or one clear error when it is not one; other ``OSError`` (a failing disk) propagates."""
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError:
        raise InputError("no such file", path=where) from None
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InputError(f"not a readable .keras zip ({exc})", path=where,
                         hint="the file may be truncated; save it again with model.save('model.keras')") from None
