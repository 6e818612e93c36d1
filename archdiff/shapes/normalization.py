"""Rules of Keras' normalization layers: Batch, Layer, Group, RMS and Unit normalization.

Each class's output-shape rule (all keep their input's shape) and weight rule
are filed together with :func:`archdiff.shapes.registry.register`. The
``Normalization`` preprocessing layer lives in ``preprocessing``.
"""
from __future__ import annotations

from archdiff.shapes.helpers import Unknown, first_shape, need, norm_axis, same_shape
from archdiff.shapes.registry import no_weights, register


def _batch_norm_weights(cfg, shapes, keras2):
    shape = first_shape(shapes)
    axis = cfg.get("axis", -1)
    axes = sorted({norm_axis(a, len(shape)) for a in (axis if isinstance(axis, (list, tuple)) else [axis])})
    if not axes:
        raise Unknown
    if len(axes) == 1:
        param = (need(shape[axes[0]]),)
    else:
        # Keras 2 keeps the other axes as 1s when normalizing over several.
        param = tuple(need(shape[i]) if i in axes else 1 for i in range(len(shape)))
    out = []
    if cfg.get("scale", True):
        out.append(("gamma", param, True))
    if cfg.get("center", True):
        out.append(("beta", param, True))
    out += [("moving_mean", param, False), ("moving_variance", param, False)]
    if cfg.get("renorm"):
        out += [("moving_stddev", param, False), ("renorm_mean", param, False),
                ("renorm_stddev", param, False)]
    return out


register(("BatchNormalization", "SyncBatchNormalization"), output=same_shape, weights=_batch_norm_weights)


def _axes_param(cfg, shape, default=-1):
    axis = cfg.get("axis", default)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    dims = sorted(norm_axis(a, len(shape)) for a in axes)
    return tuple(need(shape[d]) for d in dims)


def _layer_norm_weights(cfg, shapes, keras2):
    param = _axes_param(cfg, first_shape(shapes))
    rms = bool(cfg.get("rms_scaling"))
    out = []
    if cfg.get("scale", True) or rms:
        out.append(("gamma", param, True))
    if cfg.get("center", True) and not rms:
        out.append(("beta", param, True))
    return out


register("LayerNormalization", output=same_shape, weights=_layer_norm_weights)


def _rms_norm_weights(cfg, shapes, keras2):
    return [("scale", _axes_param(cfg, first_shape(shapes)), True)]


register("RMSNormalization", output=same_shape, weights=_rms_norm_weights)


def _group_norm_weights(cfg, shapes, keras2):
    shape = first_shape(shapes)
    dim = need(shape[norm_axis(cfg.get("axis", -1), len(shape))])
    out = []
    if cfg.get("scale", True):
        out.append(("gamma", (dim,), True))
    if cfg.get("center", True):
        out.append(("beta", (dim,), True))
    return out


register("GroupNormalization", output=same_shape, weights=_group_norm_weights)

register("UnitNormalization", output=same_shape, weights=no_weights)
