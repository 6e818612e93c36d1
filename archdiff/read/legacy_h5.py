"""Legacy HDF5 files (Keras 2 and Keras 3 ``.h5``/``.hdf5``): full models and weights-only files.

A full model holds its config in the ``model_config`` attribute and its
weights under ``model_weights/<layer>/...`` listed by ``layer_names`` and
``weight_names``; ``save_weights`` writes the same at the root. This module
also dispatches an HDF5 file to the Keras 3 layout when that is what it holds.
"""
from __future__ import annotations

import os
from dataclasses import replace

from archdiff.errors import InputError
from archdiff.model import Architecture, Layer, Source, WeightSpec
from archdiff.read import hdf5 as h5
from archdiff.read.assemble import architecture, weight_spec
from archdiff.read.config import parse
from archdiff.read.documents import parse_json_bytes
from archdiff.read.hdf5_lite import Decline, open_lite
from archdiff.read.keras3_h5 import weights_only_keras3


def read_h5(path: str) -> Architecture:
    tree = _lite_tree(path)
    if tree is not None:
        return weights_only_keras3(tree, path=path, fmt="weights.h5")
    with h5.open_h5(path, where=path) as f:
        if not h5.has_keras3_layout(f):
            # Keras 3 trees are scanned as they are read; check the legacy layouts file-wide too.
            h5.scan(f, where=path)
        config_text = h5.read_attr(f, "model_config", where=path)
        if config_text is not None:
            if not isinstance(config_text, str):
                raise InputError("the 'model_config' attribute is not text", path=path)
            document = parse_json_bytes(config_text.encode("utf-8", "surrogatepass"), where=f"{path}@model_config")
            parsed = parse(document, where=f"{path}@model_config")
            version = h5.read_attr(f, "keras_version", where=path)
            backend = h5.read_attr(f, "backend", where=path)
            if isinstance(version, str):
                parsed = replace(parsed, keras_version=version,
                                 dialect="keras2" if version.startswith("2.") else "keras3")
            if isinstance(backend, str):
                parsed = replace(parsed, backend=backend)
            weights = None
            if "model_weights" in f:
                root = h5.legacy_root(f, where=path)
                weights = ("legacy", h5.read_legacy_weights(root, where=path))
            return architecture(parsed, path=path, fmt="h5", weights=weights)
        if h5.has_legacy_layout(f, where=path):
            entries = h5.read_legacy_weights(f, where=path)
            version = h5.read_attr(f, "keras_version", where=path)
            return weights_only_legacy(entries, path=path, version=version if isinstance(version, str) else None)
        if h5.has_keras3_layout(f):
            tree = h5.read_keras3_tree([f], where=path)
            return weights_only_keras3(tree, path=path, fmt="weights.h5")
    raise InputError("HDF5 file holds neither a Keras model nor Keras weights", path=path,
                     hint="expected 'model_config', 'layer_names' or a 'layers' group")


def _lite_tree(path: str) -> h5.SaveableNode | None:
    """A Keras 3 weights file's tree read without h5py (:mod:`archdiff.read.hdf5_lite`), or None where h5py must
    read the file: another layout (root attributes: ``model_config``, ``layer_names``) or a declined one."""
    lite = open_lite(path, bare_root=True)
    if lite is None or lite.root_attributes() or not h5.has_keras3_layout(lite.kinds()):
        return None
    try:
        return h5.read_keras3_tree([lite], where=path)
    except Decline:
        return None


def attach_legacy(layers: list[Layer], entries) -> tuple[list[Layer], list[str]]:
    """Give each layer the variables a legacy file lists under its name."""
    by_path = {layer.path: i for i, layer in enumerate(layers)}
    children: dict[str, set[str]] = {}
    for layer in layers:
        children.setdefault(layer.parent, set()).add(layer.name)
    collected: dict[str, list[WeightSpec]] = {}
    for layer_name, infos in entries:
        if layer_name not in by_path:
            continue
        for info in infos:
            target, rel = _descend(layer_name, info.name, layers, by_path, children)
            collected.setdefault(target, []).append(weight_spec(h5.VarInfo(rel, info.shape, info.dtype, info.location)))
    out = []
    missing = []
    present = {name for name, _ in entries}
    for layer in layers:
        if layer.is_model:
            out.append(replace(layer, weights=()))
            continue
        specs = collected.get(layer.path)
        if specs is None:
            top = layer.path.split("/", 1)[0]
            if top not in present:
                missing.append(layer.path)
            specs = []
        out.append(replace(layer, weights=tuple(specs)))
    return out, missing


def _descend(path: str, rel: str, layers, by_path, children) -> tuple[str, str]:
    """Walk a variable's relative name down into nested models."""
    while layers[by_path[path]].is_model:
        parts = rel.split("/")
        name = layers[by_path[path]].name
        if len(parts) > 1 and parts[0] == name and parts[1] in children.get(path, ()):
            parts = parts[1:]
        if len(parts) > 1 and parts[0] in children.get(path, ()):
            path = f"{path}/{parts[0]}"
            rel = "/".join(parts[1:])
        else:
            break
    return path, rel


def weights_only_legacy(entries, *, path: str, version: str | None) -> Architecture:
    layers = []
    for index, (name, infos) in enumerate(entries):
        # layer_names lists every layer of model.layers in order, so the index is known; the trainable
        # flag is not recorded in a weights file.
        layers.append(Layer(name=name, path=name, class_name="?", index=index, depth=0, trainable=None,
                            weights=tuple(weight_spec(i) for i in infos)))
    source = Source(path=path, format="h5-weights", keras_version=version,
                    dialect="keras2" if (version or "2.").startswith("2.") else "keras3")
    return Architecture(
        name=os.path.basename(path), class_name=None, layers=tuple(layers), source=source,
        has_topology=False, has_weights=True,
        notes=("weights-only file: the topology is unknown (layers, their order and weights are from the file; "
               "classes and connections are not recorded)",),
    )
