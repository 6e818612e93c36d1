"""Rules of Keras' preprocessing layers: Normalization, Rescaling, Resizing, CenterCrop, Random….

Each class's output-shape rule and weight rule are filed together with
:func:`archdiff.shapes.registry.register`. Only ``Normalization`` holds
variables (its adapted statistics); the others hold none beyond seed state
Keras does not list.
"""
from __future__ import annotations

from archdiff.shapes.helpers import (
    channel_dim,
    channels_last,
    first_shape,
    need,
    norm_axis,
    same_shape,
    with_spatial,
)
from archdiff.shapes.registry import no_weights, register


def _normalization_weights(cfg, shapes, keras2):
    if cfg.get("mean") is not None:
        return []  # given mean and variance are constants, not variables
    shape = first_shape(shapes)
    axis = cfg.get("axis", -1)
    axes = [] if axis is None else (axis if isinstance(axis, (list, tuple)) else [axis])
    param = tuple(need(shape[d]) for d in sorted(norm_axis(a, len(shape)) for a in axes))
    return [("mean", param, False), ("variance", param, False), ("count", (), False, "int64")]


register("Normalization", output=same_shape, weights=_normalization_weights)

register(("Rescaling", "RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast", "RandomTranslation",
          "RandomBrightness"),
         output=same_shape, weights=no_weights)


def _resizing(cfg, shapes):
    shape = first_shape(shapes)
    size = (int(cfg["height"]), int(cfg["width"]))
    if len(shape) == 3:  # unbatched image
        return (*size, shape[-1]) if channels_last(cfg) else (shape[0], *size)
    return with_spatial(cfg, shape, size, channel_dim(cfg, shape))


register(("Resizing", "CenterCrop"), output=_resizing, weights=no_weights)
