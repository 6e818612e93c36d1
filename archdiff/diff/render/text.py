"""The text report of an :class:`~archdiff.diff.ArchDiff`: git-diff-like, for a terminal.

This module owns how a diff reads on a terminal: the summary first (the
classification, then counts), then the layers in B's order; long runs of
unchanged layers collapse into one line, long runs of added or removed layers
into their first and last few. Colour is used only when asked (on a terminal).
It also writes a policy result as text (:func:`policy_text`). Every name,
class, value and message from a file goes through
:func:`archdiff.safetext.visible` once, before it is painted, so no control,
bidi or invisible character reaches the terminal raw; a rename whose names
differ only by look-alike or invisible characters says so, with the code points.
"""
from __future__ import annotations

from typing import Any

from archdiff.diff.render.common import (
    change_text,
    figures_text,
    layer_figures,
    lookalike_pairs,
    merged,
    source_text,
    value_text,
    values_line,
)
from archdiff.diff.result import ArchDiff, LayerDiff, LayerEntry
from archdiff.safetext import confusable_note, visible
from archdiff.textfmt import count, paint

#: Added/removed runs longer than this show their first and last few layers.
MAX_RUN = 12
#: Layers changed by value listed with their variables before the rest are counted (``--full``: all).
MAX_VALUE_LAYERS = 20


def _params_text(d: ArchDiff) -> str:
    a, b = d.a.total_params, d.b.total_params
    if a is None and b is None:
        return "unknown (no weights in either input)"
    text = f"{count(a)} -> {count(b)}"
    if d.params_delta is not None:
        sign = "+" if d.params_delta >= 0 else ""
        text += f" ({sign}{count(d.params_delta)}"
        if d.params_percent is not None:
            text += f", {sign}{d.params_percent:.1f}%"
        text += ")"
    return text


def _io_text(d: ArchDiff, side: str) -> str:
    changes = [c for c in d.io_changes if c.side == side]
    if not d.compared_topology:
        return "not compared (no topology)"
    if not changes:
        return "unchanged"
    return "; ".join(f"#{c.index} {c.what}: {visible(value_text(c.old, 40))} -> {visible(value_text(c.new, 40))}"
                     for c in changes)


def _layers_line(d: ArchDiff) -> str:
    s = d.summary()
    def count(info) -> str:
        if info.layers is None:
            return "?"
        return f"{info.layers}" + (f" + {info.operations} operations" if info.operations else "")

    if d.a.layers is None and d.b.layers is None:
        return "unknown (neither input lists its layers: constructor arguments without weights)"

    return (f"{count(d.a)} -> {count(d.b)}: {s['matched']} matched ({s['renamed']} renamed, {s['changed']} changed, "
            f"{s['unchanged']} unchanged), {s['added']} added, {s['removed']} removed")


def _kinds_text(d: ArchDiff) -> str:
    others = [k for k in d.kinds if k != d.classification]
    return d.classification + (f" (also: {', '.join(others)})" if others else "")


def _runs(items: list[tuple[str, Any]]):
    """Group consecutive items of the same kind: ``[(kind, [items...]), ...]``."""
    runs: list[tuple[str, list]] = []
    for kind, item in items:
        if runs and runs[-1][0] == kind:
            runs[-1][1].append(item)
        else:
            runs.append((kind, [item]))
    return runs


def _span(paths: list[str]) -> str:
    if len(paths) == 1:
        return paths[0]
    return f"{paths[0]} ... {paths[-1]}"


def render_text(d: ArchDiff, *, colour: bool = False, policy=None, exit_code: int | None = None,
                full: bool = False) -> str:
    """A git-diff-like report: summary first, then the layers in B's order."""
    def c(text: str, name: str) -> str:
        # Escaped here, before the colour codes are added: the one place text from the file meets the terminal.
        return paint(visible(text), name, colour)

    code = d.exit_code if exit_code is None else exit_code
    headline_colour = "green" if d.identical else "red" if code else "yellow"
    lines = [c(f"archdiff: {_kinds_text(d)}", "bold") if d.identical else
             c("archdiff: ", "bold") + c(_kinds_text(d), headline_colour)]
    lines.append(visible(f"  A: {d.a.path}  ({source_text(d.a)})"))
    lines.append(visible(f"  B: {d.b.path}  ({source_text(d.b)})"))
    s = d.summary()
    lines.append("")
    lines.append(f"  layers   {_layers_line(d)}")
    if d.compared_topology:
        lines.append(f"  edges    +{s['edges_added']} -{s['edges_removed']}")
    lines.append(f"  params   {_params_text(d)}")
    lines.append(f"  inputs   {_io_text(d, 'input')}")
    lines.append(f"  outputs  {_io_text(d, 'output')}")
    if d.values is not None:
        lines.append(f"  weights  {values_line(d.values)}")
        nonfinite = d.values.nonfinite
        if nonfinite:
            where = ", ".join(lv.b for lv in nonfinite[:5]) + (" ..." if len(nonfinite) > 5 else "")
            plural = "s" if len(nonfinite) != 1 else ""
            lines.append(c(f"           NaN/Inf introduced in {len(nonfinite)} layer{plural}: {where}", "red"))
    for mc in d.model_changes:
        lines.append(visible(f"  model    {change_text(mc)}"))
    for n in d.matching.nestings:
        lines.append(f"  nested   {visible(n.describe())}: {visible('; '.join(n.evidence))}")
    if d.noise_hidden:
        lines.append(f"  noise    {d.noise_hidden} layer config{'s' if d.noise_hidden != 1 else ''} differ only in "
                     "serialization noise (hidden; --strict shows it)")
    if d.ignored:
        lines.append(f"  ignored  {d.ignored} change{'s' if d.ignored != 1 else ''} hidden by --ignore")
    for note in d.notes:
        lines.append(visible(f"  note: {note}"))
    for old, new, why in lookalike_pairs(d):
        lines.append(c(f"  warning: '{old}' removed and '{new}' added: {why}", "red"))
    if policy is not None:
        lines.append("")
        lines.extend(policy_text(policy, colour=colour))
    if d.identical:
        lines.append("")
        lines.append("  The architectures are identical." if not d.noise_hidden
                     else "  The architectures are identical (serialization noise aside).")
        return "\n".join(lines) + "\n"

    if d.values is not None and d.values.changed:
        lines.append("")
        lines.extend(_values_lines(d, c, full))
    lines.append("")
    lines.append(c(f"--- A {d.a.path}", "bold"))
    lines.append(c(f"+++ B {d.b.path}", "bold"))
    for kind, items in _runs(merged(d)):
        if kind == "same":
            if full:
                for m in items:
                    lines.append(visible(f"  {m.b} ({m.class_b})"))
            else:
                paths = [m.b for m in items]
                lines.append(c(f"  ... {len(items)} unchanged layer{'s' if len(items) != 1 else ''} "
                               f"({_span(paths)})", "dim"))
            continue
        if kind in ("added", "removed"):
            sign, col = ("+", "green") if kind == "added" else ("-", "red")
            shown = items if full or len(items) <= MAX_RUN else items[:MAX_RUN - 3] + [None] + items[-2:]
            for e in shown:
                if e is None:
                    hidden = len(items) - (MAX_RUN - 3) - 2
                    lines.append(c(f"{sign} ... {hidden} more {kind} layers", col))
                    continue
                lines.append(c(f"{sign} {e.path} ({e.class_name})" + _where(e, kind) + _nests(d, e, kind), col))
            continue
        for m in items:
            lines.extend(_layer_lines(m, c))
    return "\n".join(lines) + "\n"


def _nests(d: ArchDiff, e: LayerEntry, kind: str) -> str:
    """The model a nesting's container holds: its layers are the other side's, compared below."""
    for n in d.matching.nestings:
        if kind == "added" and not n.a and n.b == e.path:
            return "  (holds A's layers: nested)"
        if kind == "removed" and not n.b and n.a == e.path:
            return "  (its layers are B's: no longer nested)"
    return ""


def _where(e: LayerEntry, kind: str) -> str:
    bits = []
    if e.inputs:
        bits.append("from " + ", ".join(e.inputs[:4]) + (" ..." if len(e.inputs) > 4 else ""))
    if e.outputs:
        bits.append("into " + ", ".join(e.outputs[:4]) + (" ..." if len(e.outputs) > 4 else ""))
    if e.params:
        bits.append(f"{count(e.params)} params")
    return ("  " + "; ".join(bits)) if bits else ""


def _values_lines(d: ArchDiff, c, full: bool) -> list[str]:
    """The layers changed by value, most changed first (relative change ‖B−A‖/‖A‖), with their variables."""
    assert d.values is not None
    changed = d.values.changed
    out = [c("  weights changed, most changed first (relative change ||B-A||/||A||):", "bold")]
    shown = changed if full else changed[:MAX_VALUE_LAYERS]
    for lv in shown:
        name = lv.b if lv.a == lv.b else f"{lv.a} -> {lv.b}"
        computed = any(v.figures is not None for v in lv.changed)
        out.append(c(f"  ~ {name} ({lv.class_name})", "yellow")
                   + visible(f"  {figures_text(layer_figures(lv) if computed else None)}"))
        for v in lv.changed if computed else ():
            out.append(visible(f"      {v.name}: {figures_text(v.figures.to_dict() if v.figures else None)}"))
        equal = [v.name for v in lv.variables if v.status == "equal"]
        if equal:
            out.append(c(f"      bitwise equal: {', '.join(equal)}", "dim"))
    if len(changed) > len(shown):
        out.append(c(f"  ... and {len(changed) - len(shown)} more layers changed by value (--full lists them)", "dim"))
    equal_layers = d.values.equal
    if equal_layers:
        if full:
            out.append(c(f"  bitwise equal: {', '.join(lv.b for lv in equal_layers)}", "dim"))
        else:
            out.append(c(f"  ... {len(equal_layers)} layer{'s' if len(equal_layers) != 1 else ''} with bitwise-equal "
                         f"weights ({_span([lv.b for lv in equal_layers])})", "dim"))
    return out


def _layer_lines(m: LayerDiff, c) -> list[str]:
    if m.renamed:
        head = c(f"~ {m.a} -> {m.b} ({m.class_b})", "cyan") + c(f"  renamed, matched by {m.how}", "dim")
    else:
        head = c(f"~ {m.b} ({m.class_b})", "yellow")
    values = [ch for ch in m.changes if ch.kind == "values"]
    if values and all(ch.kind in ("values", "renamed") for ch in m.changes):
        # Its figures are in the weights section above, most changed first.
        return [head + c(f"  weights changed ({len(values)} variable{'s' if len(values) != 1 else ''}; "
                         "figures above)", "dim")]
    out = [head]
    for ch in m.changes:
        if ch.kind == "renamed":
            continue
        tag = f"  [{ch.effect}]" if ch.effect in ("weights-breaking", "topology-changing") else ""
        out.append(visible(f"    {change_text(ch)}") + (c(tag, "red" if ch.effect == "weights-breaking" else "dim")
                                                         if tag else ""))
    if m.renamed and m.evidence:
        out.append(c(f"    because: {'; '.join(m.evidence)}", "dim"))
    note = confusable_note(m.a, m.b) if m.renamed else None
    if note:
        out.append(c(f"    warning: {note}", "red"))
    return out


def policy_text(result, *, colour: bool = False) -> list[str]:
    status = paint("passed", "green", colour) if result.passed else paint("FAILED", "red", colour)
    lines = [f"  policy   {visible(result.policy.source)}: {status}"]
    for rule in result.rules:
        mark = "ok  " if rule.passed else paint("FAIL", "red", colour)
        lines.append(f"    {mark} {rule.rule}: {visible(rule.message)}")
        for v in rule.violations:
            lines.append(f"           {visible(v)}")
    for note in result.notes:
        lines.append(f"    note: {visible(note)}")
    return lines
