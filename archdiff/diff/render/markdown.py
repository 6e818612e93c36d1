"""The Markdown report of an :class:`~archdiff.diff.ArchDiff`: a pull-request comment.

This module owns how a diff reads on a code-review page: a summary table
first, the details in collapsible sections, each table cut at
:data:`MAX_MD_ROWS` rows, every cell escaped by :mod:`archdiff.safetext`
(:func:`md_escape` is its ``md_text``, :func:`md_code` its ``md_code``), files
named by their full path as given (the gate names them relative to the
repository); renames whose names only look alike are flagged; and the policy
result as a table.
"""
from __future__ import annotations

from typing import Any

from archdiff import __version__
from archdiff.diff.render.common import (
    layer_figures,
    lookalike_pairs,
    number_text,
    source_text,
    value_text,
    values_line,
)
from archdiff.diff.result import SCHEMA_VERSION, ArchDiff, Change
from archdiff.safetext import confusable_note, md_code, md_text
from archdiff.textfmt import count

#: Rows per Markdown table before the rest is counted (GitHub comments are at most 65,536 characters).
MAX_MD_ROWS = 150


# One Markdown escaping for every report (archdiff.safetext): markup, HTML, cell splits, headings,
# @mentions, #references and links neutralised. The old names stay importable from here.
md_escape = md_text


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
            f"| file | {md_code(d.a.path)} | {md_code(d.b.path)} |",
            f"| model | {md_escape(source_text(d.a))} | {md_escape(source_text(d.b))} |",
            f"| layers | {count(d.a.layers)} | {count(d.b.layers)} |",
            *([f"| operations | {d.a.operations} | {d.b.operations} |"] if d.a.operations or d.b.operations else []),
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
    if d.model_changes:  # the model's own name or class, a constructor argument (keras-hub's num_layers)
        out += ["| model change | A | B | effect |", "| --- | --- | --- | --- |"]
        out += [f"| {md_escape(_md_what(ch))} | {md_code(_md_value(ch.old))} | {md_code(_md_value(ch.new))} | "
                f"{md_escape(ch.effect)} |" for ch in d.model_changes]
        out.append("")
    for note in d.notes:
        out += [f"> **Note:** {md_escape(note)}", ""]
    for n in d.matching.nestings:
        out += [f"**Nested:** {md_escape(n.describe())} ({md_escape('; '.join(n.evidence))}); the layers below are "
                "compared through it.", ""]
    for old, new, why in lookalike_pairs(d):
        out += [f"> **Warning:** {md_code(old)} removed and {md_code(new)} added: {md_escape(why)}", ""]
    if policy is not None:
        out += _md_policy(policy)

    if d.values is not None:
        out += _md_values(d)
    changed = d.changed
    if changed:
        rows = []
        for m in changed:
            for ch in m.changes:
                if ch.kind in ("renamed", "values"):  # value changes have their own section
                    continue
                rows.append(f"| {md_code(m.b)} | {md_escape(m.class_b)} | {md_escape(_md_what(ch))} | "
                            f"{md_code(_md_value(ch.old))} | {md_code(_md_value(ch.new))} | {md_escape(ch.effect)} |")
        if rows:
            shown = sum(1 for m in changed if any(ch.kind not in ("renamed", "values") for ch in m.changes))
            out += _md_details(f"Changed layers ({shown})",
                               ["| layer | class | what | A | B | effect |", "| --- | --- | --- | --- | --- | --- |"],
                               rows)
    if d.renamed:
        rows = [f"| {md_code(m.a)} | {md_code(m.b)} | {md_escape(m.class_b)} | {md_escape(m.how)} | "
                f"{md_escape('; '.join(m.evidence))}{_md_lookalike(m.a, m.b)} |" for m in d.renamed]
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
    out.append(f"<sub>archdiff {md_escape(__version__)} · JSON schema {SCHEMA_VERSION}</sub>")
    return "\n".join(out) + "\n"


def _md_figures(f: dict) -> list[str]:
    flags = []
    if f.get("nan_introduced"):
        flags.append(f"**NaN** ×{f['nan_introduced']}")
    if f.get("inf_introduced"):
        flags.append(f"**Inf** ×{f['inf_introduced']}")
    flags.extend(f"**{s}**" for s in f.get("suspicious") or ())
    return [number_text(f.get("relative_change"), percent=True), number_text(f.get("max_abs_diff")),
            number_text(f.get("cosine")), number_text(f.get("fraction_changed"), percent=True),
            ", ".join(flags) or "-"]


def _md_values(d: ArchDiff) -> list[str]:
    """The weights section: one line of counts, then the changed layers (most changed first) and variables."""
    values = d.values
    assert values is not None
    out = [f"**Weights:** {md_escape(values_line(values))}.", ""]
    nonfinite = values.nonfinite
    if nonfinite:
        out += [f"> **Warning:** NaN/Inf introduced in {', '.join(md_code(lv.b) for lv in nonfinite[:10])}", ""]
    if not values.changed:
        return out
    rows = []
    for lv in values.changed:
        computed = any(v.figures is not None for v in lv.changed)
        cells = _md_figures(layer_figures(lv)) if computed else ["?", "?", "?", "?", "-"]
        rows.append(f"| {md_code(lv.b)} | {md_escape(lv.class_name)} | layer ({len(lv.changed)} of "
                    f"{len(lv.variables)} variables) | " + " | ".join(cells) + " |")
        for v in lv.changed:
            cells = _md_figures(v.figures.to_dict()) if v.figures is not None else ["?", "?", "?", "?", "-"]
            rows.append(f"| | | {md_code(v.name)} | " + " | ".join(cells) + " |")
    out += _md_details(f"Weights changed ({len(values.changed)} layers, most changed first)",
                       [r"| layer | class | variable | relative change | max \|Δ\| | cosine | elements changed | flags |",
                        "| --- | --- | --- | ---: | ---: | ---: | ---: | --- |"], rows)
    return out


def _md_lookalike(a: str, b: str) -> str:
    note = confusable_note(a, b)
    return f"; **warning**: {md_escape(note)}" if note else ""


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
    out = [f"**Policy** {md_code(result.policy.source)}: {status}", "",
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
