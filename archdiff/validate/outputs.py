"""Check 3, outputs: the shared sub-graph of both models fed the same seeded batch, compared per output.

The part the two models share from their inputs (:mod:`archdiff.validate.subgraph`)
is cut out of both configs, the source's at the target's input size, and
rebuilt on its own; the target's part takes the values of the live,
OUT-loaded model, the source's the values stored in the source file. Each
frontier output is compared as NVIDIA Polygraphy compares
(:mod:`~archdiff.validate.comparator`: per-output tolerances, an error
statistic, the figures). Where the target holds a nested model whose layers
pair with the source's (a flat base ported into the guide's nested
``xception``), the inside of that model is compared with the source's part
from its inputs, as a scope of its own.
When a part cannot run (a layer that does not work at the target's size),
the comparison steps back to the outputs that can. When outputs differ,
the first divergent layers are named: shared layers whose outputs differ
while all their shared inputs agree.
"""
from __future__ import annotations

import re

import numpy as np

from archdiff.errors import ArchdiffError
from archdiff.model import Architecture
from archdiff.validate.comparator import DEFAULT_ATOL, DEFAULT_RTOL, Tolerances, compare_arrays
from archdiff.validate.live import FileValues, is_model, layer_vars, live_layers, pair_variables
from archdiff.validate.rebuilding import rebuild
from archdiff.validate.report import (
    FAIL,
    MAX_LISTED,
    NOT_COMPARED,
    PASS,
    SKIPPED,
    OutputResult,
    OutputsCheck,
    output_result,
)
from archdiff.validate.subgraph import SharedGraph, shared_subgraph, sub_config

#: Outputs tried one by one, at most, when the whole frontier cannot be rebuilt at once.
MAX_NARROWING_ATTEMPTS = 24

Ref = tuple[str, int, int]


def compare_outputs(model, target: Architecture, source: Architecture, pairs: dict[str, str], *,
                    atol: float | None = None, rtol: float | None = None, tolerances: Tolerances | None = None,
                    batch: int, seed: int, unsafe: bool,
                    not_transferred: dict[str, str] | None = None) -> OutputsCheck:
    """Feed the shared sub-graph of both models the same batch; compare per frontier layer.

    The comparison reaches inside the target's nested models: where a nested
    model (the guide's ``xception`` base) holds layers paired with the
    source's, its inside is compared with the source's part from its inputs.
    ``tolerances`` (default: ``atol``/``rtol`` for every output, elementwise).
    """
    if tolerances is None:
        tolerances = Tolerances(atol=(("", DEFAULT_ATOL if atol is None else atol),),
                                rtol=(("", DEFAULT_RTOL if rtol is None else rtol),))
    d_atol, d_rtol, d_stat = tolerances.default
    found: dict = {"atol": d_atol, "rtol": d_rtol, "batch": batch, "seed": seed, "check_error_stat": d_stat,
                   "tolerances": tolerances.to_dict()}
    if not source.has_topology or source.config is None:
        return OutputsCheck(status=SKIPPED, reason="the source file holds no architecture (weights only), so its "
                                                   "outputs cannot be computed", **found)
    if not source.has_weights:
        return OutputsCheck(status=SKIPPED, reason="the source file holds no weights", **found)
    top = _compare_scope(model, target, source, pairs, tolerances, batch, seed, unsafe, not_transferred or {}, found)
    scopes = [top]
    nested_names = []
    for layer, inner_pairs, inner_not in _nested_scopes(target, pairs, top, not_transferred or {}):
        try:
            inner_arch = nested_architecture(target, layer)
            live_inner = live_layers(model).get(layer.path)
        except ArchdiffError:
            continue
        if live_inner is None:
            continue
        scope = _compare_scope(live_inner, inner_arch, source, inner_pairs, tolerances, batch, seed, unsafe,
                               inner_not, found, prefix=layer.path + "/")
        nested_names.append(layer.path)
        scopes.append(scope)
    if len(scopes) == 1:
        return top
    return _merge_scopes(scopes, nested_names, found)


def _nested_scopes(target: Architecture, pairs: dict[str, str], top: OutputsCheck, not_transferred: dict):
    """The target's top-level nested models not shared as a whole whose inner layers pair with source layers."""
    shared = set(top.shared_layers)
    for layer in target.layers:
        if layer.depth != 0 or not layer.is_model or layer.name in shared:
            continue
        prefix = layer.path + "/"
        inner = {t[len(prefix):]: s for t, s in pairs.items() if t.startswith(prefix) and "/" not in s}
        if not inner:
            continue
        inner_not = {t[len(prefix):]: why for t, why in not_transferred.items() if t.startswith(prefix)}
        yield layer, inner, inner_not


def nested_architecture(target: Architecture, layer) -> Architecture:
    """A nested model of ``target`` as an Architecture of its own (its layers at the top level)."""
    from archdiff.read import from_config_document

    if target.built and not isinstance((layer.config or {}).get("layers"), list):
        # A built model's nested constructor-config model (a keras-hub task's backbone): its graph is known only
        # from building it too, as archdiff built the target (cached by its config's hash).
        from archdiff.read.build import build

        config = layer.config if isinstance(layer.config, dict) else {}
        document: dict = {"module": layer.module, "class_name": layer.class_name, "config": dict(config)}
        registered = _registered_name(target, layer)
        if registered:
            document["registered_name"] = registered
        light = from_config_document(document, path=f"{target.source.path}:{layer.path}", fmt="json")
        return build(light)
    document = {"class_name": layer.class_name, "config": dict(layer.config)}
    if layer.module:
        document["module"] = layer.module
    return from_config_document(document, path=f"{target.source.path}:{layer.path}", fmt="json")


def _registered_name(target: Architecture, layer) -> str | None:
    """The nested layer's ``registered_name`` in the built graph (keras-hub registers ``keras_hub>BertBackbone``)."""
    graph = target.built.get("graph") if target.built else None
    layers = (graph.get("config") or {}).get("layers") if isinstance(graph, dict) else None
    for entry in layers or ():
        if isinstance(entry, dict) and entry.get("name", (entry.get("config") or {}).get("name")) == layer.name:
            value = entry.get("registered_name")
            return value if isinstance(value, str) else None
    return None


def _merge_scopes(scopes: list[OutputsCheck], nested: list[str], found: dict) -> OutputsCheck:
    """One check from the top level's and each nested model's comparison."""
    ran = [s for s in scopes if s.status in (PASS, FAIL)]
    outputs = tuple(o for s in scopes for o in s.outputs)
    merged = dict(found, outputs=outputs, nested=tuple(nested),
                  shared_layers=tuple(x for s in scopes for x in s.shared_layers),
                  excluded=tuple(x for s in scopes for x in s.excluded)[:MAX_LISTED],
                  origin=tuple(x for s in scopes for x in s.origin),
                  failures=tuple(x for s in scopes for x in s.failures),
                  notes=tuple(x for s in scopes for x in s.notes),
                  input_shapes={k: v for s in scopes for k, v in s.input_shapes.items()},
                  source_input_shapes={k: v for s in scopes for k, v in s.source_input_shapes.items()})
    if not ran:
        return OutputsCheck(status=SKIPPED, reason="; ".join(s.reason for s in scopes if s.reason), **merged)
    failing = [s for s in ran if s.status == FAIL]
    inside = ", ".join(f"'{n}'" for n in nested)
    if failing:
        return OutputsCheck(status=FAIL, reason="; ".join(s.reason for s in failing) + f" (compared inside {inside})",
                            **merged)
    passed = [o for o in outputs if o.status == PASS]
    largest = max((o.max_abs_diff or 0.0) for o in passed) if passed else 0.0
    return OutputsCheck(status=PASS, reason=f"{len(passed)} output(s) of the {len(merged['shared_layers'])}-layer "
                                            f"shared sub-graph agree, inside the nested {inside} too "
                                            f"(max |diff| {largest:.3g})", **merged)


def _compare_scope(model, target: Architecture, source: Architecture, pairs: dict[str, str], tolerances: Tolerances,
                   batch: int, seed: int, unsafe: bool, not_transferred: dict[str, str], found: dict, *,
                   prefix: str = "") -> OutputsCheck:
    """Check 3 on one scope: the top level, or the inside of one nested model (``prefix``)."""
    found = dict(found)
    graph = shared_subgraph(target, source, pairs, not_transferred)
    found.update(excluded=tuple({**x, "layer": prefix + x["layer"]} for x in graph.excluded[:MAX_LISTED]),
                 shared_layers=tuple(prefix + n for n in graph.layers))
    if not graph.inputs:
        return OutputsCheck(status=SKIPPED, reason="the models' inputs do not correspond (different names and counts)",
                            **found)
    if not graph.layers or not graph.frontier:
        where = f"the nested model '{prefix[:-1]}' and the source share" if prefix else "the models share"
        return OutputsCheck(status=SKIPPED, reason=f"{where} no layer after their inputs", **found)

    shapes, dtypes, src_shapes, notes, problem = _input_shapes(graph, target, source)
    found["notes"] = tuple(notes)
    if problem:
        return OutputsCheck(status=SKIPPED, reason=problem, **found)
    found.update(input_shapes={prefix + k: list(v) for k, v in shapes.items()},
                 source_input_shapes={k: (list(v) if v else None) for k, v in src_shapes.items()})
    resized = bool(notes)
    batch_inputs = _seeded_batch(shapes, dtypes, batch, seed, embedding_limits(target))
    builder = _SubModels(target, source, graph, shapes, unsafe)

    def judge(ref, a, b):
        return _compare_one(ref, graph.layers[ref[0]], a, b, tolerances, prefix)

    outputs: list[OutputResult] = []
    frontier = list(graph.frontier)
    accepted = frontier
    whole_failed = ""
    try:
        built = builder.build(frontier)
    except ArchdiffError as exc:
        built, whole_failed = None, exc.message
    if built is None:
        accepted, outputs = _narrow(frontier, builder, graph, resized)
        if not accepted:
            why = f": {_why_not(whole_failed, resized=resized)}" if whole_failed else ""
            return OutputsCheck(status=SKIPPED, outputs=tuple(outputs), **found,
                                reason="no part of the shared sub-graph can run in both models" + why)
        built = builder.build(accepted)
    t_sub, s_sub, t_in = built
    problems = _fill_pair(t_sub, s_sub, model, source)
    if problems:
        return OutputsCheck(status=SKIPPED, outputs=tuple(outputs), **found,
                            reason="the source's stored weights do not fit its own rebuilt layers: "
                                   + "; ".join(problems[:3]))
    feed = [batch_inputs[n] for n in t_in]
    compared = [judge(ref, a, b) for ref, (a, b) in zip(accepted, _run_pair(t_sub, s_sub, feed))]
    del t_sub, s_sub
    outputs.extend(compared)
    failing = [item for item in compared if item.status == FAIL]
    if not failing:
        passed = [o for o in outputs if o.status == PASS]
        return OutputsCheck(status=PASS, outputs=tuple(outputs), **found,
                            reason=f"{len(passed)} output(s) of the {len(graph.layers)}-layer shared sub-graph agree "
                                   f"(max |diff| {max((o.max_abs_diff or 0.0) for o in passed):.3g})")
    try:
        origin = _where_it_starts(target, graph, builder, model, source, feed, tolerances, prefix)
    except ArchdiffError:
        origin = []
    start = ""
    if origin:
        start = "; the difference starts at " + ", ".join(
            f"layer '{o['layer']}' (max |diff| {o['max_abs_diff']:.3g})" for o in origin[:3])
    failures = []
    for item in failing:
        failures.append(f"output of layer '{item.target_layer}' differs between target and source "
                        f"({item.reason}){start}")
    n_compared = len([o for o in outputs if o.status != NOT_COMPARED])
    return OutputsCheck(status=FAIL, reason=f"{len(failing)} of {n_compared} shared outputs differ{start}",
                        outputs=tuple(outputs), origin=tuple(origin), failures=tuple(failures), **found)


def embedding_limits(target: Architecture) -> dict[str, int]:
    """For integer inputs: the smallest ``input_dim`` of an Embedding that reads them (ids must be below it)."""
    inputs = {r.layer for r in target.inputs}
    limits: dict[str, int] = {}
    for layer in target.layers:
        # Embedding and its kin (keras' ReversibleEmbedding, a tied input/output embedding): ids below input_dim.
        if not layer.class_name.endswith("Embedding") or layer.depth != 0 or "input_dim" not in layer.config:
            continue
        dim = layer.config.get("input_dim")
        for call in layer.calls:
            for ref in call.inputs:
                if ref.layer in inputs and isinstance(dim, int) and dim > 0:
                    limits[ref.layer] = min(limits.get(ref.layer, dim), dim)
    return limits


def _input_shapes(graph: SharedGraph, target: Architecture, source: Architecture):
    """The batch shape and dtype fed to each shared input; notes; and why there can be no comparison, if so.

    Returns ``(shapes, dtypes, source_shapes, notes, problem)``; ``problem``
    is None or the reason the check is skipped.
    """
    t_specs = {s.name: s for s in target.input_specs}
    s_specs = {s.name: s for s in source.input_specs}
    shapes: dict[str, tuple] = {}
    dtypes: dict[str, str] = {}
    src_shapes: dict[str, tuple | None] = {}
    notes: list[str] = []
    for t_name, s_name in graph.inputs.items():
        t_spec, s_spec = t_specs.get(t_name), s_specs.get(s_name)
        s_shape = tuple(s_spec.shape) if s_spec and s_spec.shape else None
        t_shape = tuple(t_spec.shape) if t_spec and t_spec.shape else None
        shape = _concrete(t_shape, s_shape, sequence_limit(target))
        if shape is None:
            return shapes, dtypes, src_shapes, notes, f"the input '{t_name}' has no known shape"
        shapes[t_name] = shape
        dtypes[t_name] = (t_spec.dtype if t_spec else None) or "float32"
        src_shapes[s_name] = s_shape
        if s_shape is not None and len(s_shape) != len(shape):
            return shapes, dtypes, src_shapes, notes, (
                f"input '{t_name}' has rank {len(shape)} in the target, {len(s_shape)} in the source: "
                "no comparison is possible")
        if s_shape is not None and any(a is not None and b is not None and a != b
                                       for a, b in zip(s_shape[1:], shape[1:])):
            notes.append(f"input '{t_name}' is {list(shape[1:])} in the target, {list(s_shape[1:])} in the "
                         f"source: the source's layers are run at the target's size")
    return shapes, dtypes, src_shapes, notes, None


def graph_document(arch: Architecture) -> dict:
    """The functional config sub-models are cut from: a built constructor config's graph as Keras serialized the
    built model (archdiff.read.build), else the model's own config."""
    graph = arch.built.get("graph") if arch.built else None
    return dict(graph) if isinstance(graph, dict) else dict(arch.config or {})


class _SubModels:
    """Rebuilds, from both configs, the part of the shared sub-graph that a set of outputs needs."""

    def __init__(self, target: Architecture, source: Architecture, graph: SharedGraph, shapes: dict[str, tuple],
                 unsafe: bool):
        self.target, self.source, self.graph, self.shapes, self.unsafe = target, source, graph, shapes, unsafe
        self.parents = {layer.name: [r.layer for c in layer.calls for r in c.inputs]
                        for layer in target.layers if layer.depth == 0}

    def ancestors(self, outputs) -> set[str]:
        seen: set[str] = set()
        stack = [ref[0] for ref in outputs]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(self.parents.get(name, []))
        return seen

    def build(self, outputs: list[Ref]):
        """``(target sub-model, source sub-model, target input names)``; an ArchdiffError when Keras cannot."""
        graph = self.graph
        needed = self.ancestors(outputs)
        keep_t = {n for n in graph.layers if n in needed}
        keep_s = {graph.layers[n] for n in keep_t}
        t_in = [r.layer for r in self.target.inputs if r.layer in graph.inputs and r.layer in needed]
        s_in = [graph.inputs[n] for n in t_in]
        s_out = [(graph.layers[n], node, t) for n, node, t in outputs]
        t_doc = sub_config(graph_document(self.target), keep_t, t_in, outputs, self.shapes)
        s_doc = sub_config(graph_document(self.source), keep_s, s_in, s_out,
                           {graph.inputs[k]: v for k, v in self.shapes.items()})
        t_sub = rebuild(self.target, unsafe=self.unsafe, serialized=t_doc)
        s_sub = rebuild(self.source, unsafe=self.unsafe, serialized=s_doc)
        return t_sub, s_sub, t_in


def _narrow(frontier: list[Ref], builder: _SubModels, graph: SharedGraph,
            resized: bool) -> tuple[list[Ref], list[OutputResult]]:
    """Try each frontier output alone, stepping back to its inputs when it cannot run.

    Returns the outputs that can run, and one NOT_COMPARED result for each that cannot.
    """
    accepted: list[Ref] = []
    skipped: list[OutputResult] = []
    tried: set[Ref] = set()
    attempts = 0
    queue = list(frontier)
    while queue and attempts < MAX_NARROWING_ATTEMPTS:
        ref = queue.pop(0)
        if ref in tried:
            continue
        tried.add(ref)
        attempts += 1
        try:
            builder.build([ref])
            accepted.append(ref)
        except ArchdiffError as exc:
            skipped.append(OutputResult(target_layer=ref[0], source_layer=graph.layers[ref[0]], status=NOT_COMPARED,
                                        reason=_why_not(exc.message, resized=resized)))
            for parent in builder.parents.get(ref[0], []):
                if parent in graph.layers:
                    queue.append((parent, 0, 0))
    return accepted, skipped


def _seeded_batch(shapes: dict[str, tuple], dtypes: dict[str, str], batch: int, seed: int,
                  int_limits: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """One seeded batch per input: floats in [0, 1), integers below the Embedding's ``input_dim`` (else 0/1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        full = (batch,) + tuple(int(d) for d in shape[1:])
        dtype = dtypes.get(name) or "float32"
        if "int" in dtype:
            high = (int_limits or {}).get(name, 2)
            out[name] = rng.integers(0, max(1, high), size=full).astype(dtype)
        else:
            out[name] = rng.random(full, dtype=np.float32).astype(dtype if "float" in dtype else "float32")
    return out


def sequence_limit(arch: Architecture) -> int | None:
    """The longest sequence the model takes where a layer says (a position embedding's ``sequence_length``,
    keras-hub's ``max_sequence_length``): an unknown sequence dimension is fed no longer than that."""
    found = [v for layer in arch.layers for key in ("sequence_length", "max_sequence_length")
             for v in [layer.config.get(key)] if type(v) is int and v > 0]
    return min(found) if found else None


def _concrete(shape: tuple | None, fallback: tuple | None, limit: int | None = None) -> tuple | None:
    """A shape with every unknown dimension but the batch filled in (from the source's, else 32, or the
    model's longest sequence where that is shorter)."""
    if shape is None:
        return fallback
    dims = [None]
    for i, d in enumerate(shape[1:], start=1):
        if d is None:
            other = fallback[i] if fallback is not None and i < len(fallback) else None
            dims.append(other if other is not None else min(32, limit or 32))
        else:
            dims.append(int(d))
    return tuple(dims)


def _assign_from_file(model, arch: Architecture, values: FileValues) -> list[str]:
    """Give a rebuilt sub-model the stored values of ``arch``'s layers, by path. Returns problems."""
    problems = []
    by_path = arch.by_path
    for path, layer in live_layers(model).items():
        if is_model(layer) or not layer.weights:
            continue
        stored = by_path.get(path)
        if stored is None or not stored.weights:
            problems.append(f"'{path}' has no stored weights")
            continue
        paired, problem = pair_variables(layer_vars(layer), stored.weights)
        if paired is None:
            problems.append(f"'{path}': {problem}")
            continue
        for _, var, spec in paired:
            var.assign(values.read(spec).astype(var.dtype))
    return problems


def _copy_from_live(sub, full) -> None:
    full_layers = live_layers(full)
    for path, layer in live_layers(sub).items():
        if is_model(layer) or not layer.weights:
            continue
        layer.set_weights(full_layers[path].get_weights())


def _fill_pair(t_sub, s_sub, model, source: Architecture) -> list[str]:
    """Target sub-model: values from the live (OUT-loaded) model; source sub-model: from the source file."""
    _copy_from_live(t_sub, model)
    with FileValues(source) as values:
        return _assign_from_file(s_sub, source, values)


def _run_pair(t_sub, s_sub, feed) -> list[tuple[np.ndarray, np.ndarray]]:
    t_out = t_sub(feed, training=False)
    s_out = s_sub(feed, training=False)
    t_out = t_out if isinstance(t_out, (list, tuple)) else [t_out]
    s_out = s_out if isinstance(s_out, (list, tuple)) else [s_out]
    from archdiff.validate.reference import to_numpy

    # to_numpy, not np.asarray: a PyTorch tensor that requires grad refuses the latter.
    return [(to_numpy(a), to_numpy(b)) for a, b in zip(t_out, s_out)]


def _compare_one(ref: Ref, source_layer: str, a: np.ndarray, b: np.ndarray, tolerances: Tolerances,
                 prefix: str = "") -> OutputResult:
    """One output compared as Polygraphy does, at the tolerances given for it (by target layer name)."""
    name = prefix + ref[0] + (f"[{ref[1]}]" if ref[1] else "") + (f"[{ref[2]}]" if ref[2] else "")
    atol, rtol, stat = tolerances.for_output(prefix + ref[0])
    return output_result(name, source_layer, compare_arrays(a, b, atol=atol, rtol=rtol, stat=stat))


def _where_it_starts(target: Architecture, graph: SharedGraph, builder: _SubModels, model, source, feed,
                     tolerances: Tolerances, prefix: str = "") -> list[dict]:
    """The shared layers whose outputs differ while all their shared inputs agree."""
    refs = []
    order = [layer for layer in target.layers if layer.depth == 0 and layer.name in graph.layers]
    for layer in order:
        for node in range(max(1, len(layer.calls))):
            refs.append((layer.name, node, 0))
    t_sub, s_sub, _ = builder.build(refs)
    if _fill_pair(t_sub, s_sub, model, source):
        return []
    differing: dict[str, float] = {}
    for ref, (a, b) in zip(refs, _run_pair(t_sub, s_sub, feed)):
        item = _compare_one(ref, graph.layers[ref[0]], a, b, tolerances)
        if item.status == FAIL:
            differing[ref[0]] = max(differing.get(ref[0], 0.0), item.max_abs_diff or 0.0)
    origin = []
    for layer in order:
        if layer.name not in differing:
            continue
        inputs = {r.layer for c in layer.calls for r in c.inputs}
        if not inputs & set(differing):
            origin.append({"layer": prefix + layer.name, "max_abs_diff": differing[layer.name]})
    return origin


def _why_not(message: str, *, resized: bool = False) -> str:
    """Why a part of the shared sub-graph could not be run, in one short line."""
    text = " ".join(message.split())
    inner = re.search(r"\((\w+Error: .*)\)$", text)
    if inner:
        text = inner.group(1)
    prefix = "cannot run at the target's input size: " if resized else "cannot be rebuilt on its own: "
    return (prefix + text)[:300]
