"""A variable's :class:`~archdiff.model.WeightSpec` from what an HDF5 layout recorded of it."""
from __future__ import annotations

from archdiff.model import WeightSpec
from archdiff.read import hdf5 as h5


def weight_spec(info: h5.VarInfo, *, trainable: bool | None = None) -> WeightSpec:
    leaf = info.name.rsplit("/", 1)[-1]
    if trainable is None:
        trainable = leaf not in h5.NON_TRAINABLE_NAMES
    return WeightSpec(name=info.name, shape=info.shape, dtype=info.dtype, trainable=trainable,
                      location=info.location)
