"""Shape adapters: opt-in (``--adapt NAME[,NAME]``) ways to move a variable whose shape differs.

Without ``--adapt`` shapes are compared exactly and any difference is a
mismatch: a ``(4, 8)`` kernel never goes silently into an ``(8, 4)`` one.
With it, each named adapter may take a mismatched variable, and the report
says, per variable, which one did what:

``input-channels``
    The first convolution's kernel (``(..., in, out)``, Keras' layout) when
    only its input channels differ, as timm's ``adapt_input_conv`` does: into
    1 channel, the sum over the source's channels (a space-to-depth stem of
    ``3k`` channels into ``k``: the sum over each group of 3); from 3 channels
    into N, the 3 repeated ``ceil(N / 3)`` times, cut to N and scaled by
    ``3 / N`` so the response to a grey input stays the same. Computed in
    float32 (float64 for a float64 source), as timm does, then stored in the
    target's dtype.
``slice-pad``
    A variable of the same rank whose sizes grew or shrank (more or fewer
    units, filters, classes): each axis is cut to the target's size, or
    extended; the new part is set explicitly, to 0, or to 1 for the variables
    Keras starts at one (``gamma``, ``moving_variance``), and the report names
    the range set.
``reshape``
    The same elements in another layout (``(768, 12, 64)`` into ``(768, 768)``,
    a Dense kernel into a 1x1 convolution's): only where the reshape merges or
    splits neighbouring axes in C order, so no value moves to another axis's
    place. ``(4, 8)`` into ``(8, 4)`` is not a layout change and stays a mismatch.

:func:`plan_adaptation` decides (metadata only); :func:`adapt_array` computes
the new value from the source's (one whole tensor in memory, only for adapted
variables); the copy is written by :mod:`archdiff.transfer.apply`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from archdiff.errors import UsageError

#: The adapters ``--adapt`` names, in the order they are tried on a variable.
ADAPTERS = ("input-channels", "reshape", "slice-pad")

#: Convolution classes whose first kernel ``input-channels`` adapts (unknown classes: by the kernel's rank).
CONV_CLASSES = frozenset({"Conv1D", "Conv2D", "Conv3D", "Convolution1D", "Convolution2D", "Convolution3D"})

#: Variables Keras initialises to one: their new part under ``slice-pad`` is 1, not 0.
ONES = frozenset({"gamma", "moving_variance"})


def parse_adapters(values) -> tuple[str, ...]:
    """``--adapt`` values (repeatable, comma-separated) into known adapter names, in :data:`ADAPTERS` order."""
    names: list[str] = []
    for raw in values:
        for name in str(raw).split(","):
            name = name.strip()
            if not name:
                continue
            if name not in ADAPTERS:
                raise UsageError(f"--adapt '{name}' is not an adapter", hint=f"use {', '.join(ADAPTERS)}")
            if name not in names:
                names.append(name)
    return tuple(a for a in ADAPTERS if a in names)


@dataclass(frozen=True)
class Adaptation:
    """How one variable is adapted: the adapter, what the report says, and what :func:`adapt_array` needs."""

    adapter: str
    description: str
    #: input-channels: "sum", "group-sum" or "repeat"; slice-pad: the fill value of the new part.
    mode: str = ""
    fill: float = 0.0


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _prod(shape) -> int:
    return math.prod(int(d) for d in shape)


def _boundaries(shape) -> set[int]:
    out, n = set(), 1
    for d in shape:
        n *= int(d)
        out.add(n)
    return out


def plan_adaptation(adapters: tuple[str, ...], source_shape, target_shape, *, name: str,
                    first_conv: bool) -> tuple[Adaptation | None, str]:
    """The first adapter in ``adapters`` that fits, or ``(None, why none does)``.

    ``name``: the variable's name (``kernel``, ``gamma``) where known;
    ``first_conv``: whether it is the kernel of the target's first convolution.
    """
    src, tgt = tuple(int(d) for d in source_shape), tuple(int(d) for d in target_shape)
    why: list[str] = []
    for adapter in adapters:
        if adapter == "input-channels":
            found, reason = _input_channels(src, tgt, first_conv)
        elif adapter == "reshape":
            found, reason = _reshape(src, tgt)
        else:
            found, reason = _slice_pad(src, tgt, name)
        if found is not None:
            return found, ""
        why.append(f"{adapter}: {reason}")
    return None, "; ".join(why)


def _input_channels(src, tgt, first_conv: bool):
    if not first_conv:
        return None, "only the first convolution's kernel"
    if len(src) != len(tgt) or len(src) < 3 or src[:-2] != tgt[:-2] or src[-1] != tgt[-1]:
        return None, "more than the input channels differ"
    i_s, i_t = src[-2], tgt[-2]
    if i_t == 1 and i_s <= 3:
        return Adaptation("input-channels", f"input channels {i_s} -> 1: summed over the source's channels "
                                            "(timm adapt_input_conv)", "sum"), ""
    if i_s > 3 and i_s % 3 == 0 and i_t == i_s // 3:
        return Adaptation("input-channels", f"input channels {i_s} -> {i_t}: each group of 3 summed (a "
                                            "space-to-depth stem, timm adapt_input_conv)", "group-sum"), ""
    if i_s == 3 and i_t not in (1, 3):
        repeat = math.ceil(i_t / 3)
        return Adaptation("input-channels", f"input channels 3 -> {i_t}: repeated {repeat}x, cut to {i_t}, scaled "
                                            f"by 3/{i_t} (timm adapt_input_conv)", "repeat"), ""
    return None, f"input channels {i_s} -> {i_t} (adapts 3 channels into N, or into 1)"


def _reshape(src, tgt):
    if _prod(src) != _prod(tgt):
        return None, f"{_prod(src)} elements in the source, {_prod(tgt)} in the target"
    a, b = _boundaries(src), _boundaries(tgt)
    if not (a <= b or b <= a):
        return None, (f"{_shape(src)} -> {_shape(tgt)} would move values across axes (not a change of layout)")
    return Adaptation("reshape", f"reshaped {_shape(src)} -> {_shape(tgt)} (the same elements in C order)"), ""


def _slice_pad(src, tgt, name: str):
    if len(src) != len(tgt):
        return None, f"rank {len(src)} in the source, {len(tgt)} in the target"
    fill = 1.0 if name.rsplit("/", 1)[-1] in ONES else 0.0
    parts = []
    for axis, (s, t) in enumerate(zip(src, tgt)):
        if s > t:
            parts.append(f"axis {axis}: {s} -> {t}, [{t}:{s}] dropped")
        elif s < t:
            parts.append(f"axis {axis}: {s} -> {t}, [{s}:{t}] set to {fill:g}")
    return Adaptation("slice-pad", "; ".join(parts), fill=fill), ""


def adapt_array(adaptation: Adaptation, value, target_shape, dtype):
    """The source's ``value`` adapted to ``target_shape``, in ``dtype`` (C-contiguous)."""
    import numpy as np

    target_shape = tuple(int(d) for d in target_shape)
    if adaptation.adapter == "input-channels":
        work = value.astype(np.float64 if value.dtype == np.float64 else np.float32)
        i_t = target_shape[-2]
        if adaptation.mode == "sum":
            out = work.sum(axis=-2, keepdims=True)
        elif adaptation.mode == "group-sum":
            out = work.reshape(*work.shape[:-2], i_t, 3, work.shape[-1]).sum(axis=-2)
        else:
            repeat = math.ceil(i_t / 3)
            out = np.concatenate([work] * repeat, axis=-2)[..., :i_t, :] * (3.0 / i_t)
    elif adaptation.adapter == "reshape":
        out = value.reshape(target_shape)
    else:
        out = np.full(target_shape, adaptation.fill, dtype=value.dtype)
        common = tuple(slice(0, min(s, t)) for s, t in zip(value.shape, target_shape))
        out[common] = value[common]
    return np.ascontiguousarray(out.astype(dtype, copy=False))
