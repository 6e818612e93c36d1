"""The legacy ``.h5`` store: full models and weights-only files, as Keras 2 and Keras 3 write them.

Layout: a ``layer_names`` attribute (chunked ``layer_names0``, ``layer_names1``
... in large models) on the group holding the layers (``model_weights`` in a
full model, the root in a weights-only file); each layer group lists its
datasets in ``weight_names``: ``conv1/kernel:0`` in Keras 2, ``conv1/kernel``
in Keras 3; a nested model's variables sit under its own group, named by the
inner layer (``inner/d1/kernel``). The attributes are read by
``archdiff.read.hdf5.read_legacy_weights`` (bounded, names checked).
"""
from __future__ import annotations

from typing import Iterator

from archdiff.errors import InputError
from archdiff.read import hdf5 as h5
from archdiff.store.base import StoredVariable
from archdiff.store.h5file import H5FileStore


class LegacyH5Store(H5FileStore):
    """A legacy ``.h5``/``.hdf5``: layers in ``layer_names`` order, variables by their stored names.

    A variable's name is relative to its layer with the ``:0`` suffix dropped
    (``kernel``; ``d1/kernel`` for the layer ``d1`` of a nested model stored
    in the layer group of that model). A full model saved without weights
    lists nothing.
    """

    format = "h5"
    label = "legacy .h5"
    suffixes = (".h5", ".hdf5")

    def _list(self) -> Iterator[StoredVariable]:
        f = self.file
        try:
            is_model = "model_config" in f.attrs
        except (OSError, RuntimeError, ValueError) as exc:
            raise InputError(f"cannot read the HDF5 file's attributes ({exc})", path=self.where) from None
        if is_model and "model_weights" not in f:
            return
        root = h5.legacy_root(f, where=self.where)
        for layer, infos in h5.read_legacy_weights(root, where=self.where):
            for position, info in enumerate(infos):
                yield StoredVariable(layer, info.name, position, info.location, tuple(info.shape), info.dtype)
