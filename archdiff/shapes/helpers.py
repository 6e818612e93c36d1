"""The small helpers every family of shape and weight rules shares.

This module owns reading shapes and Keras' standard config options (ints or
tuples, axes, ``data_format``, padding pairs, wrapped layers) the way Keras
does, and :class:`Unknown`, the one exception a rule raises when a dimension
or option it needs is not known. It holds no rule itself and imports nothing
from the rest of the package.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Shape = tuple  # of int | None; the first dimension is the batch
Shapes = Sequence["Shape | None"]


class Unknown(Exception):
    """A dimension or option needed for the answer is not known."""


def as_shape(value) -> Shape | None:
    """A shape from a config list (``[null, 7, 7, 3]``) or None."""
    if not isinstance(value, (list, tuple)):
        return None
    dims = []
    for d in value:
        if d is None or (isinstance(d, int) and not isinstance(d, bool)):
            dims.append(d)
        elif isinstance(d, float) and d.is_integer():
            dims.append(int(d))
        else:
            return None
    return tuple(dims)


def clean_shapes(input_shapes) -> list:
    """One shape (or None) per input, whatever sequences the caller passed."""
    return [None if s is None else as_shape(s) for s in (input_shapes or [])]


def need(*dims):
    """The dims themselves, or Unknown when a weight shape would need a None."""
    for d in dims:
        if d is None:
            raise Unknown
    return dims[0] if len(dims) == 1 else dims


def first_shape(shapes: Shapes) -> Shape:
    """The first input's shape; Unknown where there is none."""
    if not shapes or shapes[0] is None:
        raise Unknown
    return tuple(shapes[0])


def same_shape(cfg, shapes):
    """The output rule of a layer whose output has its input's shape."""
    return first_shape(shapes)


def tuple_n(value, n: int, name: str = "") -> tuple:
    """Keras' ``standardize_tuple``: an int or a sequence of n ints."""
    if isinstance(value, bool):
        raise Unknown
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, (list, tuple)) and len(value) == n and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(value)
    raise Unknown


def norm_axis(axis, rank: int) -> int:
    """A config's axis (``-1``, ``[1]``) as a non-negative index into a rank-``rank`` shape."""
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        raise Unknown
    return axis % rank


def channels_last(cfg) -> bool:
    fmt = cfg.get("data_format") or "channels_last"
    if fmt not in ("channels_last", "channels_first"):
        raise Unknown
    return fmt == "channels_last"


def channel_dim(cfg, shape: Shape):
    return shape[-1] if channels_last(cfg) else shape[1]


def spatial_dims(cfg, shape: Shape, rank: int) -> tuple:
    """The spatial dims of a rank-``rank`` conv/pool input."""
    if len(shape) != rank + 2:
        raise Unknown
    return tuple(shape[1:-1]) if channels_last(cfg) else tuple(shape[2:])


def with_spatial(cfg, shape: Shape, spatial: Iterable, channels) -> Shape:
    if channels_last(cfg):
        return (shape[0], *spatial, channels)
    return (shape[0], channels, *spatial)


def pad_pairs(value, n: int) -> tuple:
    """Padding/cropping as n ``(before, after)`` pairs: int, n ints, or n pairs."""
    if isinstance(value, int) and not isinstance(value, bool):
        return ((value, value),) * n
    if isinstance(value, (list, tuple)) and len(value) == 2 and n == 1 and all(
        isinstance(v, int) for v in value
    ):
        return ((value[0], value[1]),)
    if isinstance(value, (list, tuple)) and len(value) == n:
        out = []
        for v in value:
            if isinstance(v, int) and not isinstance(v, bool):
                out.append((v, v))
            elif isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) for x in v):
                out.append((v[0], v[1]))
            else:
                raise Unknown
        return tuple(out)
    raise Unknown


def add_dim(d, k):
    """``d + k``, with an unknown dim staying unknown."""
    return None if d is None else d + k


def mul_dim(d, k):
    """``d * k``, with an unknown dim staying unknown."""
    return None if d is None else d * k


def inner_layer(cfg, key: str = "layer") -> tuple[str, dict]:
    """The (class_name, config) of a wrapped layer (TimeDistributed, Bidirectional)."""
    inner = cfg.get(key)
    if not isinstance(inner, Mapping) or not isinstance(inner.get("config"), Mapping):
        raise Unknown
    return str(inner.get("class_name")), dict(inner["config"])


def lora_specs(cfg, rows, cols, prefix):
    """LoRA (Keras 3): the base matrix freezes and two low-rank factors train."""
    rank = cfg.get("lora_rank")
    if not rank:
        return []
    return [(f"{prefix}_a", (rows, int(rank)), True), (f"{prefix}_b", (int(rank), cols), True)]
