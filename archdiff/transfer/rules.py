"""Rename rules for a transfer: the user's (``--map``, map files) and ``--match auto``'s.

The rules themselves (:class:`MapRule`, :func:`parse_map_rule`,
:func:`load_map_file`) live with the layer matcher in
:mod:`archdiff.diff.matching.rules`, because ``diff`` takes them too; they are
re-exported here. This module owns :func:`auto_rules`: what the diff's matcher
finds (renames with evidence, and nestings: the source's layers under a
prefix in the target, or the other way round), turned into rules that a
transfer applies after the user's. Pairing itself is in
:mod:`archdiff.transfer.plan`.
"""
from __future__ import annotations

import re

from archdiff.diff.matching.rules import MapRule, load_map_file, parse_map_rule  # noqa: F401 - re-exported
from archdiff.model import Architecture

#: ``MapRule.origin`` of the rules ``--match auto`` adds.
AUTO = "--match auto"


def auto_rules(source: Architecture, target: Architecture,
               rules: tuple[MapRule, ...] = ()) -> tuple[MapRule, ...]:
    """``--match auto``: the matcher's renames and nestings as rules (origin ``--match auto``).

    ``rules`` are the user's, which the matcher applies first, as the transfer
    will. Each nesting becomes one prefix rule (``re:^=xception/``); the
    source layers it must not move (those the matcher paired elsewhere, such as
    a head of the same name at the top level) are excluded from its pattern, so
    the rule can be pasted as ``--map`` and does the same. Renames inside a
    nesting come first, as exact rules.
    """
    from archdiff.diff.matching import match_layers

    matching = match_layers(source, target, detect_renames=True, rules=tuple(rules))
    out: list[MapRule] = []
    prefix_rules: list[MapRule] = []
    for n in matching.nestings:
        moved = {p.a for p in matching.pairs if n.maps(p.a) == p.b}
        # Source layers inside the nested scope that the matcher did not send through it stay put.
        stay = [layer.path for layer in source.layers
                if not layer.is_model and layer.weights and n.maps(layer.path) is not None
                and layer.path not in moved and layer.path in matching.a_to_b]
        pattern = "^" + (re.escape(n.a + "/") if n.a else "")
        if stay:
            inside = [p[len(n.a) + 1:] if n.a else p for p in stay]
            pattern += "(?!(?:" + "|".join(re.escape(p) for p in inside) + ")$)"
        replacement = (n.b + "/").replace("\\", "\\\\") if n.b else ""
        prefix_rules.append(MapRule(pattern, replacement, regex=True, origin=AUTO))
    explained = {p.a for p in matching.pairs
                 if any(n.maps(p.a) == p.b for n in matching.nestings) and p.how != "map" and p.how != "regex"}
    for p in matching.pairs:
        if p.a == p.b or p.how in ("map", "regex") or p.a in explained:
            continue
        out.append(MapRule(p.a, p.b, origin=AUTO))
    # The first rule that applies wins: a layer's own rename before its nested model's.
    out.sort(key=lambda r: -r.old.count("/"))
    return tuple(out) + tuple(prefix_rules)
