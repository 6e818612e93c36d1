"""Joining a parsed config with the weights an HDF5 layout recorded into one Architecture.

Also names Keras 3's positional variables (``0``, ``1``, ...) after the
variables Keras creates for the class, where every shape agrees.
"""
from __future__ import annotations

from dataclasses import replace

from archdiff.model import Architecture, Layer, Source
from archdiff.read.config import ParsedConfig
from archdiff.read.specs import weight_spec  # noqa: F401 (re-exported for the layout modules)

#: What every Keras model's config holds besides its constructor's own arguments.
BASE_ARGUMENTS = frozenset({"name", "trainable", "dtype"})


def architecture(parsed: ParsedConfig, *, path: str, fmt: str, weights) -> Architecture:
    source = Source(path=path, format=fmt, keras_version=parsed.keras_version,
                    backend=parsed.backend, dialect=parsed.dialect)
    notes: list[str] = []
    layers = list(parsed.layers)
    has_weights = False
    if not parsed.has_topology:
        config = parsed.serialized.get("config") if isinstance(parsed.serialized, dict) else None
        held = ("constructor arguments, not layers" if isinstance(config, dict) and set(config) - BASE_ARGUMENTS
                else "no layers")
        listed = ("its layers are listed from its weights, in the file's order, not model.layers'"
                  if weights is not None else "the input holds no weights either, so no layer is known")
        notes.append(f"'{parsed.class_name}' is a subclassed model: its config holds {held}, so Keras' layer "
                     f"order, classes and topology are unknown without building the model; {listed}")
        from archdiff.read.keras3_h5 import attach_keras3, weights_only_keras3
        from archdiff.read.legacy_h5 import attach_legacy, weights_only_legacy

        if weights is not None and weights[0] == "keras3":
            sub = weights_only_keras3(weights[1], path=path, fmt=fmt)
            return replace(sub, name=parsed.name, class_name=parsed.class_name, config=parsed.serialized,
                           source=source, notes=tuple(notes) + sub.notes[1:])
        if weights is not None and weights[0] == "legacy":
            sub = weights_only_legacy(weights[1], path=path, version=parsed.keras_version)
            return replace(sub, name=parsed.name, class_name=parsed.class_name, config=parsed.serialized,
                           source=source, notes=tuple(notes))
    elif weights is not None:
        from archdiff.read.keras3_h5 import attach_keras3
        from archdiff.read.legacy_h5 import attach_legacy

        kind, data = weights
        if kind == "legacy":
            layers, missing = attach_legacy(layers, data)
        else:
            layers, missing = attach_keras3(layers, data, top_class=parsed.class_name)
        has_weights = True
        if missing:
            notes.append("no weights found in the file for: " + ", ".join(missing[:10])
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
    return Architecture(
        name=parsed.name, class_name=parsed.class_name, layers=tuple(layers), source=source,
        inputs=parsed.inputs, outputs=parsed.outputs, has_topology=parsed.has_topology,
        has_weights=has_weights, config=parsed.serialized, notes=tuple(notes),
        input_specs=parsed.input_specs,
    )


def name_positional_weights(arch: Architecture) -> Architecture:
    """Keras 3 files keep a layer's variables by position (0, 1, ...): name them.

    The names, order and trainable flags come from the variables Keras creates
    for the layer's class and config on the shapes it receives; they are used
    only where the count and every shape agree with the file.
    """
    from archdiff import shapes

    layers = list(arch.layers)
    changed = False
    for i, layer in enumerate(layers):
        if not layer.weights or not all(w.name.isdigit() for w in layer.weights):
            continue
        try:
            expected = shapes.layer_weights(layer.class_name, dict(layer.config), _input_shapes(arch, layer),
                                            dialect=arch.source.dialect)
        except Exception:  # noqa: BLE001 - naming is a nicety; positions stay when it fails
            expected = None
        if not expected or len(expected) != len(layer.weights):
            continue
        if any(tuple(e.shape) != tuple(w.shape) for e, w in zip(expected, layer.weights)):
            continue
        layers[i] = replace(layer, weights=tuple(
            replace(w, name=e.name, trainable=e.trainable) for w, e in zip(layer.weights, expected)))
        changed = True
    return replace(arch, layers=tuple(layers)) if changed else arch


def _input_shapes(arch: Architecture, layer: Layer) -> list:
    """The shapes a layer's first call receives, from its producers' output shapes."""
    if not layer.calls:
        return [None]
    call = layer.calls[0]
    if call.input_shapes:
        return list(call.input_shapes)
    specs = {s.name: s.shape for s in arch.input_specs}
    out = []
    for ref in call.inputs:
        producer = arch.by_path.get(f"{layer.parent}/{ref.layer}" if layer.parent else ref.layer)
        if producer is not None and producer.output_shapes and ref.tensor_index < len(producer.output_shapes):
            out.append(producer.output_shapes[ref.tensor_index])
        elif not layer.parent and ref.layer in specs:
            out.append(specs[ref.layer])
        elif layer.parent and producer is None and layer.parent in arch.by_path:
            # A nested Sequential's implicit input: what its model receives.
            holder = _input_shapes(arch, arch.by_path[layer.parent])
            out.append(holder[0] if holder else None)
        else:
            out.append(None)
    return out
