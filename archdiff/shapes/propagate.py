"""Shape propagation over a whole Architecture: :func:`infer`.

This module owns running the per-layer rules of the registry over a model's
graph: each model scope (the top level, each nested model) in topological
order, with the shapes Keras 3 recorded on calls taken as facts, so that a
config-only input can show output shapes and parameter counts like
``model.summary()``. It fills in the shapes and weights the readers could
not, and never raises on a malformed graph.
"""
from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from typing import Any

from archdiff.model import MODEL_CLASSES, Architecture, Call, Layer, TensorRef
from archdiff.shapes.helpers import Shape, as_shape
from archdiff.shapes.operations import is_operation, operation_output_shapes
from archdiff.shapes.registry import layer_output_shapes, layer_weights


def _unwrap_model_config(config) -> dict:
    if not isinstance(config, Mapping):
        return {}
    inner = config.get("config")
    if isinstance(inner, Mapping) and ("layers" in inner or "name" in inner):
        return dict(inner)
    return dict(config)


def _raw_layer_dicts(arch: Architecture) -> dict[str, Mapping]:
    """Path -> the layer's serialized dict (for ``build_config``), where a config is kept."""
    out: dict[str, Mapping] = {}

    def walk(model_cfg, prefix):
        layers = model_cfg.get("layers") if isinstance(model_cfg, Mapping) else None
        if not isinstance(layers, list):
            return
        for raw in layers:
            if not isinstance(raw, Mapping):
                continue
            conf = raw.get("config") if isinstance(raw.get("config"), Mapping) else {}
            name = raw.get("name") or conf.get("name")
            if not isinstance(name, str):
                continue
            path = f"{prefix}/{name}" if prefix else name
            out.setdefault(path, raw)
            if raw.get("class_name") in MODEL_CLASSES:
                walk(conf, path)

    walk(_unwrap_model_config(arch.config), "")
    return out


def _build_input_shapes(layer: Layer, raw: Mapping | None) -> list | None:
    """The input shape(s) a layer was built with, from ``build_config`` (Keras 3)."""
    for holder in (layer.config, raw or {}):
        build = holder.get("build_config") if isinstance(holder, Mapping) else None
        shape = build.get("input_shape") if isinstance(build, Mapping) else None
        if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
            return [as_shape(s) for s in shape]
        if as_shape(shape) is not None:
            return [as_shape(shape)]
    return None


class _Propagation:
    """Shapes through every model scope of one Architecture.

    Each scope (the top level, each nested model) is run once "as built":
    its InputLayers take their own declared shapes, and the shapes Keras 3
    recorded on calls win over computed ones. That gives what Keras reports
    for the scope's own layers. A nested model called on other shapes is run
    again "as called", from the call's shapes only, for the output the outer
    scope sees; that second run stores nothing on the layers.
    """

    def __init__(self, arch: Architecture):
        self.arch = arch
        self.layers = arch.layers
        self.members: dict[str, list[int]] = {}
        for i, layer in enumerate(arch.layers):
            self.members.setdefault(layer.parent, []).append(i)
        self.raw = _raw_layer_dicts(arch)
        #: layer index -> output shapes of its first call, from the as-built run
        self.first_outputs: dict[int, tuple | None] = {}
        #: layer index -> input shapes of its first call, from the as-built run
        self.first_inputs: dict[int, list] = {}
        #: scope path -> (input shapes, output shapes) of its as-built run
        self.built: dict[str, tuple[list, tuple | None]] = {}
        self._running: set[str] = set()
        dialect = arch.source.dialect if arch.source is not None else None
        if dialect is None:
            # Keras 3 records the shapes of every call; Keras 2 none.
            calls = [c for layer in arch.layers for c in layer.calls if c.inputs]
            dialect = "keras2" if calls and not any(c.input_shapes for c in calls) else "keras3"
        self.keras2 = dialect == "keras2"

    def _call_index(self, producer: Layer | None, node_index: int) -> int:
        """The call of ``producer`` a reference's node index means.

        The config reader already renumbers tf-keras' references to nested
        models (which count the model's own graph as node 0), so every
        dialect counts calls from 0 here.
        """
        return node_index

    # -- scope facts ----------------------------------------------------------
    def _container(self, scope: str) -> Layer | None:
        return self.arch.by_path.get(scope) if scope else None

    def _is_sequential(self, scope: str) -> bool:
        """Sequential by class, or by a config with no graph (as the readers decide)."""
        holder = self._container(scope)
        if (holder.class_name if holder else self.arch.class_name) == "Sequential":
            return True
        conf = self._scope_config(scope)
        entries = conf.get("layers")
        return isinstance(entries, list) and "input_layers" not in conf and not any(
            isinstance(e, Mapping) and e.get("inbound_nodes") for e in entries)

    def _scope_config(self, scope: str) -> dict:
        holder = self._container(scope)
        return _unwrap_model_config(holder.config if holder else self.arch.config)

    def _scope_io(self, scope: str) -> tuple[tuple[TensorRef, ...], tuple[TensorRef, ...]]:
        holder = self._container(scope)
        if holder is None:
            return self.arch.inputs, self.arch.outputs
        return holder.model_inputs, holder.model_outputs

    # -- running -----------------------------------------------------------------
    def run_built(self, scope: str, outer: list | None = None) -> None:
        """Run a scope as built (once), storing its layers' shapes."""
        if scope in self.built or scope in self._running:
            return
        self._running.add(scope)
        try:
            inputs, outputs = self._run(scope, outer, as_built=True)
        finally:
            self._running.discard(scope)
        self.built[scope] = (inputs, outputs)

    def _run(self, scope: str, outer: list | None, as_built: bool):
        if self._is_sequential(scope):
            return self._run_sequential(scope, outer, as_built)
        return self._run_functional(scope, outer, as_built)

    def _compute(self, i: int, shapes: list, call_index: int, as_built: bool) -> tuple | None:
        layer = self.layers[i]
        if as_built and call_index == 0 and layer.output_shapes:
            return tuple(layer.output_shapes)  # a reader's shapes are facts, not guesses
        if layer.is_model:
            return self._model_call(layer, shapes, as_built)
        if is_operation(layer):
            return operation_output_shapes(layer.class_name, shapes)
        return layer_output_shapes(layer.class_name, layer.config, shapes)

    def _model_call(self, layer: Layer, shapes: list, as_built: bool) -> tuple | None:
        scope = layer.path
        self.run_built(scope, shapes)
        built_inputs, built_outputs = self.built.get(scope, ([], None))
        if all(s is None for s in shapes) or list(shapes) == list(built_inputs):
            return built_outputs
        if scope in self._running:
            return None
        self._running.add(scope)
        try:
            _, outputs = self._run(scope, list(shapes), as_built=False)
        finally:
            self._running.discard(scope)
        return outputs

    def _sequential_input(self, scope: str, members: list[int]) -> Shape | None:
        """Where Keras would find a Sequential's input shape, in its order."""
        for i in members:
            if self.layers[i].class_name == "InputLayer":
                own = layer_output_shapes("InputLayer", self.layers[i].config, [None])
                return own[0] if own else None
        conf = self._scope_config(scope)
        raw_layers = conf.get("layers") if isinstance(conf.get("layers"), list) else []
        if raw_layers and isinstance(raw_layers[0], Mapping) and raw_layers[0].get("class_name") == "InputLayer":
            out = layer_output_shapes("InputLayer", raw_layers[0].get("config") or {}, [None])
            if out:
                return out[0]
        for key in ("build_input_shape", "batch_input_shape"):
            shape = as_shape(conf.get(key))
            if shape is not None:
                return shape
        if not scope:
            for spec in getattr(self.arch, "input_specs", ()) or ():
                shape = as_shape(getattr(spec, "shape", None))
                if shape is not None:
                    return shape
        first = next((i for i in members if self.layers[i].class_name != "InputLayer"), None)
        if first is not None:
            layer = self.layers[first]
            shape = as_shape(layer.config.get("batch_input_shape"))
            if shape is not None:
                return shape
            built = _build_input_shapes(layer, self.raw.get(layer.path))
            if built and built[0] is not None:
                return built[0]
        return None

    def _run_sequential(self, scope: str, outer: list | None, as_built: bool):
        members = self.members.get(scope, [])
        start = None
        if as_built:
            start = self._sequential_input(scope, members)
        if start is None and outer:
            start = outer[0]
        shape = start
        for i in members:
            layer = self.layers[i]
            if layer.class_name == "InputLayer":
                if as_built:
                    self.first_outputs[i] = (shape,) if shape is not None else None
                continue
            if as_built:
                self.first_inputs[i] = [shape]
            out = self._compute(i, [shape], 0, as_built) if shape is not None or layer.is_model \
                else None
            if as_built:
                self.first_outputs[i] = out
            shape = out[0] if out else None
        return [start], ((shape,) if shape is not None else None)

    def _run_functional(self, scope: str, outer: list | None, as_built: bool):
        members = self.members.get(scope, [])
        layers = self.layers
        index = {layers[i].name: i for i in members}
        model_inputs, model_outputs = self._scope_io(scope)

        # The outer call's shapes bind to the scope's inputs, in order.
        input_names = [ref.layer for ref in model_inputs] or [
            layers[i].name for i in members if layers[i].class_name == "InputLayer"]
        bound = dict(zip(input_names, outer or []))
        if not scope:
            # Inputs the readers keep only as specs (no InputLayer among the layers).
            for spec in getattr(self.arch, "input_specs", ()) or ():
                shape = as_shape(getattr(spec, "shape", None))
                if shape is not None:
                    bound.setdefault(spec.name, shape)

        def key(ref: TensorRef) -> tuple[str, int, int]:
            """A reference as (producer name, call index, output index)."""
            j = index.get(ref.layer)
            node = self._call_index(layers[j] if j is not None else None, ref.node_index)
            return (ref.layer, node, ref.tensor_index)

        tensors: dict[tuple[str, int, int], Shape | None] = {}
        recorded: dict[tuple[str, int, int], Shape] = {}
        if as_built:
            # Keras 3 records every consumed tensor's shape on its consumer:
            # a fallback where a producer's rule is unknown (Lambda, GetItem).
            for i in members:
                for call in layers[i].calls:
                    if len(call.input_shapes) == len(call.inputs):
                        for ref, shape in zip(call.inputs, call.input_shapes):
                            if shape is not None:
                                recorded.setdefault(key(ref), tuple(shape))

        # Nodes are (layer index, call index); an InputLayer is its own node 0.
        def calls_of(i):
            return layers[i].calls or (Call(inputs=()),)

        nodes = [(i, k) for i in members for k in range(len(calls_of(i)))]
        node_set = set(nodes)
        deps: dict[tuple, set] = {}
        users: dict[tuple, list] = {}
        for node in nodes:
            i, k = node
            need = set()
            for ref in calls_of(i)[k].inputs:
                producer = (index.get(ref.layer), key(ref)[1])
                if producer in node_set and producer != node:
                    need.add(producer)
            deps[node] = need
            for producer in need:
                users.setdefault(producer, []).append(node)
        order = []
        ready = deque(n for n in nodes if not deps[n])
        waiting = {n: len(deps[n]) for n in nodes}
        seen = set()
        while ready:
            node = ready.popleft()
            if node in seen:
                continue
            seen.add(node)
            order.append(node)
            for user in users.get(node, ()):
                waiting[user] -= 1
                if waiting[user] == 0:
                    ready.append(user)
        order += [n for n in nodes if n not in seen]  # a cycle: run with what is known

        for i, k in order:
            layer = layers[i]
            call = calls_of(i)[k]
            if layer.class_name == "InputLayer" and not call.inputs:
                shape = None
                if not as_built:
                    shape = bound.get(layer.name)
                if shape is None:
                    own = layer_output_shapes("InputLayer", layer.config, [None])
                    shape = own[0] if own else None
                if shape is None:
                    shape = bound.get(layer.name)
                out = (shape,) if shape is not None else None
                shapes: list = []
            else:
                use_recorded = as_built and len(call.input_shapes) == len(call.inputs)
                shapes = []
                for pos, ref in enumerate(call.inputs):
                    shape = call.input_shapes[pos] if use_recorded else None
                    if shape is None:
                        shape = tensors.get(key(ref))
                    if shape is None and ref.layer not in index:
                        shape = bound.get(ref.layer)
                    shapes.append(None if shape is None else tuple(shape))
                out = self._compute(i, shapes, k, as_built)
                if out is None and as_built:
                    found = []
                    t = 0
                    while (layer.name, k, t) in recorded:
                        found.append(recorded[(layer.name, k, t)])
                        t += 1
                    out = tuple(found) or None
            for t, shape in enumerate(out or ()):
                tensors[(layer.name, k, t)] = shape
            if k == 0 and as_built:
                self.first_outputs[i] = out
                self.first_inputs[i] = shapes

        input_shapes_used = [tensors.get((name, 0, 0)) for name in input_names]
        outs = [tensors.get(key(ref)) for ref in model_outputs]
        outputs = tuple(outs) if outs and all(s is not None for s in outs) else None
        return input_shapes_used, outputs


def infer(arch: Architecture) -> Architecture:
    """A copy of ``arch`` with output shapes and, where it has none, weights inferred.

    Every layer whose ``output_shapes`` is None gets the shapes of its first
    call's outputs where they can be inferred. When ``arch.has_weights`` is
    False, every layer gets the weights its config implies (``location`` None);
    nested models get ``()`` since their variables live on their own layers.
    ``has_weights`` on the result is True only if every layer got weights.
    """
    try:
        prop = _Propagation(arch)
        if arch.has_topology:
            prop.run_built("")
            for i, layer in enumerate(arch.layers):
                if layer.is_model:
                    prop.run_built(layer.path)
    except Exception:  # a malformed graph must not stop a listing
        prop = None

    dialect = arch.source.dialect if arch.source is not None else None
    fill_weights = not arch.has_weights
    layers = []
    complete = True
    for i, layer in enumerate(arch.layers):
        changes: dict[str, Any] = {}
        if layer.output_shapes is None and prop is not None and prop.first_outputs.get(i):
            changes["output_shapes"] = tuple(prop.first_outputs[i])
        if fill_weights:
            weights = None
            if layer.is_model:
                weights = ()  # a nested model's variables are on its own layers
            elif is_operation(layer):
                weights = ()  # Keras 3 operations hold no variables
            else:
                shapes = prop.first_inputs.get(i) if prop is not None else None
                if shapes:
                    weights = layer_weights(layer.class_name, layer.config, shapes, dialect=dialect)
                if weights is None and prop is not None:
                    built = _build_input_shapes(layer, prop.raw.get(layer.path))
                    if built:
                        weights = layer_weights(layer.class_name, layer.config, built, dialect=dialect)
                if weights is None and not shapes:
                    # Some layers' variables do not depend on the input (Embedding).
                    weights = layer_weights(layer.class_name, layer.config, [], dialect=dialect)
            if weights is None:
                complete = False
            changes["weights"] = weights
        layers.append(_with_changes(layer, changes) if changes else layer)

    result: dict[str, Any] = {"layers": tuple(layers)}
    if fill_weights:
        result["has_weights"] = complete
        missing = sorted({l.class_name for l in layers if l.weights is None})
        if missing:
            result["notes"] = tuple(arch.notes) + (
                "parameter counts unknown: weights could not be inferred from the config "
                f"for layers of class {', '.join(missing)}",
            )
    return dataclasses.replace(arch, **result)


_LAYER_FIELDS = frozenset(f.name for f in dataclasses.fields(Layer))


def _with_changes(layer: Layer, changes: dict[str, Any]) -> Layer:
    """``dataclasses.replace(layer, **changes)`` without calling ``__init__`` again: a Layer has no
    ``__post_init__`` to rerun, and this is one per layer (a 10,000-layer config's inference: 0.18 -> 0.16 s)."""
    if type(layer) is not Layer or not _LAYER_FIELDS.issuperset(changes):
        return dataclasses.replace(layer, **changes)
    new = object.__new__(Layer)
    state = new.__dict__
    state.update(layer.__dict__)
    state.update(changes)
    return new
