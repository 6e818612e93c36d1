"""Matching steps 1 and 6: layers paired by name within one pair of scopes.

This module owns what a name alone decides. Same names pair at once, except
two Keras auto names (``dense_3``), which shift when a layer of the same
class is inserted earlier: those are held back (returned as *weak* pairs) so
that the evidence steps (:mod:`~archdiff.diff.matching.renames`) see them
first, and only paired by name at the end if nothing better turned up.
Inside a renamed nested model, a name match is reported as ``parent``; inside
a nesting (:mod:`~archdiff.diff.matching.nesting`), as ``nesting``.
"""
from __future__ import annotations

from archdiff.diff.canonical import is_auto_name
from archdiff.diff.matching.state import Pairing
from archdiff.model import Layer


def pair_by_name(m: Pairing, scope_a: str, scope_b: str, kids_a: list[Layer],
                 kids_b: list[Layer]) -> list[tuple[str, str]]:
    """Step 1: pair same names; return the auto-named pairs held back (none when renames are off)."""
    b_by_name = {k.name: k for k in kids_b}
    renamed_scope = scope_a != scope_b
    nested = m.nesting_of(scope_a, scope_b) if renamed_scope else None
    weak: list[tuple[str, str]] = []
    for x in kids_a:
        y = b_by_name.get(x.name)
        if y is None:
            continue
        if m.detect and is_auto_name(x.name, x.class_name) and is_auto_name(y.name, y.class_name):
            weak.append((x.path, y.path))
            continue
        if nested is not None:
            m.pair(x.path, y.path, "nesting", (f"same name '{x.name}': {nested.describe()}",))
        elif renamed_scope:
            m.pair(x.path, y.path, "parent",
                   (f"same name '{x.name}' inside the renamed model '{scope_a}' -> '{scope_b}'",))
        else:
            m.pair(x.path, y.path, "name")
    return weak


def pair_left_auto_names(m: Pairing, scope_a: str, scope_b: str, weak: list[tuple[str, str]]) -> None:
    """Step 6: the held-back auto names that are still unpaired on both sides pair by name."""
    renamed_scope = scope_a != scope_b
    nested = m.nesting_of(scope_a, scope_b) if renamed_scope else None
    for x, y in weak:
        if x not in m.ab and y not in m.ba:
            if nested is not None:
                m.pair(x, y, "nesting", (f"same name: {nested.describe()}",))
            elif renamed_scope:
                m.pair(x, y, "parent", (f"same name inside the renamed model '{scope_a}' -> '{scope_b}'",))
            else:
                m.pair(x, y, "name")
