"""Model configs (Keras 2 and Keras 3 dialects) into flat, ordered layers.

This module owns the reading of a serialized model config (what ``to_json``,
``get_config`` and the ``model_config`` attribute hold) into
:class:`~archdiff.model.Layer` records, without Keras. It knows both call
dialects: Keras 3 ``{"args": [...], "kwargs": {...}}`` with
``__keras_tensor__`` objects, and Keras 2 nested lists
``[["layer", node, tensor, {kwargs}], ...]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from archdiff.errors import InputError, LimitExceededError
from archdiff.limits import MAX_LAYERS, MAX_MODEL_DEPTH
from archdiff.model import MODEL_CLASSES, Call, InputSpec, Layer, TensorRef
from archdiff.names import is_operation_module, registered_class


@dataclass(frozen=True)
class ParsedConfig:
    name: str
    class_name: str
    layers: tuple[Layer, ...]
    inputs: tuple[TensorRef, ...]
    outputs: tuple[TensorRef, ...]
    input_specs: tuple[InputSpec, ...]
    has_topology: bool
    dialect: str
    keras_version: str | None
    backend: str | None
    #: The serialized model: ``{"class_name": ..., "config": {...}}``.
    serialized: dict


def unwrap(document: Any, *, where: str) -> tuple[dict, str | None, str | None]:
    """Return ``(serialized_model, keras_version, backend)`` from a document.

    Accepts the ``to_json`` wrapper, a ``{"class_name", "config"}`` dict, and a
    bare ``get_config()`` dict (``name`` + ``layers``).
    """
    if not isinstance(document, dict):
        raise InputError(
            f"expected a Keras model config (a mapping), found {type(document).__name__}",
            path=where,
            hint="pass a file written by model.to_json(), model.get_config() or model.save()",
        )
    version = document.get("keras_version")
    backend = document.get("backend")
    if "class_name" in document and isinstance(document.get("config"), dict):
        return document, _str_or_none(version), _str_or_none(backend)
    if isinstance(document.get("layers"), list):
        class_name = "Functional" if "input_layers" in document else "Sequential"
        return {"class_name": class_name, "config": document}, None, None
    if "model_config" in document:  # a JSON dump of an .h5's attributes
        return unwrap(document["model_config"], where=where)
    raise InputError(
        "this is not a Keras model config: no 'class_name'/'config' and no 'layers'",
        path=where,
        hint="pass a file written by model.to_json() or json.dumps(model.get_config())",
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse(document: Any, *, where: str) -> ParsedConfig:
    """Parse a model config document into a :class:`ParsedConfig`."""
    serialized, version, backend = unwrap(document, where=where)
    class_name = serialized.get("class_name")
    config = serialized.get("config")
    if not isinstance(class_name, str) or not isinstance(config, dict):
        raise InputError("model config has no 'class_name' string and 'config' mapping", path=where)
    name = config.get("name") if isinstance(config.get("name"), str) else class_name
    if not isinstance(config.get("layers"), list):
        # A subclassed model: its config says nothing about its layers.
        return ParsedConfig(
            name=name, class_name=class_name, layers=(), inputs=(), outputs=(),
            input_specs=(), has_topology=False, dialect=_dialect_of(serialized, version),
            keras_version=version, backend=backend, serialized=serialized,
        )
    builder = _Builder(where)
    inputs, outputs, specs = builder.expand(class_name, config, parent="", depth=0)
    dialect = _dialect_of(serialized, version)
    layers = builder.layers
    if dialect == "keras2":
        layers, outputs = _renumber_keras2_model_calls(layers, outputs)
    else:
        layers = _mark_unlabelled_operations(layers)
    check_graph(layers, where=where)
    return ParsedConfig(
        name=name,
        class_name=class_name,
        layers=tuple(layers),
        inputs=inputs,
        outputs=outputs,
        input_specs=specs,
        has_topology=True,
        dialect=dialect,
        keras_version=version,
        backend=backend,
        serialized=serialized,
    )


def _looks_like_operation(layer: Layer) -> bool:
    """A Keras 3 entry written without its ``module`` (legacy ``.h5``): an operation's config has no
    ``trainable`` and no ``dtype``, which every Layer's config has (InputLayer: ``dtype``)."""
    if layer.is_operation or layer.module is not None or layer.is_model or layer.class_name == "InputLayer":
        return layer.is_operation
    return "trainable" not in layer.config and "dtype" not in layer.config


def _mark_unlabelled_operations(layers: list[Layer]) -> list[Layer]:
    """Mark the operations a Keras 3 ``.h5`` config names without a module, and index the rest as Keras does."""
    if not any(_looks_like_operation(layer) and not layer.is_operation for layer in layers):
        return layers
    out = []
    next_index: dict[str, int] = {}
    for layer in layers:
        operation = _looks_like_operation(layer)
        index = None
        if not operation:
            index = next_index.get(layer.parent, 0)
            next_index[layer.parent] = index + 1
        out.append(_replace(layer, is_operation=operation, index=index))
    return out


def _counts_own_graph_as_node_zero(layer: Layer) -> bool:
    """tf-keras numbers a nested model's calls from 1: its own graph is node 0.

    That holds for a Functional model, and for a Sequential built on an
    InputLayer (``_should_skip_first_node``): one listed first, or the one
    tf-keras makes from the first layer's ``batch_input_shape`` when it
    rebuilds the Sequential; Keras 3 counts calls from 0.
    """
    if not layer.is_model:
        return False
    if layer.class_name != "Sequential":
        return True
    entries = layer.config.get("layers")
    first = entries[0] if isinstance(entries, list) and entries else None
    if not isinstance(first, dict):
        return False
    return first.get("class_name") == "InputLayer" or (
        isinstance(first.get("config"), dict) and first["config"].get("batch_input_shape") is not None)


def _renumber_keras2_model_calls(layers: list[Layer], outputs: tuple[TensorRef, ...]):
    """Make references to nested models count their calls from 0, as Keras 3 does."""
    from dataclasses import replace

    shifted = {layer.path for layer in layers if _counts_own_graph_as_node_zero(layer)}
    if not shifted:
        return layers, outputs

    def fix(ref: TensorRef, scope: str) -> TensorRef:
        path = f"{scope}/{ref.layer}" if scope else ref.layer
        if path in shifted and ref.node_index >= 1:
            return TensorRef(ref.layer, ref.node_index - 1, ref.tensor_index)
        return ref

    out = []
    for layer in layers:
        calls = tuple(replace(c, inputs=tuple(fix(r, layer.parent) for r in c.inputs)) for c in layer.calls)
        changes = {"calls": calls}
        if layer.is_model:
            changes["model_outputs"] = tuple(fix(r, layer.path) for r in layer.model_outputs)
        out.append(replace(layer, **changes))
    return out, tuple(fix(r, "") for r in outputs)


def check_graph(layers: list[Layer], *, where: str) -> None:
    """Every layer path is unique, and no call depends on its own output (the graph is acyclic).

    A layer may be called on its own earlier output (a shared layer applied
    twice); what cannot be is a call that needs, through any chain of calls,
    its own result. Checked on calls, ``(layer, call index)``, as Keras numbers
    them in a config.
    """
    seen: dict[str, Layer] = {}
    for layer in layers:
        if layer.path in seen:
            raise InputError(
                f"two layers have the path '{layer.path}' (a layer named with '/' next to a nested model's layer)",
                path=where, hint="rename the layer: Keras 3 forbids '/' in layer names")
        seen[layer.path] = layer
    # Node (scope, layer, call) -> the nodes its inputs come from, within one model.
    deps: dict[tuple[str, str, int], list[tuple[str, str, int]]] = {}
    for layer in layers:
        for i, call in enumerate(layer.calls):
            deps[(layer.parent, layer.name, i)] = [(layer.parent, ref.layer, ref.node_index) for ref in call.inputs]
    state: dict[tuple[str, str, int], int] = {}  # 1: on the path being walked, 2: done
    for start in deps:
        if state.get(start):
            continue
        stack = [(start, iter(deps[start]))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
                continue
            if nxt not in deps:
                continue  # an input layer, or a call the config does not list
            if state.get(nxt) == 1:
                cycle = [n for n, _ in stack[[n for n, _ in stack].index(nxt):]]
                looped = list(dict.fromkeys(f"'{_path(n)}'" for n in cycle))
                names = " and ".join(looped) if len(looped) == 2 else " -> ".join(looped)
                what = (f"layer {names} takes its own output as its input" if len(looped) == 1
                        else f"layers {names} take their inputs from each other")
                raise InputError(f"{what}: the model's graph has a cycle", path=where,
                                 hint="a Keras model is acyclic; the config is corrupt or was not written by Keras")
            if not state.get(nxt):
                state[nxt] = 1
                stack.append((nxt, iter(deps[nxt])))


def _path(node: tuple[str, str, int]) -> str:
    scope, name, _ = node
    return f"{scope}/{name}" if scope else name


def _dialect_of(serialized: dict, version: str | None) -> str:
    if version:
        return "keras2" if version.startswith("2.") else "keras3"
    text_hint = _first_dialect_hint(serialized, 0)
    return text_hint or "keras3"


def _first_dialect_hint(obj: Any, depth: int) -> str | None:
    """Guess the dialect from markers only one Keras writes."""
    if depth > 40:
        return None
    if isinstance(obj, dict):
        if "batch_input_shape" in obj:
            return "keras2"
        if "batch_shape" in obj or obj.get("class_name") in ("__keras_tensor__", "DTypePolicy"):
            return "keras3"
        values: Iterable = obj.values()
    elif isinstance(obj, list):
        values = obj
    else:
        return None
    for value in values:
        hint = _first_dialect_hint(value, depth + 1)
        if hint:
            return hint
    return None


def is_tensor_ref(obj: Any) -> bool:
    """Keras 2 writes a tensor as ``[layer, node, tensor]`` or ``[..., {kwargs}]``."""
    return (
        isinstance(obj, list)
        and len(obj) in (3, 4)
        and isinstance(obj[0], str)
        and type(obj[1]) is int
        and type(obj[2]) is int
        and (len(obj) == 3 or isinstance(obj[3], dict))
    )


def collect_refs(obj: Any, out: list, shapes: list, depth: int = 0) -> None:
    """All tensor references in a call structure, in order, with their shapes."""
    if depth > MAX_MODEL_DEPTH * 4:
        raise LimitExceededError(f"a layer call is nested deeper than {MAX_MODEL_DEPTH * 4} levels")
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__" and isinstance(obj.get("config"), dict):
            cfg = obj["config"]
            history = cfg.get("keras_history")
            if isinstance(history, list) and len(history) >= 1 and isinstance(history[0], str):
                node = history[1] if len(history) > 1 and type(history[1]) is int else 0
                tensor = history[2] if len(history) > 2 and type(history[2]) is int else 0
                out.append(TensorRef(history[0], node, tensor))
                shapes.append(_shape(cfg.get("shape")))
            return
        for value in obj.values():
            collect_refs(value, out, shapes, depth + 1)
    elif isinstance(obj, list):
        if is_tensor_ref(obj):
            out.append(TensorRef(obj[0], obj[1], obj[2]))
            shapes.append(None)
            if len(obj) == 4:
                collect_refs(obj[3], out, shapes, depth + 1)
            return
        for value in obj:
            collect_refs(value, out, shapes, depth + 1)


def _shape(value: Any) -> tuple | None:
    if isinstance(value, list) and all(v is None or type(v) is int for v in value):
        return tuple(value)
    return None


def parse_calls(inbound_nodes: Any) -> tuple[Call, ...]:
    """One :class:`Call` per inbound node, in either dialect."""
    if not isinstance(inbound_nodes, list):
        return ()
    calls = []
    for node in inbound_nodes:
        refs: list[TensorRef] = []
        shapes: list = []
        collect_refs(node, refs, shapes)
        calls.append(Call(tuple(refs), tuple(shapes) if any(s is not None for s in shapes) else ()))
    return tuple(calls)


def model_io(structure: Any) -> tuple[TensorRef, ...]:
    """``input_layers``/``output_layers`` in any of the shapes Keras writes."""
    refs: list[TensorRef] = []
    _collect_io(structure, refs, 0)
    return tuple(refs)


def _collect_io(obj: Any, out: list, depth: int) -> None:
    if depth > 32:
        return
    if isinstance(obj, list):
        if len(obj) == 3 and isinstance(obj[0], str) and type(obj[1]) is int and type(obj[2]) is int:
            out.append(TensorRef(obj[0], obj[1], obj[2]))
            return
        for value in obj:
            _collect_io(value, out, depth + 1)
    elif isinstance(obj, dict):
        for value in obj.values():
            _collect_io(value, out, depth + 1)


def layer_trainable(layer_config: dict) -> bool:
    value = layer_config.get("trainable", True)
    return value if isinstance(value, bool) else True


def dtype_name(value: Any) -> str | None:
    """A layer's dtype: a string in Keras 2, a DTypePolicy object in Keras 3."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = value.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            return inner["name"]
    return None


def input_spec_of(layer_config: dict, name: str) -> InputSpec:
    shape = layer_config.get("batch_shape", layer_config.get("batch_input_shape"))
    if shape is None and isinstance(layer_config.get("shape"), list):
        shape = [None, *layer_config["shape"]]
    return InputSpec(name, _shape(shape), dtype_name(layer_config.get("dtype")))


class _Builder:
    """Walks a model config depth-first, appending layers in Keras' order."""

    def __init__(self, where: str):
        self.where = where
        self.layers: list[Layer] = []

    def fail(self, message: str, hint: str | None = None) -> InputError:
        return InputError(message, path=self.where, hint=hint)

    def expand(self, class_name: str, config: dict, *, parent: str, depth: int):
        """Append the layers of one model; return its inputs, outputs, input specs."""
        if depth > MAX_MODEL_DEPTH:
            raise LimitExceededError(
                f"models are nested more than {MAX_MODEL_DEPTH} levels deep", path=self.where
            )
        entries = config.get("layers")
        if not isinstance(entries, list):
            raise self.fail(f"model '{parent or config.get('name')}' has no 'layers' list")
        sequential = class_name == "Sequential" or (
            "input_layers" not in config and not any(
                isinstance(e, dict) and e.get("inbound_nodes") for e in entries
            )
        )
        names_seen: set[str] = set()
        specs: list[InputSpec] = []
        index = 0
        previous: TensorRef | None = None
        inputs: tuple[TensorRef, ...] = ()
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise self.fail(f"layer #{position} of model '{parent or config.get('name')}' is not a mapping")
            layer_class = entry.get("class_name")
            layer_config = entry.get("config")
            if not isinstance(layer_class, str) or not isinstance(layer_config, dict):
                raise self.fail(
                    f"layer #{position} of model '{parent or config.get('name')}' has no 'class_name' and 'config'"
                )
            layer_class = registered_class(layer_class)
            name = entry.get("name", layer_config.get("name"))
            if not isinstance(name, str) or not name:
                name = f"{layer_class.lower()}_{position}"
            if name in (".", "..") or "\0" in name:
                raise self.fail(
                    f"layer #{position} of model '{parent or config.get('name')}' is named {name!r}, which is not "
                    "a layer name" + (" (it holds a NUL character)" if "\0" in name else ""),
                    hint="the config is corrupt or was not written by Keras",
                )
            if name in names_seen:
                raise self.fail(
                    f"two layers are named '{name}' in model '{parent or config.get('name')}'",
                    hint="layer names must be unique within a model",
                )
            names_seen.add(name)
            if len(self.layers) >= MAX_LAYERS:
                raise LimitExceededError(f"more than {MAX_LAYERS} layers", path=self.where)

            if sequential and layer_class == "InputLayer":
                # Keras' Sequential.layers leaves its InputLayer out.
                specs.append(input_spec_of(layer_config, name))
                previous = TensorRef(name)
                inputs = (previous,)
                continue
            if sequential:
                if previous is None:
                    # Input declared on the first layer (Keras 2 style).
                    input_name = f"{name}_input"
                    spec = input_spec_of(layer_config, input_name)
                    if spec.shape is None:
                        build = entry.get("build_config")
                        if isinstance(build, dict):
                            spec = InputSpec(input_name, _shape(build.get("input_shape")), spec.dtype)
                    if spec.shape is None:
                        spec = InputSpec(input_name, _shape(config.get("build_input_shape")), spec.dtype)
                    specs.append(spec)
                    previous = TensorRef(input_name)
                    inputs = (previous,)
                calls = (Call((previous,)),)
                previous = TensorRef(name)
            else:
                try:
                    calls = parse_calls(entry.get("inbound_nodes"))
                except LimitExceededError as exc:
                    raise LimitExceededError(exc.message, path=self.where) from None
                if layer_class == "InputLayer":
                    specs.append(input_spec_of(layer_config, name))

            path = f"{parent}/{name}" if parent else name
            is_model = layer_class in MODEL_CLASSES and isinstance(layer_config.get("layers"), list)
            module = _str_or_none(entry.get("module"))
            # Keras 3 operations are nodes of the graph, but model.layers leaves them out: no index.
            operation = is_operation_module(module)
            slot = len(self.layers)
            self.layers.append(
                Layer(
                    name=name, path=path, class_name=layer_class, index=None if operation else index, depth=depth,
                    parent=parent, config=layer_config, module=module, calls=calls,
                    trainable=layer_trainable(layer_config), is_model=is_model, is_operation=operation,
                )
            )
            if not operation:
                index += 1
            if is_model:
                sub_in, sub_out, _ = self.expand(layer_class, layer_config, parent=path, depth=depth + 1)
                self.layers[slot] = _replace(self.layers[slot], model_inputs=sub_in, model_outputs=sub_out)

        if sequential:
            outputs = (previous,) if previous is not None else ()
        else:
            inputs = model_io(config.get("input_layers"))
            outputs = model_io(config.get("output_layers"))
            # model.inputs follow input_layers, which need not follow the order the layers are listed in.
            order = {ref.layer: i for i, ref in enumerate(inputs)}
            specs.sort(key=lambda spec: order.get(spec.name, len(order)))
            known = names_seen
            for layer in self.layers:
                if layer.parent != parent or layer.depth != depth:
                    continue
                for call in layer.calls:
                    for ref in call.inputs:
                        if ref.layer not in known:
                            raise self.fail(
                                f"layer '{layer.path}' takes its input from '{ref.layer}', "
                                "which is not a layer of the same model"
                            )
            for ref in inputs + outputs:
                if ref.layer not in known:
                    raise self.fail(
                        f"model '{parent or config.get('name')}' names '{ref.layer}' as an input or output, "
                        "but has no such layer"
                    )
        return inputs, outputs, tuple(specs)


def _replace(layer: Layer, **changes) -> Layer:
    from dataclasses import replace

    return replace(layer, **changes)
