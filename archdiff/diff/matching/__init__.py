"""Pairing the layers of two models: by name first, then renames on evidence.

This package owns deciding which layer of model A *is* which layer of model B.
It is shared by ``diff`` and by weight transfer (``--match auto``). This
``__init__`` holds the result (:class:`Matching`, :class:`Pair`) and the
dispatcher :func:`match_layers`, which walks the scopes and decides which
step runs where; each step lives in a module of its own:

* :mod:`~archdiff.diff.matching.state`: each model's indexes and the pairs made so far;
* :mod:`~archdiff.diff.matching.rules`: the user's rename rules (``--map``), applied first;
* :mod:`~archdiff.diff.matching.nesting`: a model's layers found under a prefix in the other
  (flat into nested and back, under another name, several levels deep), paired next;
* :mod:`~archdiff.diff.matching.keys`: step 0 (a Keras 3 weights file's layers known only by Keras' key);
* :mod:`~archdiff.diff.matching.names`: steps 1 and 6 (names);
* :mod:`~archdiff.diff.matching.renames`: steps 2 to 5 (evidence for renames);
* :mod:`~archdiff.diff.matching.sequences`: the order-preserving sequence alignment
  step 4 uses, one module per algorithm (``seq_myers``, ``seq_greedy``) behind it.

Rules (``--map``) pair first, then nestings (each pair of nested scopes is
walked as below, its pairs made ``nesting``). The work is done scope by scope
(the top-level model, then each pair of matched nested models), on the layers
still unpaired, in steps that each cost about linear time:

0. **Keys.** A Keras 3 weights file knows a layer without variables only by
   Keras' key (class + order: ``reshape_1``); it pairs with the other model's
   layer of that key, as Keras' ``load_weights`` pairs them (no rename).
1. **Names.** Layers with the same name are paired, except where both names
   are Keras auto names (``dense_3``): those shift when a layer of the same
   class is inserted earlier, so they are left for the structural steps and
   only paired by name at the end if nothing better turns up.
2. **Propagation** from every pair to its unpaired neighbours: the producer
   at the same input slot, or the only consumer at the same slot, with the
   same class and config (name aside).
3. **Signatures** (Weisfeiler-Lehman style): a label of class + config, refined
   twice with the labels of the neighbours (a paired neighbour is labelled by
   its pair), is unique in both models: the two layers are paired. Auto-named
   layers may also pair on a unique class + config alone. Then step 2 again.
4. **Order**: what is left is aligned in layer order (an LCS of class +
   config labels), between the pairs made so far that keep their order.
5. **Auto-name drift with a changed config**: two auto-named layers of the
   same class in the same place (a shared paired neighbour at the same slot),
   each the other's only candidate.
6. The auto names left on both sides are paired by name.

Without a topology (weights-only files, subclassed models) steps 2, 3 and 5
have no neighbours to use: layers pair by name, then by weight shapes in
order. Every pair says how it was made (``how``) and why (``evidence``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from archdiff.diff.matching.keys import pair_by_key
from archdiff.diff.matching.names import pair_by_name, pair_left_auto_names
from archdiff.diff.matching.nesting import Nesting, find_nestings, pair_renamed_models
from archdiff.diff.matching.renames import ScopeRenames
from archdiff.diff.matching.rules import MapRule, load_map_file, parse_map_rule
from archdiff.diff.matching.state import Pairing
from archdiff.model import Architecture

#: The ways a pair is made: a rule ("map", "regex"), then from the strongest evidence to the weakest.
HOW = ("name", "key", "map", "regex", "nesting", "parent", "contents", "signature", "neighbours", "order")


@dataclass(frozen=True)
class Pair:
    """Layer ``a`` of model A is layer ``b`` of model B."""

    a: str
    b: str
    #: "name" (same path), "key" (a weights file's layer known only by Keras' key: see
    #: :mod:`~archdiff.diff.matching.keys`), a rule ("map", "regex": ``--map``), "nesting" (the same layer
    #: under another prefix, see :mod:`~archdiff.diff.matching.nesting`), or how a rename was
    #: found: "parent" (same name inside a renamed nested model), "signature", "neighbours", "order".
    how: str
    #: Human-readable reasons for a rename.
    evidence: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "how": self.how, "evidence": list(self.evidence)}


@dataclass(frozen=True)
class Matching:
    pairs: tuple[Pair, ...]
    only_a: tuple[str, ...]
    only_b: tuple[str, ...]
    notes: tuple[str, ...] = field(default=(), compare=False)
    #: Scopes of A found as scopes of B under another prefix, outermost first.
    nestings: tuple[Nesting, ...] = ()

    def renames(self) -> dict[str, str]:
        """``a_path -> b_path`` for the pairs not made by name (nor by a weights file's key)."""
        return {p.a: p.b for p in self.pairs if p.how not in ("name", "key")}

    def nesting_of(self, a_path: str, b_path: str) -> Nesting | None:
        """The nesting that takes A's ``a_path`` to B's ``b_path``, if one does."""
        return next((n for n in self.nestings if n.covers(a_path, b_path)), None)

    @cached_property
    def a_to_b(self) -> dict[str, str]:
        return {p.a: p.b for p in self.pairs}

    @cached_property
    def b_to_a(self) -> dict[str, str]:
        return {p.b: p.a for p in self.pairs}

    @cached_property
    def by_a(self) -> dict[str, Pair]:
        return {p.a: p for p in self.pairs}

    def to_dict(self) -> dict:
        return {"pairs": [p.to_dict() for p in self.pairs], "only_a": list(self.only_a),
                "only_b": list(self.only_b), "nestings": [n.to_dict() for n in self.nestings]}


def match_layers(a: Architecture, b: Architecture, *, detect_renames: bool = True,
                 rules: tuple[MapRule, ...] = ()) -> Matching:
    """Pair the layers of ``a`` and ``b`` (see the package docstring).

    ``rules``: ``--map`` rules from A's paths to B's, applied first (the first
    rule that renames a path wins; a rule whose result is not a layer of B
    pairs nothing). Nestings are looked for with ``detect_renames`` only.
    """
    pairing = Pairing(a, b, detect_renames)
    scopes = _apply_rules(pairing, rules)
    if detect_renames:
        pairing.nestings = list(find_nestings(a, b, taken_a=pairing.ab, taken_b=pairing.ba))
        for n in pairing.nestings:
            if n.a and n.b and n.a not in pairing.ab and n.b not in pairing.ba:
                pairing.pair(n.a, n.b, "nesting", n.evidence)
            scopes.append((n.a, n.b))
    for scope_a, scope_b in scopes:
        _match_scope(pairing, scope_a, scope_b)
    _match_scope(pairing, "", "")
    return _result(pairing)


def _apply_rules(m: Pairing, rules: tuple[MapRule, ...]) -> list[tuple[str, str]]:
    """Pair by the rules; return the pairs of nested models they made, whose insides are matched next."""
    if not rules:
        return []
    scopes = []
    for layer in m.A.arch.layers:
        if layer.path in m.ab:
            continue
        for rule in rules:
            dest = rule.apply(layer.path)
            if dest is None:
                continue
            other = m.B.by_path.get(dest)
            if other is not None and dest not in m.ba:
                m.pair(layer.path, dest, "regex" if rule.regex else "map", (f"{rule.origin} '{rule.text}'",))
                if layer.is_model and other.is_model:
                    scopes.append((layer.path, dest))
            break
    return scopes


def _match_scope(m: Pairing, scope_a: str, scope_b: str) -> None:
    """One pair of scopes: names, then (with rename detection) the evidence steps, then nested scopes.

    Only layers still unpaired take part: rules and nestings may have paired some already.
    """
    kids_a = [k for k in m.A.kids.get(scope_a, []) if k.path not in m.ab]
    kids_b = [k for k in m.B.kids.get(scope_b, []) if k.path not in m.ba]
    pair_by_key(m, kids_a, kids_b)
    kids_a = [k for k in kids_a if k.path not in m.ab]
    kids_b = [k for k in kids_b if k.path not in m.ba]
    weak = pair_by_name(m, scope_a, scope_b, kids_a, kids_b)
    if m.detect:
        ua = [k.path for k in kids_a if k.path not in m.ab]
        ub = [k.path for k in kids_b if k.path not in m.ba]
        if ua and ub:
            ScopeRenames(m, scope_a, scope_b, kids_a, kids_b).run()
        pair_renamed_models(m, [k for k in kids_a if k.path not in m.ab], [k for k in kids_b if k.path not in m.ba])
    pair_left_auto_names(m, scope_a, scope_b, weak)
    for x in kids_a:
        y = m.ab.get(x.path)
        if y is not None and x.is_model and m.B.by_path[y].is_model:
            _match_scope(m, x.path, y)


def _result(m: Pairing) -> Matching:
    pairs = tuple(Pair(layer.path, m.ab[layer.path], m.how[layer.path], m.evidence[layer.path])
                  for layer in m.A.arch.layers if layer.path in m.ab)
    only_a = tuple(layer.path for layer in m.A.arch.layers if layer.path not in m.ab)
    only_b = tuple(layer.path for layer in m.B.arch.layers if layer.path not in m.ba)
    return Matching(pairs, only_a, only_b, tuple(m.notes), tuple(m.nestings))


__all__ = ["HOW", "Matching", "Nesting", "Pair", "MapRule", "find_nestings", "load_map_file", "match_layers",
           "parse_map_rule"]
