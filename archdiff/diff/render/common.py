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
    if change.kind == "values":
        return f"values {change.path.split('.', 1)[1]}: {figures_text(change.new)}"
    label = change.path
    if change.kind == "weight":
        label = "weight " + change.path.split(".", 1)[1]
    elif change.kind == "class":
        label = "class"
    elif change.kind == "constructor":
        label = "constructor " + change.path.removeprefix("model.constructor.")
    if change.op == "added":
        return f"{label}: added {value_text(change.new)}"
    if change.op == "removed":
        return f"{label}: removed (was {value_text(change.old)})"
    return f"{label}: {value_text(change.old)} -> {value_text(change.new)}"


def number_text(value: float | None, *, percent: bool = False) -> str:
    """A figure on one line: ``?`` where unknown, 4 significant digits (a percentage with ``percent``)."""
    if value is None:
        return "?"
    if percent:
        value *= 100
        return f"{value:.0f}%" if value >= 100 else f"{value:.3g}%"
    return f"{value:.4g}"


def layer_figures(layer) -> dict:
    """A :class:`~archdiff.diff.values.LayerValues`' largest figures, in the form :func:`figures_text` reads."""
    return {"max_abs_diff": layer.max_abs_diff, "relative_change": layer.relative_change, "cosine": layer.cosine,
            "fraction_changed": layer.fraction_changed, "nan_introduced": layer.nan_introduced,
            "inf_introduced": layer.inf_introduced, "suspicious": list(layer.suspicious)}


def values_line(values) -> str:
    """How many layers and variables changed by value, on one line (the reports' summary)."""
    s = values.summary()
    if not s["layers"]:
        return "no paired layer with weights to compare"
    if not s["variables_changed"] and not s["variables_equal"]:
        text = "no variable compared by value"
    elif not s["variables_changed"]:
        text = f"all {s['variables_equal']} variables of {s['layers_equal']} layers bitwise equal"
    else:
        text = (f"{s['layers_changed']} of {s['layers']} layers changed by value ({s['variables_changed']} of "
                f"{s['variables']} variables); {s['layers_equal']} layers bitwise equal")
    n = s["variables_not_compared"]
    if n:
        text += f"; {n} variable{'s' if n != 1 else ''} not compared"
    m = s["layers_not_compared"]
    if m:
        # A layer whose variables do not pair (one more block inside a built backbone) compares none of them.
        text += f"; {m} layer{'s' if m != 1 else ''} not compared (their variables do not pair)"
    return text


def figures_text(figures: dict | None) -> str:
    """A variable's (or a layer's) figures on one line: ``max |Δ| 0.5, relative 12.3%, cosine 0.9921, ...``."""
    if figures is None:
        return "changed (figures not computed: --values equal)"
    bits = [f"max |Δ| {number_text(figures.get('max_abs_diff'))}",
            f"relative {number_text(figures.get('relative_change'), percent=True)}",
            f"cosine {number_text(figures.get('cosine'))}",
            f"{number_text(figures.get('fraction_changed'), percent=True)} of elements changed"]
    if figures.get("nan_introduced"):
        bits.append(f"NaN introduced: {figures['nan_introduced']}")
    if figures.get("inf_introduced"):
        bits.append(f"Inf introduced: {figures['inf_introduced']}")
    if figures.get("suspicious"):
        bits.append("suspicious: " + ", ".join(figures["suspicious"]))
    return ", ".join(bits)


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
