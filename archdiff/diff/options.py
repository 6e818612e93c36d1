"""How to diff: :class:`DiffOptions`, one immutable value the CLI builds from its flags."""
from __future__ import annotations

from dataclasses import dataclass

from archdiff.diff.kinds import FAIL_ON_SPECIAL, KINDS
from archdiff.errors import UsageError
from archdiff.vocabulary import VALUE_MODES


@dataclass(frozen=True)
class DiffOptions:
    """How to diff. Immutable; the CLI builds one from its flags."""

    #: Look for renamed layers (see :mod:`archdiff.diff.matching`); off: names only.
    detect_renames: bool = True
    #: Show serialization noise (see :mod:`archdiff.diff.canonical`) as cosmetic changes.
    strict: bool = False
    #: Patterns of changes to hide (see :func:`archdiff.diff.ignore.ignore_matches`).
    ignore: tuple[str, ...] = ()
    #: Kinds that make the exit code 1: "any" (the default), "none", or kinds.
    fail_on: tuple[str, ...] = ("any",)
    #: Rename rules from A's layer paths to B's (``--map``, :class:`~archdiff.diff.matching.MapRule`), applied first.
    maps: tuple = ()
    #: Weight values (:mod:`archdiff.diff.values`), when both sides carry weights: "figures" (every figure
    #: of each changed variable), "equal" (equal or not, stopping at the first difference) or "off"
    #: (``--topology-only``: shapes and dtypes only).
    values: str = "figures"

    def __post_init__(self) -> None:
        if self.values not in VALUE_MODES:
            raise UsageError(f"--values '{self.values}' is not a way to compare values",
                             hint=f"use one of: {', '.join(VALUE_MODES)}")
        for value in self.fail_on:
            if value not in KINDS and value not in FAIL_ON_SPECIAL:
                raise UsageError(f"--fail-on '{value}' is not a kind of difference",
                                 hint=f"use one of: {', '.join((*FAIL_ON_SPECIAL, *KINDS))}")
        for pattern in self.ignore:
            if not pattern.strip():
                raise UsageError("--ignore needs a non-empty pattern", hint="for example --ignore kernel_initializer")

    def to_dict(self) -> dict:
        return {"detect_renames": self.detect_renames, "strict": self.strict, "ignore": list(self.ignore),
                "fail_on": list(self.fail_on), "maps": [{"rule": r.text, "origin": r.origin} for r in self.maps],
                "values": self.values}
