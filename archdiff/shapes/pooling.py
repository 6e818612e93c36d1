"""Rules of Keras' pooling layers: Max/Average pooling and their global forms, 1D to 3D.

Each class's output-shape rule and weight rule (none: pooling holds no
variables) are filed together with :func:`archdiff.shapes.registry.register`,
under Keras' ``…Pooling…`` names and their ``…Pool…`` aliases.
"""
from __future__ import annotations

from archdiff.shapes.helpers import (
    Unknown,
    channel_dim,
    first_shape,
    spatial_dims,
    tuple_n,
    with_spatial,
)
from archdiff.shapes.registry import no_weights, register

RANKS = (1, 2, 3)
KINDS = ("Max", "Average")


def _make_pooling(rank: int):
    def pooling(cfg, shapes):
        shape = first_shape(shapes)
        pool = tuple_n(cfg.get("pool_size", 2), rank)
        strides = cfg.get("strides")
        strides = pool if strides is None else tuple_n(strides, rank)
        padding = str(cfg.get("padding", "valid")).lower()
        spatial = []
        for s, p, st in zip(spatial_dims(cfg, shape, rank), pool, strides):
            if s is None:
                spatial.append(None)
            elif padding == "valid":
                spatial.append((s - p) // st + 1)
            elif padding == "same":
                spatial.append((s - 1) // st + 1)
            else:
                raise Unknown
        return with_spatial(cfg, shape, spatial, channel_dim(cfg, shape))

    return pooling


def _make_global_pooling(rank: int):
    def global_pooling(cfg, shapes):
        shape = first_shape(shapes)
        channels = channel_dim(cfg, shape)
        if cfg.get("keepdims"):
            return with_spatial(cfg, shape, (1,) * rank, channels)
        return (shape[0], channels)

    return global_pooling


for _rank in RANKS:
    for _kind in KINDS:
        register((f"{_kind}Pooling{_rank}D", f"{_kind}Pool{_rank}D"),
                 output=_make_pooling(_rank), weights=no_weights)
        register((f"Global{_kind}Pooling{_rank}D", f"Global{_kind}Pool{_rank}D"),
                 output=_make_global_pooling(_rank), weights=no_weights)
