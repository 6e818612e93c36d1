"""Weight transfer by layer name: pairing layers and variables, the checks, the :class:`TransferPlan`.

``plan_transfer(source, target, options)`` pairs every target layer that has
weights with the source layer of the same path (nested models by path,
``base/conv1``), after the rename rules (``--map``, a map file, regex rules,
``--match auto``: :mod:`archdiff.transfer.rules`), then pairs their variables
by name where both files name them and by position otherwise, checking shape
and dtype. It never shifts weights by position across layers. It returns a
:class:`TransferPlan`; it reads no tensor data and writes nothing (the files'
metadata comes from the reader, ``archdiff.read.load``; which layouts can be
written, and a sharded source's files, from :mod:`archdiff.store`).
Carrying a plan out is :mod:`archdiff.transfer.apply`.

Exit codes (``TransferPlan.exit_code``): 0 the transfer does what was
asked (target layers the source lacks, a new head, keep their own weights);
1 refused on coverage, nothing written: ``--require-all`` or
``--min-coverage`` not met, or so little in common that the models probably
do not correspond (under half of the source's layers with weights used *and*
under half of the target's filled; ``--allow-low-coverage`` writes it
anyway); 2 an error (mismatches without ``--skip-mismatch`` or an adapter,
lossy casts without ``--allow-cast``, nothing matched).

Longer than ~600 lines on purpose: the plan's result types, layer pairing,
variable checks and the coverage rule that sets the exit code are one
vocabulary read together (docs/transfer.md), and each piece is small; the
shape adapters, which are not, live in :mod:`archdiff.transfer.adapt`.
"""
from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field

from archdiff.errors import InputError, UsageError
from archdiff.model import Architecture, Layer, WeightSpec
from archdiff.store import store_class
from archdiff.transfer.adapt import CONV_CLASSES, Adaptation, adapt_array, parse_adapters, plan_adaptation  # noqa: F401
from archdiff.transfer.rules import MapRule, auto_rules

_SUFFIX = re.compile(r":\d+$")


#: Target formats OUT can be written in, by ``Source.format``.
WEIGHT_FILE_FORMATS = ("h5", "h5-weights", "weights.h5")


# -- options -----------------------------------------------------------------------
@dataclass(frozen=True)
class TransferOptions:
    """How to pair layers and what to tolerate; passed explicitly, never global."""

    maps: tuple[MapRule, ...] = ()
    #: "name" (exact paths after the rules) or "auto" (also the diff's detected renames and nestings).
    match: str = "name"
    skip_mismatch: bool = False
    allow_cast: bool = False
    #: Shape adapters allowed (:data:`archdiff.transfer.adapt.ADAPTERS`); none: shapes must be equal.
    adapt: tuple[str, ...] = ()
    #: Refuse (exit 1) unless every target layer with weights gets them from the source.
    require_all: bool = False
    #: Refuse (exit 1) unless at least this fraction of the target's layers with weights get them.
    min_coverage: float | None = None
    #: Write even when the models look unrelated (see :attr:`TransferPlan.refusal`).
    allow_low_coverage: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "adapt", parse_adapters(self.adapt))
        if self.min_coverage is not None and not 0.0 <= float(self.min_coverage) <= 1.0:
            raise UsageError(f"--min-coverage {self.min_coverage} is not a fraction between 0 and 1",
                             hint="for example --min-coverage 0.9 (90% of the target's layers with weights)")

    def to_dict(self) -> dict:
        return {"match": self.match, "maps": [{"rule": r.text, "origin": r.origin} for r in self.maps],
                "skip_mismatch": self.skip_mismatch, "allow_cast": self.allow_cast, "adapt": list(self.adapt),
                "require_all": self.require_all, "min_coverage": self.min_coverage,
                "allow_low_coverage": self.allow_low_coverage}


# -- the plan --------------------------------------------------------------------
@dataclass(frozen=True)
class FileInfo:
    """One input file as the report names it."""

    path: str
    format: str
    keras_version: str | None
    description: str

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "keras_version": self.keras_version,
                "description": self.description}


#: Variable actions: copy (same dtype), cast (dtype converted), adapt (shape adapted, ``--adapt``),
#: skip (matched layer not copied), keep (no source).
VAR_ACTIONS = ("copy", "cast", "adapt", "skip", "keep")


#: Layer statuses: copied, adapted (copied, some variables through an adapter), skipped (--skip-mismatch),
#: kept (no source layer), mismatch (an error).
LAYER_STATUSES = ("copied", "adapted", "skipped", "kept", "mismatch")

#: Layer statuses whose layer gets the source's weights.
FILLED = ("copied", "adapted")


@dataclass(frozen=True)
class VariableTransfer:
    """One target variable: where its new value comes from, or why it keeps its own."""

    target: str
    shape: tuple[int, ...]
    dtype: str
    action: str
    target_location: str | None
    source: str | None = None
    source_shape: tuple[int, ...] | None = None
    source_dtype: str | None = None
    source_location: str | None = None
    #: "name" or "position": how it was paired with the source variable.
    paired_by: str | None = None
    reason: str | None = None
    #: The shape adapter (``action == "adapt"``) and what it does.
    adaptation: Adaptation | None = field(default=None, compare=False)

    @property
    def params(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    @property
    def nbytes(self) -> int:
        return self.params * _itemsize(self.dtype)

    @property
    def copies(self) -> bool:
        return self.action in ("copy", "cast", "adapt")

    @property
    def adapter(self) -> str | None:
        return self.adaptation.adapter if self.adaptation is not None else None

    def to_dict(self) -> dict:
        return {
            "target": self.target, "source": self.source, "paired_by": self.paired_by,
            "action": self.action, "adapter": self.adapter, "reason": self.reason,
            "shape": list(self.shape), "dtype": self.dtype,
            "source_shape": None if self.source_shape is None else list(self.source_shape),
            "source_dtype": self.source_dtype, "params": self.params, "bytes": self.nbytes,
            "target_dataset": self.target_location, "source_dataset": self.source_location,
        }


@dataclass(frozen=True)
class LayerTransfer:
    """One target layer that has weights, and what happens to them."""

    target: str
    status: str
    variables: tuple[VariableTransfer, ...]
    class_name: str | None = None
    source: str | None = None
    #: "name", "auto-name", "map", "regex", "auto" or "nesting" (see docs/transfer.md).
    matched_by: str | None = None
    rule: str | None = None
    reason: str | None = None

    @property
    def params(self) -> int:
        return sum(v.params for v in self.variables)

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.variables)

    def to_dict(self) -> dict:
        return {
            "target": self.target, "source": self.source, "class_name": self.class_name,
            "matched_by": self.matched_by, "rule": self.rule, "status": self.status, "reason": self.reason,
            "params": self.params, "bytes": self.nbytes,
            "variables": [v.to_dict() for v in self.variables],
        }


@dataclass(frozen=True)
class UnusedLayer:
    """A source layer with weights that no target layer took."""

    path: str
    params: int
    nbytes: int
    reason: str
    class_name: str | None = None

    def to_dict(self) -> dict:
        return {"source": self.path, "class_name": self.class_name, "params": self.params, "bytes": self.nbytes,
                "reason": self.reason}


@dataclass(frozen=True)
class Totals:
    """Counts of the plan. ``copied_*`` counts every layer and variable that gets the source's values
    (adapted ones included: ``adapted_*`` and ``cast_params`` are parts of it)."""

    target_layers: int
    copied_layers: int
    adapted_layers: int
    skipped_layers: int
    kept_layers: int
    mismatched_layers: int
    target_params: int
    target_bytes: int
    copied_params: int
    copied_bytes: int
    cast_params: int
    adapted_params: int
    skipped_params: int
    kept_params: int
    source_layers: int
    unused_source_layers: int
    unused_source_params: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TransferPlan:
    """What a transfer will do, layer by layer; computed from the files' metadata only."""

    source: FileInfo
    target: FileInfo
    options: TransferOptions
    layers: tuple[LayerTransfer, ...]
    unused: tuple[UnusedLayer, ...]
    #: Everything that stops the transfer, all at once (empty when it can run).
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: Shard files of a sharded source, resolved when planning.
    source_files: tuple[str, ...] = field(default=(), compare=False)
    #: Why the transfer is refused on coverage (exit 1, nothing written), or None (see :func:`coverage_refusal`).
    refusal: str | None = None
    #: Nestings the matcher found between the files (``--match auto`` pairs through them).
    nestings: tuple = field(default=(), compare=False)

    @property
    def copies(self) -> list[tuple[LayerTransfer, VariableTransfer]]:
        return [(layer, var) for layer in self.layers if layer.status in FILLED
                for var in layer.variables if var.copies]

    @property
    def coverage(self) -> dict:
        """How much of each side the transfer uses: layers with weights, and the fractions."""
        t = self.totals
        used = len({layer.source for layer in self.layers if layer.status in FILLED})
        return {"source_layers": t.source_layers, "source_layers_used": used,
                "source_fraction": round(used / t.source_layers, 4) if t.source_layers else 0.0,
                "target_layers": t.target_layers, "target_layers_filled": t.copied_layers,
                "target_fraction": round(t.copied_layers / t.target_layers, 4) if t.target_layers else 0.0}

    @property
    def totals(self) -> Totals:
        def count(status):
            return sum(1 for layer in self.layers if layer.status == status)

        def params(status):
            return sum(layer.params for layer in self.layers if layer.status == status)

        return Totals(
            target_layers=len(self.layers),
            copied_layers=count("copied") + count("adapted"), adapted_layers=count("adapted"),
            skipped_layers=count("skipped"), kept_layers=count("kept"),
            mismatched_layers=count("mismatch"),
            target_params=sum(layer.params for layer in self.layers),
            target_bytes=sum(layer.nbytes for layer in self.layers),
            copied_params=sum(v.params for _, v in self.copies),
            copied_bytes=sum(v.nbytes for _, v in self.copies),
            cast_params=sum(v.params for _, v in self.copies if v.action == "cast"),
            adapted_params=sum(v.params for _, v in self.copies if v.action == "adapt"),
            skipped_params=params("skipped"), kept_params=params("kept"),
            source_layers=len({layer.source for layer in self.layers if layer.source} | {u.path for u in self.unused}),
            unused_source_layers=len(self.unused),
            unused_source_params=sum(u.params for u in self.unused),
        )

    @property
    def exit_code(self) -> int:
        """0 the transfer does what was asked; 1 refused on coverage (nothing written); 2 it cannot run."""
        if self.problems:
            return 2
        if self.refusal:
            return 1
        return 0


# -- layers with weights, as matched ----------------------------------------------
@dataclass(frozen=True)
class _Unit:
    """A layer with weights, as matching sees it."""

    path: str
    name: str
    class_name: str | None
    weights: tuple[WeightSpec, ...]
    #: From a Keras 2 weights-only file: the layer sits somewhere inside the
    #: top-level model ``path.split('/')[0]``, but intermediate models are unknown.
    approximate: bool = False
    #: The name is one Keras made up (class + counter, or a file's group key when
    #: the file holds no names): it shifts when a layer is inserted earlier.
    auto_named: bool = False

    @property
    def top(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def params(self) -> int:
        return sum(w.size for w in self.weights)

    @property
    def nbytes(self) -> int:
        return sum(w.size * _itemsize(w.dtype) for w in self.weights)


def _units(arch: Architecture) -> list[_Unit]:
    from archdiff.diff.canonical import is_auto_name

    flat = not arch.has_topology and arch.source.format == "h5-weights"
    unnamed = _unnamed(arch)
    units: list[_Unit] = []
    for layer in arch.layers:
        if layer.is_model or not layer.weights:
            continue
        class_name = None if layer.class_name.startswith("?") else layer.class_name
        if flat:
            units.extend(_split_flat(layer))
        else:
            auto = unnamed or (class_name is not None and is_auto_name(layer.name, class_name))
            units.append(_Unit(layer.path, layer.name, class_name, tuple(layer.weights), auto_named=auto))
    return units


def _split_flat(layer: Layer) -> list[_Unit]:
    """Split a Keras 2 weights-only layer group into the layers it holds.

    A nested model's group holds its layers' variables, named by the inner layer
    (``conv1/kernel:0``); a layer's own variables carry its name
    (``lstm/lstm_cell/kernel:0``). Only the stored name tells them apart.
    """
    own: list[WeightSpec] = []
    inner: dict[str, list[WeightSpec]] = {}
    for spec in layer.weights or ():
        parts = _stored_name(layer.name, spec.location).split("/")
        rel = spec.name.split("/")
        if len(parts) < 2 or layer.name in parts[:-1] or len(rel) < 2:
            own.append(spec)
            continue
        inner.setdefault(rel[0], []).append(WeightSpec("/".join(rel[1:]), spec.shape, spec.dtype, spec.trainable,
                                                       spec.location))
    units = []
    if own:
        units.append(_Unit(layer.path, layer.name, None, tuple(own)))
    for name, specs in inner.items():
        units.append(_Unit(f"{layer.path}/{name}", name, None, tuple(specs), approximate=True))
    return units


def _stored_name(layer_name: str, location: str | None) -> str:
    if not location:
        return ""
    marker = f"/{layer_name}/"
    at = location.find(marker)
    if at < 0:
        return ""
    return _SUFFIX.sub("", location[at + len(marker):])


# -- matching -------------------------------------------------------------------------
@dataclass
class _Claim:
    unit: _Unit
    how: str
    rule: MapRule | None


def _match(src_units: list[_Unit], tgt_units: list[_Unit], rules: tuple[MapRule, ...]):
    """Pair target units with source units: rules first, then the same path; never by position."""
    tgt_by_path = {u.path: u for u in tgt_units}
    matched_rules: set[int] = set()
    landed_rules: set[int] = set()
    claims: dict[str, list[_Claim]] = {}
    dest_of: dict[str, tuple[str, MapRule | None]] = {}
    for unit in src_units:
        dest, used = unit.path, None
        for index, rule in enumerate(rules):
            renamed = rule.apply(unit.path)
            if renamed is not None:
                dest, used = renamed, rule
                matched_rules.add(index)
                if renamed in tgt_by_path:
                    landed_rules.add(index)
                break
        dest_of[unit.path] = (dest, used)
        if dest in tgt_by_path:
            how = used.kind if used else "name"
            if how == "name" and unit.auto_named and tgt_by_path[dest].auto_named:
                how = "auto-name"
            claims.setdefault(dest, []).append(_Claim(unit, how, used))

    pairs: dict[str, _Claim] = {}
    lost: dict[str, str] = {}
    for dest, found in claims.items():
        ruled = [c for c in found if c.rule is not None]
        if len(ruled) > 1:
            listed = ", ".join(f"'{c.unit.path}' ({c.rule.origin} '{c.rule.text}')" for c in ruled)
            raise UsageError(f"several source layers are renamed to the target layer '{dest}': {listed}",
                             hint="each target layer takes one source layer; fix the rename rules")
        if not ruled and len(found) > 1:
            # Only a '/' inside a layer name can give two source layers one path.
            listed = ", ".join(f"'{c.unit.path}'" for c in found)
            raise UsageError(f"several source layers have the path '{dest}' ({listed}): a '/' in a layer name "
                             "collides with a nested model's layer",
                             hint="rename the layer, or say which one goes where with --map")
        winner = ruled[0] if ruled else found[0]
        pairs[dest] = winner
        for c in found:
            if c is not winner:
                lost[c.unit.path] = (f"the target layer '{dest}' takes '{winner.unit.path}' "
                                     f"({winner.rule.origin} '{winner.rule.text}')")

    # Keras 2 weights-only files do not record models nested below the top
    # level: pair by (top-level model, layer name) where that is unique.
    taken = {c.unit.path for c in pairs.values()}
    left_src = [u for u in src_units if u.path not in taken and u.path not in lost]
    left_tgt = [u for u in tgt_units if u.path not in pairs]
    if any(u.approximate for u in left_src) or any(u.approximate for u in left_tgt):
        def key(path: str, name: str) -> tuple[str, str]:
            return path.split("/", 1)[0], name

        src_keys: dict[tuple, list[_Unit]] = {}
        for u in left_src:
            dest = dest_of[u.path][0]
            src_keys.setdefault(key(dest, dest.rsplit("/", 1)[-1]), []).append(u)
        tgt_keys: dict[tuple, list[_Unit]] = {}
        for u in left_tgt:
            tgt_keys.setdefault(key(u.path, u.name), []).append(u)
        for k, tg in tgt_keys.items():
            sg = src_keys.get(k, [])
            if len(tg) == 1 and len(sg) == 1 and (tg[0].approximate or sg[0].approximate) and "/" in tg[0].path:
                pairs[tg[0].path] = _Claim(sg[0], "nesting", dest_of[sg[0].path][1])

    for index, rule in enumerate(rules):
        if rule.regex or rule.kind == "auto":
            continue
        if index not in matched_rules:
            names = [u.path for u in src_units]
            close = difflib.get_close_matches(rule.old, names, n=3)
            raise UsageError(f"{rule.origin} '{rule.text}': the source has no layer with weights at '{rule.old}'",
                             hint=f"did you mean {', '.join(close)}?" if close else
                             "give the source layer's path as `archdiff layers SOURCE` lists it")
        if index not in landed_rules:
            names = [u.path for u in tgt_units]
            close = difflib.get_close_matches(rule.new, names, n=3)
            raise UsageError(f"{rule.origin} '{rule.text}': the target has no layer with weights at '{rule.new}'",
                             hint=f"did you mean {', '.join(close)}?" if close else
                             "give the target layer's path as `archdiff layers TARGET` lists it")
    unmatched_regex = [r for i, r in enumerate(rules) if r.regex and i not in matched_rules]
    return pairs, lost, dest_of, unmatched_regex


# -- variables ----------------------------------------------------------------------
def _is_named(name: str) -> bool:
    return not name.rsplit("/", 1)[-1].isdigit()


def _pair_variables(src: tuple[WeightSpec, ...], tgt: tuple[WeightSpec, ...]):
    """``([(source_spec, target_spec), ...], paired_by, None)`` or ``(None, None, reason)``."""
    snames = [w.name for w in src]
    tnames = [w.name for w in tgt]
    if all(_is_named(n) for n in snames + tnames):
        for names_of in (lambda n: n, lambda n: n.rsplit("/", 1)[-1], _keras3_name):
            s_keys = [names_of(n) for n in snames]
            t_keys = [names_of(n) for n in tnames]
            if len(set(s_keys)) == len(s_keys) and len(set(t_keys)) == len(t_keys) and set(s_keys) == set(t_keys):
                by_key = dict(zip(s_keys, src))
                return [(by_key[k], w) for k, w in zip(t_keys, tgt)], "name", None
        only_s = [n for n in snames if n not in tnames]
        only_t = [n for n in tnames if n not in snames]
        return None, None, (f"the variables differ by name (source only: {', '.join(only_s) or '-'}; "
                            f"target only: {', '.join(only_t) or '-'})")
    if len(src) != len(tgt):
        return None, None, f"the source layer has {len(src)} variables, the target layer {len(tgt)}"
    return list(zip(src, tgt)), "position", None


def pair_variables(src: tuple[WeightSpec, ...], tgt: tuple[WeightSpec, ...]):
    """Pair two layers' variables as a transfer does: by name where both files name them, else by position.

    ``([(spec_a, spec_b), ...], "name" | "position", None)``, or ``(None, None, reason)``
    where they cannot be paired. The diff's value comparison
    (:mod:`archdiff.diff.values`) pairs with this too, so both stages agree on which
    variable is which across formats and Keras versions.
    """
    return _pair_variables(src, tgt)


#: Variables Keras 3 names differently from Keras 2: DepthwiseConv1D/2D's ``depthwise_kernel`` is its ``kernel``.
_KERAS3_NAMES = {"depthwise_kernel": "kernel"}


def _keras3_name(name: str) -> str:
    leaf = name.rsplit("/", 1)[-1]
    return _KERAS3_NAMES.get(leaf, leaf)


def _itemsize(dtype: str) -> int:
    import numpy as np

    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 0


def _numeric(dtype: str) -> bool:
    import numpy as np

    try:
        d = np.dtype(dtype)
    except TypeError:
        return False
    return d.kind in "biufc" and not d.hasobject


def _cast_kind(src: str, tgt: str) -> str:
    """"same", "safe" (lossless), "lossy", or "invalid" (not numbers: strings, objects ...)."""
    import numpy as np

    if not (_numeric(src) and _numeric(tgt)):
        return "invalid"
    if src == tgt:
        return "same"
    return "safe" if np.can_cast(np.dtype(src), np.dtype(tgt), "safe") else "lossy"


def _plan_layer(t: _Unit, claim: _Claim, options: TransferOptions,
                first_conv: bool = False) -> tuple[LayerTransfer, list[str]]:
    s = claim.unit
    pairs, paired_by, reason = _pair_variables(s.weights, t.weights)
    problems: list[str] = []
    per_var: dict[str, str] = {}
    variables: list[VariableTransfer] = []
    if pairs is None:
        problems.append(reason)
        for w in t.weights:
            variables.append(VariableTransfer(w.name, w.shape, w.dtype, "skip", w.location, reason=reason))
    else:
        for position, (sw, tw) in enumerate(pairs):
            why = None
            action = "copy"
            adaptation = None
            # Shapes are compared exactly: a (4, 8) kernel into an (8, 4) one is a mismatch, never a reshape.
            if tuple(sw.shape) != tuple(tw.shape):
                why = f"shape {_shape(sw.shape)} in the source, {_shape(tw.shape)} in the target"
                if options.adapt:
                    label = tw.name if _is_named(tw.name) or not _is_named(sw.name) else sw.name
                    adaptation, refused = plan_adaptation(options.adapt, sw.shape, tw.shape, name=label,
                                                          first_conv=first_conv and position == 0)
                    if adaptation is None:
                        why += f" (--adapt {refused})"
                    else:
                        why = None
                        action = "adapt"
            if why is None:
                kind = _cast_kind(sw.dtype, tw.dtype)
                if kind == "invalid":
                    why = (f"dtype {sw.dtype} in the source, {tw.dtype} in the target: weights are numbers, "
                           "and one of these is not a numeric dtype")
                elif kind == "safe" and action == "copy":
                    action = "cast"
                elif kind == "lossy":
                    if options.allow_cast:
                        action = "cast" if action == "copy" else action
                    else:
                        why = (f"dtype {sw.dtype} in the source, {tw.dtype} in the target: casting loses "
                               "precision (--allow-cast allows it)")
            if why:
                per_var[tw.name] = why
                label = tw.name if _is_named(tw.name) or not _is_named(sw.name) else sw.name
                problems.append(f"{label}: {why}")
            cast = None
            if action in ("cast", "adapt") and sw.dtype != tw.dtype:
                cast = f"{sw.dtype} -> {tw.dtype}" + ("" if _cast_kind(sw.dtype, tw.dtype) == "safe" else
                                                      ", lossy (--allow-cast)")
            text = cast
            if adaptation is not None:
                text = f"{adaptation.adapter}: {adaptation.description}" + (f"; {cast}" if cast else "")
            variables.append(VariableTransfer(
                tw.name, tw.shape, tw.dtype, action, tw.location, source=sw.name, source_shape=sw.shape,
                source_dtype=sw.dtype, source_location=sw.location, paired_by=paired_by, reason=text,
                adaptation=adaptation))
    common = dict(class_name=t.class_name or s.class_name, source=s.path, matched_by=claim.how,
                  rule=claim.rule.text if claim.rule else None)
    if not problems:
        status = "adapted" if any(v.action == "adapt" for v in variables) else "copied"
        return LayerTransfer(t.path, status, tuple(variables), **common), []
    summary = "; ".join(problems)
    status = "skipped" if options.skip_mismatch else "mismatch"
    marked = []
    for v in variables:
        own = per_var.get(v.target)
        marked.append(VariableTransfer(
            v.target, v.shape, v.dtype, "skip", v.target_location, source=v.source, source_shape=v.source_shape,
            source_dtype=v.source_dtype, source_location=v.source_location, paired_by=v.paired_by,
            reason=own or ("the layer does not fit: " + summary)))
    layer = LayerTransfer(t.path, status, tuple(marked), reason=summary, **common)
    return layer, ([] if options.skip_mismatch else [f"{t.path} <- {s.path}: {summary}"])


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


# -- formats -----------------------------------------------------------------------
def _describe(arch: Architecture) -> FileInfo:
    src = arch.source
    version = src.keras_version
    keras = f"Keras {version}" if version else ("Keras 3" if src.dialect == "keras3" else None)
    text = {
        "keras": ".keras model",
        "h5": "legacy .h5 model",
        "h5-weights": "legacy weights .h5",
        "weights.h5": "Keras 3 .weights.h5",
        "weights.json": "sharded Keras 3 weights",
        "preset": "keras-hub preset's model.weights.h5",
        "task-preset": "keras-hub task preset (task.weights.h5 and the backbone's model.weights.h5)",
    }.get(src.format, src.format)
    if src.format == "weights.h5":
        keras = None
    return FileInfo(src.path, src.format, version, f"{text}, {keras}" if keras else text)


# -- planning -----------------------------------------------------------------------
def plan_transfer(source: str | os.PathLike | Architecture, target: str | os.PathLike | Architecture,
                  options: TransferOptions | None = None) -> TransferPlan:
    """Pair the target's layers with the source's by name and check every variable; read no tensors."""
    from archdiff.read import load

    options = options or TransferOptions()
    if options.match not in ("name", "auto"):
        raise UsageError(f"unknown match mode '{options.match}'", hint="use 'name' or 'auto'")
    src_arch = source if isinstance(source, Architecture) else load(source, infer_shapes=_needs_names(source))
    tgt_arch = target if isinstance(target, Architecture) else load(target, infer_shapes=_needs_names(target))
    src_info, tgt_info = _describe(src_arch), _describe(tgt_arch)
    weight_formats = WEIGHT_FILE_FORMATS + ("keras", "weights.json", "preset", "task-preset")
    if src_arch.source.format not in weight_formats or not _stored(src_arch):
        raise InputError(f"the source holds no weights ({src_info.description})", path=src_info.path,
                         hint="give a file with weights: .keras, .h5, .weights.h5 or .weights.json")
    target_store = store_class(tgt_arch.source.format)
    if target_store is not None:
        # A layout that cannot be written (sharded) says so itself, before "holds no weights".
        target_store.check_writable(tgt_info.path)
    if tgt_arch.source.format not in weight_formats or not _stored(tgt_arch):
        raise UsageError(f"the target holds no weights to write into ({tgt_info.description})", path=tgt_info.path,
                         hint="give the target model as .keras, or its weights as .weights.h5 or .h5 "
                              "(save the freshly built model first)")

    rules = tuple(options.maps)
    if options.match == "auto":
        rules = rules + auto_rules(src_arch, tgt_arch, rules)
    src_units, tgt_units = _units(src_arch), _units(tgt_arch)
    pairs, lost, dest_of, unmatched_regex = _match(src_units, tgt_units, rules)
    first_conv = _first_convolution(tgt_units) if "input-channels" in options.adapt else None

    layers: list[LayerTransfer] = []
    problems: list[str] = []
    src_paths_with_layer = {layer.path for layer in src_arch.layers}
    for t in tgt_units:
        claim = pairs.get(t.path)
        if claim is None:
            if t.path in src_paths_with_layer:
                reason = "the source layer of this name has no weights in the file"
            else:
                reason = "no source layer of this name"
            variables = tuple(VariableTransfer(w.name, w.shape, w.dtype, "keep", w.location, reason=reason)
                              for w in t.weights)
            layers.append(LayerTransfer(t.path, "kept", variables, class_name=t.class_name, reason=reason))
            continue
        layer, found = _plan_layer(t, claim, options, first_conv=t.path == first_conv)
        layers.append(layer)
        problems.extend(found)

    used = {layer.source for layer in layers if layer.source}
    unused = []
    for u in src_units:
        if u.path in used:
            continue
        if u.path in lost:
            reason = lost[u.path]
        else:
            dest, rule = dest_of[u.path]
            reason = (f"renamed to '{dest}' by {rule.origin} '{rule.text}', which the target does not have"
                      if rule else "no target layer of this name")
        unused.append(UnusedLayer(u.path, u.params, u.nbytes, reason, u.class_name))

    notes = [f"{side}: {n}" for side, arch in (("source", src_arch), ("target", tgt_arch)) for n in arch.notes
             if n.startswith("--build:")]  # what --build could not do for this pair (archdiff.read.build.alike)
    nestings = _nestings(src_arch, tgt_arch, options, layers)
    nested_hint = "; ".join(f"{n.describe('the source', 'the target')}: --match auto pairs its layers (or --map "
                            f"'{n.rule}')" for n in nestings)
    if not any(layer.source for layer in layers):
        hint = ("; the source names no layers (a file written by tf-keras or Keras 2.13-2.15 keys them by class)"
                if _unnamed(src_arch) else "") + ("; the target names no layers" if _unnamed(tgt_arch) else "")
        problems.append("no target layer matched a source layer by name" + hint
                        + (f"; {nested_hint}" if nested_hint and options.match == "name" else
                           " (--map OLD=NEW or --match auto pair renamed layers)"))
    elif nested_hint and options.match == "name":
        notes.append(nested_hint)
    if options.match == "auto":
        for n in nestings:
            notes.append(f"--match auto: {n.describe('the source', 'the target')} "
                         f"({'; '.join(n.explain('the source', 'the target'))}); "
                         f"its layers were paired through the rule '{n.rule}'")
    auto = [layer.target for layer in layers if layer.matched_by == "auto-name"]
    if auto:
        notes.append(f"{len(auto)} layer{'s were' if len(auto) != 1 else ' was'} paired by names Keras made up "
                     f"({', '.join(auto[:3])}{' ...' if len(auto) > 3 else ''}: class and counter), which shift "
                     "when a layer is inserted earlier; check them, or pair by structure with --match auto")
    if any(layer.matched_by == "nesting" for layer in layers):
        notes.append("a Keras 2 weights-only file does not record models nested below the top level: layers "
                     "matched by 'nesting' were paired by top-level model and layer name")
    for rule in unmatched_regex:
        notes.append(f"{rule.origin} '{rule.text}' matched no source layer")
    if _unnamed(src_arch):
        notes.append("the source file holds no layer names (written by tf-keras or Keras 2.13-2.15): its layers "
                     "are known by Keras' auto names (dense_1 ...), which rarely match")
    plan = TransferPlan(src_info, tgt_info, options, tuple(layers), tuple(unused), tuple(problems), tuple(notes),
                        source_files=store_class(src_arch.source.format).companion_files(src_arch.source.path),
                        nestings=tuple(nestings))
    if not problems:
        refusal = coverage_refusal(plan)
        if refusal:
            from dataclasses import replace

            plan = replace(plan, refusal=refusal)
    return plan


#: Below this fraction on *both* sides the models probably do not correspond (see :func:`coverage_refusal`).
LOW_COVERAGE = 0.5


def coverage_refusal(plan: TransferPlan) -> str | None:
    """Why the plan is refused on coverage (exit 1, nothing written), or None.

    ``--require-all``: every target layer with weights must get the source's;
    ``--min-coverage F``: at least F of them must. Otherwise, when under half of
    the source's layers with weights are used *and* under half of the target's
    get weights, the two models probably do not correspond (a DenseNet into a
    ResNet shares a handful of names such as ``conv1/conv``): refused unless
    ``--allow-low-coverage``.
    """
    options, c = plan.options, plan.coverage
    left = [layer.target for layer in plan.layers if layer.status not in FILLED]
    listed = ", ".join(left[:5]) + (" ..." if len(left) > 5 else "")
    if options.require_all and left:
        return (f"--require-all: {len(left)} of {c['target_layers']} target layers with weights would get no "
                f"source weights ({listed})")
    # The exact fractions decide; the report's are rounded.
    target_fraction = c["target_layers_filled"] / c["target_layers"] if c["target_layers"] else 0.0
    source_fraction = c["source_layers_used"] / c["source_layers"] if c["source_layers"] else 0.0
    if options.min_coverage is not None and target_fraction < options.min_coverage - 1e-9:
        return (f"--min-coverage {options.min_coverage:g}: {c['target_layers_filled']} of {c['target_layers']} "
                f"target layers with weights ({c['target_fraction']:.0%}) would get source weights")
    if not options.allow_low_coverage and source_fraction < LOW_COVERAGE and target_fraction < LOW_COVERAGE:
        return (f"only {c['source_layers_used']} of {c['source_layers']} source layers with weights would be used "
                f"and {c['target_layers_filled']} of {c['target_layers']} target layers would get them: the models "
                "probably do not correspond (--allow-low-coverage writes it anyway)")
    return None


def _nestings(src: Architecture, tgt: Architecture, options: TransferOptions, layers) -> tuple:
    """The nestings between the files, when some target layers found no source layer (else nothing to say)."""
    if not any(layer.status == "kept" for layer in layers) and options.match == "name":
        return ()
    from archdiff.diff.matching import find_nestings

    return find_nestings(src, tgt)


def _first_convolution(units: list[_Unit]) -> str | None:
    """The target's first convolution (in layer order): the layer ``--adapt input-channels`` may adapt."""
    for u in units:
        if not u.weights or not 3 <= len(u.weights[0].shape) <= 5:
            continue
        if u.class_name is None or u.class_name in CONV_CLASSES:
            return u.path
    return None


def _stored(arch: Architecture) -> bool:
    """Whether the file stores weights (specs inferred from a config alone have no dataset)."""
    return arch.has_weights and any(w.location for layer in arch.layers for w in layer.weights or ())


def _needs_names(path) -> bool:
    """Whether reading needs shape inference: it names the numbered variables of Keras 3 files.

    Legacy ``.h5`` files name their variables; only a model with a config and
    Keras 3 weights (``.keras``) gains from it.
    """
    lower = os.fspath(path).lower()
    return not (lower.endswith((".h5", ".hdf5")) and not lower.endswith(".weights.h5"))


def _unnamed(arch: Architecture) -> bool:
    return (not arch.has_topology and arch.source.format in ("weights.h5", "weights.json")
            and any("auto names" in n for n in arch.notes))
