"""Matching steps 2 to 5: renames found on evidence, inside one pair of scopes.

This module owns the evidence for a rename: propagation from a pair to its
unpaired neighbours at the same slots (step 2), structural signatures unique
in both models (step 3, Weisfeiler-Lehman style), the order-preserving
alignment of what is left (step 4, with :func:`~archdiff.diff.matching.sequences.align`),
and auto-name drift across an edited layer (step 5); and the human-readable
reasons each pair carries. Each step costs about linear time in the scope's
size (see :mod:`archdiff.diff.matching`).
"""
from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from archdiff.diff.canonical import class_known, class_of, is_auto_name, same_but_name
from archdiff.diff.matching.sequences import align, increasing
from archdiff.diff.matching.state import IMPLICIT, Pairing, Side
from archdiff.model import Layer

#: Drift across an edited layer only where the next layers agree (see ScopeRenames._compatible).
GUARDED = "guarded"


class ScopeRenames:
    """Steps 2-5 of the module docstring, inside one pair of scopes."""

    def __init__(self, m: Pairing, scope_a: str, scope_b: str, kids_a: list[Layer], kids_b: list[Layer]):
        self.m = m
        self.A, self.B = m.A, m.B
        self.scope_a, self.scope_b = scope_a, scope_b
        self.kids_a = [k.path for k in kids_a]
        self.kids_b = [k.path for k in kids_b]
        self.in_a = set(self.kids_a)
        self.in_b = set(self.kids_b)
        self.topology = m.topology
        # A Keras 3 weights-only file does not record the layer order (its groups come in HDF5 key
        # order): aligning by order there pairs unrelated layers, so the order step needs both orders.
        self.ordered = all(k.index is not None or k.is_operation for k in (*kids_a, *kids_b))

    # -- helpers -------------------------------------------------------------------
    def free_a(self) -> list[str]:
        return [p for p in self.kids_a if p not in self.m.ab]

    def free_b(self) -> list[str]:
        return [p for p in self.kids_b if p not in self.m.ba]

    def name(self, side: Side, path: str) -> str:
        return side.by_path[path].name

    def auto(self, side: Side, path: str) -> bool:
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
        # A pair with the same path is a name match: it needs no evidence.
        self.m.pair(x, y, how, () if x == y else [*reasons, *self.common_evidence(x, y)])
        if queue is not None:
            queue.append((x, y))

    # -- the steps -------------------------------------------------------------------
    def run(self) -> None:
        queue = [(x, self.m.ab[x]) for x in self.kids_a if x in self.m.ab]
        if self.topology:
            # Until the order step, propagation crosses an edited auto-named layer only when
            # the layers beyond it agree and nothing suggests an insertion ("guarded").
            self.propagate(queue, drift=GUARDED)
            # Cheap anchors first (a class, then a class + config, unique in both models),
            # so that the WL labels below are computed only for what propagation missed.
            self.propagate(self.unique_classes(), drift=GUARDED)
            self.propagate(self.signatures(rounds=0), drift=GUARDED)
            for _ in range(3):
                made = self.signatures(rounds=2)
                if not made:
                    break
                self.propagate(made, drift=GUARDED)
        made = self.order() if self.ordered else []
        if self.topology:
            self.propagate(made)
            # Last, auto names across an edited layer: exact pairs always come first.
            self.propagate([(x, self.m.ab[x]) for x in self.kids_a if x in self.m.ab], drift=True)
            made = self.drift()
            while made:
                self.propagate(made, drift=True)
                made = self.drift()

    def _compatible(self, x: str, y: str, drift: bool | str = True, onward: str | None = None) -> str | None:
        """Whether two neighbours of a pair may pair: "same" (class and config), "drift", or None.

        "drift": both are Keras auto names of the same class and only the config
        differs: auto-name drift combined with an edit. A deliberate name is
        never paired with a different config (that is a replacement). With
        ``drift=GUARDED`` the layers one step further on (``onward``: "outs" or
        "ins", away from the pair we came from) must agree, and neither may
        look like the other's successor (which would mean an insertion).
        """
        if self._same(x, y):
            return "same"
        lx, ly = self.A.by_path[x], self.B.by_path[y]
        if (drift and self.topology and class_of(lx) == class_of(ly) and is_auto_name(lx.name, lx.class_name)
                and is_auto_name(ly.name, ly.class_name)):
            if drift is GUARDED and not self._drift_guard(x, y, onward):
                return None
            return "drift"
        return None

    def _same(self, x: str, y: str) -> bool:
        """Same class and config (name aside): raw equality first, the normalized signature if not."""
        lx, ly = self.A.by_path[x], self.B.by_path[y]
        if (self.topology and lx.class_name == ly.class_name and not lx.is_model
                and same_but_name(lx.config, ly.config)):
            return True
        return self.A.sig(x) == self.B.sig(y)

    def _drift_guard(self, x: str, y: str, onward: str | None) -> bool:
        A, B = self.A, self.B
        if onward == "outs":
            next_a = [(c, p, q) for c, p, q in A.outs(x)]
            next_b = [(c, p, q) for c, p, q in B.outs(y)]
        elif onward == "ins":
            next_a = [e for e in A.ins(x) if e[2] is not IMPLICIT]
            next_b = [e for e in B.ins(y) if e[2] is not IMPLICIT]
        else:
            return False
        # y followed by a twin of x (or x by a twin of y): an inserted (removed) layer, not an edit.
        cx, cy = class_of(A.by_path[x]), class_of(B.by_path[y])
        for _, _, q in next_b:
            if class_of(B.by_path[q]) == cx and A.sig(x) == B.sig(q):
                return False
        for _, _, q in next_a:
            if class_of(A.by_path[q]) == cy and A.sig(q) == B.sig(y):
                return False
        if not next_a and not next_b:
            return True
        # Several consumers can take the tensor at the same slot: compare every one with every one.
        slots_b: dict[tuple[int, int], list[str]] = defaultdict(list)
        for c, p, q in next_b:
            slots_b[(c, p)].append(q)
        for c, p, q in next_a:
            for q2 in slots_b.get((c, p), ()):
                if self.m.ab.get(q) == q2 or self._same(q, q2):
                    return True
        return False

    def propagate(self, queue: list[tuple[str, str]], drift: bool | str = False) -> None:
        """Step 2: from each pair to the unpaired neighbours at the same slots.

        With ``drift``, auto-named neighbours of the same class pair even when
        their configs differ (where exactly one candidate sits at the slot);
        ``GUARDED`` asks for agreement one step further on (see ``_compatible``).
        """
        A, B, ab, ba = self.A, self.B, self.m.ab, self.m.ba
        in_a, in_b = self.in_a, self.in_b
        while queue:
            x, y = queue.pop()
            # Producers at the same input slot.
            ins_b = None
            for c, p, px in A.ins(x):
                if px is IMPLICIT or px in ab or px not in in_a:
                    continue
                if ins_b is None:
                    ins_b = {(c2, p2): prod for c2, p2, prod in B.ins(y)}
                py = ins_b.get((c, p))
                if py is None or py is IMPLICIT or py in ba or py not in in_b:
                    continue
                if self._compatible(px, py, drift, "ins"):
                    self.link(px, py, "neighbours",
                              [f"feeds the matched layer '{x}' -> '{y}' at the same input"], queue)
            # Consumers at the same slot, unique by signature (else by class, for auto names) on both sides.
            outs_a = [(c, p, q) for c, p, q in A.outs(x) if q not in ab and q in in_a]
            if not outs_a:
                continue
            outs_b = [(c, p, q) for c, p, q in B.outs(y) if q not in ba and q in in_b]
            if not outs_b:
                continue
            reason = [f"takes its input from the matched layer '{x}' -> '{y}'"]
            if len(outs_a) == 1 and len(outs_b) == 1:
                (ca, pa_, qx), (cb, pb_, qy) = outs_a[0], outs_b[0]
                if (ca, pa_) == (cb, pb_) and self._compatible(qx, qy, drift, "outs"):
                    self.link(qx, qy, "neighbours", reason, queue)
                continue
            # By slot and class first (cheap); a class that occurs more than once at a slot
            # is told apart by signature, exact matches only.
            by_class_a = _group(outs_a, lambda e: (e[0], e[1], class_of(A.by_path[e[2]])))
            by_class_b = _group(outs_b, lambda e: (e[0], e[1], class_of(B.by_path[e[2]])))
            for key, items in by_class_a.items():
                other = by_class_b.get(key)
                if other is None:
                    continue
                if len(items) == 1 and len(other) == 1:
                    qx, qy = items[0][2], other[0][2]
                    if self._compatible(qx, qy, drift, "outs"):
                        self.link(qx, qy, "neighbours", reason, queue)
                    continue
                groups_a = _group(items, lambda e: A.sig(e[2]))
                groups_b = _group(other, lambda e: B.sig(e[2]))
                for sig, xs in groups_a.items():
                    ys = groups_b.get(sig)
                    if len(xs) == 1 and ys is not None and len(ys) == 1:
                        qx, qy = xs[0][2], ys[0][2]
                        if qx not in ab and qy not in ba:
                            self.link(qx, qy, "neighbours", reason, queue)

    def unique_classes(self) -> list[tuple[str, str]]:
        """Auto-named layers of a class that occurs once among the unpaired ones of each model."""
        fa = [p for p in self.free_a() if self.auto(self.A, p)]
        fb = [p for p in self.free_b() if self.auto(self.B, p)]
        ga = _group(fa, lambda p: class_of(self.A.by_path[p]))
        gb = _group(fb, lambda p: class_of(self.B.by_path[p]))
        made = []
        for cls, xs in ga.items():
            ys = gb.get(cls)
            if len(xs) == 1 and ys is not None and len(ys) == 1 and self._compatible(xs[0], ys[0]):
                self.link(xs[0], ys[0], "signature",
                          [f"the only unmatched {cls} layer in either model"])
                made.append((xs[0], ys[0]))
        return made

    def _labels(self, side: Side, free: list[str], partner, rounds: int) -> list[dict]:
        """WL-style labels: round 0 is the signature; a paired neighbour is labelled by its pair."""
        label0 = {p: side.sig(p) for p in free}
        out: list[dict] = [label0]
        if not rounds:
            return out
        current = {p: hash(s) for p, s in label0.items()}
        # Neighbours outside the free set keep one label through the rounds.
        fixed: dict[str, int] = {}
        for n in {n for p in free for _, _, n in (*side.ins(p), *side.outs(p))}:
            if n not in current:
                if n is IMPLICIT:
                    fixed[n] = hash("i")
                else:
                    mate = partner.get(n)
                    fixed[n] = hash(("m", mate)) if mate is not None else hash("x")  # paired / outside the scope
        ins = {p: side.ins(p) for p in free}
        outs = {p: side.outs(p) for p in free}
        for _ in range(rounds):
            labels = {**fixed, **current}
            nxt = {}
            for p in free:
                i = ins[p]
                o = outs[p]
                ki = ((i[0][0], i[0][1], labels[i[0][2]]),) if len(i) == 1 else \
                    tuple(sorted((c, q, labels[n]) for c, q, n in i))
                ko = ((o[0][0], o[0][1], labels[o[0][2]]),) if len(o) == 1 else \
                    tuple(sorted((c, q, labels[n]) for c, q, n in o))
                nxt[p] = hash((current[p], ki, ko))
            out.append(nxt)
            current = nxt
        return out

    def signatures(self, rounds: int = 2) -> list[tuple[str, str]]:
        """Step 3: pair labels unique on both sides, most specific first."""
        made: list[tuple[str, str]] = []
        fa, fb = self.free_a(), self.free_b()
        if not fa or not fb:
            return made
        # B's paired neighbours are labelled by their partner in A, so both sides agree.
        la = self._labels(self.A, fa, _Identity(self.m.ab), rounds)
        lb = self._labels(self.B, fb, self.m.ba, rounds)
        for rnd in range(rounds, -1, -1):
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
        chain = increasing(anchors)
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
            for i, j in align(sa, sb):
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
                py = ab.get(px) if px is not IMPLICIT else None
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
                    if ((c2, p2) == (c, p) and prod is not IMPLICIT and prod not in ba and prod in self.in_b
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


class _Identity:
    """A's paired layers labelled by their own path (B's are labelled by their partner in A)."""

    def __init__(self, paired: dict[str, str]):
        self.paired = paired

    def get(self, key: str, default=None):
        return key if key in self.paired else default


def _group(items, key) -> dict:
    out: dict = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out
