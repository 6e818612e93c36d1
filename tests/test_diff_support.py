"""Builders of small Keras 3 model configs (plain JSON, no Keras) for the diff and matching tests.

Imported by the test_diff*, test_matching*, test_policy* and test_git* modules;
holds no tests itself.
"""
from __future__ import annotations

import json
from pathlib import Path

from archdiff.read import load

DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def tensor(source: str, node: int = 0, index: int = 0) -> dict:
    return {"class_name": "__keras_tensor__",
            "config": {"shape": None, "dtype": "float32", "keras_history": [source, node, index]}}


def layer(class_name: str, name: str, inputs: list[str] | None, **config) -> dict:
    """One Keras 3 layer entry; ``inputs`` are producer names (one call), None for an InputLayer."""
    cfg = {"name": name, "trainable": True, "dtype": dict(DTYPE), **config}
    entry = {"module": "keras.layers", "class_name": class_name, "config": cfg, "registered_name": None,
             "name": name, "inbound_nodes": []}
    if inputs is not None:
        args = [tensor(inputs[0])] if len(inputs) == 1 else [[tensor(i) for i in inputs]]
        entry["inbound_nodes"] = [{"args": args, "kwargs": {}}]
    return entry


def input_layer(name: str, shape: list) -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": name,
            "config": {"batch_shape": [None, *shape], "dtype": "float32", "sparse": False, "name": name},
            "inbound_nodes": []}


def dense(name: str, units: int, source: str, activation: str = "linear", **extra) -> dict:
    init = {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None},
            "registered_name": None}
    zeros = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}
    return layer("Dense", name, [source], units=units, activation=activation, use_bias=True,
                 kernel_initializer=init, bias_initializer=zeros, kernel_regularizer=None,
                 bias_regularizer=None, kernel_constraint=None, bias_constraint=None, **extra)


def model(layers: list[dict], inputs: list[str], outputs: list[str], name: str = "model") -> dict:
    return {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": name, "trainable": True, "layers": layers,
                       "input_layers": [[i, 0, 0] for i in inputs] if len(inputs) > 1 else [inputs[0], 0, 0],
                       "output_layers": [[o, 0, 0] for o in outputs] if len(outputs) > 1 else [outputs[0], 0, 0]},
            "keras_version": "3.15.1", "backend": "tensorflow"}


def mlp(units: list[int], *, names: list[str] | None = None, input_dim: int = 16, name: str = "mlp") -> dict:
    """Input -> Dense(u) for u in units; Keras auto names unless ``names`` is given."""
    names = names or (["dense"] + [f"dense_{i}" for i in range(1, len(units))])
    layers = [input_layer("input_layer", [input_dim])]
    prev = "input_layer"
    for n, u in zip(names, units):
        layers.append(dense(n, u, prev, activation="relu"))
        prev = n
    return model(layers, ["input_layer"], [prev], name=name)


def save(doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(doc))
    return path


def arch(doc: dict, tmp_path: Path, name: str = "model.json"):
    """Write ``doc`` and read it back as archdiff does (weights inferred from the config)."""
    return load(save(doc, tmp_path / name))
