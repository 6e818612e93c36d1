"""Keras 3 weight files: ``.weights.h5``, sharded ``*.weights.json`` + shards, the 2.13-2.15 layout.

Keras 3 keys a layer's group by its object's *auto* name (``layers/conv2d_5``)
with the real name in the ``vars`` group's ``name`` attribute, and keeps
variables by position. This module attaches those trees to configs and reads
them alone (topology unknown).
"""
from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Mapping

from archdiff.errors import InputError, UnsafeInputError
from archdiff.model import Architecture, Layer, Source, WeightSpec
from archdiff.names import canonical_class
from archdiff.read import hdf5 as h5
from archdiff.read.specs import weight_spec


def read_sharded(path: str, index: Mapping) -> Architecture:
    """Keras 3 sharded weights: the ``.weights.json`` index and its shard files."""
    return weights_only_keras3(sharded_tree(path, index), path=path, fmt="weights.json")


def sharded_tree(path: str, index: Mapping) -> h5.SaveableNode:
    """The weights tree of a ``.weights.json`` index and its shard files (plain file names beside it only)."""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        raise InputError("'weight_map' is not a mapping", path=path)
    shard_names: list[str] = []
    for value in weight_map.values():
        for name in value if isinstance(value, list) else [value]:
            if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
                raise UnsafeInputError(f"shard name {name!r} is not a plain file name", path=path)
            if name not in shard_names:
                shard_names.append(name)
    folder = os.path.dirname(os.path.abspath(path))
    from contextlib import ExitStack

    with ExitStack() as stack:
        files = []
        for name in shard_names:
            shard_path = os.path.join(folder, name)
            if not os.path.isfile(shard_path):
                raise InputError(f"shard '{name}' named in the index is missing", path=path)
            files.append(stack.enter_context(h5.open_h5(shard_path, where=shard_path)))
        return h5.read_keras3_tree(files, where=path)


def attach_keras3(layers: list[Layer], tree: h5.SaveableNode, *, top_class: str) -> tuple[list[Layer], list[str]]:
    """Give each layer its variables from a Keras 3 weights tree."""
    assigned: dict[str, h5.SaveableNode] = {}

    def match(scope: str, node: h5.SaveableNode) -> None:
        members = [layer for layer in layers if layer.parent == scope]
        by_real = {n.real_name: n for n in node.layers if n.real_name}
        by_key = {n.key: n for n in node.layers}
        # Keras walks model.layers: a Sequential's omits its InputLayer, as ours does.
        autos = h5.auto_names([m.class_name if not m.is_model else _saved_class(m.class_name) for m in members])
        for member, auto in zip(members, autos):
            found = by_real.get(member.name) if by_real else None
            if found is None and not by_real:
                found = by_key.get(auto)
            if found is None:
                continue
            assigned[member.path] = found
            if member.is_model:
                match(member.path, found)

    match("", tree)
    out = []
    missing = []
    for layer in layers:
        if layer.is_model:
            out.append(replace(layer, weights=()))
            continue
        node = assigned.get(layer.path)
        if node is None:
            missing.append(layer.path)
            out.append(replace(layer, weights=()))
            continue
        out.append(replace(layer, weights=tuple(weight_spec(v) for v in node.all_variables())))
    return out, missing


def _saved_class(class_name: str) -> str:
    # A Keras 2 "Model" config is rebuilt (and saved) by Keras 3 as Functional.
    return canonical_class(class_name)


def weights_only_keras3(tree: h5.SaveableNode, *, path: str, fmt: str) -> Architecture:
    layers: list[Layer] = []

    def add(node: h5.SaveableNode, parent: str, depth: int, keyed: bool) -> None:
        names = [item.real_name or item.key for item in node.layers]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise InputError(f"two layers of the weights file are called '{twice}' (one by its name, one by "
                             "Keras' auto name)", path=path,
                             hint="the file is corrupt or was not written by Keras")
        for item in node.layers:
            name = item.real_name or item.key
            full = f"{parent}/{name}" if parent else name
            stem = re.sub(r"_\d+$", "", item.key)
            # Keras keys groups by class and per-class count, so the position in model.layers and the
            # layer's trainable flag are not in the file: both are unknown, never guessed.
            layers.append(Layer(
                name=name, path=full, class_name=f"?{stem}", index=None, depth=depth, parent=parent,
                weights=() if item.is_model else by_nature(stem, [weight_spec(v) for v in item.all_variables()]),
                is_model=item.is_model, trainable=None, key_only=keyed and not item.real_name,
            ))
            if item.is_model:
                add(item, full, depth + 1, True)

    keyed_by_class = bool(tree.layers)
    if not tree.layers and tree.objects:
        # A subclassed model: Keras saves its layers under their attribute names.
        tree = h5.SaveableNode(tree.key, tree.path, tree.real_name, tree.variables,
                               layers=[tree.objects[k] for k in sorted(tree.objects, key=h5.natural_key)])
    # A subclassed model's attribute names are its own names; a layers container is keyed by class + order.
    add(tree, "", 0, keyed_by_class)
    notes = ["weights-only file: the topology is unknown (Keras 3 keys weights by class and order, so layer "
             "order and classes are not recorded)"]
    keys = sum(layer.key_only for layer in layers)
    if keyed_by_class and _has_real_names(tree) and keys:
        notes.append(f"{keys} layer(s) have no name in the file: they are shown by Keras' key "
                     "(class in snake case + order among the layers of that class, e.g. reshape_1), which need "
                     "not be the layer's name")
    if keyed_by_class and not _has_real_names(tree):
        notes.append("the file holds no layer names (written by tf-keras or Keras 2.13-2.15): layers are shown "
                     "by Keras' auto names, class in snake case + order, e.g. dense_1")
    source = Source(path=path, format=fmt, dialect="keras3")
    return Architecture(
        name=tree.real_name or os.path.basename(path), class_name=None, layers=tuple(layers), source=source,
        has_topology=False, has_weights=True,
        notes=tuple(notes),
    )


#: Variables Keras creates with ``trainable=False``, by the auto-name stem of their layer's class, in the
#: order the class creates them: what a positional Keras 3 file still determines about them.
_POSITIONAL_NAMES = {
    "batch_normalization": {4: ("gamma", "beta", "moving_mean", "moving_variance"),
                            2: ("moving_mean", "moving_variance")},
    "sync_batch_normalization": {4: ("gamma", "beta", "moving_mean", "moving_variance"),
                                 2: ("moving_mean", "moving_variance")},
    "normalization": {3: ("mean", "variance", "count")},
}
#: How many trailing variables never train, when the count alone does not name them all.
_TRAILING_NON_TRAINABLE = {"batch_normalization": 2, "sync_batch_normalization": 2}


def by_nature(stem: str, specs: list[WeightSpec]) -> tuple[WeightSpec, ...]:
    """Positional variables named and flagged after the class their group key names, where that is certain.

    BatchNormalization keeps (gamma, beta, moving_mean, moving_variance), the
    first two only with ``scale``/``center``: with four or two variables the
    names follow; with three, only that the last two are the moving statistics.
    """
    if not specs or not all(s.name.isdigit() for s in specs):
        return tuple(specs)
    names = _POSITIONAL_NAMES.get(stem, {}).get(len(specs))
    if names:
        return tuple(replace(s, name=n, trainable=n not in h5.NON_TRAINABLE_NAMES) for s, n in zip(specs, names))
    trailing = _TRAILING_NON_TRAINABLE.get(stem, 0)
    if trailing and len(specs) > trailing:
        return tuple(replace(s, trainable=i < len(specs) - trailing) for i, s in enumerate(specs))
    return tuple(specs)


def _has_real_names(node: h5.SaveableNode) -> bool:
    return any(item.real_name or _has_real_names(item) for item in node.layers)
