"""Check 3, outputs: the shared sub-graph of both models fed the same seeded batch, compared per output.

The part the two models share from their inputs (:mod:`archdiff.validate.subgraph`)
is cut out of both configs, the source's at the target's input size, and
rebuilt on its own; the target's part takes the values of the live,
OUT-loaded model, the source's the values stored in the source file. Each
frontier output is compared with ``allclose`` semantics (``atol``/``rtol``).
When a part cannot run (a layer that does not work at the target's size),
the comparison steps back to the outputs that can. When outputs differ,
the first divergent layers are named: shared layers whose outputs differ
while all their shared inputs agree.
"""
from __future__ import annotations

import math
import re

import numpy as np

from archdiff.errors import ArchdiffError
from archdiff.model import Architecture
from archdiff.validate.live import FileValues, is_model, layer_vars, live_layers, pair_variables
from archdiff.validate.rebuilding import rebuild
from archdiff.validate.report import FAIL, MAX_LISTED, NOT_COMPARED, PASS, SKIPPED, OutputResult, OutputsCheck
from archdiff.validate.subgraph import SharedGraph, shared_subgraph, sub_config

#: Outputs tried one by one, at most, when the whole frontier cannot be rebuilt at once.
MAX_NARROWING_ATTEMPTS = 24

Ref = tuple[str, int, int]


def compare_outputs(model, target: Architecture, source: Architecture, pairs: dict[str, str], *,
                    atol: float, rtol: float, batch: int, seed: int, unsafe: bool,
                    not_transferred: dict[str, str] | None = None) -> OutputsCheck:
    """Feed the shared sub-graph of both models the same batch; compare per frontier layer."""
    found: dict = {"atol": atol, "rtol": rtol, "batch": batch, "seed": seed}
    if not source.has_topology or source.config is None:
        return OutputsCheck(status=SKIPPED, reason="the source file holds no architecture (weights only), so its "
                                                   "outputs cannot be computed", **found)
    if not source.has_weights:
        return OutputsCheck(status=SKIPPED, reason="the source file holds no weights", **found)
    graph = shared_subgraph(target, source, pairs, not_transferred)
    found.update(excluded=tuple(graph.excluded[:MAX_LISTED]), shared_layers=tuple(graph.layers))
    if not graph.inputs:
        return OutputsCheck(status=SKIPPED, reason="the models' inputs do not correspond (different names and counts)",
                            **found)
    if not graph.layers or not graph.frontier:
        return OutputsCheck(status=SKIPPED, reason="the models share no layer after their inputs", **found)

    shapes, dtypes, src_shapes, notes, problem = _input_shapes(graph, target, source)
    found["notes"] = tuple(notes)
    if problem:
        return OutputsCheck(status=SKIPPED, reason=problem, **found)
    found.update(input_shapes={k: list(v) for k, v in shapes.items()},
                 source_input_shapes={k: (list(v) if v else None) for k, v in src_shapes.items()})
    resized = bool(notes)
    batch_inputs = _seeded_batch(shapes, dtypes, batch, seed)
    builder = _SubModels(target, source, graph, shapes, unsafe)

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
    compared = [_compare_one(ref, graph.layers[ref[0]], a, b, atol, rtol)
                for ref, (a, b) in zip(accepted, _run_pair(t_sub, s_sub, feed))]
    outputs.extend(compared)
    failing = [item for item in compared if item.status == FAIL]
    if not failing:
        passed = [o for o in outputs if o.status == PASS]
        return OutputsCheck(status=PASS, outputs=tuple(outputs), **found,
                            reason=f"{len(passed)} output(s) of the {len(graph.layers)}-layer shared sub-graph agree "
                                   f"(max |diff| {max((o.max_abs_diff or 0.0) for o in passed):.3g})")
    try:
        origin = _where_it_starts(target, graph, builder, model, source, feed, atol, rtol)
    except ArchdiffError:
        origin = []
    start = ""
    if origin:
        start = "; the difference starts at " + ", ".join(
            f"layer '{o['layer']}' (max |diff| {o['max_abs_diff']:.3g})" for o in origin[:3])
    failures = []
    for item in failing:
        problem = item.reason or (f"max |diff| {item.max_abs_diff:.3g} over atol {atol:g} + rtol {rtol:g}")
        failures.append(f"output of layer '{item.target_layer}' differs between target and source ({problem}){start}")
    n_compared = len([o for o in outputs if o.status != NOT_COMPARED])
    return OutputsCheck(status=FAIL, reason=f"{len(failing)} of {n_compared} shared outputs differ{start}",
                        outputs=tuple(outputs), origin=tuple(origin), failures=tuple(failures), **found)


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
        shape = _concrete(t_shape, s_shape)
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
        t_doc = sub_config(dict(self.target.config), keep_t, t_in, outputs, self.shapes)
        s_doc = sub_config(dict(self.source.config), keep_s, s_in, s_out,
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


def _seeded_batch(shapes: dict[str, tuple], dtypes: dict[str, str], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        full = (batch,) + tuple(int(d) for d in shape[1:])
        dtype = dtypes.get(name) or "float32"
        if "int" in dtype:
            out[name] = rng.integers(0, 2, size=full).astype(dtype)
        else:
            out[name] = rng.random(full, dtype=np.float32).astype(dtype if "float" in dtype else "float32")
    return out


def _concrete(shape: tuple | None, fallback: tuple | None) -> tuple | None:
    """A shape with every unknown dimension but the batch filled in (from the source's, else 32)."""
    if shape is None:
        return fallback
    dims = [None]
    for i, d in enumerate(shape[1:], start=1):
        if d is None:
            other = fallback[i] if fallback is not None and i < len(fallback) else None
            dims.append(other if other is not None else 32)
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
    return [(np.asarray(a), np.asarray(b)) for a, b in zip(t_out, s_out)]


def _compare_one(ref: Ref, source_layer: str, a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> OutputResult:
    """allclose semantics per element; the relative figure is |diff| over the output's largest magnitude."""
    name = ref[0] + (f"[{ref[1]}]" if ref[1] else "") + (f"[{ref[2]}]" if ref[2] else "")
    shape = tuple(a.shape)
    if a.shape != b.shape:
        return OutputResult(target_layer=name, source_layer=source_layer, status=NOT_COMPARED, shape=shape,
                            reason=f"output shapes differ: {list(a.shape)} vs {list(b.shape)}")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(a64 - b64)
    max_abs_diff = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(b64).max()) if b64.size else 0.0
    max_rel_diff = max_abs_diff / scale if scale > 0 else (0.0 if max_abs_diff == 0 else math.inf)
    status, reason = PASS, ""
    if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
        status, reason = FAIL, "non-finite values"
    elif not np.all(diff <= atol + rtol * np.abs(b64)):
        status = FAIL
    return OutputResult(target_layer=name, source_layer=source_layer, status=status, shape=shape,
                        max_abs_diff=max_abs_diff, max_rel_diff=max_rel_diff, reason=reason)


def _where_it_starts(target: Architecture, graph: SharedGraph, builder: _SubModels, model, source, feed,
                     atol: float, rtol: float) -> list[dict]:
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
        item = _compare_one(ref, graph.layers[ref[0]], a, b, atol, rtol)
        if item.status == FAIL:
            differing[ref[0]] = max(differing.get(ref[0], 0.0), item.max_abs_diff or 0.0)
    origin = []
    for layer in order:
        if layer.name not in differing:
            continue
        inputs = {r.layer for c in layer.calls for r in c.inputs}
        if not inputs & set(differing):
            origin.append({"layer": layer.name, "max_abs_diff": differing[layer.name]})
    return origin


def _why_not(message: str, *, resized: bool = False) -> str:
    """Why a part of the shared sub-graph could not be run, in one short line."""
    text = " ".join(message.split())
    inner = re.search(r"\((\w+Error: .*)\)$", text)
    if inner:
        text = inner.group(1)
    prefix = "cannot run at the target's input size: " if resized else "cannot be rebuilt on its own: "
    return (prefix + text)[:300]
