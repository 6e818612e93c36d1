"""The pre-merge gate: a YAML policy checked against an :class:`~archdiff.diff.ArchDiff`.

This module owns the policy file format, loading it safely, and checking a
diff against it. A policy says which layers must not change (by name, glob or
regular expression), whether layers may be added or removed, how much the
parameter count may grow, and which kinds of difference fail outright. The
result says, rule by rule, what failed and why.

Example (see docs/diff.md for every key)::

    version: 1
    frozen:
      - conv1_conv              # a layer name or path
      - "conv2_block*"          # a glob
      - re: "conv3_block\\d+_.*"  # a regular expression (full match)
    allow_added: true           # or false, or a list of patterns
    allow_removed: false
    max_param_growth: 10%       # or an absolute number of parameters
    max_relative_change:        # weight values: ||B-A||/||A|| per layer, first matching pattern
      "head_*": 50%
      "*": 5%
    allow_nonfinite: false      # the default: NaN or Inf appearing in B's weights fails
    fail_on: [weights-breaking, interface-changing]

A frozen layer must also keep its weights bit for bit where both sides carry
weights (the diff compares values; ``--topology-only`` turns that off, and
the frozen rule then says it could not check them).
"""
from __future__ import annotations

import fnmatch
import os
import re
import stat
from dataclasses import dataclass
from typing import Any, Iterable

from archdiff.diff.kinds import KINDS
from archdiff.diff.result import ArchDiff
from archdiff.errors import InputError
from archdiff.textfmt import count, percent

POLICY_VERSION = 1
KEYS = ("version", "frozen", "allow_added", "allow_removed", "max_param_growth", "max_relative_change",
        "allow_nonfinite", "fail_on")
#: Policy files ``archdiff gate`` picks up at the repository root when no --policy is given.
DEFAULT_NAMES = (".archdiff-policy.yaml", ".archdiff-policy.yml")
#: At most this many violations are listed per rule; the count says the rest.
MAX_LISTED = 20


class PolicyError(InputError):
    """The policy file is missing, unreadable or not a valid policy."""


@dataclass(frozen=True)
class LayerPattern:
    """A layer name or path, a glob (``*``, ``?``, ``[``) or a regular expression (full match)."""

    text: str
    kind: str  # "name", "glob" or "regex"

    def matches(self, name: str, path: str) -> bool:
        if self.kind == "name":
            return self.text in (name, path)
        if self.kind == "glob":
            return fnmatch.fnmatchcase(name, self.text) or fnmatch.fnmatchcase(path, self.text)
        regex = re.compile(self.text)
        return bool(regex.fullmatch(name) or regex.fullmatch(path))

    def __str__(self) -> str:
        return f"re:{self.text}" if self.kind == "regex" else self.text


@dataclass(frozen=True)
class ParamGrowth:
    """A limit on parameter growth: an absolute count or a percentage of A's total."""

    limit: float
    percent: bool

    def __str__(self) -> str:
        return f"{self.limit:g}%" if self.percent else count(int(self.limit))


@dataclass(frozen=True)
class Policy:
    source: str
    frozen: tuple[LayerPattern, ...] = ()
    #: True: any; False: none; patterns: only layers matching one of them.
    allow_added: bool | tuple[LayerPattern, ...] = True
    allow_removed: bool | tuple[LayerPattern, ...] = True
    max_param_growth: ParamGrowth | None = None
    fail_on: tuple[str, ...] = ()
    #: Weight values: the largest relative change ||B-A||/||A|| a layer matching the pattern may have
    #: (a fraction: 0.05 is 5%); the first matching pattern decides.
    max_relative_change: tuple[tuple[LayerPattern, float], ...] = ()
    #: Whether NaN or Inf may appear in B's weights where A had none.
    allow_nonfinite: bool = False

    def to_dict(self) -> dict:
        def allow(value):
            return value if isinstance(value, bool) else [str(p) for p in value]

        return {"source": self.source, "frozen": [str(p) for p in self.frozen],
                "allow_added": allow(self.allow_added), "allow_removed": allow(self.allow_removed),
                "max_param_growth": None if self.max_param_growth is None else str(self.max_param_growth),
                "fail_on": list(self.fail_on),
                "max_relative_change": [{"layers": str(p), "limit": limit} for p, limit in self.max_relative_change],
                "allow_nonfinite": self.allow_nonfinite}


@dataclass(frozen=True)
class RuleResult:
    rule: str
    passed: bool
    #: One line: what the rule checked and, when it failed, why.
    message: str
    violations: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"rule": self.rule, "passed": self.passed, "message": self.message,
                "violations": list(self.violations)}


@dataclass(frozen=True)
class PolicyResult:
    policy: Policy
    rules: tuple[RuleResult, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rules)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.rules if not r.passed)

    def to_dict(self) -> dict:
        return {"source": self.policy.source, "passed": self.passed, "policy": self.policy.to_dict(),
                "rules": [r.to_dict() for r in self.rules], "notes": list(self.notes)}


# -- loading --------------------------------------------------------------------------
def load_policy(path: str) -> Policy:
    """Read a policy file (YAML, safe loader only; JSON is YAML too)."""
    from archdiff.read import parse_yaml_text

    try:
        if os.path.exists(path) and not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block forever
            raise PolicyError("the policy is not a regular file", path=path, hint="give a YAML file")
        with open(path, "rb") as fh:
            data = fh.read(1_000_001)
    except FileNotFoundError:
        raise PolicyError("no such policy file", path=path,
                          hint="write one (see docs/diff.md) or leave out --policy") from None
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file ({exc.strerror})", path=path) from None
    if len(data) > 1_000_000:
        raise PolicyError("the policy file is over 1 MB; that is not a policy", path=path)
    document = parse_yaml_text(data, where=path)
    return parse_policy(document, source=path)


def parse_policy(document: Any, *, source: str = "<policy>") -> Policy:
    """Check a loaded policy document and build a :class:`Policy`."""
    def bad(message: str, hint: str | None = None) -> PolicyError:
        return PolicyError(message, path=source, hint=hint or "see docs/diff.md for the policy format")

    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise bad(f"a policy is a mapping of rules, found {type(document).__name__}")
    unknown = sorted(str(k) for k in document if k not in KEYS)
    if unknown:
        raise bad(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(repr(k) for k in unknown)}",
                  hint=f"a policy has the keys {', '.join(KEYS)}")
    version = document.get("version", POLICY_VERSION)
    if version != POLICY_VERSION:
        raise bad(f"policy version {version!r} is not supported", hint=f"this archdiff reads version {POLICY_VERSION}")
    frozen = _patterns(document.get("frozen", []), "frozen", bad)
    allow_added = _allow(document.get("allow_added", True), "allow_added", bad)
    allow_removed = _allow(document.get("allow_removed", True), "allow_removed", bad)
    growth = _growth(document.get("max_param_growth"), bad)
    fail_on = document.get("fail_on", [])
    if isinstance(fail_on, str):
        fail_on = [fail_on]
    if not isinstance(fail_on, list) or not all(isinstance(k, str) for k in fail_on):
        raise bad("'fail_on' must be a list of kinds of difference")
    for kind in fail_on:
        if kind not in KINDS and kind != "any":
            raise bad(f"'fail_on' names '{kind}', which is not a kind of difference",
                      hint=f"use any, {', '.join(KINDS)}")
    relative = _relative_limits(document.get("max_relative_change"), bad)
    nonfinite = document.get("allow_nonfinite", False)
    if not isinstance(nonfinite, bool):
        raise bad(f"'allow_nonfinite' is {nonfinite!r}; give true or false")
    return Policy(source=source, frozen=frozen, allow_added=allow_added, allow_removed=allow_removed,
                  max_param_growth=growth, fail_on=tuple(fail_on), max_relative_change=relative,
                  allow_nonfinite=nonfinite)


def _fraction(value: Any, key: str, bad) -> float:
    """A limit as a fraction: ``5%`` or ``0.05``."""
    if isinstance(value, bool):
        raise bad(f"'{key}' holds {value!r}; give a percentage like 5% or a fraction like 0.05")
    if isinstance(value, (int, float)) and value >= 0:
        return float(value)
    if isinstance(value, str):
        m = _NUMBER.match(value.strip())
        if m:
            number = float(m.group(1).replace(",", "").replace("_", ""))
            return number / 100 if m.group(2) else number
    raise bad(f"'{key}' holds {value!r}; give a percentage like 5% or a fraction like 0.05")


def _relative_limits(value: Any, bad) -> tuple[tuple[LayerPattern, float], ...]:
    """``max_relative_change``: a mapping of layer pattern -> limit, or one limit for every layer."""
    key = "max_relative_change"
    if value is None:
        return ()
    if not isinstance(value, dict):
        return ((LayerPattern("*", "glob"), _fraction(value, key, bad)),)
    out = []
    for pattern, limit in value.items():
        if not isinstance(pattern, str) or not pattern:
            raise bad(f"'{key}' holds the key {pattern!r}; keys are layer names or patterns")
        out.append((_pattern(pattern, key, bad), _fraction(limit, key, bad)))
    return tuple(out)


def _pattern(item: Any, key: str, bad) -> LayerPattern:
    if isinstance(item, dict) and len(item) == 1:
        (kind, text), = item.items()
        kinds = {"re": "regex", "regex": "regex", "glob": "glob", "name": "name"}
        if kind not in kinds or not isinstance(text, str) or not text:
            raise bad(f"'{key}' holds {item!r}; a pattern is a string, or one of re:/glob:/name: with a string")
        pattern = LayerPattern(text, kinds[kind])
    elif isinstance(item, str) and item:
        if item.startswith("re:"):
            pattern = LayerPattern(item[3:], "regex")
        elif any(ch in item for ch in "*?["):
            pattern = LayerPattern(item, "glob")
        else:
            pattern = LayerPattern(item, "name")
    else:
        raise bad(f"'{key}' holds {item!r}, which is not a layer name or pattern")
    if pattern.kind == "regex":
        try:
            re.compile(pattern.text)
        except re.error as exc:
            raise bad(f"'{key}': '{pattern.text}' is not a valid regular expression ({exc})") from None
    return pattern


def _patterns(value: Any, key: str, bad) -> tuple[LayerPattern, ...]:
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        raise bad(f"'{key}' must be a list of layer names or patterns")
    return tuple(_pattern(item, key, bad) for item in value)


def _allow(value: Any, key: str, bad) -> bool | tuple[LayerPattern, ...]:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return _patterns(value, key, bad)


_NUMBER = re.compile(r"^\+?(\d[\d_,]*(?:\.\d+)?)\s*(%?)$")


def _growth(value: Any, bad) -> ParamGrowth | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise bad("'max_param_growth' must be a number of parameters or a percentage like 10%")
    if isinstance(value, (int, float)):
        if value < 0:
            raise bad("'max_param_growth' must not be negative")
        return ParamGrowth(float(value), False)
    if isinstance(value, str):
        m = _NUMBER.match(value.strip())
        if m:
            return ParamGrowth(float(m.group(1).replace(",", "").replace("_", "")), bool(m.group(2)))
    raise bad(f"'max_param_growth' is {value!r}; give a number of parameters (1000000) or a percentage (10%)")


# -- checking ---------------------------------------------------------------------------
def _listed(items: list[str]) -> tuple[str, ...]:
    if len(items) <= MAX_LISTED:
        return tuple(items)
    return tuple(items[:MAX_LISTED]) + (f"... and {len(items) - MAX_LISTED} more",)


def _change_text(change) -> str:
    from archdiff.diff.render import change_text

    return change_text(change)


def check(d: ArchDiff, policy: Policy) -> PolicyResult:
    """Check a diff against a policy; every rule the policy sets gives one :class:`RuleResult`."""
    rules: list[RuleResult] = []
    notes: list[str] = []

    if policy.frozen:
        violations = []
        used = set()
        for layer in d.matched:
            a_name, b_name = layer.a.rsplit("/", 1)[-1], layer.b.rsplit("/", 1)[-1]
            hit = next((p for p in policy.frozen if p.matches(a_name, layer.a) or p.matches(b_name, layer.b)), None)
            if hit is None:
                continue
            used.add(hit)
            if layer.changes:
                what = "; ".join(_change_text(c) for c in layer.changes)
                violations.append(f"'{layer.a}' (frozen by '{hit}') changed: {what}")
        for entry in d.removed:
            hit = next((p for p in policy.frozen if p.matches(entry.name, entry.path)), None)
            if hit is not None:
                used.add(hit)
                violations.append(f"'{entry.path}' (frozen by '{hit}') was removed")
        for entry in d.added:  # a layer new in B is not a change of a frozen one, but the pattern is in use
            used.update(p for p in policy.frozen if p.matches(entry.name, entry.path))
        # A pattern that matches nothing protects nothing (a typo, or the layer is gone): that fails, named.
        unmatched = [f"frozen pattern '{p}' matches no layer of A or B" for p in policy.frozen if p not in used]
        n = len(policy.frozen)
        rules.append(RuleResult(
            "frozen", not violations and not unmatched,
            f"{len(violations)} frozen layer{'s' if len(violations) != 1 else ''} changed or removed"
            if violations else f"{len(unmatched)} of {n} frozen pattern{'s' if n != 1 else ''} match no layer"
            if unmatched else f"no frozen layer changed ({n} pattern{'s' if n != 1 else ''})",
            _listed(violations + unmatched)))

    rules.extend(_value_rules(d, policy, notes))

    for rule, allowed, entries, verb in (("allow_added", policy.allow_added, d.added, "added"),
                                         ("allow_removed", policy.allow_removed, d.removed, "removed")):
        if allowed is True:
            continue
        if allowed is False:
            bad = [e for e in entries]
            why = f"{rule} is false"
        else:
            bad = [e for e in entries if not any(p.matches(e.name, e.path) for p in allowed)]
            why = f"not matched by {rule} ({', '.join(str(p) for p in allowed)})"
        items = [f"'{e.path}' ({e.class_name}) was {verb}" for e in bad]
        rules.append(RuleResult(
            rule, not bad,
            f"{len(bad)} layer{'s' if len(bad) != 1 else ''} {verb}, {why}" if bad
            else f"no layer {verb} against the rule" if entries or allowed is False
            else f"no layer {verb}",
            _listed(items)))

    if policy.max_param_growth is not None:
        limit = policy.max_param_growth
        before, after = d.a.total_params, d.b.total_params
        if before is None or after is None:
            side = "A" if before is None else "B"
            rules.append(RuleResult("max_param_growth", False,
                                    f"cannot check: the parameter count of {side} is unknown (a config the "
                                    "weights could not be inferred for); give files with weights"))
        else:
            delta = after - before
            pct = percent(delta, before) if before else 0.0 if delta == 0 else None
            pct = (float("inf") if delta > 0 else float("-inf")) if pct is None else pct  # beyond a float
            grown = f"{'+' if delta >= 0 else ''}{count(delta)} ({pct:+.2f}%)" if before else f"{count(delta)}"
            over = pct > limit.limit if limit.percent else delta > limit.limit
            message = (f"parameters grew by {grown}, over the limit of {limit}" if over
                       else f"parameters {count(before)} -> {count(after)}: {grown}, within {limit}")
            rules.append(RuleResult("max_param_growth", not over, message))

    if policy.fail_on:
        present = [k for k in d.kinds if k in policy.fail_on or ("any" in policy.fail_on)]
        if present:
            rules.append(RuleResult("fail_on", False,
                                    f"the diff is {', '.join(present)}, which the policy's fail_on forbids",
                                    _listed(_examples(d, present))))
        else:
            rules.append(RuleResult("fail_on", True,
                                    f"none of {', '.join(policy.fail_on)} in the diff"))
    return PolicyResult(policy, tuple(rules), tuple(notes))


def _percent(value: float | None) -> str:
    from archdiff.diff.render.common import number_text

    return number_text(value, percent=True)


def _value_rules(d: ArchDiff, policy: Policy, notes: list[str]) -> list[RuleResult]:
    """``max_relative_change`` and ``allow_nonfinite`` against the diff's value comparison."""
    rules = []
    values = d.values
    if policy.frozen and values is None and d.matched:
        notes.append("frozen: weight values were not compared (a side without weights, or --topology-only), "
                     "so frozen layers were checked for shapes and configs only")
    if policy.max_relative_change:
        if values is None or values.mode != "figures":
            why = ("the values were compared for equality only (--values equal)" if values is not None
                   else "weight values were not compared (a side without weights, or --topology-only)")
            rules.append(RuleResult("max_relative_change", False, f"cannot check: {why}"))
        else:
            violations = []
            for lv in values.changed:
                a_name, b_name = lv.a.rsplit("/", 1)[-1], lv.b.rsplit("/", 1)[-1]
                hit = next(((p, limit) for p, limit in policy.max_relative_change
                            if p.matches(a_name, lv.a) or p.matches(b_name, lv.b)), None)
                if hit is None:
                    continue
                for v in lv.changed:
                    rel = v.figures.relative_change if v.figures is not None else None
                    if rel is None or rel > hit[1]:
                        shown = "unknown (A was all zeros)" if rel is None else _percent(rel)
                        violations.append(f"'{lv.b}' {v.name}: relative change {shown}, over {_percent(hit[1])} "
                                          f"(max_relative_change '{hit[0]}')")
            rules.append(RuleResult(
                "max_relative_change", not violations,
                f"{len(violations)} variable{'s' if len(violations) != 1 else ''} changed more than allowed"
                if violations else "every layer within its relative change limit", _listed(violations)))
    if values is not None and not policy.allow_nonfinite:
        if values.mode != "figures":
            rules.append(RuleResult("allow_nonfinite", False,
                                    "cannot check: the values were compared for equality only (--values equal)"))
        else:
            violations = []
            for lv in values.nonfinite:
                for v in lv.changed:
                    f = v.figures
                    if f is not None and f.nonfinite_introduced:
                        violations.append(f"'{lv.b}' {v.name}: {f.nan_introduced} NaN and {f.inf_introduced} Inf "
                                          "introduced")
            rules.append(RuleResult(
                "allow_nonfinite", not violations,
                f"NaN/Inf introduced in {len(violations)} variable{'s' if len(violations) != 1 else ''}"
                if violations else "no NaN or Inf introduced in the weights", _listed(violations)))
    return rules


def _examples(d: ArchDiff, kinds: Iterable[str]) -> list[str]:
    kinds = set(kinds)
    out = []
    for layer in d.matched:
        for c in layer.changes:
            if c.effect in kinds:
                out.append(f"'{layer.b}': {_change_text(c)} [{c.effect}]")
    if "topology-changing" in kinds:
        out.extend(f"'{e.path}' ({e.class_name}) added" for e in d.added)
        out.extend(f"'{e.path}' ({e.class_name}) removed" for e in d.removed)
    for c in d.io_changes:
        if c.effect in kinds:
            out.append(f"{c.side} {c.index}: {c.what} {c.old!r} -> {c.new!r}")
    return out


def find_default(root: str) -> str | None:
    for name in DEFAULT_NAMES:
        candidate = os.path.join(root, name)
        if os.path.isfile(candidate):
            return candidate
    return None
