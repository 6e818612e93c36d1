"""The one registry of layer rules, and the per-layer API that looks them up.

This module owns :func:`register`, through which every family module
(``core``, ``conv``, ``pooling``…) files the output-shape rule and the weight
rule of its classes in one call, and the lookups built on it:
:func:`layer_output_shapes`, :func:`layer_weights` and :func:`variable_dtype`.
A weight rule is required with every registration (``no_weights`` for a class
without variables), so no class can have an output rule and silently no
weight rule.

Rules take the layer's config (a dict) and its input shapes. An output rule
returns one shape or a list of shapes; a weight rule, which also gets whether
the config is Keras 2's, returns ``[(name, shape, trainable[, dtype])]`` in
``layer.weights`` order. Both raise (:class:`~archdiff.shapes.helpers.Unknown`
or anything else) where they cannot answer; the lookups turn that into None.
The registry is filled when ``archdiff.shapes`` is imported, which imports
every family module.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from archdiff.model import WeightSpec
from archdiff.shapes.helpers import Shapes, Unknown, clean_shapes

OutputRule = Callable[[dict, Shapes], Any]
WeightRule = Callable[[dict, Shapes, bool], list]

#: class name -> fn(config, input_shapes) -> one shape or a list of shapes.
OUTPUTS: dict[str, OutputRule] = {}
#: class name -> fn(config, input_shapes, keras2) -> [(name, shape, trainable[, dtype])]
WEIGHTS: dict[str, WeightRule] = {}


def no_weights(cfg, shapes, keras2):
    """The weight rule of a class that creates no variables (beyond seed state Keras does not list)."""
    return []


def register(class_names: str | Iterable[str], *, weights: WeightRule, output: OutputRule | None = None) -> None:
    """File the rules of one or more classes: ``weights`` always, ``output`` where one is known.

    Each class is registered once; a second registration is a mistake in the
    package and fails at import.
    """
    names = (class_names,) if isinstance(class_names, str) else tuple(class_names)
    if not names:
        raise ValueError("register() needs at least one class name")
    if not callable(weights):
        raise TypeError(f"register({names[0]!r}, ...): weights must be a rule "
                        "(registry.no_weights for a class without variables)")
    if output is not None and not callable(output):
        raise TypeError(f"register({names[0]!r}, ...): output must be a rule or None")
    taken = sorted(n for n in names if n in WEIGHTS or n in OUTPUTS)
    if taken or len(set(names)) != len(names):
        raise ValueError(f"classes registered twice: {', '.join(taken) or names}")
    for name in names:
        WEIGHTS[name] = weights
        if output is not None:
            OUTPUTS[name] = output


def as_shape_list(result) -> list | None:
    """Normalize an output rule's answer: one shape, or a list of shapes."""
    if result is None:
        return None
    if isinstance(result, tuple) and all(d is None or isinstance(d, int) for d in result):
        return [tuple(result)]
    if isinstance(result, (list, tuple)) and all(isinstance(s, tuple) for s in result):
        return [tuple(s) for s in result]
    return None


def layer_output_shapes(class_name: str, config: Mapping, input_shapes: Sequence) -> tuple[tuple, ...] | None:
    """The output shape(s) of one call of a layer, or None where unknown.

    ``input_shapes`` holds one shape per tensor the call received (None where
    unknown). The answer has one shape per output tensor.
    """
    fn = OUTPUTS.get(class_name)
    if fn is None or not isinstance(config, Mapping):
        return None
    try:
        out = as_shape_list(fn(dict(config), clean_shapes(input_shapes)))
    except Exception:  # an odd config must not stop a summary: say "unknown"
        return None
    return tuple(out) if out else None


def raw_weights(class_name, config, shapes, keras2) -> list:
    """A class's weight rule applied as is (for wrappers); Unknown for an unknown class."""
    fn = WEIGHTS.get(class_name)
    if fn is None:
        raise Unknown
    return fn(dict(config), shapes, keras2)


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
        specs = raw_weights(class_name, config, clean_shapes(input_shapes), keras2)
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
