"""A keras-hub preset directory, read like a model file: ``config.json``, ``metadata.json``, ``model.weights.h5``.

A *task* preset (``task.save_to_preset(folder)``: ``task.json`` beside the
backbone's files, and ``task.weights.h5`` when the task has weights of its
own) is read as the task: its constructor config from ``task.json``, its
weights from both files, the backbone's mounted where Keras' own
``task.save_weights`` puts them (``layers/<the backbone class, snake case>/``:
the key Keras' saving code gives the backbone in the task's ``layers``).
``tests/test_keras_hub_task.py`` holds that merged tree equal, dataset by
dataset, to the file keras-hub's ``save_weights`` writes for the same task.

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
TASK_WEIGHTS = "task.weights.h5"


def _present(path: str) -> bool:
    """Whether the preset holds ``path`` as a regular file; a name there that is something else (a FIFO, a
    device, a folder, a dangling link) is refused, never read as absent: a task or weights file skipped
    without a word would make every answer about the preset wrong."""
    if os.path.isfile(path):
        return True
    if os.path.lexists(path):
        raise InputError(f"'{os.path.basename(path)}' in the preset is not a regular file", path=path,
                         hint="a keras-hub preset folder holds its config and weights as plain files")
    return False


def is_preset(folder: str) -> bool:
    """A folder holding a keras-hub preset's ``config.json``."""
    return os.path.isfile(os.path.join(folder, CONFIG))


def read_preset(folder: str) -> Architecture:
    if _present(os.path.join(folder, TASK)):
        return read_task_preset(folder)
    return _read_backbone(folder)


def _parsed_with_metadata(folder: str, document, *, where: str):
    """``(the parsed config, metadata.json's mapping or {})``, the config labelled with metadata's Keras version."""
    metadata: dict = {}
    meta_path = os.path.join(folder, METADATA)
    if _present(meta_path):
        meta = parse_json_bytes(read_bounded(meta_path), where=meta_path)
        metadata = meta if isinstance(meta, dict) else {}
    parsed = parse(document, where=where)
    version = metadata.get("keras_version") if isinstance(metadata.get("keras_version"), str) else None
    if version:
        parsed = replace(parsed, keras_version=version, dialect="keras2" if version.startswith("2.") else "keras3")
    return parsed, metadata


def _read_backbone(folder: str) -> Architecture:
    config_path = os.path.join(folder, CONFIG)
    document = parse_json_bytes(read_bounded(config_path), where=config_path)
    parsed, metadata = _parsed_with_metadata(folder, document, where=config_path)
    notes: list[str] = []
    weights_path = os.path.join(folder, WEIGHTS)
    if _present(weights_path):
        with h5.open_h5(weights_path, where=weights_path) as f:
            tree = h5.read_keras3_tree([f], where=weights_path)
        arch = architecture(parsed, path=weights_path, fmt="preset", weights=("keras3", tree))
    elif _present(os.path.join(folder, SHARDED)):
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


def backbone_key(task_document, *, where: str) -> str:
    """The group key of the backbone in a task's weights: Keras' snake case of the backbone's class.

    Keras' ``_save_container_state`` keys each item of ``layers`` by its
    class in snake case, numbered from the second of a class on; a keras-hub
    task holds one backbone, so its key is the plain snake case.
    """
    from archdiff.names import snake_case

    config = task_document.get("config") if isinstance(task_document, dict) else None
    backbone = config.get("backbone") if isinstance(config, dict) else None
    class_name = backbone.get("class_name") if isinstance(backbone, dict) else None
    if not isinstance(class_name, str) or not snake_case(class_name):
        raise InputError(f"{TASK} names no backbone class (config.backbone.class_name)", path=where,
                         hint="a keras-hub task preset's task.json holds its backbone's config")
    return snake_case(class_name)


def task_files(folder: str) -> tuple[str | None, str | None]:
    """``(task.weights.h5 or None, the backbone's weights file or None)`` of a task preset folder."""
    task = os.path.join(folder, TASK_WEIGHTS)
    for name in (WEIGHTS, SHARDED):
        backbone = os.path.join(folder, name)
        if _present(backbone):
            break
    else:
        backbone = None
    return (task if _present(task) else None), backbone


def _prefixed(node: h5.SaveableNode, prefix: str) -> h5.SaveableNode:
    """``node`` with every path and dataset location under ``prefix`` (a copy; the tree read is not changed)."""
    def moved(item: h5.SaveableNode) -> h5.SaveableNode:
        layers = [moved(x) for x in item.layers]
        return h5.SaveableNode(
            key=item.key, path=f"{prefix}/{item.path}" if item.path else prefix, real_name=item.real_name,
            variables=[h5.VarInfo(v.name, v.shape, v.dtype, f"{prefix}/{v.location.lstrip('/')}")
                       for v in item.variables],
            layers=layers, objects={k: moved(v) for k, v in item.objects.items()},
            layer_index={x.key: x for x in layers})
    return moved(node)


def _is_input_group(node: h5.SaveableNode) -> bool:
    """A weightless ``input_layer`` group (Keras' key for an ``InputLayer``)."""
    import re

    return (re.fullmatch(r"input_layer(_\d+)?", node.key) is not None and not node.layers and not node.objects
            and not node.variables)


def task_document(folder: str) -> tuple[dict, str, str | None]:
    """``(task.json's document, the backbone's key in the task's weights, the backbone's name or None)``."""
    task_json = os.path.join(folder, TASK)
    document = parse_json_bytes(read_bounded(task_json), where=task_json)
    key = backbone_key(document, where=task_json)
    backbone_conf = document["config"]["backbone"].get("config")
    name = backbone_conf.get("name") if isinstance(backbone_conf, dict) else None
    return document, key, name if isinstance(name, str) else None


def task_tree(folder: str, *, files: tuple[str | None, str | None] | None = None) -> h5.SaveableNode:
    """The task's weights as one Keras 3 tree: ``task.weights.h5`` with the backbone's mounted at ``layers/<key>``.

    ``files``: ``(task weights, backbone weights)`` to read instead of the folder's own (a transfer's copies).
    """
    _, key, backbone_name = task_document(folder)
    task_path, backbone_path = files if files is not None else task_files(folder)
    if task_path is not None:
        with h5.open_h5(task_path, where=task_path) as f:
            root = h5.read_keras3_tree([f], where=task_path)
    else:
        root = h5.SaveableNode(key="", path="", real_name=None)
    if backbone_path is None:
        return root
    if backbone_path.endswith(SHARDED):
        from archdiff.read.keras3_h5 import sharded_tree

        index = parse_json_bytes(read_bounded(backbone_path), where=backbone_path)
        if not isinstance(index, dict):
            raise InputError("the sharded weights index is not a mapping", path=backbone_path)
        backbone = sharded_tree(backbone_path, index)
    else:
        with h5.open_h5(backbone_path, where=backbone_path) as f:
            backbone = h5.read_keras3_tree([f], where=backbone_path)
    if key in root.layer_index:
        raise InputError(f"{TASK_WEIGHTS} already holds 'layers/{key}', where the backbone's weights belong",
                         path=task_path, hint="the task's own weights file should leave the backbone out, "
                         "as keras-hub's save_task_weights does")
    mounted = _prefixed(backbone, f"layers/{key}")
    # keras-hub builds every task on backbone.input, so the backbone's input layers come first in the task's
    # layers and Keras' save_weights keeps them at the task's level (weightless groups: only where they are
    # listed changes). They are listed there too, by their real names; --build shows Keras' own order.
    inputs = [x for x in mounted.layers if _is_input_group(x) and x.real_name
              and x.key not in root.layer_index]
    inner = [x for x in mounted.layers if not any(x is i for i in inputs)]
    mounted = h5.SaveableNode(key=key, path=mounted.path, real_name=backbone_name, variables=mounted.variables,
                              layers=inner, objects=mounted.objects, layer_index={x.key: x for x in inner})
    layers = sorted([*root.layers, *inputs, mounted], key=lambda x: h5.natural_key(x.key))
    return h5.SaveableNode(key=root.key, path=root.path, real_name=root.real_name, variables=root.variables,
                           layers=layers, objects=root.objects, layer_index={x.key: x for x in layers})


def read_task_preset(folder: str) -> Architecture:
    """A task preset as the task: ``task.json``'s config, the weights of ``task.weights.h5`` and the backbone."""
    task_json = os.path.join(folder, TASK)
    document, key, _ = task_document(folder)
    # metadata.json is the backbone's (its parameter_count is the backbone's): only its Keras version is used.
    parsed, _ = _parsed_with_metadata(folder, document, where=task_json)
    task_path, backbone_path = task_files(folder)
    notes = [f"a keras-hub task preset: the task from {TASK}"
             + (f" and {TASK_WEIGHTS}" if task_path else f" (it has no {TASK_WEIGHTS}: no weights of its own)")
             + (f", its backbone's weights from {os.path.basename(backbone_path)} at layers/{key}"
                if backbone_path else f"; the folder holds no backbone weights ({WEIGHTS})")]
    if task_path is None and backbone_path is None:
        arch = architecture(parsed, path=task_json, fmt="json", weights=None)
    else:
        tree = task_tree(folder)
        arch = architecture(parsed, path=folder, fmt="task-preset", weights=("keras3", tree))
    return replace(arch, source=replace(arch.source, label=folder), notes=arch.notes + tuple(notes))
