"""Renderers of an :class:`~archdiff.diff.ArchDiff`: text, JSON and Markdown.

This module owns how a diff reads. Every renderer starts with the summary
(the classification, then counts), then the details; long runs of unchanged
layers collapse into one line, long runs of added or removed layers into
their first and last few. Colour is used only when asked (on a terminal).
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from archdiff.diff.engine import ArchDiff, Change, LayerDiff, LayerEntry
from archdiff.views import shape_text
from archdiff.textfmt import count, paint

#: Longest value shown inline before it is cut with "...".
MAX_VALUE = 100
#: Added/removed runs longer than this show their first and last few layers.
MAX_RUN = 12
#: Rows per Markdown table before the rest is counted (GitHub comments are at most 65,536 characters).
MAX_MD_ROWS = 150


# -- shared pieces ------------------------------------------------------------------
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


def _source_text(info) -> str:
    bits = [info.name]
    if info.class_name:
        bits.append(info.class_name)
    bits.append(info.format)
    if info.keras_version:
        bits.append(f"Keras {info.keras_version}")
    return ", ".join(bits)


def _io_text(d: ArchDiff, side: str) -> str:
    changes = [c for c in d.io_changes if c.side == side]
    if not d.compared_topology:
        return "not compared (no topology)"
    if not changes:
        return "unchanged"
    return "; ".join(f"#{c.index} {c.what}: {value_text(c.old, 40)} -> {value_text(c.new, 40)}" for c in changes)


def _layers_line(d: ArchDiff) -> str:
    s = d.summary()
    return (f"{d.a.layers} -> {d.b.layers}: {s['matched']} matched ({s['renamed']} renamed, {s['changed']} changed, "
            f"{s['unchanged']} unchanged), {s['added']} added, {s['removed']} removed")


def _kinds_text(d: ArchDiff) -> str:
    others = [k for k in d.kinds if k != d.classification]
    return d.classification + (f" (also: {', '.join(others)})" if others else "")


# -- the merged layer list --------------------------------------------------------------
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


# -- text -------------------------------------------------------------------------------
def render_text(d: ArchDiff, *, colour: bool = False, policy=None, exit_code: int | None = None,
                full: bool = False) -> str:
    """A git-diff-like report: summary first, then the layers in B's order."""
    def c(text: str, name: str) -> str:
        return paint(text, name, colour)

    code = d.exit_code if exit_code is None else exit_code
    headline_colour = "green" if d.identical else "red" if code else "yellow"
    lines = [c(f"archdiff: {_kinds_text(d)}", "bold") if d.identical else
             c("archdiff: ", "bold") + c(_kinds_text(d), headline_colour)]
    lines.append(f"  A: {d.a.path}  ({_source_text(d.a)})")
    lines.append(f"  B: {d.b.path}  ({_source_text(d.b)})")
    s = d.summary()
    lines.append("")
    lines.append(f"  layers   {_layers_line(d)}")
    if d.compared_topology:
        lines.append(f"  edges    +{s['edges_added']} -{s['edges_removed']}")
    lines.append(f"  params   {_params_text(d)}")
    lines.append(f"  inputs   {_io_text(d, 'input')}")
    lines.append(f"  outputs  {_io_text(d, 'output')}")
    for mc in d.model_changes:
        lines.append(f"  model    {change_text(mc)}")
    if d.noise_hidden:
        lines.append(f"  noise    {d.noise_hidden} layer config{'s' if d.noise_hidden != 1 else ''} differ only in "
                     "serialization noise (hidden; --strict shows it)")
    if d.ignored:
        lines.append(f"  ignored  {d.ignored} change{'s' if d.ignored != 1 else ''} hidden by --ignore")
    for note in d.notes:
        lines.append(f"  note: {note}")
    if policy is not None:
        lines.append("")
        lines.extend(policy_text(policy, colour=colour))
    if d.identical:
        lines.append("")
        lines.append("  The architectures are identical." if not d.noise_hidden
                     else "  The architectures are identical (serialization noise aside).")
        return "\n".join(lines) + "\n"

    lines.append("")
    lines.append(c(f"--- A {d.a.path}", "bold"))
    lines.append(c(f"+++ B {d.b.path}", "bold"))
    for kind, items in _runs(merged(d)):
        if kind == "same":
            if full:
                for m in items:
                    lines.append(f"  {m.b} ({m.class_b})")
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
                lines.append(c(f"{sign} {e.path} ({e.class_name})" + _where(e, kind), col))
            continue
        for m in items:
            lines.extend(_layer_lines(m, c))
    return "\n".join(lines) + "\n"


def _where(e: LayerEntry, kind: str) -> str:
    bits = []
    if e.inputs:
        bits.append("from " + ", ".join(e.inputs[:4]) + (" ..." if len(e.inputs) > 4 else ""))
    if e.outputs:
        bits.append("into " + ", ".join(e.outputs[:4]) + (" ..." if len(e.outputs) > 4 else ""))
    if e.params:
        bits.append(f"{count(e.params)} params")
    return ("  " + "; ".join(bits)) if bits else ""


def _layer_lines(m: LayerDiff, c) -> list[str]:
    if m.renamed:
        head = c(f"~ {m.a} -> {m.b} ({m.class_b})", "cyan") + c(f"  renamed, matched by {m.how}", "dim")
    else:
        head = c(f"~ {m.b} ({m.class_b})", "yellow")
    out = [head]
    for ch in m.changes:
        if ch.kind == "renamed":
            continue
        tag = f"  [{ch.effect}]" if ch.effect in ("weights-breaking", "topology-changing") else ""
        out.append(f"    {change_text(ch)}" + (c(tag, "red" if ch.effect == "weights-breaking" else "dim")
                                                if tag else ""))
    if m.renamed and m.evidence:
        out.append(c(f"    because: {'; '.join(m.evidence)}", "dim"))
    return out


def policy_text(result, *, colour: bool = False) -> list[str]:
    status = paint("passed", "green", colour) if result.passed else paint("FAILED", "red", colour)
    lines = [f"  policy   {result.policy.source}: {status}"]
    for rule in result.rules:
        mark = "ok  " if rule.passed else paint("FAIL", "red", colour)
        lines.append(f"    {mark} {rule.rule}: {rule.message}")
        for v in rule.violations:
            lines.append(f"           {v}")
    for note in result.notes:
        lines.append(f"    note: {note}")
    return lines


# -- JSON -------------------------------------------------------------------------------
def to_json_dict(d: ArchDiff, *, policy=None, exit_code: int | None = None) -> dict:
    data = d.to_dict()
    data["policy"] = policy.to_dict() if policy is not None else None
    if exit_code is not None:
        data["exit_code"] = exit_code
    return data


def render_json(d: ArchDiff, *, policy=None, exit_code: int | None = None) -> str:
    return json.dumps(to_json_dict(d, policy=policy, exit_code=exit_code), indent=2, default=str) + "\n"


# -- Markdown ---------------------------------------------------------------------------
def md_escape(text: Any) -> str:
    """Safe inside a Markdown table cell."""
    text = str(text)
    for ch in ("\\", "|", "<", ">", "*", "_", "`", "[", "]", "~", "&"):  # ~~x~~ strikes through, &amp; is &
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def md_code(text: Any) -> str:
    """Inline code in a table cell: backticks cannot be escaped, pipes can."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    if "`" not in text:
        return f"`{text}`"
    longest = max(len(run) for run in re.findall("`+", text))  # a fence longer than any run inside
    fence = "`" * (longest + 1)
    return f"{fence} {text} {fence}"


def render_markdown(d: ArchDiff, *, policy=None, exit_code: int | None = None) -> str:
    """A pull-request comment: summary table first, details in collapsible sections."""
    code = d.exit_code if exit_code is None else exit_code
    icon = "✅" if d.identical else ("❌" if code else "⚠️")
    out = [f"### {icon} archdiff: **{md_escape(d.classification)}**", ""]
    others = [k for k in d.kinds if k != d.classification]
    if others:
        out += [f"Also: {', '.join(f'`{k}`' for k in others)}. Exit code {code}.", ""]
    else:
        out += [f"Exit code {code}.", ""]
    s = d.summary()
    out += ["| | A | B |", "| --- | --- | --- |",
            f"| file | {md_code(os.path.basename(d.a.path))} | {md_code(os.path.basename(d.b.path))} |",
            f"| model | {md_escape(_source_text(d.a))} | {md_escape(_source_text(d.b))} |",
            f"| layers | {d.a.layers} | {d.b.layers} |",
            f"| params | {count(d.a.total_params)} | {count(d.b.total_params)}{_md_delta(d)} |",
            ""]
    out += ["| change | count |", "| --- | ---: |",
            f"| layers matched | {s['matched']} |",
            f"| renamed | {s['renamed']} |",
            f"| changed | {s['changed']} |",
            f"| unchanged | {s['unchanged']} |",
            f"| added | {s['added']} |",
            f"| removed | {s['removed']} |"]
    if d.compared_topology:
        out.append(f"| edges added / removed | {s['edges_added']} / {s['edges_removed']} |")
        out.append(f"| input/output changes | {s['io_changes']} |")
    out.append("")
    if d.noise_hidden or d.ignored:
        bits = []
        if d.noise_hidden:
            bits.append(f"{d.noise_hidden} layer configs differ only in serialization noise (hidden; `--strict` shows it)")
        if d.ignored:
            bits.append(f"{d.ignored} changes hidden by `--ignore`")
        out += ["_" + "; ".join(bits) + "._", ""]
    for note in d.notes:
        out += [f"> **Note:** {md_escape(note)}", ""]
    if policy is not None:
        out += _md_policy(policy)

    changed = d.changed
    if changed:
        rows = []
        for m in changed:
            for ch in m.changes:
                if ch.kind == "renamed":
                    continue
                rows.append(f"| {md_code(m.b)} | {md_escape(m.class_b)} | {md_escape(_md_what(ch))} | "
                            f"{md_code(_md_value(ch.old))} | {md_code(_md_value(ch.new))} | {md_escape(ch.effect)} |")
        out += _md_details(f"Changed layers ({len(changed)})",
                           ["| layer | class | what | A | B | effect |", "| --- | --- | --- | --- | --- | --- |"], rows)
    if d.renamed:
        rows = [f"| {md_code(m.a)} | {md_code(m.b)} | {md_escape(m.class_b)} | {md_escape(m.how)} | "
                f"{md_escape('; '.join(m.evidence))} |" for m in d.renamed]
        out += _md_details(f"Renamed layers ({len(d.renamed)})",
                           ["| A | B | class | matched by | evidence |", "| --- | --- | --- | --- | --- |"], rows)
    for title, entries in (("Added layers", d.added), ("Removed layers", d.removed)):
        if entries:
            rows = [f"| {md_code(e.path)} | {md_escape(e.class_name)} | {count(e.params) if e.params is not None else '?'} | "
                    f"{md_escape(', '.join(e.inputs))} | {md_escape(', '.join(e.outputs))} |" for e in entries]
            out += _md_details(f"{title} ({len(entries)})",
                               ["| layer | class | params | inputs | feeds |", "| --- | --- | ---: | --- | --- |"],
                               rows)
    io = d.io_changes
    if io:
        rows = [f"| {c.side} {c.index} | {md_escape(c.what)} | {md_code(_md_value(c.old))} | {md_code(_md_value(c.new))} |"
                for c in io]
        out += _md_details(f"Inputs and outputs ({len(io)})",
                           ["| which | what | A | B |", "| --- | --- | --- | --- |"], rows)
    out.append(f"<sub>archdiff {md_escape(d.to_dict()['tool']['version'])} · JSON schema "
               f"{md_escape(d.to_dict()['schema_version'])}</sub>")
    return "\n".join(out) + "\n"


def _md_delta(d: ArchDiff) -> str:
    if d.params_delta is None:
        return ""
    sign = "+" if d.params_delta >= 0 else ""
    pct = f", {sign}{d.params_percent:.1f}%" if d.params_percent is not None else ""
    return f" ({sign}{count(d.params_delta)}{pct})"


def _md_what(ch: Change) -> str:
    if ch.kind == "weight":
        return "weight " + ch.path.split(".", 1)[1] + ("" if ch.op == "changed" else f" ({ch.op})")
    if ch.kind == "config":
        return ch.path + ("" if ch.op == "changed" else f" ({ch.op})")
    return ch.path


def _md_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or "(none)"
    return value_text(value, 80)


def _md_details(title: str, header: list[str], rows: list[str]) -> list[str]:
    shown = rows[:MAX_MD_ROWS]
    out = ["<details>", f"<summary>{md_escape(title)}</summary>", "", *header, *shown, ""]
    if len(rows) > MAX_MD_ROWS:
        out += [f"... and {len(rows) - MAX_MD_ROWS} more rows (see `--format json`).", ""]
    out += ["</details>", ""]
    return out


def _md_policy(result) -> list[str]:
    status = "passed ✅" if result.passed else "**failed** ❌"
    out = [f"**Policy** {md_code(os.path.basename(result.policy.source))}: {status}", "",
           "| rule | result | why |", "| --- | --- | --- |"]
    for rule in result.rules:
        why = rule.message
        if rule.violations:
            why += ": " + "; ".join(rule.violations[:5]) + (" ..." if len(rule.violations) > 5 else "")
        out.append(f"| {md_code(rule.rule)} | {'ok' if rule.passed else '**FAIL**'} | {md_escape(why)} |")
    out.append("")
    for note in result.notes:
        out += [f"> {md_escape(note)}", ""]
    return out


def render(d: ArchDiff, fmt: str, *, colour: bool = False, policy=None, exit_code: int | None = None,
           full: bool = False) -> str:
    if fmt == "json":
        return render_json(d, policy=policy, exit_code=exit_code)
    if fmt == "markdown":
        return render_markdown(d, policy=policy, exit_code=exit_code)
    return render_text(d, colour=colour, policy=policy, exit_code=exit_code, full=full)
