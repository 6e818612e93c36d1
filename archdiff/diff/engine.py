"""Diffing two architectures: what changed, how it is classified, what exit code it means.

This module owns the :class:`ArchDiff` result. It pairs layers with
:func:`archdiff.matching.match_layers`, compares each pair (class, config,
trainable flag, weight shapes and dtypes, where its inputs come from), lists
the layers and edges added and removed, compares the model's inputs, outputs
and parameter totals, and classifies the whole. It never prints:
:mod:`archdiff.diffrender` formats the result.

Every change is one :class:`Change`, made by one of the small constructors
below, and carries its *effect*: one of :data:`KINDS`.
"""
from __future__ import annotations

import fnmatch
import gc
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from archdiff import __version__
from archdiff.diff.canonical import (align_defaults, class_known, class_of, normal_config, param_totals,
                        strict_config)
from archdiff.errors import UsageError
from archdiff.diff.matching import Matching, match_layers
from archdiff.model import Architecture, Layer

SCHEMA_VERSION = 1

#: The kinds of difference, from the mildest to the most severe.
KINDS = ("cosmetic", "weights-compatible", "weights-breaking", "interface-changing", "topology-changing")
#: What a diff can be classified as: identical, or its most severe kind.
CLASSIFICATIONS = ("identical", *KINDS)
#: Accepted by ``--fail-on`` besides the kinds.
FAIL_ON_SPECIAL = ("any", "none")

#: The change kinds one matched layer can have.
CHANGE_KINDS = ("renamed", "class", "config", "trainable", "weight", "inputs")


@dataclass(frozen=True)
class DiffOptions:
    """How to diff. Immutable; the CLI builds one from its flags."""

    #: Look for renamed layers (see :mod:`archdiff.matching`); off: names only.
    detect_renames: bool = True
    #: Show serialization noise (see :mod:`archdiff.canonical`) as cosmetic changes.
    strict: bool = False
    #: Patterns of changes to hide (see :func:`ignore_matches`).
    ignore: tuple[str, ...] = ()
    #: Kinds that make the exit code 1: "any" (the default), "none", or kinds.
    fail_on: tuple[str, ...] = ("any",)

    def __post_init__(self) -> None:
        for value in self.fail_on:
            if value not in KINDS and value not in FAIL_ON_SPECIAL:
                raise UsageError(f"--fail-on '{value}' is not a kind of difference",
                                 hint=f"use one of: {', '.join((*FAIL_ON_SPECIAL, *KINDS))}")
        for pattern in self.ignore:
            if not pattern.strip():
                raise UsageError("--ignore needs a non-empty pattern", hint="for example --ignore kernel_initializer")

    def to_dict(self) -> dict:
        return {"detect_renames": self.detect_renames, "strict": self.strict, "ignore": list(self.ignore),
                "fail_on": list(self.fail_on)}


# -- changes -------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    """One change of one matched layer."""

    kind: str
    #: What changed: ``units``, ``kernel_initializer.config.seed``, ``weights.kernel``,
    #: ``trainable``, ``class_name``, ``inputs``, ``name``.
    path: str
    old: Any
    new: Any
    #: "changed", "added" (absent in A) or "removed" (absent in B).
    op: str
    #: One of :data:`KINDS`.
    effect: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "op": self.op, "old": self.old, "new": self.new,
                "effect": self.effect}


def renamed(old: str, new: str) -> Change:
    return Change("renamed", "name", old, new, "changed", "cosmetic")


def class_changed(old: str, new: str) -> Change:
    return Change("class", "class_name", old, new, "changed", "weights-compatible")


def config_changed(path: str, old: Any, new: Any, op: str, *, cosmetic: bool = False) -> Change:
    return Change("config", path, old, new, op, "cosmetic" if cosmetic else "weights-compatible")


def trainable_changed(old: bool, new: bool) -> Change:
    return Change("trainable", "trainable", old, new, "changed", "weights-compatible")


def weight_changed(name: str, old: dict | None, new: dict | None) -> Change:
    op = "added" if old is None else "removed" if new is None else "changed"
    breaking = old is None or new is None or old["shape"] != new["shape"]
    return Change("weight", f"weights.{name}", old, new, op, "weights-breaking" if breaking else "weights-compatible")


def inputs_changed(old: list[str], new: list[str]) -> Change:
    return Change("inputs", "inputs", old, new, "changed", "topology-changing")


# -- result records ------------------------------------------------------------------
@dataclass(frozen=True)
class LayerDiff:
    """A matched pair of layers and what changed between them."""

    a: str
    b: str
    how: str
    evidence: tuple[str, ...]
    class_a: str
    class_b: str
    changes: tuple[Change, ...]

    @property
    def changed(self) -> bool:
        return any(c.kind != "renamed" for c in self.changes)

    @property
    def renamed(self) -> bool:
        return self.a != self.b

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "how": self.how, "evidence": list(self.evidence),
                "class_a": self.class_a, "class_b": self.class_b,
                "changes": [c.to_dict() for c in self.changes]}


@dataclass(frozen=True)
class LayerEntry:
    """A layer only one model has, and where it sits in that model's graph."""

    path: str
    name: str
    class_name: str
    index: int
    depth: int
    params: int | None
    #: Layers it takes its inputs from / feeds, in its own model.
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"path": self.path, "name": self.name, "class_name": self.class_name, "index": self.index,
                "depth": self.depth, "params": self.params, "inputs": list(self.inputs),
                "outputs": list(self.outputs)}


@dataclass(frozen=True)
class Edge:
    """A tensor passed from one layer to a call of another (paths in its own model)."""

    source: str
    target: str
    call: int
    position: int

    def to_dict(self) -> dict:
        return {"from": self.source, "to": self.target, "call": self.call, "position": self.position}


@dataclass(frozen=True)
class IOChange:
    """A change of the model's inputs or outputs."""

    side: str  # "input" or "output"
    index: int
    what: str  # "added", "removed", "name", "shape", "dtype", "source"
    old: Any
    new: Any
    effect: str

    def to_dict(self) -> dict:
        return {"side": self.side, "index": self.index, "what": self.what, "old": self.old, "new": self.new,
                "effect": self.effect}


@dataclass(frozen=True)
class ModelInfo:
    """One side of the diff, as the report names it."""

    path: str
    format: str
    keras_version: str | None
    dialect: str | None
    name: str
    class_name: str | None
    has_topology: bool
    has_weights: bool
    layers: int
    total_params: int | None
    trainable_params: int | None
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "keras_version": self.keras_version,
                "dialect": self.dialect, "name": self.name, "class_name": self.class_name,
                "has_topology": self.has_topology, "has_weights": self.has_weights, "layers": self.layers,
                "total_params": self.total_params, "trainable_params": self.trainable_params,
                "inputs": list(self.inputs), "outputs": list(self.outputs), "notes": list(self.notes)}


@dataclass(frozen=True)
class ArchDiff:
    """The difference between two architectures, classified."""

    a: ModelInfo
    b: ModelInfo
    matching: Matching = field(repr=False)
    #: Every matched pair, in A's layer order, with its changes.
    matched: tuple[LayerDiff, ...] = field(repr=False)
    added: tuple[LayerEntry, ...]
    removed: tuple[LayerEntry, ...]
    edges_added: tuple[Edge, ...]
    edges_removed: tuple[Edge, ...]
    io_changes: tuple[IOChange, ...]
    #: Whether the two graphs could be compared (both inputs have a topology).
    compared_topology: bool
    #: Model-level cosmetic changes (the model's own name).
    model_changes: tuple[Change, ...]
    #: Layers whose configs differed only in serialization noise (see --strict).
    noise_hidden: int
    #: Changes hidden by --ignore.
    ignored: int
    notes: tuple[str, ...]
    options: DiffOptions
    #: The kinds present, in :data:`KINDS` order.
    kinds: tuple[str, ...]
    classification: str
    #: Both models' layer orders (paths), for renderers that interleave removed layers.
    order_a: tuple[str, ...] = field(repr=False, default=())
    order_b: tuple[str, ...] = field(repr=False, default=())

    @property
    def identical(self) -> bool:
        return self.classification == "identical"

    @property
    def exit_code(self) -> int:
        """0 or 1 as ``options.fail_on`` says (see docs/diff.md); errors are 2 and never get here."""
        return 1 if fails(self.kinds, self.options.fail_on) else 0

    @property
    def changed(self) -> tuple[LayerDiff, ...]:
        return tuple(d for d in self.matched if d.changed)

    @property
    def renamed(self) -> tuple[LayerDiff, ...]:
        return tuple(d for d in self.matched if d.renamed)

    @property
    def params_delta(self) -> int | None:
        if self.a.total_params is None or self.b.total_params is None:
            return None
        return self.b.total_params - self.a.total_params

    @property
    def params_percent(self) -> float | None:
        delta = self.params_delta
        if delta is None or not self.a.total_params:
            return None
        return round(100.0 * delta / self.a.total_params, 3)

    def summary(self) -> dict:
        return {
            "matched": len(self.matched),
            "renamed": len(self.renamed),
            "changed": len(self.changed),
            "unchanged": sum(1 for d in self.matched if not d.changes),
            "added": len(self.added),
            "removed": len(self.removed),
            "edges_added": len(self.edges_added),
            "edges_removed": len(self.edges_removed),
            "io_changes": len(self.io_changes),
            "noise_hidden": self.noise_hidden,
            "ignored": self.ignored,
        }

    def to_dict(self) -> dict:
        """The documented JSON form (archdiff/schemas/diff.schema.json)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "archdiff", "version": __version__},
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
            "classification": self.classification,
            "kinds": list(self.kinds),
            "exit_code": self.exit_code,
            "options": self.options.to_dict(),
            "summary": self.summary(),
            "params": {"a": self.a.total_params, "b": self.b.total_params, "delta": self.params_delta,
                       "percent": self.params_percent},
            "compared_topology": self.compared_topology,
            "model_changes": [c.to_dict() for c in self.model_changes],
            "matched": [d.to_dict() for d in self.matched],
            "added": [e.to_dict() for e in self.added],
            "removed": [e.to_dict() for e in self.removed],
            "edges": {"added": [e.to_dict() for e in self.edges_added],
                      "removed": [e.to_dict() for e in self.edges_removed]},
            "io_changes": [c.to_dict() for c in self.io_changes],
            "notes": list(self.notes),
            "policy": None,
        }


def fails(kinds: Iterable[str], fail_on: Iterable[str]) -> bool:
    """Whether a diff with these kinds fails under ``--fail-on`` (see docs/diff.md)."""
    kinds = set(kinds)
    wanted = set(fail_on)
    if "none" in wanted and len(wanted) == 1:
        return False
    if "any" in wanted and kinds:
        return True
    return bool(kinds & wanted)


# -- --ignore -------------------------------------------------------------------------
_DEEPDIFF_PATH = re.compile(r"\[(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|(\d+))\]")


def _pattern_path(pattern: str) -> str:
    """Accept deepdiff's ``root['a']['b'][0]`` spelling as well as ``a.b[0]``."""
    if pattern.startswith("root"):
        parts = []
        for m in _DEEPDIFF_PATH.finditer(pattern[4:]):
            if m.group(3) is not None:
                parts.append(f"[{m.group(3)}]")
            else:
                key = m.group(1) if m.group(1) is not None else m.group(2)
                parts.append(("." if parts else "") + key)
        return "".join(parts)
    return pattern


def _path_matches(path: str, pattern: str) -> bool:
    if fnmatch.fnmatchcase(path, pattern):
        return True
    if path.startswith(pattern + ".") or path.startswith(pattern + "["):
        return True
    if fnmatch.fnmatchcase(path, pattern + ".*") or fnmatch.fnmatchcase(path, pattern + "[*"):
        return True
    if "." not in pattern and "[" not in pattern:
        components = [c.split("[", 1)[0] for c in path.split(".")]
        return any(fnmatch.fnmatchcase(c, pattern) for c in components)
    return False


def ignore_matches(patterns: Iterable[str], layer_paths: Iterable[str], change_path: str) -> bool:
    """Whether an ``--ignore`` pattern hides a change.

    ``PATH`` hides changes at that config path or below it (``a.b``, ``a.b[0]``,
    deepdiff's ``root['a']['b']`` also works), globs allowed; a bare key with
    no dot hides that key at any depth. ``LAYER:PATH`` limits it to layers whose
    path (in A or B) matches the glob ``LAYER``. Other change kinds have paths
    too: ``trainable``, ``class_name``, ``inputs``, ``name``, ``weights.NAME``.
    """
    layer_paths = list(layer_paths)
    for raw in patterns:
        layer_glob = None
        pattern = raw
        if ":" in raw and not raw.startswith("root"):
            layer_glob, _, pattern = raw.partition(":")
        pattern = _pattern_path(pattern.strip())
        if layer_glob is not None and not any(fnmatch.fnmatchcase(p, layer_glob) for p in layer_paths):
            continue
        if not pattern or pattern == "*" or _path_matches(change_path, pattern):
            return True
    return False


# -- comparing one pair --------------------------------------------------------------
class _NotPresent:
    pass


def _dotted(parts: list) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _get(value: Any, parts: list) -> Any:
    for part in parts:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return _NotPresent
    return value


def _scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value)


def config_diff(old: dict, new: dict) -> list[tuple[str, Any, Any, str]]:
    """``(path, old, new, op)`` for each difference; short lists of scalars as a whole."""
    if old == new:
        return []
    from deepdiff import DeepDiff

    tree = DeepDiff(old, new, view="tree", verbose_level=2)
    out: dict[str, tuple[str, Any, Any, str]] = {}
    for _kind, levels in tree.items():
        for level in levels:
            parts = level.path(output_format="list")
            # A shape or a kernel size reads best as a whole: (3, 3) -> (5, 5).
            for i, part in enumerate(parts):
                if isinstance(part, int):
                    head = parts[:i]
                    va, vb = _get(old, head), _get(new, head)
                    if (_scalar_list(va) or va is _NotPresent) and (_scalar_list(vb) or vb is _NotPresent):
                        parts = head
                    break
            path = _dotted(parts)
            if path in out:
                continue
            va, vb = _get(old, parts), _get(new, parts)
            if va is _NotPresent:
                out[path] = (path, None, vb, "added")
            elif vb is _NotPresent:
                out[path] = (path, va, None, "removed")
            else:
                out[path] = (path, va, vb, "changed")
    return [out[k] for k in sorted(out)]


def _weights_dict(w) -> dict:
    return {"shape": list(w.shape), "dtype": w.dtype}


def _positional(weights) -> bool:
    return all(w.name.isdigit() for w in weights)


def weight_changes(la: Layer, lb: Layer) -> list[Change]:
    wa, wb = la.weights, lb.weights
    if wa is None or wb is None or la.is_model or lb.is_model:
        return []
    shapes_a = [(tuple(w.shape), w.dtype) for w in wa]
    shapes_b = [(tuple(w.shape), w.dtype) for w in wb]
    names_a = [w.name for w in wa]
    names_b = [w.name for w in wb]
    if shapes_a == shapes_b:
        return []  # names aside (Keras 3 files keep variables by position), nothing changed
    out: list[Change] = []
    by_position = (_positional(wa) or _positional(wb) or set(names_a) != set(names_b)) and len(wa) == len(wb)
    if by_position or _positional(wa) or _positional(wb):
        for i in range(max(len(wa), len(wb))):
            x = wa[i] if i < len(wa) else None
            y = wb[i] if i < len(wb) else None
            label = next((w.name for w in (y, x) if w is not None and not w.name.isdigit()), str(i))
            dx = _weights_dict(x) if x is not None else None
            dy = _weights_dict(y) if y is not None else None
            if dx != dy:
                out.append(weight_changed(label, dx, dy))
        return out
    index_b = {w.name: w for w in wb}
    seen = set()
    for w in wa:
        seen.add(w.name)
        other = index_b.get(w.name)
        if other is None:
            out.append(weight_changed(w.name, _weights_dict(w), None))
        elif _weights_dict(w) != _weights_dict(other):
            out.append(weight_changed(w.name, _weights_dict(w), _weights_dict(other)))
    for w in wb:
        if w.name not in seen:
            out.append(weight_changed(w.name, None, _weights_dict(w)))
    return out


# -- the diff ------------------------------------------------------------------------
def diff(a: Architecture, b: Architecture, options: DiffOptions | None = None) -> ArchDiff:
    """Compare two architectures; see the module docstring."""
    options = options or DiffOptions()
    # The work allocates many small objects and frees few: the cyclic collector's full passes
    # over two large models cost more than the diff itself (and grow with the model).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _Differ(a, b, options).run()
    finally:
        if enabled:
            gc.enable()


def _info(arch: Architecture) -> ModelInfo:
    totals = param_totals(arch)
    return ModelInfo(
        path=arch.source.path, format=arch.source.format, keras_version=arch.source.keras_version,
        dialect=arch.source.dialect, name=arch.name, class_name=arch.class_name,
        has_topology=arch.has_topology, has_weights=arch.has_weights, layers=len(arch.layers),
        total_params=totals[0] if totals else None, trainable_params=totals[1] if totals else None,
        inputs=tuple(s.to_dict() for s in arch.input_specs),
        outputs=tuple(_output_dict(arch, r) for r in arch.outputs),
        notes=tuple(arch.notes),
    )


def _output_dict(arch: Architecture, ref) -> dict:
    layer = arch.by_path.get(ref.layer)
    shape = None
    if layer is not None and layer.output_shapes and ref.tensor_index < len(layer.output_shapes):
        s = layer.output_shapes[ref.tensor_index]
        shape = list(s) if isinstance(s, tuple) else None
    return {"layer": ref.layer, "node_index": ref.node_index, "tensor_index": ref.tensor_index, "shape": shape}


def _scope_of(path: str) -> str:
    return path.rpartition("/")[0]


class _Differ:
    def __init__(self, a: Architecture, b: Architecture, options: DiffOptions):
        self.a, self.b, self.options = a, b, options
        self.ignored = 0
        self.noise = 0
        self.notes: list[str] = []
        self.consumer_cache: dict[int, dict[str, list[str]]] = {}

    def run(self) -> ArchDiff:
        a, b, options = self.a, self.b, self.options
        self.topology = a.has_topology and b.has_topology
        self.configs = self.topology  # a subclassed model's layers come from its weights, without configs
        for label, arch in (("A", a), ("B", b)):
            if not arch.has_topology:
                what = (f"a subclassed model ('{arch.class_name}')" if arch.class_name
                        else "a weights-only file")
                self.notes.append(f"{label} is {what}: it has no topology, so layers are compared by name "
                                  "and weight shapes only (no configs, edges, inputs or outputs)")
        matching = match_layers(a, b, detect_renames=options.detect_renames)
        self.matching = matching
        self.notes.extend(matching.notes)

        matched = tuple(self._pair(p) for p in matching.pairs)
        removed = tuple(self._entry(a, a.by_path[p]) for p in matching.only_a)
        added = tuple(self._entry(b, b.by_path[p]) for p in matching.only_b)
        edges_added: tuple[Edge, ...] = ()
        edges_removed: tuple[Edge, ...] = ()
        io: tuple[IOChange, ...] = ()
        if self.topology:
            edges_added, edges_removed = self._edges()
            io = tuple(self._io())
        model_changes = []
        if a.name != b.name and a.class_name and b.class_name and not self._hidden((), "model.name"):
            model_changes.append(Change("renamed", "model.name", a.name, b.name, "changed", "cosmetic"))
        if a.class_name != b.class_name and a.class_name and b.class_name and (
                not self._hidden((), "model.class_name")):
            same = class_of_name(a.class_name) == class_of_name(b.class_name)
            if not same or options.strict:
                model_changes.append(Change("class", "model.class_name", a.class_name, b.class_name, "changed",
                                            "cosmetic" if same else "topology-changing"))

        kinds = set()
        for d in matched:
            for c in d.changes:
                kinds.add(c.effect)
        for c in model_changes:
            kinds.add(c.effect)
        if added or removed or edges_added or edges_removed:
            kinds.add("topology-changing")
        for c in io:
            kinds.add(c.effect)
        substantive = kinds - {"cosmetic"}
        if substantive and "weights-breaking" not in kinds:
            kinds.add("weights-compatible")
        ordered = tuple(k for k in KINDS if k in kinds)
        classification = ordered[-1] if ordered else "identical"
        return ArchDiff(
            a=_info(a), b=_info(b), matching=matching, matched=matched, added=added, removed=removed,
            edges_added=edges_added, edges_removed=edges_removed, io_changes=io,
            compared_topology=self.topology, model_changes=tuple(model_changes), noise_hidden=self.noise,
            ignored=self.ignored, notes=tuple(self.notes), options=options, kinds=ordered,
            classification=classification, order_a=tuple(layer.path for layer in a.layers),
            order_b=tuple(layer.path for layer in b.layers),
        )

    # -- filtering -----------------------------------------------------------------
    def _hidden(self, layer_paths, change_path: str) -> bool:
        if self.options.ignore and ignore_matches(self.options.ignore, layer_paths, change_path):
            self.ignored += 1
            return True
        return False

    def _keep(self, pair_paths, changes: list[Change]) -> list[Change]:
        if not self.options.ignore:
            return changes
        return [c for c in changes if not self._hidden(pair_paths, c.path)]

    # -- one pair ------------------------------------------------------------------
    def _pair(self, pair) -> LayerDiff:
        la, lb = self.a.by_path[pair.a], self.b.by_path[pair.b]
        changes: list[Change] = []
        if la.name != lb.name:
            changes.append(renamed(la.name, lb.name))
        known = class_known(la.class_name) and class_known(lb.class_name)
        if known and class_of(la) != class_of(lb):
            changes.append(class_changed(la.class_name, lb.class_name))
        elif known and la.class_name != lb.class_name and self.options.strict:
            changes.append(Change("class", "class_name", la.class_name, lb.class_name, "changed", "cosmetic"))
        if self.configs and la.config and lb.config:
            if la.trainable != lb.trainable:
                changes.append(trainable_changed(la.trainable, lb.trainable))
            changes.extend(self._config_changes(la, lb))
        changes.extend(weight_changes(la, lb))
        if self.topology:
            inputs = self._inputs_change(la, lb)
            if inputs is not None:
                changes.append(inputs)
        changes = self._keep((pair.a, pair.b), changes)
        return LayerDiff(pair.a, pair.b, pair.how, pair.evidence, la.class_name, lb.class_name, tuple(changes))

    def _config_changes(self, la: Layer, lb: Layer) -> list[Change]:
        if la.config == lb.config or (la.name != lb.name and _same_but_name(la.config, lb.config)):
            return []
        na, nb = align_defaults(normal_config(la), normal_config(lb))
        if not self.options.strict:
            if na == nb:
                self.noise += 1
                return []
            return [config_changed(p, o, n, op) for p, o, n, op in config_diff(na, nb)]
        substantive = {p for p, *_ in config_diff(na, nb)}
        out = [config_changed(p, o, n, op, cosmetic=p not in substantive)
               for p, o, n, op in config_diff(strict_config(la), strict_config(lb))]
        if la.module != lb.module:
            out.append(config_changed("module", la.module, lb.module, "changed", cosmetic=True))
        return out

    def _inputs_change(self, la: Layer, lb: Layer) -> Change | None:
        if not la.calls and not lb.calls:
            return None
        a2b = self.matching.a_to_b
        mapped = []
        for call in la.calls:
            refs = []
            for ref in call.inputs:
                pa = f"{la.parent}/{ref.layer}" if la.parent else ref.layer
                node = ref.node_index
                if pa in self.a.by_path:
                    pb = a2b.get(pa)
                    refs.append((pb if pb is not None else "\0" + pa, node, ref.tensor_index))
                else:
                    refs.append(("\0implicit", node, ref.tensor_index))
            mapped.append(refs)
        actual = []
        for call in lb.calls:
            refs = []
            for ref in call.inputs:
                pb = f"{lb.parent}/{ref.layer}" if lb.parent else ref.layer
                node = ref.node_index
                refs.append((pb if pb in self.b.by_path else "\0implicit", node, ref.tensor_index))
            actual.append(refs)
        if mapped == actual:
            return None
        return inputs_changed(_call_text(la, self.matching.a_to_b), _call_text(lb))

    def _entry(self, arch: Architecture, layer: Layer) -> LayerEntry:
        inputs = []
        for call in layer.calls:
            for ref in call.inputs:
                if ref.layer not in inputs:
                    inputs.append(ref.layer)
        outputs = []
        prefix = f"{layer.parent}/" if layer.parent else ""
        for other in self._consumers(arch).get(layer.path, ()):
            name = other[len(prefix):] if prefix and other.startswith(prefix) else other
            if name not in outputs:
                outputs.append(name)
        return LayerEntry(layer.path, layer.name, layer.class_name, layer.index, layer.depth, arch.params(layer),
                          tuple(inputs), tuple(outputs))

    def _consumers(self, arch: Architecture) -> dict[str, list[str]]:
        """Layer path -> the paths of the layers it feeds (built once per model)."""
        cache = self.consumer_cache
        key = id(arch)
        if key not in cache:
            out: dict[str, list[str]] = {}
            for layer in arch.layers:
                prefix = f"{layer.parent}/" if layer.parent else ""
                for call in layer.calls:
                    for ref in call.inputs:
                        out.setdefault(prefix + ref.layer, []).append(layer.path)
            cache[key] = out
        return cache[key]

    # -- whole-graph -----------------------------------------------------------------
    def _edge_set(self, arch: Architecture, mapping: dict[str, str] | None) -> dict[tuple, Edge]:
        out: dict[tuple, Edge] = {}
        for layer in arch.layers:
            prefix = f"{layer.parent}/" if layer.parent else ""
            for c, call in enumerate(layer.calls):
                for p, ref in enumerate(call.inputs):
                    source = prefix + ref.layer
                    if mapping is not None:
                        target_key = mapping.get(layer.path, "\0" + layer.path)
                        if source in arch.by_path:
                            source_key = mapping.get(source, "\0" + source)
                        else:  # a Sequential's implicit input: the same wherever its scope went
                            scope = mapping.get(layer.parent, layer.parent) if layer.parent else ""
                            source_key = f"\0implicit:{scope}"
                    else:
                        target_key = layer.path
                        source_key = source if source in arch.by_path else f"\0implicit:{layer.parent}"
                    key = (source_key, target_key, c, p, ref.node_index, ref.tensor_index)
                    out[key] = Edge(source, layer.path, c, p)
        return out

    def _edges(self) -> tuple[tuple[Edge, ...], tuple[Edge, ...]]:
        mapped_a = self._edge_set(self.a, self.matching.a_to_b)
        in_b = self._edge_set(self.b, None)
        added = tuple(e for k, e in in_b.items() if k not in mapped_a)
        removed = tuple(e for k, e in mapped_a.items() if k not in in_b)
        return added, removed

    def _io(self) -> Iterable[IOChange]:
        a, b = self.a, self.b
        a2b = self.matching.a_to_b
        specs_a, specs_b = a.input_specs, b.input_specs
        for i in range(max(len(specs_a), len(specs_b))):
            sa = specs_a[i] if i < len(specs_a) else None
            sb = specs_b[i] if i < len(specs_b) else None
            if sa is None or sb is None:
                yield IOChange("input", i, "added" if sa is None else "removed",
                               sa.to_dict() if sa else None, sb.to_dict() if sb else None, "interface-changing")
                continue
            if sa.shape != sb.shape and sa.shape is not None and sb.shape is not None:
                yield IOChange("input", i, "shape", list(sa.shape), list(sb.shape), "interface-changing")
            if sa.dtype != sb.dtype and sa.dtype and sb.dtype:
                yield IOChange("input", i, "dtype", sa.dtype, sb.dtype, "interface-changing")
            if sa.name != sb.name and a2b.get(sa.name, sa.name) != sb.name:
                yield IOChange("input", i, "source", sa.name, sb.name, "interface-changing")
            elif sa.name != sb.name:
                yield IOChange("input", i, "name", sa.name, sb.name, "cosmetic")
        outs_a, outs_b = a.outputs, b.outputs
        for i in range(max(len(outs_a), len(outs_b))):
            ra = outs_a[i] if i < len(outs_a) else None
            rb = outs_b[i] if i < len(outs_b) else None
            if ra is None or rb is None:
                yield IOChange("output", i, "added" if ra is None else "removed",
                               _output_dict(a, ra) if ra else None, _output_dict(b, rb) if rb else None,
                               "interface-changing")
                continue
            da, db = _output_dict(a, ra), _output_dict(b, rb)
            if (a2b.get(ra.layer) != rb.layer or ra.tensor_index != rb.tensor_index
                    or ra.node_index != rb.node_index):
                yield IOChange("output", i, "source", ra.layer, rb.layer, "interface-changing")
            elif ra.layer != rb.layer:
                yield IOChange("output", i, "name", ra.layer, rb.layer, "cosmetic")
            if da["shape"] is not None and db["shape"] is not None and da["shape"] != db["shape"]:
                yield IOChange("output", i, "shape", da["shape"], db["shape"], "interface-changing")


def class_of_name(name: str) -> str:
    return "Functional" if name == "Model" else name


def _same_but_name(ca, cb) -> bool:
    if len(ca) != len(cb):
        return False
    for key, value in ca.items():
        if key == "name":
            continue
        if key not in cb or cb[key] != value:
            return False
    return True


def _call_text(layer: Layer, renames: dict[str, str] | None = None) -> list[str]:
    out = []
    prefix = f"{layer.parent}/" if layer.parent else ""
    for c, call in enumerate(layer.calls):
        for ref in call.inputs:
            text = ref.layer if (ref.node_index, ref.tensor_index) == (0, 0) else \
                f"{ref.layer}[{ref.node_index}][{ref.tensor_index}]"
            if renames is not None:
                now = renames.get(prefix + ref.layer)
                if now is not None and now != prefix + ref.layer:
                    text += f" (now {now})"
            out.append(text if len(layer.calls) == 1 else f"call {c}: {text}")
    return out
