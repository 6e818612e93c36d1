"""Comparing two models' weight values, variable by variable, through the stores.

This module owns which variables are compared and how they are read. Layers
are paired by the diff's matching (names, renames, nestings, ``--map``);
within a pair, variables are paired exactly as a transfer pairs them
(:func:`archdiff.transfer.pair_variables`: by name where both files name them,
by position in Keras 3 files), so a Keras 2 ``.h5`` and the Keras 3
``.keras`` it was ported into compare variable by variable. Each file is
opened once through :mod:`archdiff.store` (:mod:`archdiff.store.lite`, without
h5py, where it reads the file) and read one variable (or one block of
:data:`BLOCK_BYTES`) at a time per thread: the two files are never whole in
memory (see ``_workers`` for the threads).
Raw bytes are compared first; figures (:mod:`archdiff.diff.values.figures`)
are computed only for variables that changed, and not at all in ``equal``
mode, which stops at a variable's first differing block.

The result is data (:class:`ValueComparison`); the diff engine turns each
changed variable into a ``values`` change, the renderers and the policy read it.
"""
from __future__ import annotations

import hashlib
import math
import os
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

from archdiff.diff.values.figures import UNKNOWN, Accumulator, Figures, bytes_equal, numeric, report_float
from archdiff.read.hdf5 import preload as preload  # re-exported: h5py and numpy imported before the readers fork
from archdiff.vocabulary import VALUE_MODES as VALUE_MODES  # re-exported

if TYPE_CHECKING:
    from archdiff.model import Architecture, Layer

#: What a variable's comparison found: the same bits; the same values in another dtype; other values;
#: or not compared (shapes differ, not paired, no dataset).
VARIABLE_STATUSES = ("equal", "same-values", "changed", "not-compared")
#: Bytes of one variable read at a time from each file; a variable over this is read by blocks.
BLOCK_BYTES = 32 * 1024 * 1024
#: Threads a value comparison runs on at most (one per core below that; see ``_workers``). Each holds up to
#: two blocks of :data:`BLOCK_BYTES` and float64 work arrays: the bench's pair of 0.5 GB files
#: (bench/bench_values.py ``big_row``) peaks at 343 MB on two threads, 189 MB on one, 209 MB through h5py.
MAX_WORKERS = 2


@dataclass(frozen=True)
class VariableValues:
    """One paired variable: A's and B's datasets, and how their values compare."""

    #: The variable's name in its layer (B's where B names it: Keras 3 files number them).
    name: str
    shape: tuple[int, ...]
    dtype_a: str
    dtype_b: str
    status: str
    #: None unless changed and computed (``figures`` mode); every figure None for non-numbers.
    figures: Figures | None = None
    #: How it was paired ("name" or "position"); why it was not compared.
    paired_by: str | None = None
    reason: str | None = None
    location_a: str | None = None
    location_b: str | None = None

    @property
    def changed(self) -> bool:
        return self.status == "changed"

    def to_dict(self) -> dict:
        out = {"name": self.name, "status": self.status, "shape": list(self.shape), "dtype_a": self.dtype_a,
               "dtype_b": self.dtype_b, "paired_by": self.paired_by, "reason": self.reason,
               "dataset_a": self.location_a, "dataset_b": self.location_b}
        out.update((self.figures or (_EQUAL if self.status == "equal" else UNKNOWN)).to_dict())
        return out


#: What is known of a bitwise-equal variable without computing anything (its cosine needs its norm).
_EQUAL = Figures(0.0, 0.0, None, 0.0, 0)


@dataclass(frozen=True)
class LayerValues:
    """One matched layer's variables compared, and the largest of their figures."""

    a: str
    b: str
    class_name: str
    variables: tuple[VariableValues, ...]
    #: Why the variables could not be paired (then ``variables`` is empty).
    reason: str | None = None

    @property
    def changed(self) -> tuple[VariableValues, ...]:
        return tuple(v for v in self.variables if v.changed)

    @property
    def status(self) -> str:
        if self.changed:
            return "changed"
        if self.variables and all(v.status in ("equal", "same-values") for v in self.variables):
            return "equal"
        return "not-compared"

    def _values(self, field: str) -> list[float | None]:
        if self.status == "equal":  # known without computing: nothing moved
            return [0.0] if field in ("max_abs_diff", "relative_change", "fraction_changed") else []
        return [getattr(v.figures, field) for v in self.changed if v.figures is not None]

    @property
    def max_abs_diff(self) -> float | None:
        found = self._values("max_abs_diff")
        return None if not found or None in found else max(x for x in found if x is not None)

    @property
    def relative_change(self) -> float | None:
        """The largest relative change of its variables (None where one is unknown: A was all zeros)."""
        found = self._values("relative_change")
        return None if not found or None in found else max(x for x in found if x is not None)

    @property
    def cosine(self) -> float | None:
        found = [x for x in self._values("cosine") if x is not None]
        return min(found) if found else None

    @property
    def fraction_changed(self) -> float | None:
        found = self._values("fraction_changed")
        return None if not found or None in found else max(x for x in found if x is not None)

    @property
    def nan_introduced(self) -> int:
        return sum(v.figures.nan_introduced for v in self.changed if v.figures is not None)

    @property
    def inf_introduced(self) -> int:
        return sum(v.figures.inf_introduced for v in self.changed if v.figures is not None)

    @property
    def suspicious(self) -> tuple[str, ...]:
        out: list[str] = []
        for v in self.changed:
            for s in (v.figures.suspicious if v.figures is not None else ()):
                if s not in out:
                    out.append(s)
        return tuple(out)

    def sort_key(self) -> tuple:
        """Most changed first: unknown relative change (from zeros) before any number, then by size."""
        rel = self.relative_change
        computed = any(v.figures is not None for v in self.changed)
        return (0 if rel is None and computed else 1, -(rel if rel is not None else math.inf),
                -(self.max_abs_diff or 0.0), self.b)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "class_name": self.class_name, "status": self.status,
                "reason": self.reason,
                "max_abs_diff": _finite(self.max_abs_diff), "relative_change": _finite(self.relative_change),
                "cosine": _finite(self.cosine), "fraction_changed": _finite(self.fraction_changed),
                "nan_introduced": self.nan_introduced, "inf_introduced": self.inf_introduced,
                "suspicious": list(self.suspicious),
                "variables": [v.to_dict() for v in self.variables]}


def _finite(value: float | None) -> float | None:
    return report_float(value)


@dataclass(frozen=True)
class ValueComparison:
    """Every matched layer with weights, its variables compared by value (A's layer order)."""

    #: "figures" or "equal" (see :data:`VALUE_MODES`).
    mode: str
    layers: tuple[LayerValues, ...]
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> tuple[LayerValues, ...]:
        """The layers whose values changed, most changed first."""
        return tuple(sorted((lv for lv in self.layers if lv.status == "changed"), key=LayerValues.sort_key))

    @property
    def equal(self) -> tuple[LayerValues, ...]:
        return tuple(lv for lv in self.layers if lv.status == "equal")

    @property
    def not_compared(self) -> tuple[LayerValues, ...]:
        return tuple(lv for lv in self.layers if lv.status == "not-compared")

    def layer(self, a: str, b: str) -> LayerValues | None:
        for lv in self.layers:
            if lv.a == a and lv.b == b:
                return lv
        return None

    @property
    def nonfinite(self) -> tuple[LayerValues, ...]:
        return tuple(lv for lv in self.changed if lv.nan_introduced or lv.inf_introduced)

    def summary(self) -> dict:
        variables = [v for lv in self.layers for v in lv.variables]
        return {"layers": len(self.layers), "layers_changed": len(self.changed), "layers_equal": len(self.equal),
                "layers_not_compared": len(self.not_compared), "variables": len(variables),
                "variables_changed": sum(1 for v in variables if v.changed),
                "variables_equal": sum(1 for v in variables if v.status == "equal"),
                "variables_not_compared": sum(1 for v in variables if v.status == "not-compared")}

    def to_dict(self) -> dict:
        return {"mode": self.mode, "summary": self.summary(), "notes": list(self.notes),
                "changed": [lv.b for lv in self.changed],
                "layers": [lv.to_dict() for lv in self.layers]}


# -- opening ------------------------------------------------------------------------------
def has_stored_weights(arch: Architecture) -> bool:
    """Whether ``arch`` came from a file whose weights a store can read: variables with datasets in it
    (weight specs inferred from a config alone, or a ``.keras`` without ``model.weights.h5``, have none)."""
    from archdiff.store import store_class

    if not (arch.has_weights and arch.source.path and store_class(arch.source.format) is not None):
        return False
    return any(w.location for layer in arch.layers for w in layer.weights or ())


def _open(arch: Architecture, stack: ExitStack):
    """The file's store: without h5py where :mod:`archdiff.store.lite` reads it (a Keras 3 file as h5py
    writes it for Keras, its metadata read and checked again now), else through h5py. Its datasets were
    checked when ``arch`` was read (``archdiff.read`` runs ``check_dataset`` on every one), so, as a
    transfer does, the h5py store skips that check; the whole-file scan (links, cycles, heaps) still runs,
    and each dataset's shape is checked against what was read."""
    from archdiff.store import open_store
    from archdiff.store.lite import open_lite_store

    lite = open_lite_store(arch.source.path, format=arch.source.format, where=arch.source.shown)
    if lite is not None:
        return stack.enter_context(lite)
    return stack.enter_context(open_store(arch.source.path, format=arch.source.format, where=arch.source.shown,
                                          check_datasets=False))


def _has_variables(layer: Layer) -> bool:
    return bool(layer.weights) and not layer.is_model


def variables_by_inner_layer(arch: Architecture, layer: Layer) -> dict[str, tuple]:
    """A layer's variables by inner layer: ``{"": own}``, or a nested model's by its layers' relative paths.

    A Keras 2 ``save_weights`` file keeps a nested model's variables in one group
    named after it, each named by its inner layer (``conv1/kernel``); they are
    grouped by that first name. A file that knows the nested model gives its
    layers' variables. Two such groupings pair inner layer by inner layer.
    """
    from archdiff.model import WeightSpec

    if not layer.is_model:
        weights = tuple(layer.weights or ())
        if arch.source.format != "h5-weights" or not weights or not all("/" in w.name for w in weights):
            return {"": weights} if weights else {}
        grouped: dict[str, list] = {}
        for w in weights:
            inner, _, rest = w.name.partition("/")
            grouped.setdefault(inner, []).append(WeightSpec(rest, w.shape, w.dtype, w.trainable, w.location))
        return {k: tuple(v) for k, v in grouped.items()}
    prefix = layer.path + "/"
    return {inner.path[len(prefix):]: tuple(inner.weights or ()) for inner in arch.layers
            if inner.path.startswith(prefix) and _has_variables(inner)}


def _pair_layer(a: Architecture, la: Layer, b: Architecture, lb: Layer):
    """``([(label, spec_a, spec_b, how), ...], None)`` or ``(None, reason)``; ``([], None)``: nothing to compare."""
    from archdiff.transfer import pair_variables

    if la.is_model and lb.is_model or not (la.weights or la.is_model) or not (lb.weights or lb.is_model):
        return [], None  # two nested models: their layers are pairs of their own
    ga, gb = variables_by_inner_layer(a, la), variables_by_inner_layer(b, lb)
    if not ga or not gb:
        return [], None
    if set(ga) != set(gb):
        only = sorted(set(ga) ^ set(gb))
        return None, f"the layers inside differ ({', '.join(k or '(its own variables)' for k in only[:5])})"
    out: list[tuple] = []
    for key in gb:
        paired, how, reason = pair_variables(ga[key], gb[key])
        if paired is None:
            return None, reason if not key else f"{key}: {reason}"
        out.extend(((f"{key}/" if key else "") + _label(sa, sb), sa, sb, how) for sa, sb in paired)
    return out, None


# -- comparing --------------------------------------------------------------------------
def compare_values(a: Architecture, b: Architecture, pairs: Iterable[tuple[str, str]], *,
                   mode: str = "figures") -> ValueComparison:
    """Compare the values of every paired layer's variables (``pairs``: ``(A path, B path)``)."""
    if mode not in ("figures", "equal"):
        raise ValueError(f"value mode '{mode}' is not one of figures, equal")
    work: list[tuple] = []
    for path_a, path_b in pairs:
        la, lb = a.by_path[path_a], b.by_path[path_b]
        paired, reason = _pair_layer(a, la, b, lb)
        if paired != []:
            work.append((path_a, path_b, lb.class_name, paired, reason))
    layers: list[LayerValues] = []
    with ExitStack() as stack:
        variables: Iterator[VariableValues] = iter(())
        if any(paired for *_, paired, _ in work):
            store_a, store_b = _open(a, stack), _open(b, stack)
            jobs = [(label, sa, sb, how) for *_, paired, _ in work for label, sa, sb, how in paired or ()]

            def one(job: tuple) -> VariableValues:
                label, sa, sb, how = job
                return _compare_variable(store_a, store_b, label, sa, sb, how, mode)

            workers = _workers(store_a, store_b, len(jobs))
            if workers > 1:
                from concurrent.futures import ThreadPoolExecutor

                pool = ThreadPoolExecutor(workers, thread_name_prefix="archdiff-values")
                stack.callback(pool.shutdown, wait=True, cancel_futures=True)  # before the stores close
                variables = pool.map(one, jobs)
            else:
                variables = map(one, jobs)
        for path_a, path_b, class_name, paired, reason in work:
            if paired is None:
                layers.append(LayerValues(path_a, path_b, class_name, (), reason))
            else:
                layers.append(LayerValues(path_a, path_b, class_name, tuple(next(variables) for _ in paired)))
    return ValueComparison(mode, tuple(layers), ())


def _workers(store_a, store_b, jobs: int) -> int:
    """Threads to compare on: one per core, up to :data:`MAX_WORKERS`, where both files are read without h5py.

    Reading (``os.preadv``) and numpy's arithmetic release the GIL, so the
    variables of a pair of files compare side by side. Each variable is still
    compared on one thread, in the same order of blocks, so its figures are the
    same bits whatever the number of threads; the results keep the pairs'
    order. Through h5py (one global lock) threads would only wait on each other.
    """
    from archdiff.store.lite import LiteStore

    if jobs < 2 or not (isinstance(store_a, LiteStore) and isinstance(store_b, LiteStore)):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores, jobs))


def _label(sa, sb) -> str:
    for spec in (sb, sa):
        if not spec.name.rsplit("/", 1)[-1].isdigit():
            return spec.name
    return sb.name


def _compare_variable(store_a, store_b, name: str, sa, sb, how: str, mode: str) -> VariableValues:
    base = {"name": name, "shape": tuple(sb.shape), "dtype_a": sa.dtype, "dtype_b": sb.dtype, "paired_by": how,
            "location_a": sa.location, "location_b": sb.location}
    if tuple(sa.shape) != tuple(sb.shape):
        return VariableValues(status="not-compared", reason="the shapes differ", **base)
    if not sa.location or not sb.location:
        return VariableValues(status="not-compared", reason="no dataset to read", **base)
    da, db = store_a.dataset(sa.location), store_b.dataset(sb.location)
    if da.shape != tuple(sa.shape) or db.shape != tuple(sb.shape):
        return VariableValues(status="not-compared", reason="the file changed since it was read", **base)
    status, figures = compare_datasets(da, db, mode)
    return VariableValues(status=status, figures=figures, **base)


def _selections(shape: tuple[int, ...], itemsize: int):
    from archdiff.store import blocks

    return blocks(shape, itemsize, BLOCK_BYTES)


def _read(ds, sel):
    import numpy as np

    return ds.read() if sel is None else np.ascontiguousarray(ds.read(sel))


def compare_datasets(da, db, mode: str = "figures") -> tuple[str, Figures | None]:
    """``(status, figures)`` of two store datasets of one shape, read block by block."""
    same_dtype = da.dtype == db.dtype
    whole = max(da.nbytes, db.nbytes) <= BLOCK_BYTES
    sels = [None] if whole else list(_selections(da.shape, max(da.dtype.itemsize, db.dtype.itemsize)))
    first = None
    if same_dtype:
        for i, sel in enumerate(sels):
            a, b = _read(da, sel), _read(db, sel)
            if not bytes_equal(a, b):
                first = (i, a, b)
                break
            del a, b
        else:
            return "equal", None
        if mode == "equal":
            return "changed", None
    if not (numeric(da.dtype) and numeric(db.dtype)):
        return "changed", UNKNOWN if mode == "figures" else None
    acc = Accumulator()
    for i, sel in enumerate(sels):
        if first is not None and i == first[0] and whole:
            a, b = first[1], first[2]
        else:
            a, b = _read(da, sel), _read(db, sel)
        acc.add(a, b)
        del a, b
    first = None
    figures = acc.figures()
    if not same_dtype and figures.elements_changed == 0 and not figures.nan_introduced:
        return "same-values", None
    if mode == "equal":
        return "changed", None
    return "changed", figures


# -- digests (textconv) -------------------------------------------------------------------
def layer_digests(arch: Architecture, *, length: int = 12) -> dict[str, str]:
    """Layer path -> a short digest of its variables' values (shape, dtype and bytes, in order).

    Equal for equal values whatever the file's format or Keras version, since
    it hashes the tensors and not the file's layout; empty when ``arch`` holds
    no readable weights.
    """
    if not has_stored_weights(arch):
        return {}
    out: dict[str, str] = {}
    with ExitStack() as stack:
        store = _open(arch, stack)
        for layer in arch.layers:
            if not _has_variables(layer):
                continue
            hasher = hashlib.sha256()
            for spec in layer.weights or ():
                if not spec.location:
                    continue
                ds = store.dataset(spec.location)
                hasher.update(f"{list(ds.shape)}|{ds.dtype.str}|".encode())
                hasher.update(ds.checksum().encode())
            out[layer.path] = hasher.hexdigest()[:length]
    return out
