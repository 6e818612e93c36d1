"""Rules of Keras' convolutions: Conv, SeparableConv, DepthwiseConv and Conv…Transpose, 1D to 3D.

Each class's output-shape rule and weight rule sit side by side here and are
filed together with :func:`archdiff.shapes.registry.register`, under Keras'
names and their ``Convolution…`` aliases.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from archdiff.shapes.helpers import (
    Shape,
    Unknown,
    channel_dim,
    first_shape,
    lora_specs,
    mul_dim,
    need,
    spatial_dims,
    tuple_n,
    with_spatial,
)
from archdiff.shapes.registry import register

RANKS = (1, 2, 3)


def _conv_length(size, kernel, stride, dilation, padding):
    """Keras' ``compute_conv_output_shape`` for one spatial dimension."""
    if size is None:
        return None
    if padding == "valid":
        return (size - dilation * (kernel - 1) - 1) // stride + 1
    if padding in ("same", "causal"):
        return (size - 1) // stride + 1
    raise Unknown


def _conv_spatial(cfg, shape, rank):
    kernel = tuple_n(cfg["kernel_size"], rank)
    strides = tuple_n(cfg.get("strides", 1), rank)
    dilation = tuple_n(cfg.get("dilation_rate", 1), rank)
    padding = str(cfg.get("padding", "valid")).lower()
    return [
        _conv_length(s, k, st, d, padding)
        for s, k, st, d in zip(spatial_dims(cfg, shape, rank), kernel, strides, dilation)
    ]


def _make_conv(rank: int, channels_out: Callable[[dict, Shape], Any]):
    def conv(cfg, shapes):
        shape = first_shape(shapes)
        return with_spatial(cfg, shape, _conv_spatial(cfg, shape, rank), channels_out(cfg, shape))

    return conv


def _filters(cfg, shape):
    return int(cfg["filters"])


def _depthwise_channels(cfg, shape):
    return mul_dim(channel_dim(cfg, shape), int(cfg.get("depth_multiplier", 1)))


# -- Conv ------------------------------------------------------------------------
def _make_conv_weights(rank: int):
    def conv_weights(cfg, shapes, keras2):
        shape = first_shape(shapes)
        spatial_dims(cfg, shape, rank)
        channels = need(channel_dim(cfg, shape))
        groups = int(cfg.get("groups", 1) or 1)
        filters = int(cfg["filters"])
        kernel = tuple_n(cfg["kernel_size"], rank)
        if channels % groups:
            raise Unknown
        kernel_shape = (*kernel, channels // groups, filters)
        lora = lora_specs(cfg, math.prod(kernel_shape[:-1]), filters, "lora_kernel")
        out = [("kernel", kernel_shape, not lora)]
        if cfg.get("use_bias", True):
            out.append(("bias", (filters,), True))
        return out + lora

    return conv_weights


for _rank in RANKS:
    register((f"Conv{_rank}D", f"Convolution{_rank}D"),
             output=_make_conv(_rank, _filters), weights=_make_conv_weights(_rank))


# -- SeparableConv -----------------------------------------------------------------
def _make_separable_weights(rank: int):
    def separable_weights(cfg, shapes, keras2):
        shape = first_shape(shapes)
        spatial_dims(cfg, shape, rank)
        channels = need(channel_dim(cfg, shape))
        multiplier = int(cfg.get("depth_multiplier", 1))
        filters = int(cfg["filters"])
        out = [
            ("depthwise_kernel", (*tuple_n(cfg["kernel_size"], rank), channels, multiplier), True),
            ("pointwise_kernel", ((1,) * rank + (channels * multiplier, filters)), True),
        ]
        if cfg.get("use_bias", True):
            out.append(("bias", (filters,), True))
        return out

    return separable_weights


for _rank in RANKS:
    register((f"SeparableConv{_rank}D", f"SeparableConvolution{_rank}D"),
             output=_make_conv(_rank, _filters), weights=_make_separable_weights(_rank))


# -- DepthwiseConv -------------------------------------------------------------------
def _make_depthwise_weights(rank: int):
    def depthwise_weights(cfg, shapes, keras2):
        shape = first_shape(shapes)
        spatial_dims(cfg, shape, rank)
        channels = need(channel_dim(cfg, shape))
        multiplier = int(cfg.get("depth_multiplier", 1))
        # Keras 3 renamed the variable: `depthwise_kernel` (Keras 2) -> `kernel`.
        name = "depthwise_kernel" if keras2 else "kernel"
        out = [(name, (*tuple_n(cfg["kernel_size"], rank), channels, multiplier), True)]
        if cfg.get("use_bias", True):
            out.append(("bias", (channels * multiplier,), True))
        return out

    return depthwise_weights


for _rank in (1, 2):
    register(f"DepthwiseConv{_rank}D",
             output=_make_conv(_rank, _depthwise_channels), weights=_make_depthwise_weights(_rank))
# Keras has no DepthwiseConv3D; its weight rule was registered with the others
# and is kept as it was, with no output rule.
register("DepthwiseConv3D", weights=_make_depthwise_weights(3))


# -- Conv…Transpose ----------------------------------------------------------------
def _deconv_length(size, kernel, stride, dilation, padding, output_padding):
    """Keras' transposed-convolution output length for one dimension."""
    if size is None:
        return None
    kernel = (kernel - 1) * dilation + 1
    if padding == "valid":
        if output_padding is None:
            output_padding = max(kernel, stride) - kernel
        return (size - 1) * stride + kernel + output_padding
    if padding == "same":
        if output_padding is None:
            return size * stride
        return (size - 1) * stride + kernel % 2 + output_padding
    raise Unknown


def _make_conv_transpose(rank: int):
    def conv_transpose(cfg, shapes):
        shape = first_shape(shapes)
        kernel = tuple_n(cfg["kernel_size"], rank)
        strides = tuple_n(cfg.get("strides", 1), rank)
        dilation = tuple_n(cfg.get("dilation_rate", 1), rank)
        out_pad = cfg.get("output_padding")
        out_pad = (None,) * rank if out_pad is None else tuple_n(out_pad, rank)
        padding = str(cfg.get("padding", "valid")).lower()
        spatial = [
            _deconv_length(s, k, st, d, padding, op)
            for s, k, st, d, op in zip(spatial_dims(cfg, shape, rank), kernel, strides, dilation, out_pad)
        ]
        return with_spatial(cfg, shape, spatial, int(cfg["filters"]))

    return conv_transpose


def _make_conv_transpose_weights(rank: int):
    def conv_transpose_weights(cfg, shapes, keras2):
        shape = first_shape(shapes)
        spatial_dims(cfg, shape, rank)
        channels = need(channel_dim(cfg, shape))
        filters = int(cfg["filters"])
        # Transposed kernels are (..., filters, channels): the reverse of Conv's.
        out = [("kernel", (*tuple_n(cfg["kernel_size"], rank), filters, channels), True)]
        if cfg.get("use_bias", True):
            out.append(("bias", (filters,), True))
        return out

    return conv_transpose_weights


for _rank in RANKS:
    register((f"Conv{_rank}DTranspose", f"Convolution{_rank}DTranspose"),
             output=_make_conv_transpose(_rank), weights=_make_conv_transpose_weights(_rank))
