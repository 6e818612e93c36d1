"""Nesting: one model's layers are another model's layers under a prefix.

The Keras transfer-learning guide nests a pretrained base inside a new model
(``x = base_model(inputs, training=False)``), so the base's layers live under
its name (``xception/block1_conv1``). Compared by path with the flat base, no
layer would match. This module owns finding such *nestings* between the
scopes of two models (a scope is the top level, ``""``, or a nested model's
path) and saying why: a scope of A whose layers are, by name and class (or
weight shapes, where a file has no classes), the layers of a scope of B at
another path. Both ways round (flat into nested, nested into flat), under
another name, and any number of levels deep (``""`` into ``outer/xception``).

:func:`find_nestings` returns :class:`Nesting` records; the matcher
(:func:`archdiff.diff.matching.match_layers`) pairs the nested scopes first
and reports their pairs as ``nesting``; ``transfer --match auto`` turns each
into a rule (:attr:`Nesting.rule`). A nesting is only claimed where it
explains more layers than leaving the scopes where they are, at least two
and at least half of the smaller scope: a single shared name is never one.
"""
from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from archdiff.diff.canonical import class_known, class_of
from archdiff.model import Architecture, Layer


@dataclass(frozen=True)
class Nesting:
    """The layers of A's scope ``a`` are the layers of B's scope ``b`` (``""``: the top level)."""

    a: str
    b: str
    #: Layers of the two scopes that agree by name and class (weight shapes where classes are unknown).
    matched: int
    #: Layers of each scope that take part (InputLayers and Keras 3 operations left out).
    a_layers: int
    b_layers: int
    #: "name and class", or "name and weight shapes" where a file has no configs.
    basis: str = "name and class"
    #: The two models' own names (what ``model.name`` was when saved).
    a_model: str = ""
    b_model: str = ""

    @property
    def evidence(self) -> tuple[str, ...]:
        return self.explain()

    def explain(self, a: str = "A", b: str = "B") -> tuple[str, ...]:
        """Why the scopes are one: the shared layers, and what the model names say (``a``, ``b``: the sides' names)."""
        what_a = f"{a}'s {self.a_layers} top-level layers" if not self.a else \
            f"the {self.a_layers} layers of {a}'s nested model '{self.a}'"
        where_b = f"{b}'s nested model '{self.b}'" if self.b else f"{b}'s top level"
        out = [f"{self.matched} of {what_a} are layers of {where_b} ({self.b_layers} in all), by {self.basis}"]
        if not self.a and self.b:
            inner = self.b.rsplit("/", 1)[-1]
            if inner == self.a_model:
                out.append(f"{b}'s nested model has {a}'s model name ('{self.a_model}')")
            elif self.a_model:
                out.append(f"under another name: {a}'s model is called '{self.a_model}', {b}'s nested model '{inner}'")
            if "/" in self.b:
                out.append(f"{self.b.count('/') + 1} levels deep")
        elif self.a and not self.b:
            inner = self.a.rsplit("/", 1)[-1]
            if inner == self.b_model:
                out.append(f"{a}'s nested model has {b}'s model name ('{self.b_model}')")
            elif self.b_model:
                out.append(f"under another name: {b}'s model is called '{self.b_model}', {a}'s nested model '{inner}'")
        return tuple(out)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "matched": self.matched, "a_layers": self.a_layers,
                "b_layers": self.b_layers, "description": self.describe(), "rule": self.rule,
                "evidence": list(self.evidence)}

    def maps(self, path: str) -> str | None:
        """The path in B of A's ``path`` under this nesting, or None when ``path`` is outside ``a``."""
        if not self.a:
            return f"{self.b}/{path}" if self.b else path
        if path == self.a:
            return self.b or None
        if path.startswith(self.a + "/"):
            rest = path[len(self.a) + 1:]
            return f"{self.b}/{rest}" if self.b else rest
        return None

    def covers(self, a_path: str, b_path: str) -> bool:
        """Whether this nesting takes A's ``a_path`` (a layer or a scope, ``""`` the top) to B's ``b_path``."""
        if a_path == self.a:
            return b_path == self.b
        return bool(a_path) and self.maps(a_path) == b_path

    @property
    def rule(self) -> str:
        """The equivalent ``--map`` regex rule (``re:^=xception/``, ``re:^xception/=``)."""
        pattern = "^" + (re.escape(self.a + "/") if self.a else "")
        replacement = (self.b + "/").replace("\\", "\\\\") if self.b else ""
        return f"re:{pattern}={replacement}"

    def describe(self, a: str = "A", b: str = "B") -> str:
        """``A is nested in B as 'xception'`` and the like."""
        if not self.a:
            return f"{a} is nested in {b} as '{self.b}'"
        if not self.b:
            return f"{a}'s nested model '{self.a}' is {b} itself (not nested)"
        return f"{a}'s nested model '{self.a}' is nested in {b} as '{self.b}'"


# -- the scopes ------------------------------------------------------------------------
def _members(arch: Architecture) -> dict[str, dict[str, Layer]]:
    """Scope -> its layers by name, InputLayers and operations left out (they say nothing of identity)."""
    scopes: dict[str, dict[str, Layer]] = {"": {}}
    for layer in arch.layers:
        if layer.is_model:
            scopes.setdefault(layer.path, {})
    for layer in arch.layers:
        if layer.is_operation or layer.class_name == "InputLayer":
            continue
        scopes.setdefault(layer.parent, {})[layer.name] = layer
    return scopes


def _agree(x: Layer, y: Layer) -> bool:
    if class_known(x.class_name) and class_known(y.class_name):
        if class_of(x) != class_of(y):
            return False
    if x.weights is not None and y.weights is not None and not (x.is_model or y.is_model):
        return [tuple(w.shape) for w in x.weights] == [tuple(w.shape) for w in y.weights] or (
            class_known(x.class_name) and class_known(y.class_name))
    return True


def _overlap(xs: dict[str, Layer], ys: dict[str, Layer]) -> int:
    if len(xs) > len(ys):
        return sum(1 for name, y in ys.items() if name in xs and _agree(xs[name], y))
    return sum(1 for name, x in xs.items() if name in ys and _agree(x, ys[name]))


def _inside(path: str, scope: str) -> bool:
    return not scope or path == scope or path.startswith(scope + "/")


# -- finding them ---------------------------------------------------------------------
def find_nestings(a: Architecture, b: Architecture, *, taken_a=(), taken_b=()) -> tuple[Nesting, ...]:
    """The nestings between ``a`` and ``b``, outermost first (see the module docstring).

    ``taken_a`` / ``taken_b``: layer paths already paired (by rules) that must not count.
    """
    sa_all, sb_all = _members(a), _members(b)
    taken_a, taken_b = set(taken_a), set(taken_b)
    if taken_a or taken_b:
        sa_all = {s: {n: l for n, l in m.items() if l.path not in taken_a} for s, m in sa_all.items()}
        sb_all = {s: {n: l for n, l in m.items() if l.path not in taken_b} for s, m in sb_all.items()}
    # Which scopes of B hold a layer of each name: only scope pairs that share a name are compared.
    where_b: dict[str, list[str]] = defaultdict(list)
    for scope, members in sb_all.items():
        for name in members:
            where_b[name].append(scope)
    candidates: list[tuple[int, int, str, str]] = []
    for scope_a, members_a in sa_all.items():
        if len(members_a) < 2:
            continue
        shared: dict[str, int] = defaultdict(int)
        for name in members_a:
            for scope_b in where_b.get(name, ()):
                shared[scope_b] += 1
        for scope_b, rough in shared.items():
            if scope_b == scope_a or rough < 2:
                continue
            if scope_a and scope_b and scope_a.rpartition("/")[0] == scope_b.rpartition("/")[0]:
                continue  # a nested model renamed in place: a rename, which the scope walk pairs as "parent"
            members_b = sb_all[scope_b]
            ov = _overlap(members_a, members_b)
            if ov < 2 or 2 * ov < min(len(members_a), len(members_b)):
                continue
            # Only where it explains more than leaving each scope where it is.
            stay_a = _overlap(members_a, sb_all[scope_a]) if scope_a in sb_all else 0
            stay_b = _overlap(sa_all[scope_b], members_b) if scope_b in sa_all else 0
            if ov <= stay_a or ov <= stay_b:
                continue
            candidates.append((ov, -scope_a.count("/") - scope_b.count("/"), scope_a, scope_b))
    candidates.sort(key=lambda c: (-c[0], -c[1], c[2], c[3]))
    chosen: list[Nesting] = []
    for ov, _, scope_a, scope_b in candidates:
        if any(scope_a == n.a or scope_b == n.b for n in chosen):
            continue
        # A scope inside a chosen one, going where that one takes it, is already explained by it.
        if any(_inside(scope_a, n.a) and n.maps(scope_a) == scope_b for n in chosen if scope_a):
            continue
        # Nor may it cross one: a scope inside a chosen nesting must go inside its destination.
        if any(_inside(scope_a, n.a) != _inside(scope_b, n.b) for n in chosen if n.a and n.b):
            continue
        chosen.append(_nesting(a, b, scope_a, scope_b, ov, len(sa_all[scope_a]), len(sb_all[scope_b])))
    # The outer nesting explains the inner ones it maps consistently: keep the outermost.
    kept = [n for n in chosen
            if not any(o is not n and n.a and _inside(n.a, o.a) and o.maps(n.a) == n.b for o in chosen)]
    kept.sort(key=lambda n: (n.a.count("/") if n.a else -1, n.a, n.b))
    return tuple(kept)


def pair_renamed_models(m, kids_a: list[Layer], kids_b: list[Layer]) -> None:
    """Two unpaired nested models of one scope whose layers are one model's: a nested model renamed in place.

    Two keras-hub tasks built in one process name their backbones ``bert_backbone`` and ``bert_backbone_1``;
    a changed backbone (one block more) has no signature of its own to pair by. The models pair (``contents``)
    where their layers agree by name and class (weight shapes where classes are unknown) as a nesting must:
    at least two, and at least half of the smaller model's, the best such partner on both sides; their layers
    then pair by name inside them (``parent``).
    """
    models_a = [k for k in kids_a if k.is_model]
    models_b = [k for k in kids_b if k.is_model]
    if not models_a or not models_b:
        return
    inner_a, inner_b = _members(m.A.arch), _members(m.B.arch)
    scored = []
    for x in models_a:
        for y in models_b:
            xs, ys = inner_a.get(x.path, {}), inner_b.get(y.path, {})
            ov = _overlap(xs, ys)
            if ov >= 2 and 2 * ov >= min(len(xs), len(ys)):
                scored.append((ov, x, y, len(xs), len(ys)))
    scored.sort(key=lambda t: (-t[0], t[1].path, t[2].path))
    best_a: dict[str, int] = {}
    best_b: dict[str, int] = {}
    for ov, x, y, _, _ in scored:
        best_a.setdefault(x.path, ov)
        best_b.setdefault(y.path, ov)
    for ov, x, y, na, nb in scored:
        if x.path in m.ab or y.path in m.ba:
            continue
        # Only an unambiguous best: a model that shares as much with two others is left as it is.
        if sum(1 for t in scored if t[1] is x and t[0] == ov) > 1 or sum(1 for t in scored if t[2] is y
                                                                           and t[0] == ov) > 1:
            continue
        m.pair(x.path, y.path, "contents",
               (f"a nested model renamed: {ov} of its layers ({na} in '{x.name}', {nb} in '{y.name}') agree by "
                "name and class" + ("" if m.topology else " (weight shapes where classes are unknown)"),))


def _nesting(a: Architecture, b: Architecture, scope_a: str, scope_b: str, ov: int, na: int, nb: int) -> Nesting:
    basis = "name and class" if a.has_topology and b.has_topology else "name and weight shapes"
    return Nesting(scope_a, scope_b, ov, na, nb, basis, a.name if a.has_topology else "",
                   b.name if b.has_topology else "")


__all__ = ["Nesting", "find_nestings", "pair_renamed_models"]
