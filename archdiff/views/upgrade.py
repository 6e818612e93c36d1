"""Keras 2 (tf-keras) model configs rewritten as Keras 3 ones, in pure Python.

This module owns what ``archdiff export`` writes by default for a Keras 2 file
(and what :func:`archdiff.model_from_yaml` loads): a config that Keras 3's
``keras.models.model_from_json`` rebuilds with the same layers, classes and
weights. It does what Keras 3's own legacy HDF5 loader does when it reads a
Keras 2 file (``keras/src/legacy/saving/saving_utils.py``: ``batch_input_shape``,
a one-element ``axis`` list, the Lambda layout) and goes further where that
loader fails on real tf-keras files:

* at every nesting level, not only the top: nested models, Sequential layers;
* the model classes get their Keras 3 ``module`` (``Could not locate class
  'Functional'`` otherwise);
* calls are written in Keras 3's ``{"args", "kwargs"}`` form, tensors in
  keyword arguments included (Keras 3 reads Keras 2's list form but passes its
  keyword tensors on as lists), and references to a nested model count its
  calls as Keras 3 does (tf-keras counts the nested model's own graph as node 0);
* layer names with ``/`` (DenseNet's ``conv1/conv``; Keras 3 forbids the
  character) become ``_``, as Keras 3's own DenseNet names them;
* tf-keras' application classes that Keras 3 also ships (``LayerScale``,
  ``CustomScaleLayer``) are mapped when their configs agree, and TFOpLambda
  calls of arithmetic operators become the Keras 3 operations that the same
  Python code builds there (``x + y`` is ``keras.src.ops.numpy.Add``).

What has no exact Keras 3 equivalent is refused with one error that names
every such layer (:class:`~archdiff.errors.NotConvertibleError`); a class
archdiff does not know is kept under its name for ``custom_objects``. Nothing
here imports Keras or runs code from the file: a Lambda's code is moved, never
loaded, and Keras' safe mode still refuses it when the result is loaded.

Each rewrite is counted in :attr:`Upgraded.notes`, so a user sees what changed. The tables of what
differs between the two Kerases are data in :mod:`archdiff.views.upgrade_rules`.
"""
from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from archdiff.errors import NotConvertibleError
from archdiff.names import registered_class
from archdiff.views.upgrade_rules import (
    APPLICATION_LAYERS,
    BASE_LAYER_KEYS,
    CHANGED_ACTIVATIONS,
    KERAS2_ONLY_LAYERS,
    KERAS3_LAYERS,
    KEYS_DROPPED,
    LAMBDA_KEYS_DROPPED,
    LAYER_KEYS,
    MODEL_CLASSES,
    NO_VALUE,
    OPERATORS,
    TARGET_KERAS_VERSION,
    UNARY_OPERATORS,
)

#: ``(parent_path, layer_name, tensor_index, node_index) -> (shape, dtype)`` of a layer's output, or None.
ShapeLookup = Callable[[str, str, int, int], "tuple[list, str] | None"]


@dataclass(frozen=True)
class Upgraded:
    """A Keras 2 config rewritten for Keras 3, and what was rewritten."""

    document: dict
    #: ``(path, new_name)`` for every layer renamed (paths as in the source).
    renames: tuple[tuple[str, str], ...] = ()
    #: One line per kind of rewrite, with its count.
    notes: tuple[str, ...] = ()
    #: Classes kept under their own name: Keras 3 needs them in ``custom_objects``.
    custom_classes: tuple[str, ...] = field(default=())


def _is_ref(obj: Any) -> bool:
    """Keras 2's tensor reference: ``[layer, node, tensor]`` (tf-keras' ``_is_serialized_node_data``)."""
    return (isinstance(obj, list) and len(obj) in (3, 4) and isinstance(obj[0], str)
            and type(obj[1]) is int and type(obj[2]) is int and (len(obj) == 3 or isinstance(obj[3], dict)))


def _is_constant(obj: Any) -> bool:
    return (isinstance(obj, list) and len(obj) in (3, 4) and obj[0] == "_CONSTANT_VALUE" and obj[1] == -1
            and isinstance(obj[2], (int, float)) and not isinstance(obj[2], bool))


def _compute_dtype(dtype: Any) -> str:
    name = dtype if isinstance(dtype, str) else None
    if isinstance(dtype, Mapping) and isinstance(dtype.get("config"), Mapping):
        name = dtype["config"].get("name")
    if not isinstance(name, str):
        return "float32"
    return name.split("_", 1)[1] if name.startswith("mixed_") else name


class _Upgrader:
    def __init__(self, shapes: ShapeLookup | None, where: str):
        self.shapes = shapes
        self.where = where
        self.counts: Counter = Counter()
        self.renames: list[tuple[str, str]] = []
        self.refusals: list[str] = []
        self.custom: dict[str, None] = {}
        self.list_form_calls = 0

    # -- models --------------------------------------------------------------
    def model(self, entry: Mapping, parent: str, path: str) -> dict:
        class_name = entry.get("class_name")
        config = entry.get("config")
        if not isinstance(config, Mapping) or not isinstance(config.get("layers"), list):
            raise NotConvertibleError(f"model '{path or class_name}' has no 'layers' list to convert",
                                      path=self.where)
        sequential = class_name == "Sequential" or "input_layers" not in config
        body = self.sequential(config, path) if sequential else self.functional(config, path)
        if class_name in ("Functional", "Model"):
            if class_name == "Model":
                self.counts["class 'Model' written as Keras 3's 'Functional'"] += 1
            return {"module": "keras.src.models.functional", "class_name": "Functional", "config": body,
                    "registered_name": "Functional"}
        if class_name == "Sequential":
            return {"module": "keras", "class_name": "Sequential", "config": body, "registered_name": None}
        return self.custom_entry(class_name, entry, body)  # a subclass of Model with a functional config

    def custom_entry(self, class_name: str, entry: Mapping, body: dict) -> dict:
        self.custom[class_name] = None
        registered = entry.get("registered_name")
        if not isinstance(registered, str) or not registered:
            registered = class_name
        return {"class_name": class_name, "config": body, "registered_name": registered}

    def scope_names(self, entries: list, path: str) -> dict[str, str]:
        """Old name -> Keras 3 name for one model's layers; refuses two layers that would share a name."""
        names = []
        for entry in entries:
            name = _entry_name(entry)
            if name is not None:
                names.append(name)
        taken = {n for n in names if "/" not in n}
        mapping = {}
        for name in names:
            if "/" not in name:
                continue
            new = name.replace("/", "_")
            if new in taken:
                raise NotConvertibleError(
                    f"layer '{name}' would be renamed '{new}' (Keras 3 forbids '/' in names), but "
                    f"model '{path or '(top level)'}' already has a layer '{new}'",
                    path=self.where, hint="rename one of them in the source model, or export with --dialect source",
                )
            taken.add(new)
            mapping[name] = new
            self.renames.append((f"{path}/{name}" if path else name, new))
        return mapping

    def functional(self, config: Mapping, path: str) -> dict:
        entries = config["layers"]
        names = self.scope_names(entries, path)
        shifted = {_entry_name(e) for e in entries if isinstance(e, Mapping) and _counts_own_graph(e)}
        layers = []
        for entry in entries:
            if not isinstance(entry, Mapping):
                raise NotConvertibleError("a layer entry is not a mapping", path=self.where)
            old = _entry_name(entry) or ""
            refused = len(self.refusals)
            layer = self.layer(entry, path, names)
            layer["name"] = names.get(old, old)
            # Its calls build every layer of a Functional; tf-keras' build_config does not fit every Keras 3
            # class (MultiHeadAttention builds from three shapes).
            layer.pop("build_config", None)
            if len(self.refusals) > refused:
                # Refused anyway: its calls need not be converted (and may not be convertible).
                layer["inbound_nodes"] = copy.deepcopy(entry.get("inbound_nodes") or [])
            else:
                layer["inbound_nodes"] = [self.node(n, entry, path, names, shifted)
                                          for n in entry.get("inbound_nodes") or []]
            layers.append(layer)
        body = {k: copy.deepcopy(v) for k, v in config.items() if k not in ("layers", "input_layers", "output_layers")}
        body["name"] = config.get("name")
        body.setdefault("trainable", True)
        body["layers"] = layers
        # tf-keras unwraps one input or output (functional.py: ``outputs = outputs[0]``); Keras 3 writes it bare.
        ins = self.io(config.get("input_layers"), names, shifted, outputs=False, entries=entries)
        outs = self.io(config.get("output_layers"), names, shifted, outputs=True, entries=entries)
        body["input_layers"] = ins
        body["output_layers"] = outs
        return body

    def sequential(self, config: Mapping, path: str) -> dict:
        entries = config["layers"]
        names = self.scope_names(entries, path)
        layers = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                raise NotConvertibleError("a layer entry is not a mapping", path=self.where)
            inner = entry.get("config") if isinstance(entry.get("config"), Mapping) else {}
            if position == 0 and entry.get("class_name") != "InputLayer" and inner.get("batch_input_shape"):
                # Keras 2 declared the input on the first layer; Keras 3 wants an InputLayer (tf-keras'
                # own name for it, so the model's input keeps its name).
                first = names.get(_entry_name(entry) or "", _entry_name(entry) or "layer")
                layers.append({"module": "keras.layers", "class_name": "InputLayer", "config": {
                    "batch_shape": copy.deepcopy(inner["batch_input_shape"]),
                    "dtype": _input_dtype(inner.get("dtype")), "sparse": False, "ragged": False,
                    "name": f"{first}_input"}, "registered_name": None})
                self.counts["input declared on a Sequential's first layer written as an InputLayer"] += 1
            old = _entry_name(entry) or ""
            layer = self.layer(entry, path, names, drop_batch_input_shape=True)
            if old in names:
                layer["config"]["name"] = names[old]
            layers.append(layer)
        body = {k: copy.deepcopy(v) for k, v in config.items() if k != "layers"}
        body["layers"] = layers
        return body

    # -- layers --------------------------------------------------------------
    def layer(self, entry: Mapping, parent: str, names: Mapping[str, str], *,
              drop_batch_input_shape: bool = False) -> dict:
        class_name = entry.get("class_name")
        config = entry.get("config")
        old = _entry_name(entry) or ""
        path = f"{parent}/{old}" if parent else old
        if not isinstance(class_name, str) or not isinstance(config, Mapping):
            raise NotConvertibleError(f"layer '{path}' has no 'class_name' and 'config'", path=self.where)
        if class_name in MODEL_CLASSES and isinstance(config.get("layers"), list):
            out = self.model(entry, parent, path)
            new_name = names.get(old)
            if new_name:
                out["config"]["name"] = new_name
            self.keep_build_config(entry, out)
            return out
        if class_name == "TFOpLambda":
            return self.operator(entry, path)
        cfg = self.layer_config(class_name, dict(copy.deepcopy(config)), path, drop_batch_input_shape)
        if old in names:
            cfg["name"] = names[old]
        if class_name in KERAS3_LAYERS:
            out = {"module": "keras.layers", "class_name": class_name, "config": cfg, "registered_name": None}
        elif class_name in APPLICATION_LAYERS:
            out = self.application_layer(class_name, entry, cfg, path)
        elif class_name.startswith("Custom>") and registered_class(class_name) in APPLICATION_LAYERS:
            # tf-keras' .h5 writes its application classes under their registered name (InceptionResNetV2's
            # 'Custom>CustomScaleLayer'; its to_json() writes 'CustomScaleLayer').
            out = self.application_layer(registered_class(class_name), entry, cfg, path)
        elif class_name in KERAS2_ONLY_LAYERS:
            self.refusals.append(f"'{path}' ({class_name}: {KERAS2_ONLY_LAYERS[class_name]})")
            out = {"class_name": class_name, "config": cfg}
        else:
            out = self.custom_entry(class_name, entry, cfg)
        self.keep_build_config(entry, out)
        return out

    @staticmethod
    def keep_build_config(entry: Mapping, out: dict) -> None:
        build = entry.get("build_config")
        if isinstance(build, Mapping) and set(build) <= {"input_shape"}:
            out["build_config"] = copy.deepcopy(dict(build))

    def application_layer(self, class_name: str, entry: Mapping, cfg: dict, path: str) -> dict:
        module, keys = APPLICATION_LAYERS[class_name]
        source_module = entry.get("module")
        from_tf_keras_app = source_module is None or (
            isinstance(source_module, str) and source_module.endswith(module.split(".")[-1])
            and source_module.split(".")[0] in ("tf_keras", "keras"))
        extra = set(cfg) - BASE_LAYER_KEYS
        if from_tf_keras_app and extra == keys:
            self.counts[f"tf-keras application class '{class_name}' mapped to {module}.{class_name}"] += 1
            return {"module": module, "class_name": class_name, "config": cfg, "registered_name": class_name}
        if source_module is None or from_tf_keras_app:
            self.refusals.append(
                f"'{path}' ({class_name}: its config keys {sorted(extra)} differ from Keras 3's "
                f"{module}.{class_name} {sorted(keys)})")
            return {"class_name": class_name, "config": cfg}
        return self.custom_entry(class_name, entry, cfg)

    def layer_config(self, class_name: str, cfg: dict, path: str, drop_batch_input_shape: bool) -> dict:
        if "batch_input_shape" in cfg:
            shape = cfg.pop("batch_input_shape")
            if class_name == "InputLayer":
                cfg["batch_shape"] = shape
                self.counts["InputLayer 'batch_input_shape' renamed 'batch_shape'"] += 1
            elif not drop_batch_input_shape:
                self.counts["'batch_input_shape' of a layer that is not an input dropped (its calls fix its shape)"] += 1
        if class_name == "InputLayer":
            cfg.setdefault("sparse", False)
            cfg.setdefault("ragged", False)
        dtype = cfg.get("dtype")
        if isinstance(dtype, Mapping) and dtype.get("class_name") in ("Policy", "DTypePolicy"):
            inner = dtype.get("config") if isinstance(dtype.get("config"), Mapping) else {}
            cfg["dtype"] = {"module": "keras", "class_name": "DTypePolicy",
                            "config": {"name": inner.get("name", "float32")}, "registered_name": None}
            if dtype.get("class_name") == "Policy":
                self.counts["mixed-precision 'Policy' written as Keras 3's 'DTypePolicy'"] += 1
        if class_name == "BatchNormalization" and isinstance(cfg.get("axis"), list):
            axis = cfg["axis"]
            if len(axis) == 1 and type(axis[0]) is int:
                cfg["axis"] = axis[0]
                self.counts["BatchNormalization 'axis' list of one written as an integer"] += 1
            else:
                self.refusals.append(f"'{path}' (BatchNormalization over several axes {axis}: Keras 3 takes one)")
        if class_name == "Lambda":
            self.lambda_config(cfg)
        for classes, key, same, why in KEYS_DROPPED:
            if class_name not in classes or key not in cfg:
                continue
            value = cfg.pop(key)
            if same is NO_VALUE or value == same:
                self.counts[f"{class_name} '{key}' dropped ({why})"] += 1
            else:
                self.refusals.append(f"'{path}' ({class_name} {key}={value!r}: {why})")
        for key, value in list(cfg.items()):
            if key.endswith("activation") and isinstance(value, str) and value in CHANGED_ACTIVATIONS:
                self.refusals.append(f"'{path}' ({key} '{value}': {CHANGED_ACTIVATIONS[value]})")
            elif key in LAYER_KEYS and isinstance(value, Mapping) and isinstance(value.get("class_name"), str):
                cfg[key] = self.layer(value, path, {})
            elif key == "cells" and isinstance(value, list):
                cfg[key] = [self.layer(v, path, {}) if isinstance(v, Mapping) else v for v in value]
        return cfg

    def lambda_config(self, cfg: dict) -> None:
        """Keras 2's Lambda layout into Keras 3's, as ``saving_utils.model_from_config`` does; no code is run."""
        kinds = {"function": cfg.get("function_type"), "output_shape": cfg.get("output_shape_type"),
                 "mask": cfg.get("mask_type")}
        modules = {"function": cfg.get("module"), "output_shape": cfg.get("output_shape_module"),
                   "mask": cfg.get("mask_module")}
        for key in LAMBDA_KEYS_DROPPED + ("mask_type", "mask_module"):
            cfg.pop(key, None)
        for key in ("function", "output_shape", "mask"):
            value = cfg.get(key)
            if kinds[key] == "lambda" or (key == "function" and isinstance(value, list)):
                if isinstance(value, list) and len(value) == 3:
                    cfg[key] = {"class_name": "__lambda__",
                                "config": {"code": value[0], "defaults": value[1], "closure": value[2]}}
            elif kinds[key] == "function" and isinstance(value, str):
                module = modules[key] if isinstance(modules[key], str) else None
                cfg[key] = {"module": module, "class_name": "function", "config": value, "registered_name": value}
        if cfg.get("mask") is None:
            cfg.pop("mask", None)
        self.counts["Lambda written in Keras 3's layout (its code still needs safe_mode=False to load)"] += 1

    def operator(self, entry: Mapping, path: str) -> dict:
        config = entry.get("config") if isinstance(entry.get("config"), Mapping) else {}
        function = config.get("function")
        name = _entry_name(entry) or ""
        module, op = "keras.src.ops.numpy", OPERATORS.get(function) if isinstance(function, str) else None
        if isinstance(function, str) and function in UNARY_OPERATORS:
            module, op = UNARY_OPERATORS[function]
        if op is None:
            self.refusals.append(f"'{path}' (TFOpLambda of tf.{function}: no exact Keras 3 operation is mapped)")
            return {"class_name": "TFOpLambda", "config": dict(config)}
        self.counts[f"TFOpLambda tf.{function} written as the Keras 3 operation {op} (not a layer there)"] += 1
        return {"module": module, "class_name": op, "config": {"name": name}, "registered_name": op,
                "_operator": True}

    # -- calls ---------------------------------------------------------------
    def ref(self, ref: list, names: Mapping[str, str], shifted: set, *, output: bool = False,
            entries: list | None = None) -> list:
        layer, node, tensor = ref[0], ref[1], ref[2]
        if layer in shifted and node >= 1:
            # tf-keras counts a nested model's own graph as its node 0; Keras 3 counts calls from 0, except that
            # a Functional's output_layers still count from 1 (functional_from_config subtracts it).
            if not (output and _is_functional_entry(entries, layer)):
                node -= 1
        return [names.get(layer, layer), node, tensor]

    def io(self, structure: Any, names, shifted, *, outputs: bool, entries: list) -> Any:
        def walk(obj):
            if isinstance(obj, list) and len(obj) == 3 and isinstance(obj[0], str):
                return self.ref(obj, names, shifted, output=outputs, entries=entries)
            if isinstance(obj, list):
                return [walk(v) for v in obj]
            if isinstance(obj, dict):
                return {k: walk(v) for k, v in obj.items()}
            return obj

        out = walk(structure)
        if isinstance(out, list) and len(out) == 1 and isinstance(out[0], list) and len(out[0]) == 3 \
                and isinstance(out[0][0], str):
            return out[0]
        return out

    def node(self, node: Any, entry: Mapping, parent: str, names: Mapping[str, str], shifted: set) -> Any:
        """One Keras 2 call (``[[ref, ...]]`` or, for TFOpLambda, a bare ``ref``) in Keras 3's form."""
        path = f"{parent}/{_entry_name(entry)}" if parent else str(_entry_name(entry))
        is_op = entry.get("class_name") == "TFOpLambda"
        if is_op and _is_constant(node):
            # tf-keras' ``3.0 * y``: the first argument is a constant, ``[_CONSTANT_VALUE, -1, value, kwargs]``.
            kw = self.kwargs(node[3] if len(node) == 4 else {}, parent, names, shifted)
            kw = dict(kw) if isinstance(kw, dict) else {}
            kw.pop("name", None)
            y = kw.pop("y", None)
            if kw or _has_missing(y) or not _has_tensor(y):
                raise NotConvertibleError(f"layer '{path}' (TFOpLambda) is called on constants only or with "
                                          f"{sorted(kw)}, which is not converted", path=self.where,
                                          hint="export with --dialect source")
            return {"args": [copy.deepcopy(node[2]), y], "kwargs": {}}
        if _is_ref(node):
            refs = [node]
            single = True
        elif isinstance(node, list) and all(_is_ref(r) for r in node):
            refs = node
            single = len(node) == 1
        else:
            raise NotConvertibleError(f"layer '{path}' has a call that is not in Keras 2's form", path=self.where)
        kwargs = refs[-1][3] if refs and len(refs[-1]) == 4 else {}
        if any(r[0] == "_CONSTANT_VALUE" for r in refs):
            raise NotConvertibleError(f"layer '{path}' is called on a constant, which is not converted",
                                      path=self.where, hint="export with --dialect source")
        tensors = [self.tensor(r, parent, names, shifted) for r in refs]
        kw = self.kwargs(kwargs, parent, names, shifted)
        if is_op:
            kw = dict(kw)
            kw.pop("name", None)
            y = kw.pop("y", None)
            config = entry.get("config")
            function = config.get("function") if isinstance(config, Mapping) else None
            unary = isinstance(function, str) and function in UNARY_OPERATORS
            if kw or not single or unary and y is not None:
                raise NotConvertibleError(
                    f"layer '{path}' (TFOpLambda) is called with {sorted(kw) or 'several inputs'}, "
                    "which is not converted", path=self.where, hint="export with --dialect source")
            args = [tensors[0]] if unary else [tensors[0], y]
            kw = {}
        else:
            args = [tensors[0] if single else tensors]
        if any(t is None for t in tensors) or _has_missing(kw) or _has_missing(args):
            if is_op or _has_tensor(kw):
                raise NotConvertibleError(
                    f"layer '{path}': the shapes of its inputs are not known, so its call cannot be written "
                    "in Keras 3's form", path=self.where, hint="export with --dialect source")
            # Keras 3 still reads Keras 2's list form (functional.deserialize_node).
            self.list_form_calls += 1
            return [self.ref(r, names, shifted) + ([r[3]] if len(r) == 4 else []) for r in refs]
        return {"args": args, "kwargs": kw}

    def tensor(self, ref: list, parent: str, names, shifted) -> dict | None:
        new = self.ref(ref, names, shifted)
        # new[1]: the call's index (tf-keras counts a nested model's own graph as its node 0), as archdiff's
        # calls count them
        found = self.shapes(parent, ref[0], ref[2], new[1] if isinstance(new[1], int) else 0) \
            if self.shapes else None
        if found is None:
            return None
        shape, dtype = found
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(shape), "dtype": dtype, "keras_history": new}}

    def kwargs(self, value: Any, parent: str, names, shifted) -> Any:
        if _is_ref(value) and len(value) == 3:
            found = self.tensor(value, parent, names, shifted)
            return found if found is not None else _MISSING
        if isinstance(value, dict):
            return {k: self.kwargs(v, parent, names, shifted) for k, v in value.items()}
        if isinstance(value, list):
            return [self.kwargs(v, parent, names, shifted) for v in value]
        return value


_MISSING = {"class_name": "__keras_tensor__", "config": None}


def _has_missing(obj: Any) -> bool:
    if obj is _MISSING:
        return True
    if isinstance(obj, dict):
        return any(_has_missing(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_missing(v) for v in obj)
    return False


def _has_tensor(obj: Any) -> bool:
    if isinstance(obj, dict):
        return obj.get("class_name") == "__keras_tensor__" or any(_has_tensor(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_has_tensor(v) for v in obj)
    return False


def _entry_name(entry: Any) -> str | None:
    if not isinstance(entry, Mapping):
        return None
    name = entry.get("name")
    if not isinstance(name, str):
        config = entry.get("config")
        name = config.get("name") if isinstance(config, Mapping) else None
    return name if isinstance(name, str) else None


def _input_dtype(dtype: Any) -> str:
    """The dtype of the input tf-keras made for a Sequential's first layer: the layer's variable dtype."""
    name = _compute_dtype(dtype) if dtype is not None else "float32"
    return "float32" if isinstance(dtype, (str, Mapping)) and "mixed_" in str(dtype) else name


def _counts_own_graph(entry: Mapping) -> bool:
    """tf-keras numbers a nested model's calls from 1 (archdiff.read.config does the same for reading)."""
    config = entry.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("layers"), list):
        return False
    if entry.get("class_name") != "Sequential":
        return True
    first = config["layers"][0] if config["layers"] else None
    return isinstance(first, Mapping) and first.get("class_name") == "InputLayer"


def _is_functional_entry(entries: list | None, name: str) -> bool:
    for entry in entries or ():
        if _entry_name(entry) == name:
            return entry.get("class_name") != "Sequential"
    return False


def _strip_markers(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_markers(v) for k, v in obj.items() if k != "_operator"}
    if isinstance(obj, list):
        return [_strip_markers(v) for v in obj]
    return obj


def upgrade_config(serialized: Mapping, *, shapes: ShapeLookup | None = None, where: str = "<config>",
                   backend: str | None = None) -> Upgraded:
    """Rewrite a Keras 2 ``{"class_name", "config"}`` model for Keras 3.

    ``shapes`` gives each referenced tensor's shape and dtype, which Keras 3's
    call form records; a call whose shapes are unknown stays in Keras 2's list
    form, which Keras 3 also reads. Raises :class:`NotConvertibleError` naming
    every layer that has no exact Keras 3 equivalent.
    """
    up = _Upgrader(shapes, where)
    if serialized.get("class_name") not in MODEL_CLASSES and not isinstance(
            (serialized.get("config") or {}).get("layers"), list):
        raise NotConvertibleError(f"class '{serialized.get('class_name')}' is not a model with layers",
                                  path=where, hint="export with --dialect source")
    document = up.model(serialized, "", "")
    if up.refusals:
        shown = "; ".join(up.refusals[:8]) + (f"; and {len(up.refusals) - 8} more" if len(up.refusals) > 8 else "")
        raise NotConvertibleError(
            f"no exact Keras 3 equivalent for {len(up.refusals)} layer(s): {shown}", path=where,
            hint="rebuild those layers in Keras 3 code, or export with --dialect source to keep the Keras 2 config")
    document = _strip_markers(document)
    document["keras_version"] = TARGET_KERAS_VERSION
    document["backend"] = backend or "tensorflow"
    notes = [f"{text} ({n}x)" if n > 1 else text for text, n in sorted(up.counts.items())]
    if up.renames:
        shown = ", ".join(f"{old} -> {new}" for old, new in up.renames[:3])
        more = f", and {len(up.renames) - 3} more" if len(up.renames) > 3 else ""
        notes.append(f"{len(up.renames)} layer name(s) with '/' renamed with '_' (Keras 3 forbids '/'): {shown}{more}")
    if up.list_form_calls:
        notes.append(f"{up.list_form_calls} call(s) kept in Keras 2's list form (their input shapes are unknown); "
                     "Keras 3 reads it")
    if up.custom:
        notes.append("custom class(es) kept under their own name, pass them to custom_objects: "
                     + ", ".join(sorted(up.custom)))
    return Upgraded(document=document, renames=tuple(up.renames), notes=tuple(notes),
                    custom_classes=tuple(sorted(up.custom)))


def architecture_shapes(arch) -> ShapeLookup:
    """A :data:`ShapeLookup` over the output shapes archdiff read or inferred for ``arch``.

    archdiff knows a layer's outputs for its first call; a shared layer's other
    calls have the same shapes when that call's inputs have the first call's
    shapes (an output shape is a function of the config and the input shapes),
    and are unknown otherwise. Each call is judged on its own inputs, followed
    through the node index of each reference, so a layer called on its own
    output (``d(d(x))``) is known when the shapes agree.
    """
    table: dict[tuple[str, str], Any] = {(layer.parent, layer.name): layer for layer in arch.layers}
    memo: dict[tuple[str, str, int], Any] = {}

    def inputs_of(layer, node: int, depth: int):
        return tuple(shape_of(layer.parent, r.layer, r.node_index, r.tensor_index, depth + 1)
                     for r in layer.calls[node].inputs)

    def node_agrees(layer, node: int, depth: int) -> bool:
        """Whether call ``node`` of ``layer`` has its first call's input shapes (so its output shapes)."""
        key = (layer.parent, layer.name, node)
        if key not in memo:
            memo[key] = False  # a reference back to itself (refused by the reader anyway) counts as unknown
            if depth > 200 or node >= len(layer.calls):
                return False
            first = inputs_of(layer, 0, depth)
            memo[key] = None not in first and inputs_of(layer, node, depth) == first
        return bool(memo[key])

    def shape_of(parent: str, name: str, node: int, index: int, depth: int = 0):
        layer = table.get((parent, name))
        if layer is None or not layer.output_shapes or index >= len(layer.output_shapes):
            return None
        if node > 0 and not node_agrees(layer, node, depth):
            return None
        shape = layer.output_shapes[index]
        return shape if isinstance(shape, tuple) else None

    def lookup(parent: str, name: str, index: int, node: int = 0):
        shape = shape_of(parent, name, node, index)
        if shape is None:
            return None
        config = table[(parent, name)].config
        dtype = config.get("dtype") if isinstance(config, Mapping) else None
        return list(shape), _compute_dtype(dtype)

    return lookup


def upgrade_architecture(arch) -> Upgraded:
    """:func:`upgrade_config` of an Architecture's config, with the shapes archdiff knows for it."""
    return upgrade_config(arch.config, shapes=architecture_shapes(arch), where=arch.source.path,
                          backend=arch.source.backend)
