"""Rules of Keras' reshaping layers: Flatten, Reshape, Permute, RepeatVector, ZeroPadding, Cropping, UpSampling.

Each class's output-shape rule and weight rule (none: reshaping holds no
variables) are filed together with :func:`archdiff.shapes.registry.register`.
"""
from __future__ import annotations

import math

from archdiff.shapes.helpers import (
    Unknown,
    add_dim,
    as_shape,
    channel_dim,
    first_shape,
    mul_dim,
    pad_pairs,
    spatial_dims,
    tuple_n,
    with_spatial,
)
from archdiff.shapes.registry import no_weights, register

RANKS = (1, 2, 3)


def _flatten(cfg, shapes):
    shape = first_shape(shapes)
    rest = shape[1:]
    if not rest:
        return (shape[0], 1)
    if any(d is None for d in rest):
        return (shape[0], None)
    return (shape[0], math.prod(rest))


register("Flatten", output=_flatten, weights=no_weights)


def _reshape(cfg, shapes):
    shape = first_shape(shapes)
    target = as_shape(cfg.get("target_shape"))
    if target is None:
        raise Unknown
    if -1 not in target:
        return (shape[0], *target)
    if target.count(-1) > 1:
        raise Unknown
    rest = shape[1:]
    if any(d is None for d in rest):
        return (shape[0], *(None if d == -1 else d for d in target))
    known = math.prod(d for d in target if d != -1)
    total = math.prod(rest)
    if known == 0 or total % known:
        raise Unknown
    return (shape[0], *(total // known if d == -1 else d for d in target))


register("Reshape", output=_reshape, weights=no_weights)


def _permute(cfg, shapes):
    shape = first_shape(shapes)
    dims = cfg.get("dims")
    if not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(1, len(shape))):
        raise Unknown
    return (shape[0], *(shape[d] for d in dims))


register("Permute", output=_permute, weights=no_weights)


def _repeat_vector(cfg, shapes):
    shape = first_shape(shapes)
    return (shape[0], int(cfg["n"]), *shape[1:])


register("RepeatVector", output=_repeat_vector, weights=no_weights)


def _make_padding(rank: int, key: str, sign: int):
    def padding(cfg, shapes):
        shape = first_shape(shapes)
        pairs = pad_pairs(cfg.get(key, 1 if sign > 0 else 0), rank)
        if rank == 1:
            # ZeroPadding1D / Cropping1D have no data_format: (batch, steps, features)
            if len(shape) != 3:
                raise Unknown
            return (shape[0], add_dim(shape[1], sign * sum(pairs[0])), shape[2])
        spatial = [add_dim(s, sign * (a + b)) for s, (a, b) in zip(spatial_dims(cfg, shape, rank), pairs)]
        return with_spatial(cfg, shape, spatial, channel_dim(cfg, shape))

    return padding


for _rank in RANKS:
    register(f"ZeroPadding{_rank}D", output=_make_padding(_rank, "padding", +1), weights=no_weights)
    register(f"Cropping{_rank}D", output=_make_padding(_rank, "cropping", -1), weights=no_weights)


def _upsampling1d(cfg, shapes):
    shape = first_shape(shapes)
    if len(shape) != 3:
        raise Unknown
    return (shape[0], mul_dim(shape[1], int(cfg.get("size", 2))), shape[2])


def _make_upsampling(rank: int):
    def upsampling(cfg, shapes):
        shape = first_shape(shapes)
        size = tuple_n(cfg.get("size", 2), rank)
        spatial = [mul_dim(s, k) for s, k in zip(spatial_dims(cfg, shape, rank), size)]
        return with_spatial(cfg, shape, spatial, channel_dim(cfg, shape))

    return upsampling


register("UpSampling1D", output=_upsampling1d, weights=no_weights)
register("UpSampling2D", output=_make_upsampling(2), weights=no_weights)
register("UpSampling3D", output=_make_upsampling(3), weights=no_weights)
