"""Pieces every report of an :class:`~archdiff.diff.ArchDiff` shares: values, changes, the merged layer list.

This module owns how one value and one change read on one line
(:func:`value_text`, :func:`change_text`), how a side is named
(:func:`source_text`), and the order a report walks the layers in
(:func:`merged`: B's order, each A-only layer after the last matched one
before it). Used by the text, Markdown and HTML reports and by the policy.
"""
from __future__ import annotations

import json
from typing import Any

from archdiff.diff.result import ArchDiff, Change, LayerEntry
from archdiff.views import shape_text

#: Longest value shown inline before it is cut with "...".
MAX_VALUE = 100


def value_text(value: Any, limit: int = MAX_VALUE) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict) and set(value) == {"shape", "dtype"}:
        text = f"{shape_text(tuple(value['shape']))} {value['dtype']}"
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def change_text(change: Change) -> str:
    """One change as one line, e.g. ``units: 64 -> 128``."""
    if change.kind == "renamed":
        return f"renamed '{change.old}' -> '{change.new}'"
    if change.kind == "inputs":
        return f"inputs: {', '.join(change.old) or '(none)'} -> {', '.join(change.new) or '(none)'}"
    label = change.path
    if change.kind == "weight":
        label = "weight " + change.path.split(".", 1)[1]
    elif change.kind == "class":
        label = "class"
    if change.op == "added":
        return f"{label}: added {value_text(change.new)}"
    if change.op == "removed":
        return f"{label}: removed (was {value_text(change.old)})"
    return f"{label}: {value_text(change.old)} -> {value_text(change.new)}"


def source_text(info) -> str:
    bits = [info.name]
    if info.class_name:
        bits.append(info.class_name)
    bits.append(info.format)
    if info.keras_version:
        bits.append(f"Keras {info.keras_version}")
    return ", ".join(bits)


def merged(d: ArchDiff) -> list[tuple[str, Any]]:
    """B's layers in order, each A-only layer placed after the last matched layer before it in A.

    Items are ``("same"|"changed"|"renamed", LayerDiff)``, ``("added", LayerEntry)``
    or ``("removed", LayerEntry)``.
    """
    by_b = {m.b: m for m in d.matched}
    added = {e.path: e for e in d.added}
    removed = {e.path: e for e in d.removed}
    a_to_b = d.matching.a_to_b
    removed_after: dict[str | None, list[LayerEntry]] = {}
    last_b: str | None = None
    for path in d.order_a:
        if path in removed:
            removed_after.setdefault(last_b, []).append(removed[path])
        elif path in a_to_b:
            last_b = a_to_b[path]
    out: list[tuple[str, Any]] = [("removed", e) for e in removed_after.get(None, [])]
    for path in d.order_b:
        if path in added:
            out.append(("added", added[path]))
        else:
            m = by_b.get(path)
            if m is not None:
                kind = "changed" if m.changed else "renamed" if m.renamed else "same"
                out.append((kind, m))
        out.extend(("removed", e) for e in removed_after.get(path, []))
    return out


def lookalike_pairs(d: ArchDiff) -> list[tuple[str, str, str]]:
    """A removed and an added layer whose paths only look alike: ``(removed, added, why)``, for a warning.

    Without rename detection (or when it finds no evidence) ``classifier``
    removed and ``classifіer`` (Cyrillic i) added would read as no change.
    """
    from archdiff.safetext import confusable_note, skeleton

    removed: dict[str, list[str]] = {}
    for e in d.removed:
        removed.setdefault(skeleton(e.path), []).append(e.path)
    out = []
    for e in d.added:
        for old in removed.get(skeleton(e.path), ()):
            note = confusable_note(old, e.path)
            if note:
                out.append((old, e.path, note))
    return out
