"""The layer table and the summary of one model, as data.

``layer_rows`` and ``summary`` return plain dicts (the documented JSON forms);
the renderers in :mod:`archdiff.views.render` format them for people. Rows
follow Keras' ``model.layers``: Keras 3 operations (``x + y``) are graph
nodes but not layers, so they are left out unless asked for, and then carry
no index.
"""
from __future__ import annotations

import re

from archdiff.model import Architecture, Layer


def _shape_json(layer: Layer):
    shape = layer.output_shape
    if shape is None:
        return None
    if isinstance(shape, list):
        return [list(s) for s in shape]
    return list(shape)


def layer_row(arch: Architecture, layer: Layer) -> dict:
    """One row of ``archdiff layers --format json`` (see docs/schemas)."""
    return {
        "index": layer.index,
        "name": layer.name,
        "path": layer.path,
        "depth": layer.depth,
        "parent": layer.parent,
        "class_name": layer.class_name,
        "output_shape": _shape_json(layer),
        "params": arch.params(layer),
        # The layer's own flag, as Keras' layer.trainable; "trains" adds its holders'.
        "trainable": layer.trainable,
        "trains": arch.effectively_trainable(layer),
        "is_model": layer.is_model,
        "is_operation": layer.is_operation,
        "calls": len(layer.calls),
        "weights": None if layer.weights is None else [w.to_dict() for w in layer.weights],
    }


def layer_rows(arch: Architecture, grep: str | None = None, *, operations: bool = False) -> list[dict]:
    """The rows of ``model.layers`` (operations too with ``operations``), or those matching the regex ``grep``."""
    pattern = re.compile(grep) if grep else None
    rows = []
    for layer in arch.layers:
        if layer.is_operation and not operations:
            continue
        if pattern and not (pattern.search(layer.path) or pattern.search(layer.class_name)):
            continue
        rows.append(layer_row(arch, layer))
    return rows


def summary(arch: Architecture) -> dict:
    """``archdiff summary --format json``: the model, its inputs/outputs and totals."""
    counts = arch.param_counts()
    known = arch.layers_known  # else (a constructor config without weights) every count is unknown, not 0
    return {
        "name": arch.name,
        "class_name": arch.class_name,
        "source": {
            "path": arch.source.path,
            "format": arch.source.format,
            "keras_version": arch.source.keras_version,
            "dialect": arch.source.dialect,
        },
        "has_topology": arch.has_topology,
        "has_weights": arch.has_weights,
        "inputs": [s.to_dict() for s in arch.input_specs],
        "outputs": [_output(arch, ref) for ref in arch.outputs],
        "layers": sum(1 for layer in arch.top_level() if not layer.is_operation) if known else None,
        "layers_total": len(arch.keras_layers()) if known else None,
        "operations": sum(1 for layer in arch.layers if layer.is_operation) if known else None,
        "total_params": counts.total if counts else None,
        "trainable_params": counts.trainable if counts else None,
        "non_trainable_params": counts.non_trainable if counts else None,
        # Known even when the split is not: variables that never train (BatchNormalization's moving statistics).
        "non_trainable_params_at_least": counts.non_trainable_at_least if counts else None,
        "constructor": constructor(arch),
        "notes": list(arch.notes),
    }


def constructor(arch: Architecture) -> dict | None:
    """A model built from constructor arguments (keras-hub's backbones): its class, module and arguments
    as its config records them; None for a model whose config lists its layers, and for weights-only files."""
    if arch.constructor is None:
        return None
    built = None
    if arch.built is not None:  # --build: what built it (archdiff.read.build)
        built = {key: arch.built.get(key) for key in ("keras_version", "keras_hub_version", "backend", "cached")}
    return {"class_name": arch.class_name, "module": arch.constructor_module, "arguments": arch.constructor,
            "built": built}


def _output(arch: Architecture, ref) -> dict:
    layer = arch.by_path.get(ref.layer)
    shape = None
    if layer is not None and layer.output_shapes and ref.tensor_index < len(layer.output_shapes):
        shape = list(layer.output_shapes[ref.tensor_index])
    return {"layer": ref.layer, "node_index": ref.node_index, "tensor_index": ref.tensor_index, "shape": shape}
