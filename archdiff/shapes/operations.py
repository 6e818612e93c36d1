"""Rules of functions in a graph: Keras 3 operations (``keras.src.ops.*``) and Keras 2's function layers.

This module owns what is known of graph nodes that run code rather than a
layer's own arithmetic: the element-wise ones (``x + y``, ``tf.nn.relu``)
broadcast their tensor inputs; the rest (``Lambda``, slicing) have no known
output shape. Keras 2 records such functions as the layers ``TFOpLambda``,
``SlicingOpLambda`` and ``Lambda``, registered here like any layer (their
code is never run, and they hold no variables). Keras 3 records operations
as nodes of their own, outside the layer registry: :func:`is_operation`
recognizes them and :func:`operation_output_shapes` gives their shapes.
"""
from __future__ import annotations

from typing import Sequence

from archdiff.model import Layer
from archdiff.shapes.helpers import Shape, Unknown, clean_shapes
from archdiff.shapes.registry import no_weights, register


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
                raise Unknown
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


# -- Keras 2 function layers ---------------------------------------------------------
def _tf_op_lambda(cfg, shapes):
    if cfg.get("function") not in _ELEMENTWISE_TF_FUNCTIONS:
        raise Unknown
    return _broadcast(shapes)


register("TFOpLambda", output=_tf_op_lambda, weights=no_weights)
register(("Lambda", "SlicingOpLambda"), weights=no_weights)  # what their code returns is not known


# -- Keras 3 operations ----------------------------------------------------------------
def is_operation(layer: Layer) -> bool:
    """Keras 3 functional operations (``keras.src.ops.*``): not layers, no variables."""
    return layer.is_operation


def operation_output_shapes(class_name: str, input_shapes: Sequence) -> tuple[tuple, ...] | None:
    """The output shape of a Keras 3 operation (``x + y``), where element-wise."""
    if class_name not in _ELEMENTWISE_OPS:
        return None
    try:
        out = _broadcast(clean_shapes(input_shapes))
    except Exception:
        return None
    return (out,) if out is not None else None
