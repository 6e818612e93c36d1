"""Output shapes and weight specs of Keras layers, inferred from configs alone.

This module owns the arithmetic Keras does in ``compute_output_shape`` and
``build``: given a layer's class name, its config and the shapes it receives,
it says what comes out and which variables the layer creates (names, shapes,
dtypes, trainable flags, in ``layer.weights`` order). :func:`infer` runs that
over a whole :class:`~archdiff.model.Architecture`, propagating shapes through
each model scope in topological order, so that a config-only input can show
output shapes and parameter counts like ``model.summary()``.

It is pure Python: no TensorFlow, Keras or NumPy. Every rule is checked
against Keras itself in ``tests/test_shapes.py``. Anything it does not know
(an unknown class, an odd config, an unknown dimension where a weight needs
it) yields ``None``, never an exception.
"""
from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Any, Callable, Iterable, Mapping, Sequence

from archdiff.model import MODEL_CLASSES, Architecture, Call, Layer, TensorRef, WeightSpec

Shape = tuple  # of int | None; the first dimension is the batch
Shapes = Sequence["Shape | None"]

__all__ = ["infer", "layer_output_shapes", "layer_weights", "variable_dtype"]


class _Unknown(Exception):
    """A dimension or option needed for the answer is not known."""


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------
def _as_shape(value) -> Shape | None:
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


def _need(*dims):
    """The dims themselves, or _Unknown when a weight shape would need a None."""
    for d in dims:
        if d is None:
            raise _Unknown
    return dims[0] if len(dims) == 1 else dims


def _first(shapes: Shapes) -> Shape:
    if not shapes or shapes[0] is None:
        raise _Unknown
    return tuple(shapes[0])


def _tuple_n(value, n: int, name: str = "") -> tuple:
    """Keras' ``standardize_tuple``: an int or a sequence of n ints."""
    if isinstance(value, bool):
        raise _Unknown
    if isinstance(value, int):
        return (value,) * n
    if isinstance(value, (list, tuple)) and len(value) == n and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return tuple(value)
    raise _Unknown


def _axis(axis, rank: int) -> int:
    if isinstance(axis, (list, tuple)) and len(axis) == 1:
        axis = axis[0]
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        raise _Unknown
    return axis % rank


def _channels_last(cfg) -> bool:
    fmt = cfg.get("data_format") or "channels_last"
    if fmt not in ("channels_last", "channels_first"):
        raise _Unknown
    return fmt == "channels_last"


def _channel_dim(cfg, shape: Shape):
    return shape[-1] if _channels_last(cfg) else shape[1]


def _spatial(cfg, shape: Shape, rank: int) -> tuple:
    """The spatial dims of a rank-``rank`` conv/pool input."""
    if len(shape) != rank + 2:
        raise _Unknown
    return tuple(shape[1:-1]) if _channels_last(cfg) else tuple(shape[2:])


def _with_spatial(cfg, shape: Shape, spatial: Iterable, channels) -> Shape:
    if _channels_last(cfg):
        return (shape[0], *spatial, channels)
    return (shape[0], channels, *spatial)


def _pairs(value, n: int) -> tuple:
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
                raise _Unknown
        return tuple(out)
    raise _Unknown


def _add(d, k):
    return None if d is None else d + k


def _mul(d, k):
    return None if d is None else d * k


def _inner_layer(cfg, key: str = "layer") -> tuple[str, dict]:
    """The (class_name, config) of a wrapped layer (TimeDistributed, Bidirectional)."""
    inner = cfg.get(key)
    if not isinstance(inner, Mapping) or not isinstance(inner.get("config"), Mapping):
        raise _Unknown
    return str(inner.get("class_name")), dict(inner["config"])


def variable_dtype(config: Mapping | None) -> str:
    """The dtype of a layer's variables from its ``dtype`` policy.

    Mixed policies (``mixed_float16``) compute in half precision but keep
    float32 variables; quantized ones (``int8_from_float32``) name the float
    policy they came from.
    """
    raw = (config or {}).get("dtype") if isinstance(config, Mapping) else None
    name = None
    if isinstance(raw, str):
        name = raw
    elif isinstance(raw, Mapping):
        inner = raw.get("config")
        if isinstance(inner, Mapping) and isinstance(inner.get("name"), str):
            name = inner["name"]
    if not name:
        return "float32"
    while "_from_" in name:
        name = name.split("_from_", 1)[1]
    if name.startswith("mixed_"):
        return "float32"
    return name


def _guess_keras2(config: Mapping) -> bool:
    """Whether a layer config was written by Keras 2 (tf-keras).

    Only a hint for callers that do not pass the dialect: Keras 2 writes a
    plain dtype string or a ``Policy`` object, Keras 3 a ``DTypePolicy``.
    """
    raw = config.get("dtype") if isinstance(config, Mapping) else None
    if isinstance(raw, Mapping):
        return raw.get("class_name") == "Policy"
    return "batch_input_shape" in config if isinstance(config, Mapping) else False


# ---------------------------------------------------------------------------
# output shapes: one function per family, registered under class names
# ---------------------------------------------------------------------------
#: class name -> fn(config, input_shapes) -> one shape or a list of shapes.
_OUTPUTS: dict[str, Callable[[dict, Shapes], Any]] = {}


def _outputs(*names: str):
    def register(fn):
        for n in names:
            _OUTPUTS[n] = fn
        return fn

    return register


_SAME_SHAPE = (
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "ThresholdedReLU",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "Masking", "Identity", "Rescaling", "Normalization", "BatchNormalization",
    "LayerNormalization", "GroupNormalization", "UnitNormalization", "RMSNormalization",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast", "RandomTranslation",
    "RandomBrightness", "SyncBatchNormalization",
)


@_outputs(*_SAME_SHAPE)
def _same_shape(cfg, shapes):
    return _first(shapes)


@_outputs("InputLayer")
def _input_layer(cfg, shapes):
    shape = _as_shape(cfg.get("batch_shape")) or _as_shape(cfg.get("batch_input_shape"))
    if shape is None and _as_shape(cfg.get("shape")) is not None:
        shape = (cfg.get("batch_size"), *_as_shape(cfg["shape"]))
    if shape is None:
        return _first(shapes)
    return shape


@_outputs("Dense")
def _dense(cfg, shapes):
    shape = _first(shapes)
    return (*shape[:-1], int(cfg["units"]))


def _conv_length(size, kernel, stride, dilation, padding):
    """Keras' ``compute_conv_output_shape`` for one spatial dimension."""
    if size is None:
        return None
    if padding == "valid":
        return (size - dilation * (kernel - 1) - 1) // stride + 1
    if padding in ("same", "causal"):
        return (size - 1) // stride + 1
    raise _Unknown


def _conv_spatial(cfg, shape, rank):
    kernel = _tuple_n(cfg["kernel_size"], rank)
    strides = _tuple_n(cfg.get("strides", 1), rank)
    dilation = _tuple_n(cfg.get("dilation_rate", 1), rank)
    padding = str(cfg.get("padding", "valid")).lower()
    return [
        _conv_length(s, k, st, d, padding)
        for s, k, st, d in zip(_spatial(cfg, shape, rank), kernel, strides, dilation)
    ]


def _make_conv(rank: int, channels_out: Callable[[dict, Shape], Any]):
    def conv(cfg, shapes):
        shape = _first(shapes)
        return _with_spatial(cfg, shape, _conv_spatial(cfg, shape, rank), channels_out(cfg, shape))

    return conv


def _filters(cfg, shape):
    return int(cfg["filters"])


def _depthwise_channels(cfg, shape):
    return _mul(_channel_dim(cfg, shape), int(cfg.get("depth_multiplier", 1)))


for _rank in (1, 2, 3):
    _outputs(f"Conv{_rank}D", f"Convolution{_rank}D", f"SeparableConv{_rank}D",
             f"SeparableConvolution{_rank}D")(_make_conv(_rank, _filters))
_OUTPUTS["DepthwiseConv1D"] = _make_conv(1, _depthwise_channels)
_OUTPUTS["DepthwiseConv2D"] = _make_conv(2, _depthwise_channels)


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
    raise _Unknown


def _make_conv_transpose(rank: int):
    def conv_transpose(cfg, shapes):
        shape = _first(shapes)
        kernel = _tuple_n(cfg["kernel_size"], rank)
        strides = _tuple_n(cfg.get("strides", 1), rank)
        dilation = _tuple_n(cfg.get("dilation_rate", 1), rank)
        out_pad = cfg.get("output_padding")
        out_pad = (None,) * rank if out_pad is None else _tuple_n(out_pad, rank)
        padding = str(cfg.get("padding", "valid")).lower()
        spatial = [
            _deconv_length(s, k, st, d, padding, op)
            for s, k, st, d, op in zip(_spatial(cfg, shape, rank), kernel, strides, dilation, out_pad)
        ]
        return _with_spatial(cfg, shape, spatial, int(cfg["filters"]))

    return conv_transpose


for _rank in (1, 2, 3):
    _OUTPUTS[f"Conv{_rank}DTranspose"] = _make_conv_transpose(_rank)
    _OUTPUTS[f"Convolution{_rank}DTranspose"] = _OUTPUTS[f"Conv{_rank}DTranspose"]


def _make_pooling(rank: int):
    def pooling(cfg, shapes):
        shape = _first(shapes)
        pool = _tuple_n(cfg.get("pool_size", 2), rank)
        strides = cfg.get("strides")
        strides = pool if strides is None else _tuple_n(strides, rank)
        padding = str(cfg.get("padding", "valid")).lower()
        spatial = []
        for s, p, st in zip(_spatial(cfg, shape, rank), pool, strides):
            if s is None:
                spatial.append(None)
            elif padding == "valid":
                spatial.append((s - p) // st + 1)
            elif padding == "same":
                spatial.append((s - 1) // st + 1)
            else:
                raise _Unknown
        return _with_spatial(cfg, shape, spatial, _channel_dim(cfg, shape))

    return pooling


for _rank in (1, 2, 3):
    for _kind in ("Max", "Average"):
        _OUTPUTS[f"{_kind}Pooling{_rank}D"] = _make_pooling(_rank)
        _OUTPUTS[f"{_kind}Pool{_rank}D"] = _OUTPUTS[f"{_kind}Pooling{_rank}D"]


def _make_global_pooling(rank: int):
    def global_pooling(cfg, shapes):
        shape = _first(shapes)
        channels = _channel_dim(cfg, shape)
        if cfg.get("keepdims"):
            return _with_spatial(cfg, shape, (1,) * rank, channels)
        return (shape[0], channels)

    return global_pooling


for _rank in (1, 2, 3):
    for _kind in ("Max", "Average"):
        _OUTPUTS[f"Global{_kind}Pooling{_rank}D"] = _make_global_pooling(_rank)
        _OUTPUTS[f"Global{_kind}Pool{_rank}D"] = _OUTPUTS[f"Global{_kind}Pooling{_rank}D"]


@_outputs("Flatten")
def _flatten(cfg, shapes):
    shape = _first(shapes)
    rest = shape[1:]
    if not rest:
        return (shape[0], 1)
    if any(d is None for d in rest):
        return (shape[0], None)
    return (shape[0], math.prod(rest))


@_outputs("Reshape")
def _reshape(cfg, shapes):
    shape = _first(shapes)
    target = _as_shape(cfg.get("target_shape"))
    if target is None:
        raise _Unknown
    if -1 not in target:
        return (shape[0], *target)
    if target.count(-1) > 1:
        raise _Unknown
    rest = shape[1:]
    if any(d is None for d in rest):
        return (shape[0], *(None if d == -1 else d for d in target))
    known = math.prod(d for d in target if d != -1)
    total = math.prod(rest)
    if known == 0 or total % known:
        raise _Unknown
    return (shape[0], *(total // known if d == -1 else d for d in target))


@_outputs("Permute")
def _permute(cfg, shapes):
    shape = _first(shapes)
    dims = cfg.get("dims")
    if not isinstance(dims, (list, tuple)) or sorted(dims) != list(range(1, len(shape))):
        raise _Unknown
    return (shape[0], *(shape[d] for d in dims))


@_outputs("RepeatVector")
def _repeat_vector(cfg, shapes):
    shape = _first(shapes)
    return (shape[0], int(cfg["n"]), *shape[1:])


def _make_padding(rank: int, key: str, sign: int):
    def padding(cfg, shapes):
        shape = _first(shapes)
        pairs = _pairs(cfg.get(key, 1 if sign > 0 else 0), rank)
        if rank == 1:
            # ZeroPadding1D / Cropping1D have no data_format: (batch, steps, features)
            if len(shape) != 3:
                raise _Unknown
            return (shape[0], _add(shape[1], sign * sum(pairs[0])), shape[2])
        spatial = [_add(s, sign * (a + b)) for s, (a, b) in zip(_spatial(cfg, shape, rank), pairs)]
        return _with_spatial(cfg, shape, spatial, _channel_dim(cfg, shape))

    return padding


for _rank in (1, 2, 3):
    _OUTPUTS[f"ZeroPadding{_rank}D"] = _make_padding(_rank, "padding", +1)
    _OUTPUTS[f"Cropping{_rank}D"] = _make_padding(_rank, "cropping", -1)


@_outputs("UpSampling1D")
def _upsampling1d(cfg, shapes):
    shape = _first(shapes)
    if len(shape) != 3:
        raise _Unknown
    return (shape[0], _mul(shape[1], int(cfg.get("size", 2))), shape[2])


def _make_upsampling(rank: int):
    def upsampling(cfg, shapes):
        shape = _first(shapes)
        size = _tuple_n(cfg.get("size", 2), rank)
        spatial = [_mul(s, k) for s, k in zip(_spatial(cfg, shape, rank), size)]
        return _with_spatial(cfg, shape, spatial, _channel_dim(cfg, shape))

    return upsampling


_OUTPUTS["UpSampling2D"] = _make_upsampling(2)
_OUTPUTS["UpSampling3D"] = _make_upsampling(3)


@_outputs("Resizing", "CenterCrop")
def _resizing(cfg, shapes):
    shape = _first(shapes)
    size = (int(cfg["height"]), int(cfg["width"]))
    if len(shape) == 3:  # unbatched image
        return (*size, shape[-1]) if _channels_last(cfg) else (shape[0], *size)
    return _with_spatial(cfg, shape, size, _channel_dim(cfg, shape))


def _elementwise(shape1, shape2):
    """Keras' merge-layer broadcast of two shapes without their batch dims."""
    if shape1 is None or shape2 is None:
        return None
    if len(shape1) < len(shape2):
        shape1, shape2 = shape2, shape1
    if not shape2:
        return tuple(shape1)
    out = list(shape1[: len(shape1) - len(shape2)])
    for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
        if i is None or j is None:
            out.append(None)
        elif i == 1:
            out.append(j)
        elif j == 1 or i == j:
            out.append(i)
        else:
            raise _Unknown
    return tuple(out)


@_outputs("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def _merge(cfg, shapes):
    if not shapes or any(s is None for s in shapes):
        raise _Unknown
    out = tuple(shapes[0][1:])
    for s in shapes[1:]:
        out = _elementwise(out, tuple(s[1:]))
    batches = {s[0] for s in shapes} - {None}
    batch = batches.pop() if len(batches) == 1 else None
    return (batch, *out)


@_outputs("Concatenate")
def _concatenate(cfg, shapes):
    if not shapes or any(s is None for s in shapes):
        raise _Unknown
    out = list(shapes[0])
    axis = _axis(cfg.get("axis", -1), len(out))
    for s in shapes[1:]:
        if len(s) != len(out):
            raise _Unknown
        if out[axis] is None or s[axis] is None:
            out[axis] = None
            break
        out[axis] += s[axis]
    return tuple(out)


@_outputs("Dot")
def _dot(cfg, shapes):
    if len(shapes) != 2 or any(s is None for s in shapes):
        raise _Unknown
    a, b = list(shapes[0]), list(shapes[1])
    axes = cfg.get("axes")
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [_axis(axes[0], len(a)), _axis(axes[1], len(b))]
    a.pop(axes[0])
    b.pop(axes[1])
    b.pop(0)
    out = a + b
    return tuple(out + [1] if len(out) == 1 else out)


@_outputs("Embedding")
def _embedding(cfg, shapes):
    shape = _first(shapes)
    length = cfg.get("input_length")
    # Keras 2 fills an unknown sequence length from `input_length`.
    if isinstance(length, int) and len(shape) == 2 and shape[1] is None:
        shape = (shape[0], length)
    return (*shape, int(cfg["output_dim"]))


_RNN_STATES = {"LSTM": 2, "GRU": 1, "SimpleRNN": 1}


def _rnn(cfg, shapes, states: int):
    shape = _first(shapes)
    if len(shape) != 3:
        raise _Unknown
    units = int(cfg["units"])
    out = (shape[0], shape[1], units) if cfg.get("return_sequences") else (shape[0], units)
    if cfg.get("return_state"):
        return [out] + [(shape[0], units)] * states
    return out


for _name, _states in _RNN_STATES.items():
    _OUTPUTS[_name] = (lambda n: lambda cfg, shapes: _rnn(cfg, shapes, n))(_states)


@_outputs("Bidirectional")
def _bidirectional(cfg, shapes):
    inner_class, inner_cfg = _inner_layer(cfg)
    out = _as_list(layer_output_shapes(inner_class, inner_cfg, shapes))
    if out is None:
        raise _Unknown
    output, states = out[0], out[1:]
    mode = cfg.get("merge_mode", "concat")
    if mode == "concat":
        outputs = [(*output[:-1], _mul(output[-1], 2))]
    elif mode is None:
        outputs = [output, output]
    elif mode in ("sum", "mul", "ave"):
        outputs = [output]
    else:
        raise _Unknown
    # Keras lists the merged output(s), then the forward states, then the backward ones.
    return outputs + states + states


@_outputs("TimeDistributed")
def _time_distributed(cfg, shapes):
    shape = _first(shapes)
    inner_class, inner_cfg = _inner_layer(cfg)
    out = _as_list(layer_output_shapes(inner_class, inner_cfg, [(shape[0], *shape[2:])]))
    if not out or len(out) != 1:
        raise _Unknown
    return (shape[0], shape[1], *out[0][1:])


@_outputs("MultiHeadAttention")
def _multi_head_attention(cfg, shapes):
    query = _first(shapes)
    out = cfg.get("output_shape")
    if out is None:
        return query
    out = (out,) if isinstance(out, int) else _as_shape(out)
    if out is None:
        raise _Unknown
    return (*query[:-1], *out)


def _broadcast(shapes) -> Shape | None:
    """NumPy broadcasting of whole shapes (batch included), as TF and Keras ops do."""
    if not shapes or any(s is None for s in shapes):
        return None
    out: list = []
    for s in shapes:
        s = list(s)
        if len(s) > len(out):
            out = [1] * (len(s) - len(out)) + out
        s = [1] * (len(out) - len(s)) + s
        for i, (a, b) in enumerate(zip(out, s)):
            if a == 1:
                out[i] = b
            elif a is None:
                out[i] = None if b == 1 else b
            elif b not in (1, None, a):
                raise _Unknown
    return tuple(out)


#: Element-wise functions: the output is the broadcast of the tensor inputs
#: (constants such as ``x * 2`` are not tensors and do not count). Keras 2
#: records them as ``TFOpLambda`` with the TF function's name; Keras 3 as
#: operations of ``keras.src.ops`` under their class name.
_ELEMENTWISE_TF_FUNCTIONS = frozenset({
    "__operators__.add", "math.add", "math.add_n", "math.subtract", "math.multiply",
    "math.divide", "math.truediv", "math.maximum", "math.minimum", "math.pow",
    "nn.relu", "nn.relu6", "nn.elu", "nn.selu", "nn.gelu", "nn.silu", "nn.swish",
    "nn.leaky_relu", "nn.softmax", "math.sigmoid", "math.tanh", "math.exp", "math.log",
    "math.sqrt", "math.rsqrt", "math.square", "math.abs", "math.negative",
    "math.reciprocal", "clip_by_value", "identity", "cast", "nn.softplus",
})
_ELEMENTWISE_OPS = frozenset({
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Power",
    "Relu", "Relu6", "Elu", "Selu", "Gelu", "Silu", "LeakyRelu", "Softmax", "Sigmoid",
    "Tanh", "Exp", "Log", "Sqrt", "Rsqrt", "Square", "Abs", "Negative", "Reciprocal",
    "Clip", "Cast", "Softplus", "Identity",
})


@_outputs("TFOpLambda")
def _tf_op_lambda(cfg, shapes):
    if cfg.get("function") not in _ELEMENTWISE_TF_FUNCTIONS:
        raise _Unknown
    return _broadcast(shapes)


def operation_output_shapes(class_name: str, input_shapes: Sequence) -> tuple[tuple, ...] | None:
    """The output shape of a Keras 3 operation (``x + y``), where element-wise."""
    if class_name not in _ELEMENTWISE_OPS:
        return None
    try:
        out = _broadcast(_clean_shapes(input_shapes))
    except Exception:
        return None
    return (out,) if out is not None else None


# ---------------------------------------------------------------------------
# weights: one function per family, registered under class names
# ---------------------------------------------------------------------------
#: class name -> fn(config, input_shapes, keras2) -> [(name, shape, trainable[, dtype])]
_WEIGHTS: dict[str, Callable[[dict, Shapes, bool], list]] = {}


def _weights(*names: str):
    def register(fn):
        for n in names:
            _WEIGHTS[n] = fn
        return fn

    return register


#: Classes that never create variables (beyond seed state Keras does not list).
_NO_WEIGHTS = (
    "InputLayer", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "ThresholdedReLU",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "Masking", "Identity", "Rescaling", "UnitNormalization", "Flatten", "Reshape",
    "Permute", "RepeatVector", "Add", "Subtract", "Multiply", "Average", "Maximum",
    "Minimum", "Concatenate", "Dot", "Resizing", "CenterCrop",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomContrast", "RandomTranslation",
    "RandomBrightness", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    # Layers that only wrap TensorFlow ops or Python code (their code is never run).
    "Lambda", "TFOpLambda", "SlicingOpLambda",
) + tuple(
    f"{kind}{rank}D"
    for rank in (1, 2, 3)
    for kind in ("MaxPooling", "AveragePooling", "MaxPool", "AveragePool",
                 "GlobalMaxPooling", "GlobalAveragePooling", "GlobalMaxPool",
                 "GlobalAveragePool", "ZeroPadding", "Cropping")
)


@_weights(*_NO_WEIGHTS)
def _no_weights(cfg, shapes, keras2):
    return []


def _lora(cfg, rows, cols, prefix):
    """LoRA (Keras 3): the base matrix freezes and two low-rank factors train."""
    rank = cfg.get("lora_rank")
    if not rank:
        return []
    return [(f"{prefix}_a", (rows, int(rank)), True), (f"{prefix}_b", (int(rank), cols), True)]


@_weights("Dense")
def _dense_weights(cfg, shapes, keras2):
    units = int(cfg["units"])
    fan_in = _need(_first(shapes)[-1])
    lora = _lora(cfg, fan_in, units, "lora_kernel")
    out = [("kernel", (fan_in, units), not lora)]
    if cfg.get("use_bias", True):
        out.append(("bias", (units,), True))
    return out + lora


def _make_conv_weights(rank: int):
    def conv_weights(cfg, shapes, keras2):
        shape = _first(shapes)
        _spatial(cfg, shape, rank)
        channels = _need(_channel_dim(cfg, shape))
        groups = int(cfg.get("groups", 1) or 1)
        filters = int(cfg["filters"])
        kernel = _tuple_n(cfg["kernel_size"], rank)
        if channels % groups:
            raise _Unknown
        kernel_shape = (*kernel, channels // groups, filters)
        lora = _lora(cfg, math.prod(kernel_shape[:-1]), filters, "lora_kernel")
        out = [("kernel", kernel_shape, not lora)]
        if cfg.get("use_bias", True):
            out.append(("bias", (filters,), True))
        return out + lora

    return conv_weights


def _make_conv_transpose_weights(rank: int):
    def conv_transpose_weights(cfg, shapes, keras2):
        shape = _first(shapes)
        _spatial(cfg, shape, rank)
        channels = _need(_channel_dim(cfg, shape))
        filters = int(cfg["filters"])
        # Transposed kernels are (..., filters, channels): the reverse of Conv's.
        out = [("kernel", (*_tuple_n(cfg["kernel_size"], rank), filters, channels), True)]
        if cfg.get("use_bias", True):
            out.append(("bias", (filters,), True))
        return out

    return conv_transpose_weights


def _make_depthwise_weights(rank: int):
    def depthwise_weights(cfg, shapes, keras2):
        shape = _first(shapes)
        _spatial(cfg, shape, rank)
        channels = _need(_channel_dim(cfg, shape))
        multiplier = int(cfg.get("depth_multiplier", 1))
        # Keras 3 renamed the variable: `depthwise_kernel` (Keras 2) -> `kernel`.
        name = "depthwise_kernel" if keras2 else "kernel"
        out = [(name, (*_tuple_n(cfg["kernel_size"], rank), channels, multiplier), True)]
        if cfg.get("use_bias", True):
            out.append(("bias", (channels * multiplier,), True))
        return out

    return depthwise_weights


def _make_separable_weights(rank: int):
    def separable_weights(cfg, shapes, keras2):
        shape = _first(shapes)
        _spatial(cfg, shape, rank)
        channels = _need(_channel_dim(cfg, shape))
        multiplier = int(cfg.get("depth_multiplier", 1))
        filters = int(cfg["filters"])
        out = [
            ("depthwise_kernel", (*_tuple_n(cfg["kernel_size"], rank), channels, multiplier), True),
            ("pointwise_kernel", ((1,) * rank + (channels * multiplier, filters)), True),
        ]
        if cfg.get("use_bias", True):
            out.append(("bias", (filters,), True))
        return out

    return separable_weights


for _rank in (1, 2, 3):
    for _prefix in ("Conv", "Convolution"):
        _WEIGHTS[f"{_prefix}{_rank}D"] = _make_conv_weights(_rank)
        _WEIGHTS[f"{_prefix}{_rank}DTranspose"] = _make_conv_transpose_weights(_rank)
    _WEIGHTS[f"SeparableConv{_rank}D"] = _make_separable_weights(_rank)
    _WEIGHTS[f"SeparableConvolution{_rank}D"] = _WEIGHTS[f"SeparableConv{_rank}D"]
    _WEIGHTS[f"DepthwiseConv{_rank}D"] = _make_depthwise_weights(_rank)


@_weights("BatchNormalization", "SyncBatchNormalization")
def _batch_norm_weights(cfg, shapes, keras2):
    shape = _first(shapes)
    axis = cfg.get("axis", -1)
    axes = sorted({_axis(a, len(shape)) for a in (axis if isinstance(axis, (list, tuple)) else [axis])})
    if not axes:
        raise _Unknown
    if len(axes) == 1:
        param = (_need(shape[axes[0]]),)
    else:
        # Keras 2 keeps the other axes as 1s when normalizing over several.
        param = tuple(_need(shape[i]) if i in axes else 1 for i in range(len(shape)))
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


def _axes_param(cfg, shape, default=-1):
    axis = cfg.get("axis", default)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    dims = sorted(_axis(a, len(shape)) for a in axes)
    return tuple(_need(shape[d]) for d in dims)


@_weights("LayerNormalization")
def _layer_norm_weights(cfg, shapes, keras2):
    param = _axes_param(cfg, _first(shapes))
    rms = bool(cfg.get("rms_scaling"))
    out = []
    if cfg.get("scale", True) or rms:
        out.append(("gamma", param, True))
    if cfg.get("center", True) and not rms:
        out.append(("beta", param, True))
    return out


@_weights("RMSNormalization")
def _rms_norm_weights(cfg, shapes, keras2):
    return [("scale", _axes_param(cfg, _first(shapes)), True)]


@_weights("GroupNormalization")
def _group_norm_weights(cfg, shapes, keras2):
    shape = _first(shapes)
    dim = _need(shape[_axis(cfg.get("axis", -1), len(shape))])
    out = []
    if cfg.get("scale", True):
        out.append(("gamma", (dim,), True))
    if cfg.get("center", True):
        out.append(("beta", (dim,), True))
    return out


@_weights("Normalization")
def _normalization_weights(cfg, shapes, keras2):
    if cfg.get("mean") is not None:
        return []  # given mean and variance are constants, not variables
    shape = _first(shapes)
    axis = cfg.get("axis", -1)
    axes = [] if axis is None else (axis if isinstance(axis, (list, tuple)) else [axis])
    param = tuple(_need(shape[d]) for d in sorted(_axis(a, len(shape)) for a in axes))
    return [("mean", param, False), ("variance", param, False), ("count", (), False, "int64")]


@_weights("PReLU")
def _prelu_weights(cfg, shapes, keras2):
    param = list(_first(shapes)[1:])
    for axis in cfg.get("shared_axes") or ():
        param[int(axis) - 1] = 1
    for d in param:
        _need(d)
    return [("alpha", tuple(param), True)]


@_weights("Embedding")
def _embedding_weights(cfg, shapes, keras2):
    rows, cols = int(cfg["input_dim"]), int(cfg["output_dim"])
    lora = _lora(cfg, rows, cols, "lora_embeddings")
    return [("embeddings", (rows, cols), not lora)] + lora


#: recurrent class -> (cell variable prefix, gates)
_RNN_CELLS = {"LSTM": ("lstm_cell", 4), "GRU": ("gru_cell", 3), "SimpleRNN": ("simple_rnn_cell", 1)}


def _rnn_weights(class_name, cfg, shapes):
    cell, gates = _RNN_CELLS[class_name]
    fan_in = _need(_first(shapes)[-1])
    units = int(cfg["units"])
    out = [
        (f"{cell}/kernel", (fan_in, gates * units), True),
        (f"{cell}/recurrent_kernel", (units, gates * units), True),
    ]
    if cfg.get("use_bias", True):
        # GRU with reset_after keeps separate input and recurrent biases.
        if class_name == "GRU" and cfg.get("reset_after", True):
            out.append((f"{cell}/bias", (2, gates * units), True))
        else:
            out.append((f"{cell}/bias", (gates * units,), True))
    return out


for _name in _RNN_CELLS:
    _WEIGHTS[_name] = (lambda n: lambda cfg, shapes, keras2: _rnn_weights(n, cfg, shapes))(_name)


def _removeprefix(text: str, prefix: str) -> str:
    return text[len(prefix):] if text.startswith(prefix) else text


@_weights("Bidirectional")
def _bidirectional_weights(cfg, shapes, keras2):
    inner_class, inner_cfg = _inner_layer(cfg)
    base = _removeprefix(str(inner_cfg.get("name", "")), "forward_")
    forward = f"forward_{base}"
    backward_class, backward_cfg = inner_class, inner_cfg
    if isinstance(cfg.get("backward_layer"), Mapping):
        backward_class, backward_cfg = _inner_layer(cfg, "backward_layer")
        backward = str(backward_cfg.get("name"))
    else:
        backward = f"backward_{_removeprefix(base, 'backward_')}"
    out = []
    for prefix, klass, conf in ((forward, inner_class, inner_cfg), (backward, backward_class, backward_cfg)):
        specs = _raw_weights(klass, conf, shapes, keras2)
        out += [(f"{prefix}/{spec[0]}", *spec[1:]) for spec in specs]
    return out


@_weights("TimeDistributed")
def _time_distributed_weights(cfg, shapes, keras2):
    shape = _first(shapes)
    inner_class, inner_cfg = _inner_layer(cfg)
    specs = _raw_weights(inner_class, inner_cfg, [(shape[0], *shape[2:])], keras2)
    if keras2:
        return specs  # tf-keras builds the inner variables in the wrapper's own scope
    return [(f"{inner_cfg.get('name')}/{spec[0]}", *spec[1:]) for spec in specs]


@_weights("MultiHeadAttention")
def _multi_head_attention_weights(cfg, shapes, keras2):
    query = _first(shapes)
    value = shapes[1] if len(shapes) > 1 and shapes[1] is not None else query
    key = shapes[2] if len(shapes) > 2 and shapes[2] is not None else value
    heads = int(cfg["num_heads"])
    key_dim = int(cfg["key_dim"])
    value_dim = int(cfg.get("value_dim") or key_dim)
    out_dims = cfg.get("output_shape")
    if out_dims is None:
        out_dims = (_need(query[-1]),)
    elif isinstance(out_dims, int):
        out_dims = (out_dims,)
    else:
        out_dims = _as_shape(out_dims)
        if out_dims is None:
            raise _Unknown
    bias = cfg.get("use_bias", True)
    out = []
    for name, fan_in, size in (("query", query[-1], key_dim), ("key", key[-1], key_dim),
                               ("value", value[-1], value_dim)):
        out.append((f"{name}/kernel", (_need(fan_in), heads, size), True))
        if bias:
            out.append((f"{name}/bias", (heads, size), True))
    out.append(("attention_output/kernel", (heads, value_dim, *out_dims), True))
    if bias:
        out.append(("attention_output/bias", tuple(out_dims), True))
    return out


# ---------------------------------------------------------------------------
# the per-layer API
# ---------------------------------------------------------------------------
def _as_list(result) -> list | None:
    """Normalize a shape function's answer: one shape, or a list of shapes."""
    if result is None:
        return None
    if isinstance(result, tuple) and all(d is None or isinstance(d, int) for d in result):
        return [tuple(result)]
    if isinstance(result, (list, tuple)) and all(isinstance(s, tuple) for s in result):
        return [tuple(s) for s in result]
    return None


def _clean_shapes(input_shapes) -> list:
    return [None if s is None else _as_shape(s) for s in (input_shapes or [])]


def layer_output_shapes(class_name: str, config: Mapping, input_shapes: Sequence) -> tuple[tuple, ...] | None:
    """The output shape(s) of one call of a layer, or None where unknown.

    ``input_shapes`` holds one shape per tensor the call received (None where
    unknown). The answer has one shape per output tensor.
    """
    fn = _OUTPUTS.get(class_name)
    if fn is None or not isinstance(config, Mapping):
        return None
    try:
        out = _as_list(fn(dict(config), _clean_shapes(input_shapes)))
    except Exception:  # an odd config must not stop a summary: say "unknown"
        return None
    return tuple(out) if out else None


def _raw_weights(class_name, config, shapes, keras2) -> list:
    fn = _WEIGHTS.get(class_name)
    if fn is None:
        raise _Unknown
    return fn(dict(config), shapes, keras2)


def layer_weights(
    class_name: str, config: Mapping, input_shapes: Sequence, *, dialect: str | None = None
) -> tuple[WeightSpec, ...] | None:
    """The variables a layer creates when built on ``input_shapes``, in ``layer.weights`` order.

    Names are relative to the layer (``kernel``, ``lstm_cell/kernel``).
    ``dialect`` ("keras2"/"keras3") picks the Keras version's variable names
    where they differ; without it the config's dtype is the hint. None where
    the class is unknown or a dimension the weights need is unknown.
    """
    if not isinstance(config, Mapping):
        return None
    keras2 = dialect == "keras2" if dialect else _guess_keras2(config)
    try:
        specs = _raw_weights(class_name, config, _clean_shapes(input_shapes), keras2)
        dtype = variable_dtype(config)
        # Keras 3 freezes a frozen layer's variables too; tf-keras leaves them be.
        frozen = not keras2 and config.get("trainable") is False
        out = []
        for spec in specs:
            name, shape, trainable = spec[:3]
            trainable = trainable and not frozen
            shape = tuple(int(d) for d in shape)
            out.append(WeightSpec(name=name, shape=shape, dtype=spec[3] if len(spec) > 3 else dtype,
                                  trainable=bool(trainable)))
    except Exception:
        return None
    return tuple(out)


# ---------------------------------------------------------------------------
# propagation through an Architecture
# ---------------------------------------------------------------------------
def _is_op(layer: Layer) -> bool:
    """Keras 3 functional operations (``keras.src.ops.*``): not layers, no variables."""
    return bool(layer.module) and ".ops" in layer.module and "layers" not in layer.module


def _unwrap_model_config(config) -> dict:
    if not isinstance(config, Mapping):
        return {}
    inner = config.get("config")
    if isinstance(inner, Mapping) and ("layers" in inner or "name" in inner):
        return dict(inner)
    return dict(config)


def _raw_layer_dicts(arch: Architecture) -> dict[str, Mapping]:
    """Path -> the layer's serialized dict (for ``build_config``), where a config is kept."""
    out: dict[str, Mapping] = {}

    def walk(model_cfg, prefix):
        layers = model_cfg.get("layers") if isinstance(model_cfg, Mapping) else None
        if not isinstance(layers, list):
            return
        for raw in layers:
            if not isinstance(raw, Mapping):
                continue
            conf = raw.get("config") if isinstance(raw.get("config"), Mapping) else {}
            name = raw.get("name") or conf.get("name")
            if not isinstance(name, str):
                continue
            path = f"{prefix}/{name}" if prefix else name
            out.setdefault(path, raw)
            if raw.get("class_name") in MODEL_CLASSES:
                walk(conf, path)

    walk(_unwrap_model_config(arch.config), "")
    return out


def _build_input_shapes(layer: Layer, raw: Mapping | None) -> list | None:
    """The input shape(s) a layer was built with, from ``build_config`` (Keras 3)."""
    for holder in (layer.config, raw or {}):
        build = holder.get("build_config") if isinstance(holder, Mapping) else None
        shape = build.get("input_shape") if isinstance(build, Mapping) else None
        if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
            return [_as_shape(s) for s in shape]
        if _as_shape(shape) is not None:
            return [_as_shape(shape)]
    return None


class _Propagation:
    """Shapes through every model scope of one Architecture.

    Each scope (the top level, each nested model) is run once "as built":
    its InputLayers take their own declared shapes, and the shapes Keras 3
    recorded on calls win over computed ones. That gives what Keras reports
    for the scope's own layers. A nested model called on other shapes is run
    again "as called", from the call's shapes only, for the output the outer
    scope sees; that second run stores nothing on the layers.
    """

    def __init__(self, arch: Architecture):
        self.arch = arch
        self.layers = arch.layers
        self.members: dict[str, list[int]] = {}
        for i, layer in enumerate(arch.layers):
            self.members.setdefault(layer.parent, []).append(i)
        self.raw = _raw_layer_dicts(arch)
        #: layer index -> output shapes of its first call, from the as-built run
        self.first_outputs: dict[int, tuple | None] = {}
        #: layer index -> input shapes of its first call, from the as-built run
        self.first_inputs: dict[int, list] = {}
        #: scope path -> (input shapes, output shapes) of its as-built run
        self.built: dict[str, tuple[list, tuple | None]] = {}
        self._running: set[str] = set()
        dialect = arch.source.dialect if arch.source is not None else None
        if dialect is None:
            # Keras 3 records the shapes of every call; Keras 2 none.
            calls = [c for layer in arch.layers for c in layer.calls if c.inputs]
            dialect = "keras2" if calls and not any(c.input_shapes for c in calls) else "keras3"
        self.keras2 = dialect == "keras2"

    def _call_index(self, producer: Layer | None, node_index: int) -> int:
        """The call of ``producer`` a reference's node index means.

        The config reader already renumbers tf-keras' references to nested
        models (which count the model's own graph as node 0), so every
        dialect counts calls from 0 here.
        """
        return node_index

    # -- scope facts ----------------------------------------------------------
    def _container(self, scope: str) -> Layer | None:
        return self.arch.by_path.get(scope) if scope else None

    def _is_sequential(self, scope: str) -> bool:
        """Sequential by class, or by a config with no graph (as the readers decide)."""
        holder = self._container(scope)
        if (holder.class_name if holder else self.arch.class_name) == "Sequential":
            return True
        conf = self._scope_config(scope)
        entries = conf.get("layers")
        return isinstance(entries, list) and "input_layers" not in conf and not any(
            isinstance(e, Mapping) and e.get("inbound_nodes") for e in entries)

    def _scope_config(self, scope: str) -> dict:
        holder = self._container(scope)
        return _unwrap_model_config(holder.config if holder else self.arch.config)

    def _scope_io(self, scope: str) -> tuple[tuple[TensorRef, ...], tuple[TensorRef, ...]]:
        holder = self._container(scope)
        if holder is None:
            return self.arch.inputs, self.arch.outputs
        return holder.model_inputs, holder.model_outputs

    # -- running -----------------------------------------------------------------
    def run_built(self, scope: str, outer: list | None = None) -> None:
        """Run a scope as built (once), storing its layers' shapes."""
        if scope in self.built or scope in self._running:
            return
        self._running.add(scope)
        try:
            inputs, outputs = self._run(scope, outer, as_built=True)
        finally:
            self._running.discard(scope)
        self.built[scope] = (inputs, outputs)

    def _run(self, scope: str, outer: list | None, as_built: bool):
        if self._is_sequential(scope):
            return self._run_sequential(scope, outer, as_built)
        return self._run_functional(scope, outer, as_built)

    def _compute(self, i: int, shapes: list, call_index: int, as_built: bool) -> tuple | None:
        layer = self.layers[i]
        if as_built and call_index == 0 and layer.output_shapes:
            return tuple(layer.output_shapes)  # a reader's shapes are facts, not guesses
        if layer.is_model:
            return self._model_call(layer, shapes, as_built)
        if _is_op(layer):
            return operation_output_shapes(layer.class_name, shapes)
        return layer_output_shapes(layer.class_name, layer.config, shapes)

    def _model_call(self, layer: Layer, shapes: list, as_built: bool) -> tuple | None:
        scope = layer.path
        self.run_built(scope, shapes)
        built_inputs, built_outputs = self.built.get(scope, ([], None))
        if all(s is None for s in shapes) or list(shapes) == list(built_inputs):
            return built_outputs
        if scope in self._running:
            return None
        self._running.add(scope)
        try:
            _, outputs = self._run(scope, list(shapes), as_built=False)
        finally:
            self._running.discard(scope)
        return outputs

    def _sequential_input(self, scope: str, members: list[int]) -> Shape | None:
        """Where Keras would find a Sequential's input shape, in its order."""
        for i in members:
            if self.layers[i].class_name == "InputLayer":
                own = layer_output_shapes("InputLayer", self.layers[i].config, [None])
                return own[0] if own else None
        conf = self._scope_config(scope)
        raw_layers = conf.get("layers") if isinstance(conf.get("layers"), list) else []
        if raw_layers and isinstance(raw_layers[0], Mapping) and raw_layers[0].get("class_name") == "InputLayer":
            out = layer_output_shapes("InputLayer", raw_layers[0].get("config") or {}, [None])
            if out:
                return out[0]
        for key in ("build_input_shape", "batch_input_shape"):
            shape = _as_shape(conf.get(key))
            if shape is not None:
                return shape
        if not scope:
            for spec in getattr(self.arch, "input_specs", ()) or ():
                shape = _as_shape(getattr(spec, "shape", None))
                if shape is not None:
                    return shape
        first = next((i for i in members if self.layers[i].class_name != "InputLayer"), None)
        if first is not None:
            layer = self.layers[first]
            shape = _as_shape(layer.config.get("batch_input_shape"))
            if shape is not None:
                return shape
            built = _build_input_shapes(layer, self.raw.get(layer.path))
            if built and built[0] is not None:
                return built[0]
        return None

    def _run_sequential(self, scope: str, outer: list | None, as_built: bool):
        members = self.members.get(scope, [])
        start = None
        if as_built:
            start = self._sequential_input(scope, members)
        if start is None and outer:
            start = outer[0]
        shape = start
        for i in members:
            layer = self.layers[i]
            if layer.class_name == "InputLayer":
                if as_built:
                    self.first_outputs[i] = (shape,) if shape is not None else None
                continue
            if as_built:
                self.first_inputs[i] = [shape]
            out = self._compute(i, [shape], 0, as_built) if shape is not None or layer.is_model \
                else None
            if as_built:
                self.first_outputs[i] = out
            shape = out[0] if out else None
        return [start], ((shape,) if shape is not None else None)

    def _run_functional(self, scope: str, outer: list | None, as_built: bool):
        members = self.members.get(scope, [])
        layers = self.layers
        index = {layers[i].name: i for i in members}
        model_inputs, model_outputs = self._scope_io(scope)

        # The outer call's shapes bind to the scope's inputs, in order.
        input_names = [ref.layer for ref in model_inputs] or [
            layers[i].name for i in members if layers[i].class_name == "InputLayer"]
        bound = dict(zip(input_names, outer or []))
        if not scope:
            # Inputs the readers keep only as specs (no InputLayer among the layers).
            for spec in getattr(self.arch, "input_specs", ()) or ():
                shape = _as_shape(getattr(spec, "shape", None))
                if shape is not None:
                    bound.setdefault(spec.name, shape)

        def key(ref: TensorRef) -> tuple[str, int, int]:
            """A reference as (producer name, call index, output index)."""
            j = index.get(ref.layer)
            node = self._call_index(layers[j] if j is not None else None, ref.node_index)
            return (ref.layer, node, ref.tensor_index)

        tensors: dict[tuple[str, int, int], Shape | None] = {}
        recorded: dict[tuple[str, int, int], Shape] = {}
        if as_built:
            # Keras 3 records every consumed tensor's shape on its consumer:
            # a fallback where a producer's rule is unknown (Lambda, GetItem).
            for i in members:
                for call in layers[i].calls:
                    if len(call.input_shapes) == len(call.inputs):
                        for ref, shape in zip(call.inputs, call.input_shapes):
                            if shape is not None:
                                recorded.setdefault(key(ref), tuple(shape))

        # Nodes are (layer index, call index); an InputLayer is its own node 0.
        def calls_of(i):
            return layers[i].calls or (Call(inputs=()),)

        nodes = [(i, k) for i in members for k in range(len(calls_of(i)))]
        node_set = set(nodes)
        deps: dict[tuple, set] = {}
        users: dict[tuple, list] = {}
        for node in nodes:
            i, k = node
            need = set()
            for ref in calls_of(i)[k].inputs:
                producer = (index.get(ref.layer), key(ref)[1])
                if producer in node_set and producer != node:
                    need.add(producer)
            deps[node] = need
            for producer in need:
                users.setdefault(producer, []).append(node)
        order = []
        ready = deque(n for n in nodes if not deps[n])
        waiting = {n: len(deps[n]) for n in nodes}
        seen = set()
        while ready:
            node = ready.popleft()
            if node in seen:
                continue
            seen.add(node)
            order.append(node)
            for user in users.get(node, ()):
                waiting[user] -= 1
                if waiting[user] == 0:
                    ready.append(user)
        order += [n for n in nodes if n not in seen]  # a cycle: run with what is known

        for i, k in order:
            layer = layers[i]
            call = calls_of(i)[k]
            if layer.class_name == "InputLayer" and not call.inputs:
                shape = None
                if not as_built:
                    shape = bound.get(layer.name)
                if shape is None:
                    own = layer_output_shapes("InputLayer", layer.config, [None])
                    shape = own[0] if own else None
                if shape is None:
                    shape = bound.get(layer.name)
                out = (shape,) if shape is not None else None
                shapes: list = []
            else:
                use_recorded = as_built and len(call.input_shapes) == len(call.inputs)
                shapes = []
                for pos, ref in enumerate(call.inputs):
                    shape = call.input_shapes[pos] if use_recorded else None
                    if shape is None:
                        shape = tensors.get(key(ref))
                    if shape is None and ref.layer not in index:
                        shape = bound.get(ref.layer)
                    shapes.append(None if shape is None else tuple(shape))
                out = self._compute(i, shapes, k, as_built)
                if out is None and as_built:
                    found = []
                    t = 0
                    while (layer.name, k, t) in recorded:
                        found.append(recorded[(layer.name, k, t)])
                        t += 1
                    out = tuple(found) or None
            for t, shape in enumerate(out or ()):
                tensors[(layer.name, k, t)] = shape
            if k == 0 and as_built:
                self.first_outputs[i] = out
                self.first_inputs[i] = shapes

        input_shapes_used = [tensors.get((name, 0, 0)) for name in input_names]
        outs = [tensors.get(key(ref)) for ref in model_outputs]
        outputs = tuple(outs) if outs and all(s is not None for s in outs) else None
        return input_shapes_used, outputs


def infer(arch: Architecture) -> Architecture:
    """A copy of ``arch`` with output shapes and, where it has none, weights inferred.

    Every layer whose ``output_shapes`` is None gets the shapes of its first
    call's outputs where they can be inferred. When ``arch.has_weights`` is
    False, every layer gets the weights its config implies (``location`` None);
    nested models get ``()`` since their variables live on their own layers.
    ``has_weights`` on the result is True only if every layer got weights.
    """
    try:
        prop = _Propagation(arch)
        if arch.has_topology:
            prop.run_built("")
            for i, layer in enumerate(arch.layers):
                if layer.is_model:
                    prop.run_built(layer.path)
    except Exception:  # a malformed graph must not stop a listing
        prop = None

    dialect = arch.source.dialect if arch.source is not None else None
    fill_weights = not arch.has_weights
    layers = []
    complete = True
    for i, layer in enumerate(arch.layers):
        changes: dict[str, Any] = {}
        if layer.output_shapes is None and prop is not None and prop.first_outputs.get(i):
            changes["output_shapes"] = tuple(prop.first_outputs[i])
        if fill_weights:
            weights = None
            if layer.is_model:
                weights = ()  # a nested model's variables are on its own layers
            elif _is_op(layer):
                weights = ()  # Keras 3 operations hold no variables
            else:
                shapes = prop.first_inputs.get(i) if prop is not None else None
                if shapes:
                    weights = layer_weights(layer.class_name, layer.config, shapes, dialect=dialect)
                if weights is None and prop is not None:
                    built = _build_input_shapes(layer, prop.raw.get(layer.path))
                    if built:
                        weights = layer_weights(layer.class_name, layer.config, built, dialect=dialect)
                if weights is None and not shapes:
                    # Some layers' variables do not depend on the input (Embedding).
                    weights = layer_weights(layer.class_name, layer.config, [], dialect=dialect)
            if weights is None:
                complete = False
            changes["weights"] = weights
        layers.append(dataclasses.replace(layer, **changes) if changes else layer)

    result: dict[str, Any] = {"layers": tuple(layers)}
    if fill_weights:
        result["has_weights"] = complete
        missing = sorted({l.class_name for l in layers if l.weights is None})
        if missing:
            result["notes"] = tuple(arch.notes) + (
                "parameter counts unknown: weights could not be inferred from the config "
                f"for layers of class {', '.join(missing)}",
            )
    return dataclasses.replace(arch, **result)
