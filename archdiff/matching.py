"""Pairing the layers of two models: by name first, then renames on evidence.

This module owns deciding which layer of model A *is* which layer of model B.
It is shared by ``diff`` and by weight transfer (``--match auto``).

The work is done scope by scope (the top-level model, then each pair of
matched nested models), in steps that each cost about linear time:

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

import difflib
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable

from .canonical import class_known, class_of, dumps, is_auto_name, signature_config
from .model import Architecture, Layer

#: The ways a pair is made, from the strongest evidence to the weakest.
HOW = ("name", "parent", "signature", "neighbours", "order")
#: Above this many cells an alignment falls back from LCS to in-order pairing.
_LCS_CELLS = 4_000_000
_IMPLICIT = "\0implicit-input"


@dataclass(frozen=True)
class Pair:
    """Layer ``a`` of model A is layer ``b`` of model B."""

    a: str
    b: str
    #: "name" (same path), or how a rename was found: "parent" (same name inside
    #: a renamed nested model), "signature", "neighbours", "order".
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

    def renames(self) -> dict[str, str]:
        """``a_path -> b_path`` for the pairs not made by name."""
        return {p.a: p.b for p in self.pairs if p.how != "name"}

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
                "only_b": list(self.only_b)}


def match_layers(a: Architecture, b: Architecture, *, detect_renames: bool = True) -> Matching:
    """Pair the layers of ``a`` and ``b`` (see the module docstring)."""
    matcher = _Matcher(a, b, detect_renames)
    matcher.run()
    return matcher.result()


# -- one side's view of a scope ----------------------------------------------------
class _Side:
    """Per-model indexes: children by scope, producers and consumers of each layer."""

    def __init__(self, arch: Architecture, use_config: bool):
        self.arch = arch
        self.use_config = use_config
        self.by_path = arch.by_path
        self.kids: dict[str, list[Layer]] = defaultdict(list)
        self.position: dict[str, int] = {}
        for layer in arch.layers:
            self.position[layer.path] = len(self.kids[layer.parent])
            self.kids[layer.parent].append(layer)
        self._sig: dict[str, str] = {}
        self._ins: dict[str, list] | None = None
        self._outs: dict[str, list] | None = None

    def _edges(self) -> None:
        ins: dict[str, list] = {}
        outs: dict[str, list] = defaultdict(list)
        by_path = self.by_path
        for layer in self.arch.layers:
            slots = []
            prefix = f"{layer.parent}/" if layer.parent else ""
            for c, call in enumerate(layer.calls):
                for p, ref in enumerate(call.inputs):
                    producer = prefix + ref.layer
                    if producer not in by_path:
                        producer = _IMPLICIT
                    slots.append((c, p, producer))
                    if producer is not _IMPLICIT:
                        outs[producer].append((c, p, layer.path))
            ins[layer.path] = slots
        self._ins, self._outs = ins, outs

    def ins(self, path: str) -> list:
        if self._ins is None:
            self._edges()
        return self._ins.get(path, ())

    def outs(self, path: str) -> list:
        if self._outs is None:
            self._edges()
        return self._outs.get(path, ())

    def sig(self, path: str) -> str:
        """Class + config (name aside), or the weight shapes where there is no config."""
        s = self._sig.get(path)
        if s is None:
            layer = self.by_path[path]
            if self.use_config:
                if layer.is_model:
                    kids = self.kids.get(path, ())
                    body = dumps([signature_config(layer), [class_of(k) for k in kids]])
                else:
                    body = dumps(signature_config(layer))
                s = f"{class_of(layer)}|{body}"
            else:
                shapes = [list(w.shape) for w in layer.weights or ()]
                s = f"{'model' if layer.is_model else ''}|{dumps(shapes)}"
            self._sig[path] = s
        return s


# -- the matcher ---------------------------------------------------------------------
class _Matcher:
    def __init__(self, a: Architecture, b: Architecture, detect_renames: bool):
        # Configs are only comparable when both inputs have them.
        use_config = a.has_topology and b.has_topology
        self.topology = use_config
        self.A = _Side(a, use_config)
        self.B = _Side(b, use_config)
        self.detect = detect_renames
        self.ab: dict[str, str] = {}
        self.ba: dict[str, str] = {}
        self.how: dict[str, str] = {}
        self.evidence: dict[str, tuple[str, ...]] = {}
        self.notes: list[str] = []

    # -- bookkeeping ---------------------------------------------------------------
    def pair(self, x: str, y: str, how: str, evidence: Iterable[str] = ()) -> None:
        self.ab[x] = y
        self.ba[y] = x
        if x == y:
            self.how[x] = "name"
            self.evidence[x] = ()
        else:
            self.how[x] = how
            self.evidence[x] = tuple(evidence)

    def run(self) -> None:
        self.match_scope("", "")

    def result(self) -> Matching:
        pairs = tuple(Pair(layer.path, self.ab[layer.path], self.how[layer.path], self.evidence[layer.path])
                      for layer in self.A.arch.layers if layer.path in self.ab)
        only_a = tuple(layer.path for layer in self.A.arch.layers if layer.path not in self.ab)
        only_b = tuple(layer.path for layer in self.B.arch.layers if layer.path not in self.ba)
        return Matching(pairs, only_a, only_b, tuple(self.notes))

    # -- one scope -------------------------------------------------------------------
    def match_scope(self, scope_a: str, scope_b: str) -> None:
        kids_a = self.A.kids.get(scope_a, [])
        kids_b = self.B.kids.get(scope_b, [])
        b_by_name = {k.name: k for k in kids_b}
        renamed_scope = scope_a != scope_b
        weak: list[tuple[str, str]] = []
        for x in kids_a:
            y = b_by_name.get(x.name)
            if y is None:
                continue
            if self.detect and is_auto_name(x.name, x.class_name) and is_auto_name(y.name, y.class_name):
                weak.append((x.path, y.path))
                continue
            if renamed_scope:
                self.pair(x.path, y.path, "parent",
                          (f"same name '{x.name}' inside the renamed model '{scope_a}' -> '{scope_b}'",))
            else:
                self.pair(x.path, y.path, "name")

        if self.detect:
            ua = [k.path for k in kids_a if k.path not in self.ab]
            ub = [k.path for k in kids_b if k.path not in self.ba]
            if ua and ub:
                _ScopeRenames(self, scope_a, scope_b, kids_a, kids_b).run()
        for x, y in weak:
            if x not in self.ab and y not in self.ba:
                if renamed_scope:
                    self.pair(x, y, "parent", (f"same name inside the renamed model '{scope_a}' -> '{scope_b}'",))
                else:
                    self.pair(x, y, "name")

        for x in kids_a:
            y = self.ab.get(x.path)
            if y is not None and x.is_model and self.B.by_path[y].is_model:
                self.match_scope(x.path, y)


class _ScopeRenames:
    """Steps 2-5 of the module docstring, inside one pair of scopes."""

    def __init__(self, m: _Matcher, scope_a: str, scope_b: str, kids_a: list[Layer], kids_b: list[Layer]):
        self.m = m
        self.A, self.B = m.A, m.B
        self.scope_a, self.scope_b = scope_a, scope_b
        self.kids_a = [k.path for k in kids_a]
        self.kids_b = [k.path for k in kids_b]
        self.in_a = set(self.kids_a)
        self.in_b = set(self.kids_b)
        self.topology = m.topology

    # -- helpers -------------------------------------------------------------------
    def free_a(self) -> list[str]:
        return [p for p in self.kids_a if p not in self.m.ab]

    def free_b(self) -> list[str]:
        return [p for p in self.kids_b if p not in self.m.ba]

    def name(self, side: _Side, path: str) -> str:
        return side.by_path[path].name

    def auto(self, side: _Side, path: str) -> bool:
        layer = side.by_path[path]
        return is_auto_name(layer.name, layer.class_name)

    def common_evidence(self, x: str, y: str) -> list[str]:
        lx, ly = self.A.by_path[x], self.B.by_path[y]
        out = []
        if self.topology:
            if class_of(lx) == class_of(ly) and self.A.sig(x) == self.B.sig(y):
                out.append(f"same class ({ly.class_name}) and config apart from the name")
            elif class_of(lx) == class_of(ly):
                out.append(f"same class ({ly.class_name}); the config differs")
        if lx.weights is not None and ly.weights is not None:
            sx = [tuple(w.shape) for w in lx.weights]
            sy = [tuple(w.shape) for w in ly.weights]
            if sx and sx == sy:
                out.append("same weight shapes: " + ", ".join(str(s) for s in sx))
            elif sx != sy:
                out.append("weight shapes differ")
        if self.auto(self.A, x) and self.auto(self.B, y) and class_known(ly.class_name):
            out.append(f"both are Keras auto names ('{lx.name}' -> '{ly.name}'), which shift when a layer "
                       "of the same class is added or removed earlier")
        return out

    def link(self, x: str, y: str, how: str, reasons: list[str], queue: list | None = None) -> None:
        self.m.pair(x, y, how, [*reasons, *self.common_evidence(x, y)])
        if queue is not None:
            queue.append((x, y))

    # -- the steps -------------------------------------------------------------------
    def run(self) -> None:
        queue = [(x, self.m.ab[x]) for x in self.kids_a if x in self.m.ab]
        if self.topology:
            self.propagate(queue)
            for _ in range(3):
                made = self.signatures()
                if not made:
                    break
                self.propagate(made)
        made = self.order()
        if self.topology:
            self.propagate(made)
            made = self.drift()
            while made:
                self.propagate(made)
                made = self.drift()

    def propagate(self, queue: list[tuple[str, str]]) -> None:
        """Step 2: from each pair to the unpaired neighbours at the same slots."""
        A, B, ab, ba = self.A, self.B, self.m.ab, self.m.ba
        while queue:
            x, y = queue.pop()
            # Producers at the same input slot.
            ins_b = {(c, p): prod for c, p, prod in B.ins(y)}
            for c, p, px in A.ins(x):
                py = ins_b.get((c, p))
                if (py is None or px is _IMPLICIT or py is _IMPLICIT or px in ab or py in ba
                        or px not in self.in_a or py not in self.in_b):
                    continue
                if A.sig(px) == B.sig(py):
                    self.link(px, py, "neighbours",
                              [f"feeds the matched layer '{x}' -> '{y}' at the same input"], queue)
            # Consumers at the same slot, unique by signature on both sides.
            outs_a = [(c, p, q) for c, p, q in A.outs(x) if q not in ab and q in self.in_a]
            if not outs_a:
                continue
            outs_b = [(c, p, q) for c, p, q in B.outs(y) if q not in ba and q in self.in_b]
            if not outs_b:
                continue
            groups_a = _group(outs_a, lambda e: (e[0], e[1], A.sig(e[2])))
            groups_b = _group(outs_b, lambda e: (e[0], e[1], B.sig(e[2])))
            for key, items in groups_a.items():
                other = groups_b.get(key)
                if len(items) == 1 and other is not None and len(other) == 1:
                    qx, qy = items[0][2], other[0][2]
                    if qx not in ab and qy not in ba:
                        self.link(qx, qy, "neighbours",
                                  [f"takes its input from the matched layer '{x}' -> '{y}'"], queue)

    def _labels(self, side: _Side, free: list[str], partner: dict[str, str], rounds: int) -> list[dict]:
        """WL-style labels: round 0 is the signature; a paired neighbour is labelled by its pair."""
        free_set = set(free)
        label0 = {p: side.sig(p) for p in free}
        out = [label0]
        current = label0

        def lab(n: str, cur: dict) -> str:
            if n is _IMPLICIT:
                return "i"
            mate = partner.get(n)
            if mate is not None:
                return "m:" + mate
            if n in free_set:
                return cur[n]
            return "x"  # outside the scope

        for _ in range(rounds):
            nxt = {}
            for p in free:
                ins = sorted(f"{c}.{q}.{lab(n, current)}" for c, q, n in side.ins(p))
                outs = sorted(f"{c}.{q}.{lab(n, current)}" for c, q, n in side.outs(p))
                nxt[p] = str(hash((current[p], tuple(ins), tuple(outs))))
            out.append(nxt)
            current = nxt
        return out

    def signatures(self) -> list[tuple[str, str]]:
        """Step 3: pair labels unique on both sides, most specific first."""
        made: list[tuple[str, str]] = []
        fa, fb = self.free_a(), self.free_b()
        if not fa or not fb:
            return made
        # B's paired neighbours are labelled by their partner in A, so both sides agree.
        la = self._labels(self.A, fa, {p: p for p in self.m.ab}, 2)
        lb = self._labels(self.B, fb, self.m.ba, 2)
        for rnd in (2, 1, 0):
            ga = _group(self.free_a(), lambda p: la[rnd][p])
            gb = _group(self.free_b(), lambda p: lb[rnd][p])
            for key, xs in ga.items():
                ys = gb.get(key)
                if len(xs) != 1 or ys is None or len(ys) != 1:
                    continue
                x, y = xs[0], ys[0]
                if x in self.m.ab or y in self.m.ba:
                    continue
                if rnd == 0 and not (self.auto(self.A, x) and self.auto(self.B, y)):
                    continue  # class + config alone is weak evidence for a deliberate name
                if rnd == 0:
                    reasons = ["the only unmatched layer of this class and config in either model"]
                else:
                    reasons = [f"same structural signature (class, config and neighbours {rnd} hop"
                               f"{'s' if rnd > 1 else ''} out), unique in both models"]
                self.link(x, y, "signature", reasons)
                made.append((x, y))
        return made

    def order(self) -> list[tuple[str, str]]:
        """Step 4: align what is left in layer order, between pairs that keep their order."""
        made: list[tuple[str, str]] = []
        pa, pb = self.A.position, self.B.position
        anchors = sorted((pa[x], pb[self.m.ab[x]], x) for x in self.kids_a if x in self.m.ab)
        chain = _increasing(anchors)
        bounds = [(-1, -1, None)] + chain + [(len(self.kids_a), len(self.kids_b), None)]
        fa_all = self.free_a()
        fb_all = self.free_b()
        if not fa_all or not fb_all:
            return made
        ia = [pa[p] for p in fa_all]
        ib = [pb[p] for p in fb_all]
        for (a0, b0, left), (a1, b1, right) in zip(bounds, bounds[1:]):
            seg_a = fa_all[bisect_left(ia, a0 + 1):bisect_left(ia, a1)]
            seg_b = fb_all[bisect_left(ib, b0 + 1):bisect_left(ib, b1)]
            if not seg_a or not seg_b:
                continue
            sa = [self.A.sig(p) for p in seg_a]
            sb = [self.B.sig(p) for p in seg_b]
            for i, j in _align(sa, sb):
                x, y = seg_a[i], seg_b[j]
                if not self.topology and not (self.A.by_path[x].weights or self.auto(self.A, x)
                                              and self.auto(self.B, y)):
                    continue  # a weightless layer's position alone says little
                where = []
                if left:
                    where.append(f"after '{left}'")
                if right:
                    where.append(f"before '{right}'")
                what = "same class and config" if self.topology else "same weight shapes"
                reasons = [f"{what} at the same place in layer order" + (f" ({', '.join(where)})" if where else "")]
                self.link(x, y, "order", reasons)
                made.append((x, y))
        return made

    def drift(self) -> list[tuple[str, str]]:
        """Step 5: auto-named layers of one class in the same place, config changed."""
        A, B, ab, ba = self.A, self.B, self.m.ab, self.m.ba
        candidates: dict[str, set[str]] = {}
        reasons: dict[tuple[str, str], list[str]] = defaultdict(list)
        for x in self.free_a():
            if not self.auto(A, x):
                continue
            cls = class_of(A.by_path[x])
            found: set[str] = set()
            for c, p, px in A.ins(x):
                py = ab.get(px) if px is not _IMPLICIT else None
                if py is None:
                    continue
                for c2, p2, q in B.outs(py):
                    if (c2, p2) == (c, p) and q not in ba and q in self.in_b and class_of(B.by_path[q]) == cls:
                        found.add(q)
                        reasons[(x, q)].append(f"its input comes from the matched layer '{px}' -> '{py}'")
            for c, p, qx in A.outs(x):
                qy = ab.get(qx)
                if qy is None:
                    continue
                for c2, p2, prod in B.ins(qy):
                    if ((c2, p2) == (c, p) and prod is not _IMPLICIT and prod not in ba and prod in self.in_b
                            and class_of(B.by_path[prod]) == cls):
                        found.add(prod)
                        reasons[(x, prod)].append(f"feeds the matched layer '{qx}' -> '{qy}'")
            found = {q for q in found if self.auto(B, q)}
            if found:
                candidates[x] = found
        wanted: dict[str, list[str]] = defaultdict(list)
        for x, ys in candidates.items():
            for y in ys:
                wanted[y].append(x)
        made = []
        for x, ys in candidates.items():
            if len(ys) != 1:
                continue
            (y,) = ys
            if len(wanted[y]) != 1 or x in ab or y in ba:
                continue
            self.link(x, y, "neighbours", reasons[(x, y)])
            made.append((x, y))
        return made


def _group(items, key) -> dict:
    out: dict = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out


def _increasing(anchors: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The longest chain of anchors increasing in both orders (patience / LIS)."""
    tails: list[int] = []
    tail_idx: list[int] = []
    prev = [-1] * len(anchors)
    for i, (_, b, _) in enumerate(anchors):
        k = bisect_left(tails, b)
        if k == len(tails):
            tails.append(b)
            tail_idx.append(i)
        else:
            tails[k] = b
            tail_idx[k] = i
        prev[i] = tail_idx[k - 1] if k else -1
    chain = []
    i = tail_idx[-1] if tail_idx else -1
    while i >= 0:
        chain.append(anchors[i])
        i = prev[i]
    return chain[::-1]


def _align(sa: list[str], sb: list[str]) -> list[tuple[int, int]]:
    """Index pairs of equal items in a longest common subsequence (in-order fallback when huge)."""
    if len(sa) * len(sb) <= _LCS_CELLS:
        matcher = difflib.SequenceMatcher(None, sa, sb, autojunk=False)
        out = []
        for block in matcher.get_matching_blocks():
            out.extend((block.a + k, block.b + k) for k in range(block.size))
        return out
    # Greedy: the k-th occurrence of a label in A with the k-th in B, kept only while in order.
    seen: dict[str, list[int]] = defaultdict(list)
    for j, s in enumerate(sb):
        seen[s].append(j)
    used: dict[str, int] = defaultdict(int)
    out = []
    last = -1
    for i, s in enumerate(sa):
        js = seen.get(s)
        if not js:
            continue
        k = used[s]
        while k < len(js) and js[k] <= last:
            k += 1
        if k < len(js):
            out.append((i, js[k]))
            last = js[k]
            used[s] = k + 1
    return out
