"""A keras-hub preset directory, read like a model file: ``config.json``, ``metadata.json``, ``model.weights.h5``.

``backbone.save_to_preset(folder)`` writes the model's config (the same
document as a ``.keras`` zip's ``config.json``), ``metadata.json`` (Keras
and keras-hub versions, ``parameter_count``) and the weights as a Keras 3
``.weights.h5``; a task preset adds ``task.json`` and tokenizer assets. The
backbone is read: its architecture from ``config.json``, its weights from
``model.weights.h5`` (or, for a backbone saved in shards, ``model.weights.json`` and its shards), in place.
The Architecture's source is the weights file
(so weight values are read from it, as from any ``.weights.h5``), labelled
with the folder. Nothing is downloaded; a preset name (``bert_base_en``) is
not a folder and is not looked up.
"""
from __future__ import annotations

import os
from dataclasses import replace

from archdiff.errors import InputError
from archdiff.model import Architecture
from archdiff.read import hdf5 as h5
from archdiff.read.assemble import architecture
from archdiff.read.config import parse
from archdiff.read.documents import parse_json_bytes, read_bounded

CONFIG, METADATA, WEIGHTS, SHARDED, TASK = ("config.json", "metadata.json", "model.weights.h5", "model.weights.json",
                                            "task.json")


def is_preset(folder: str) -> bool:
    """A folder holding a keras-hub preset's ``config.json``."""
    return os.path.isfile(os.path.join(folder, CONFIG))


def read_preset(folder: str) -> Architecture:
    config_path = os.path.join(folder, CONFIG)
    document = parse_json_bytes(read_bounded(config_path), where=config_path)
    metadata: dict = {}
    meta_path = os.path.join(folder, METADATA)
    if os.path.isfile(meta_path):
        meta = parse_json_bytes(read_bounded(meta_path), where=meta_path)
        metadata = meta if isinstance(meta, dict) else {}
    parsed = parse(document, where=config_path)
    version = metadata.get("keras_version") if isinstance(metadata.get("keras_version"), str) else None
    if version:
        parsed = replace(parsed, keras_version=version, dialect="keras2" if version.startswith("2.") else "keras3")
    notes = []
    if os.path.isfile(os.path.join(folder, TASK)):
        notes.append(f"the preset also holds {TASK} (a task on this backbone): the backbone is read, not the task")
    weights_path = os.path.join(folder, WEIGHTS)
    if os.path.isfile(weights_path):
        with h5.open_h5(weights_path, where=weights_path) as f:
            tree = h5.read_keras3_tree([f], where=weights_path)
        arch = architecture(parsed, path=weights_path, fmt="preset", weights=("keras3", tree))
    elif os.path.isfile(os.path.join(folder, SHARDED)):
        # save_to_preset shards a backbone larger than max_shard_size: an index and its shards, read (and
        # written, by transfer) as any Keras 3 sharded weights file.
        from archdiff.read.keras3_h5 import sharded_tree

        index_path = os.path.join(folder, SHARDED)
        index = parse_json_bytes(read_bounded(index_path), where=index_path)
        if not isinstance(index, dict):
            raise InputError("the sharded weights index is not a mapping", path=index_path)
        tree = sharded_tree(index_path, index)
        arch = architecture(parsed, path=index_path, fmt="weights.json", weights=("keras3", tree))
    else:
        arch = architecture(parsed, path=config_path, fmt="json", weights=None)
    count = metadata.get("parameter_count")
    if type(count) is int:
        counts = arch.param_counts()
        if counts is not None and counts.total != count:
            notes.append(f"metadata.json says {count:,} parameters, the weights hold {counts.total:,}")
    return replace(arch, source=replace(arch.source, label=folder), notes=arch.notes + tuple(notes))
