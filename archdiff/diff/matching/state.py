"""The working state of one matching: each model's indexes (:class:`Side`) and the pairs made (:class:`Pairing`).

This module owns what every matching step reads and writes: a model's
children by scope, the producers and consumers of each layer, and each
layer's signature (class + config, name aside), built lazily once per model;
and the pairs made so far with how and why each was made.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from archdiff.diff.canonical import class_of, dumps, signature_config
from archdiff.model import Architecture, Layer

#: The producer of a Sequential's implicit input (not a layer of the model); compared by identity.
IMPLICIT = "\0implicit-input"

#: Signature bodies by (class, raw config without the name, output rank).
_SIG_MEMO: dict[tuple, str] = {}


def _rank(layer: Layer) -> int | None:
    shapes = layer.output_shapes
    if shapes and len(shapes) == 1 and isinstance(shapes[0], tuple):
        return len(shapes[0])
    return None


class Side:
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
                        producer = IMPLICIT
                    slots.append((c, p, producer))
                    if producer is not IMPLICIT:
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
                    # Many layers share a config but for the name: normalize each config once.
                    raw = dumps({k: v for k, v in layer.config.items() if k != "name"})
                    key = (layer.class_name, raw, _rank(layer))
                    body = _SIG_MEMO.get(key)
                    if body is None:
                        body = dumps(signature_config(layer))
                        if len(_SIG_MEMO) > 100_000:
                            _SIG_MEMO.clear()
                        _SIG_MEMO[key] = body
                s = f"{class_of(layer)}|{body}"
            else:
                shapes = [list(w.shape) for w in layer.weights or ()]
                s = f"{'model' if layer.is_model else ''}|{dumps(shapes)}"
            self._sig[path] = s
        return s


class Pairing:
    """Both models' indexes and the pairs made so far: ``ab`` (A path -> B path), ``ba``, ``how``, ``evidence``."""

    def __init__(self, a: Architecture, b: Architecture, detect_renames: bool):
        # Configs are only comparable when both inputs have them.
        use_config = a.has_topology and b.has_topology
        self.topology = use_config
        self.A = Side(a, use_config)
        self.B = Side(b, use_config)
        self.detect = detect_renames
        self.ab: dict[str, str] = {}
        self.ba: dict[str, str] = {}
        self.how: dict[str, str] = {}
        self.evidence: dict[str, tuple[str, ...]] = {}
        self.notes: list[str] = []
        #: Nestings found (:mod:`~archdiff.diff.matching.nesting`), outermost first.
        self.nestings: list = []

    def nesting_of(self, scope_a: str, scope_b: str):
        """The nesting that takes A's scope ``scope_a`` to B's ``scope_b``, or None."""
        return next((n for n in self.nestings if n.covers(scope_a, scope_b)), None)

    def pair(self, x: str, y: str, how: str, evidence: Iterable[str] = ()) -> None:
        self.ab[x] = y
        self.ba[y] = x
        if x == y:
            self.how[x] = "name"
            self.evidence[x] = ()
            return
        if how not in ("map", "regex") and self.nestings:
            # The same name at the place a nesting takes it to is that nesting's pair, whichever step found it.
            nested = self.nesting_of(x, y)
            if nested is not None:
                how, evidence = "nesting", (f"same name: {nested.describe()}",)
        self.how[x] = how
        self.evidence[x] = tuple(evidence)
