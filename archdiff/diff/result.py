"""The result of a diff: :class:`ArchDiff` and the records it is made of, and what exit code it means.

This module owns the data a diff returns (the engine builds it, the renderers
and the policy read it): one :class:`Change` per change of a matched layer
(made by the constructors in :mod:`archdiff.diff.kinds`), the matched pairs
(:class:`LayerDiff`), the layers only one side has (:class:`LayerEntry`), the
edges added and removed (:class:`Edge`), the changes of the model's inputs
and outputs (:class:`IOChange`), each side's description (:class:`ModelInfo`),
and the whole, classified. Every record has ``to_dict()``; ``ArchDiff.to_dict()``
is the documented JSON form (``archdiff/schemas/diff.schema.json``).

The exit code is a property of the result (:attr:`ArchDiff.exit_code`), decided
by :func:`fails` from the kinds present and ``options.fail_on``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from archdiff import __version__
from archdiff.textfmt import percent
from archdiff.views import notebook as _notebook

if TYPE_CHECKING:
    from archdiff.diff.matching import Matching
    from archdiff.diff.options import DiffOptions
    from archdiff.diff.values import ValueComparison

#: Version of the JSON form; bumped on any change that is not an addition.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Change:
    """One change of one matched layer (or of the model itself: ``model.name``, ``model.class_name``)."""

    #: One of :data:`archdiff.diff.kinds.CHANGE_KINDS`.
    kind: str
    #: What changed: ``units``, ``kernel_initializer.config.seed``, ``weights.kernel``,
    #: ``trainable``, ``class_name``, ``inputs``, ``name``.
    path: str
    old: Any
    new: Any
    #: "changed", "added" (absent in A) or "removed" (absent in B).
    op: str
    #: One of :data:`archdiff.diff.kinds.KINDS`.
    effect: str

    def to_dict(self) -> dict:
        return {"kind": self.kind, "path": self.path, "op": self.op, "old": self.old, "new": self.new,
                "effect": self.effect}


@dataclass(frozen=True)
class LayerDiff:
    """A matched pair of layers and what changed between them."""

    a: str
    b: str
    #: How the pair was made (:data:`archdiff.diff.matching.HOW`) and why.
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
        # A layer found under a nesting's prefix with its own name is not renamed (the nesting is reported),
        # nor one a weights file knows only by Keras' key (the file does not know its name).
        return self.a != self.b and self.how not in ("nesting", "key")

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
    """A change of the model's inputs or outputs (made by :func:`archdiff.diff.kinds.io_changed`)."""

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
    #: The layers Keras lists (``model.layers``, nested models' layers included): operations left out;
    #: None where the input cannot tell (a constructor config, keras-hub's, without weights).
    layers: int | None
    total_params: int | None
    trainable_params: int | None
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    notes: tuple[str, ...]
    #: Keras 3 operations (``x + y``, ``keras.ops.*``): nodes of the graph, not in ``model.layers``.
    operations: int = 0

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "keras_version": self.keras_version,
                "dialect": self.dialect, "name": self.name, "class_name": self.class_name,
                "has_topology": self.has_topology, "has_weights": self.has_weights, "layers": self.layers,
                "total_params": self.total_params, "trainable_params": self.trainable_params,
                "inputs": list(self.inputs), "outputs": list(self.outputs), "notes": list(self.notes),
                "operations": self.operations}


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
    #: The kinds present, in :data:`archdiff.diff.kinds.KINDS` order.
    kinds: tuple[str, ...]
    classification: str
    #: Both models' layer orders (paths), for renderers that interleave removed layers.
    order_a: tuple[str, ...] = field(repr=False, default=())
    order_b: tuple[str, ...] = field(repr=False, default=())
    #: The weight values compared (:mod:`archdiff.diff.values`); None where a side has no weights or
    #: ``options.values`` is "off". Each changed variable is also a ``values`` change of its layer.
    values: ValueComparison | None = field(default=None)
    #: The two architectures compared, for views that draw them (a notebook's graph); not part of the result.
    architectures: tuple[Any, Any] | None = field(repr=False, compare=False, default=None)

    @property
    def identical(self) -> bool:
        return self.classification == "identical"

    @property
    def exit_code(self) -> int:
        """What ``archdiff diff`` exits with for this result, following ``diff(1)``.

        0 when no kind present is one ``options.fail_on`` fails on, 1 when one is
        (:func:`fails`; see docs/diff.md). Errors exit 2 and never make a result.
        A policy, where one is given, decides instead (:func:`archdiff.diff.gate.decide`).
        """
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
        value = percent(delta, self.a.total_params)  # None beyond a float: counts of any size are valid input
        return None if value is None else round(value, 3)

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
            "nesting": [n.to_dict() for n in self.matching.nestings],
            "values": None if self.values is None else self.values.to_dict(),
            "policy": None,
        }

    # How a diff shows in Jupyter (HTML with the graph), IPython (the text report) and a REPL (one line).
    _repr_html_ = _notebook.diff_html
    _repr_pretty_ = _notebook.diff_pretty
    __repr__ = _notebook.diff_repr


def fails(kinds: Iterable[str], fail_on: Iterable[str]) -> bool:
    """Whether a diff with these kinds fails under ``--fail-on`` (see docs/diff.md).

    ``fail_on`` holds kinds, or "any" (any kind fails), or "none" alone (nothing fails).
    """
    kinds = set(kinds)
    wanted = set(fail_on)
    if "none" in wanted and len(wanted) == 1:
        return False
    if "any" in wanted and kinds:
        return True
    return bool(kinds & wanted)
