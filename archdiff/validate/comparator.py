"""Comparing two outputs, to the standard of NVIDIA Polygraphy's comparator: tolerances, an error statistic, figures.

Everything that says whether two arrays "agree" goes through this module:
check 3 (the shared sub-graph against the source), a saved reference
(``--reference``) and the agreement across backends (``--backends``). It
follows Polygraphy's ``CompareFunc.simple`` (``polygraphy/comparator/compare.py``,
and its ``--atol`` / ``--rtol`` / ``--check-error-stat`` options in
``polygraphy/tools/args/comparator/``):

* the absolute error is ``|actual - reference|``, the relative error is the
  absolute error over ``|reference|``, where a reference value of exactly 0
  counts as 2.22e-16 (so a difference there shows as a huge relative error,
  and only the absolute tolerance can pass it);
* ``elementwise`` (Polygraphy's ``elemwise``, the default): an element fails
  when it exceeds *both* tolerances (absolute error > atol and relative error
  > rtol); the output fails when any element does;
* ``max`` / ``mean`` / ``median``: that statistic of the absolute error
  exceeds atol *and* that of the relative error exceeds rtol;
* a NaN error fails; any non-finite value in either array fails, said so.

Tolerances and the statistic can be set per output (``--atol dense_1:1e-3``)
with a default for the rest (``--atol 1e-5``). Each comparison reports the
maximum, mean and median absolute and relative error, the cosine similarity
and how many elements fail the elementwise test. Pure NumPy; no Keras here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from archdiff.errors import UsageError

ELEMENTWISE = "elementwise"
ERROR_STATS = (ELEMENTWISE, "max", "mean", "median")
#: Polygraphy spells it ``elemwise``; both are taken.
_ALIASES = {"elemwise": ELEMENTWISE}
#: Polygraphy's epsilon for reference values of exactly zero (float64's machine epsilon).
EPSILON = 2.220446049250313e-16
DEFAULT_ATOL = 1e-5
DEFAULT_RTOL = 1e-5


def error_stat(name: str) -> str:
    """A ``--check-error-stat`` value, checked (``elemwise`` is Polygraphy's spelling of ``elementwise``)."""
    value = _ALIASES.get(name, name)
    if value not in ERROR_STATS:
        raise UsageError(f"--check-error-stat '{name}' is not one of {', '.join(ERROR_STATS)}")
    return value


def parse_per_output(values, option: str, convert) -> tuple[tuple[str, object], ...]:
    """``["1e-5", "dense:1e-3"]`` -> ``(("", 1e-5), ("dense", 1e-3))``: Polygraphy's ``[<output>:]<value>``.

    The name is everything before the *last* colon, so output names holding a
    colon still work; an entry without a name sets the default ("").
    """
    out: list[tuple[str, object]] = []
    for text in values or ():
        text = str(text).strip()
        name, sep, value = text.rpartition(":")
        if not sep:
            name, value = "", text
        if sep and not name:
            raise UsageError(f"{option} '{text}': give VALUE or OUTPUT:VALUE")
        try:
            out.append((name, convert(value)))
        except UsageError:
            raise
        except (TypeError, ValueError):
            raise UsageError(f"{option} '{text}': '{value}' is not a valid value",
                             hint=f"for example {option} 1e-5 or {option} OUTPUT_NAME:1e-3") from None
    return tuple(out)


def tolerance(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


@dataclass(frozen=True)
class Tolerances:
    """Default and per-output tolerances and error statistic (``""`` is the default's key)."""

    atol: tuple[tuple[str, float], ...] = (("", DEFAULT_ATOL),)
    rtol: tuple[tuple[str, float], ...] = (("", DEFAULT_RTOL),)
    check_error_stat: tuple[tuple[str, str], ...] = (("", ELEMENTWISE),)

    @staticmethod
    def _lookup(table, name: str, default):
        found = dict(table)
        for key in (name, name.split("/")[-1], ""):
            if key in found:
                return found[key]
        return default

    def for_output(self, name: str) -> tuple[float, float, str]:
        """``(atol, rtol, stat)`` for an output (its own entry, else the default)."""
        return (float(self._lookup(self.atol, name, DEFAULT_ATOL)), float(self._lookup(self.rtol, name, DEFAULT_RTOL)),
                str(self._lookup(self.check_error_stat, name, ELEMENTWISE)))

    @property
    def default(self) -> tuple[float, float, str]:
        return self.for_output("")

    def named(self) -> list[str]:
        """The output names given their own tolerance or statistic."""
        names = {k for table in (self.atol, self.rtol, self.check_error_stat) for k, _ in table if k}
        return sorted(names)

    def to_dict(self) -> dict:
        return {"atol": dict(self.atol), "rtol": dict(self.rtol), "check_error_stat": dict(self.check_error_stat)}


@dataclass(frozen=True)
class Comparison:
    """The figures of one comparison, and whether it passed at the tolerances it was given."""

    passed: bool
    shape: tuple[int, ...]
    atol: float
    rtol: float
    error_stat: str
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    median_abs_diff: float | None = None
    max_rel_diff: float | None = None
    mean_rel_diff: float | None = None
    median_rel_diff: float | None = None
    cosine_similarity: float | None = None
    #: Elements failing the elementwise test (both tolerances exceeded), of ``size``.
    mismatched: int = 0
    size: int = 0
    #: Why it failed without figures (shapes differ, non-finite values), else "".
    reason: str = ""
    comparable: bool = True

    def figures(self) -> dict:
        return {"max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff,
                "median_abs_diff": self.median_abs_diff, "max_rel_diff": self.max_rel_diff,
                "mean_rel_diff": self.mean_rel_diff, "median_rel_diff": self.median_rel_diff,
                "cosine_similarity": self.cosine_similarity, "mismatched": self.mismatched, "size": self.size,
                "atol": self.atol, "rtol": self.rtol, "error_stat": self.error_stat}

    def describe(self) -> str:
        """Why it failed, in a few words (empty when it passed)."""
        if self.passed:
            return ""
        if self.reason:
            return self.reason
        if self.error_stat == ELEMENTWISE:
            return (f"{self.mismatched} of {self.size} elements exceed atol {self.atol:g} and rtol {self.rtol:g}; "
                    f"max |diff| {_g(self.max_abs_diff)}")
        stat = self.error_stat
        return (f"{stat} |diff| {_g(getattr(self, f'{stat}_abs_diff'))} > atol {self.atol:g} and {stat} rel "
                f"{_g(getattr(self, f'{stat}_rel_diff'))} > rtol {self.rtol:g}")


def _g(value) -> str:
    return "-" if value is None else f"{value:.3g}"


def _stat_failed(value: float, limit: float) -> bool:
    return math.isnan(value) or value > limit


def compare_arrays(actual, reference, *, atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL,
                   stat: str = ELEMENTWISE) -> Comparison:
    """Compare ``actual`` with ``reference`` as Polygraphy does; see the module's docstring."""
    stat = error_stat(stat)
    a, b = np.asarray(actual), np.asarray(reference)
    base = {"atol": float(atol), "rtol": float(rtol), "error_stat": stat, "shape": tuple(int(d) for d in a.shape)}
    if a.shape != b.shape:
        return Comparison(passed=False, comparable=False, reason=f"shapes differ: {list(a.shape)} vs {list(b.shape)}",
                          **base)
    if a.dtype == bool and b.dtype == bool:
        a, b = a.astype(np.int8), b.astype(np.int8)
    try:
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
    except (TypeError, ValueError):
        return Comparison(passed=False, comparable=False, reason=f"not numbers ({a.dtype}, {b.dtype})", **base)
    size = int(a64.size)
    if size == 0:
        return Comparison(passed=True, size=0, max_abs_diff=0.0, mean_abs_diff=0.0, median_abs_diff=0.0,
                          max_rel_diff=0.0, mean_rel_diff=0.0, median_rel_diff=0.0, cosine_similarity=1.0, **base)
    absdiff = np.abs(a64 - b64)
    denominator = np.abs(b64)
    denominator[denominator == 0] = EPSILON
    with np.errstate(invalid="ignore", over="ignore"):
        reldiff = absdiff / denominator
    figures = {
        "max_abs_diff": _nan_stat(np.max, absdiff), "mean_abs_diff": _nan_stat(np.mean, absdiff),
        "median_abs_diff": _nan_stat(np.median, absdiff), "max_rel_diff": _nan_stat(np.max, reldiff),
        "mean_rel_diff": _nan_stat(np.mean, reldiff), "median_rel_diff": _nan_stat(np.median, reldiff),
        "cosine_similarity": cosine_similarity(a64, b64),
    }
    with np.errstate(invalid="ignore"):
        mismatches = ((absdiff > atol) | np.isnan(absdiff)) & ((reldiff > rtol) | np.isnan(reldiff))
    mismatched = int(np.count_nonzero(mismatches))
    if stat == ELEMENTWISE:
        failed = mismatched > 0
    else:
        failed = _stat_failed(figures[f"{stat}_abs_diff"], atol) and _stat_failed(figures[f"{stat}_rel_diff"], rtol)
    reason = ""
    if not (np.all(np.isfinite(a64)) and np.all(np.isfinite(b64))):
        failed, reason = True, "non-finite values"
    return Comparison(passed=not failed, size=size, mismatched=mismatched, reason=reason, **figures, **base)


def _nan_stat(func, values: np.ndarray) -> float:
    with np.errstate(invalid="ignore", over="ignore"):
        return float(func(values))


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float | None:
    """``a . b / (|a| |b|)`` over all elements; 1 when both are all zero, 0 when only one is."""
    a, b = np.ravel(a), np.ravel(b)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))
