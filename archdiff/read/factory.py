"""The Python factory reader: ``package.module:callable`` -> Architecture.

The one reader that imports TensorFlow/Keras: it calls the factory (for
example ``keras.applications:ResNet50``), then reads the live model's config
and variables. ``weights=None`` is passed by default where the factory takes
a ``weights`` argument: archdiff never downloads anything.
"""
from __future__ import annotations

import importlib
import inspect
import json
from dataclasses import replace
from typing import Any

from archdiff.errors import InputError
from archdiff.lazy import INSTALL_HINT, is_framework_module, quiet_frameworks, require_keras  # noqa: F401
from archdiff.model import Architecture, Source, WeightSpec


def load_factory(spec: str, kwargs: dict[str, Any]) -> Architecture:
    module_name, _, attr = spec.partition(":")
    # A factory builds a Keras model: Keras is imported first, quietly (TensorFlow's C++ start-up lines go to
    # fd 2, whoever imports it), so that neither the module nor the factory's own `import keras` prints them.
    # The factory's own output is left alone.
    require_keras()
    try:
        with quiet_frameworks():
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"cannot import module '{module_name}' ({exc})", path=spec,
                         hint="give package.module:callable importable from this environment") from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise InputError(f"module '{module_name}' has no attribute '{attr}'", path=spec)
    if not callable(target):
        raise InputError(f"'{attr}' is not callable", path=spec)
    try:
        params = inspect.signature(target).parameters
        if "weights" in params and "weights" not in kwargs:
            kwargs["weights"] = None
    except (TypeError, ValueError):
        pass
    try:
        model = target(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the factory is user code; report, don't trace
        raise InputError(f"the factory raised {type(exc).__name__}: {exc}", path=spec) from None
    if not _is_model(model):
        raise InputError(f"the factory returned {_what(model)}, not a Keras model", path=spec,
                         hint="give a callable that returns a keras.Model (Sequential, Functional or subclassed)")
    return from_keras_model(model, path=spec, fmt="factory")


def _is_model(value: Any) -> bool:
    """A Keras model of Keras 3 or tf-keras: what from_keras_model can read (its layers, weights and config)."""
    keras = require_keras()
    if isinstance(value, keras.Model):
        return True
    # tf-keras models are not keras.Model instances; they have the same reading surface.
    return (not isinstance(value, type) and all(hasattr(value, attr) for attr in ("layers", "weights", "to_json"))
            and isinstance(getattr(value, "layers", None), (list, tuple)))


def _what(value: Any) -> str:
    from archdiff.safetext import visible

    if value is None:
        return "None"
    name = type(value).__name__ if not isinstance(value, type) else f"the class {value.__name__}"
    return visible(f"a {name}" if not isinstance(value, type) else name)[:120]


def from_keras_model(model, *, path: str, fmt: str) -> Architecture:
    """An Architecture from a live Keras model: its config plus its variables."""
    from archdiff.read.assemble import architecture
    from archdiff.read.config import parse

    keras = require_keras()
    version = getattr(keras, "__version__", None)
    try:
        document = json.loads(model.to_json())
        parsed = parse(document, where=path)
    except (NotImplementedError, TypeError, ValueError):
        parsed = None
    variables = _live_variables(model)
    if parsed is None or not parsed.has_topology:
        from archdiff.model import Layer

        layers = []
        for index, layer in enumerate(model.layers):
            layers.append(Layer(name=layer.name, path=layer.name, class_name=type(layer).__name__, index=index,
                                depth=0, weights=tuple(variables.get(layer.name, ())),
                                trainable=bool(layer.trainable)))
        return Architecture(
            name=model.name, class_name=type(model).__name__, layers=tuple(layers),
            source=Source(path=path, format=fmt, keras_version=version, dialect="keras3"),
            has_topology=False, has_weights=True,
            notes=(f"'{type(model).__name__}' is a subclassed model: the topology is unknown",),
        )
    arch = architecture(replace(parsed, keras_version=version), path=path, fmt=fmt, weights=None)
    layers = []
    for layer in arch.layers:
        layers.append(replace(layer, weights=() if layer.is_model else tuple(variables.get(layer.path, ()))))
    return replace(arch, layers=tuple(layers), has_weights=True)


def _live_variables(model, prefix: str = "") -> dict[str, list[WeightSpec]]:
    out: dict[str, list[WeightSpec]] = {}
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if hasattr(layer, "layers") and hasattr(layer, "inputs") and layer.__class__.__name__ in (
            "Functional", "Sequential", "Model"
        ):
            out.update(_live_variables(layer, path + "/"))
            continue
        specs = []
        for var in layer.weights:
            name = getattr(var, "path", var.name).split(":")[0]
            if name.startswith(layer.name + "/"):
                name = name[len(layer.name) + 1:]
            specs.append(WeightSpec(name=name, shape=tuple(int(d) for d in var.shape),
                                    dtype=str(getattr(var.dtype, "name", var.dtype)),
                                    trainable=bool(getattr(var, "trainable", True))))
        out[path] = specs
    return out
