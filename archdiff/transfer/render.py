"""Renderers of a :class:`~archdiff.transfer.TransferReport`: text, JSON and Markdown.

The report is data; this is the only place that formats it for people. Text
colours the statuses on a terminal only; JSON follows
``archdiff/schemas/transfer.schema.json``; Markdown suits a pull request
(the per-layer table folds away in ``<details>``). Every name, path and
message goes through :mod:`archdiff.safetext` (text: ``visible``; Markdown:
its ``md_text`` / ``md_code``, the escaping every Markdown report shares).
"""
from __future__ import annotations

import json

from archdiff.safetext import md_code, md_text, visible
from archdiff.textfmt import count, human_bytes, paint, table, use_colour
from archdiff.transfer.apply import TransferReport
from archdiff.transfer.plan import LayerTransfer

FORMATS = ("text", "json", "markdown")

_COLOURS = {"copied": "green", "skipped": "yellow", "kept": "cyan", "mismatch": "red"}


def render(report: TransferReport, fmt: str = "text", *, colour: bool | None = None) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_text(report, colour=colour)


def render_json(report: TransferReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


# -- pieces shared by text and Markdown ------------------------------------------------
def _variables_text(layer: LayerTransfer) -> str:
    if layer.status in ("skipped", "mismatch"):
        return layer.reason or ""
    if layer.status == "kept":
        return f"{', '.join(v.target for v in layer.variables)}: {layer.reason}"
    parts = []
    for v in layer.variables:
        text = _var_label(v)
        if v.action == "cast":
            text += f" ({v.reason})"
        parts.append(text)
    return ", ".join(parts)


def _var_label(v) -> str:
    """The variable's name where a file names it (Keras 3 files number them)."""
    t_named = not v.target.rsplit("/", 1)[-1].isdigit()
    s_named = v.source is not None and not v.source.rsplit("/", 1)[-1].isdigit()
    if t_named and s_named and v.source != v.target:
        return f"{v.target} <- {v.source}"
    if not t_named and s_named:
        return v.source
    return v.target


def _matched_by(layer: LayerTransfer) -> str:
    if layer.matched_by is None:
        return "-"
    if layer.rule:
        return f"{layer.matched_by} ({layer.rule})"
    return layer.matched_by


def _output_line(report: TransferReport) -> str:
    if report.dry_run:
        return f"{report.output} (dry run: nothing written)" if report.output else "(dry run: nothing written)"
    if report.written:
        return f"{report.output} (written, every copied variable read back and verified)"
    return f"{report.output or '-'} (nothing written)"


def _summary_lines(report: TransferReport) -> list[str]:
    t = report.plan.totals
    lines = [f"copied {count(t.copied_params)} params ({human_bytes(t.copied_bytes)}) into "
             f"{t.copied_layers} of {t.target_layers} target layers with weights"
             + (f", {count(t.cast_params)} of them cast" if t.cast_params else "")]
    if t.skipped_layers:
        lines.append(f"skipped {t.skipped_layers} matched layer{'s' if t.skipped_layers != 1 else ''} that did not "
                     f"fit ({count(t.skipped_params)} params keep the target's values)")
    if t.kept_layers:
        lines.append(f"kept {t.kept_layers} target layer{'s' if t.kept_layers != 1 else ''} as they were "
                     f"({count(t.kept_params)} params): no source layer")
    if t.mismatched_layers:
        lines.append(f"{t.mismatched_layers} matched layer{'s do' if t.mismatched_layers != 1 else ' does'} not "
                     "fit (see the problems)")
    if t.unused_source_layers:
        lines.append(f"{t.unused_source_layers} source layer{'s' if t.unused_source_layers != 1 else ''} unused "
                     f"({count(t.unused_source_params)} params)")
    return lines


def _exit_line(report: TransferReport) -> str:
    code = report.return_code
    if code == 0:
        return "exit 0: every target layer with weights got them from the source"
    if code == 1:
        return "exit 1: some target layers kept their own weights (see 'kept' and 'skipped')"
    return "exit 2: the transfer cannot run as asked; nothing was written"


# -- text ---------------------------------------------------------------------------------
def render_text(report: TransferReport, *, colour: bool | None = None) -> str:
    on = use_colour() if colour is None else colour
    plan = report.plan
    out = [
        visible(f"source: {plan.source.path} ({plan.source.description})"),
        visible(f"target: {plan.target.path} ({plan.target.description})"),
        visible(f"output: {_output_line(report)}"),
        "",
    ]
    rows = []
    for layer in plan.layers:
        rows.append([visible(cell) for cell in (layer.target, layer.status, layer.source or "-", _matched_by(layer),
                                                _variables_text(layer))])
    if rows:
        out.append(_table_keep_colour(["target layer", "status", "source layer", "matched by", "variables"], rows,
                                      plan.layers, on))
    else:
        out.append("(the target has no layers with weights)")
    if plan.unused:
        out.append("")
        out.append(f"unused source layers ({len(plan.unused)}):")
        for u in plan.unused:
            out.append(visible(f"  {u.path} ({count(u.params)} params): {u.reason}"))
    if plan.problems:
        out.append("")
        out.append(paint(f"problems ({len(plan.problems)}), nothing written:", "red", on))
        out.extend(visible(f"  {p}") for p in plan.problems)
    if plan.notes:
        out.append("")
        out.extend(visible(f"note: {n}") for n in plan.notes)
    out.append("")
    out.extend(visible(line) for line in _summary_lines(report))
    out.append(_exit_line(report))
    return "\n".join(out) + "\n"


def _table_keep_colour(headers, rows, layers, on: bool) -> str:
    if not on:
        return table(headers, rows)
    # Colour codes would throw the widths off: lay out plain, then paint the status cells.
    plain = rows
    lines = table(headers, plain).split("\n")
    width = max(len("status"), *(len(layer.status) for layer in layers))
    start = max(len("target layer"), *(len(r[0]) for r in plain)) + 2
    painted = lines[:2]
    for line, layer in zip(lines[2:], layers):
        cell = line[start:start + width]
        painted.append(line[:start] + paint(cell, _COLOURS.get(layer.status, "bold"), True) + line[start + width:])
    return "\n".join(painted)


# -- Markdown -----------------------------------------------------------------------------
# One Markdown escaping for every report: archdiff.safetext's.
_md = md_text


def _code(text: str) -> str:
    return md_code(text) if text else ""


def render_markdown(report: TransferReport) -> str:
    plan = report.plan
    t = plan.totals
    icon = {0: "✅", 1: "⚠️", 2: "❌"}[report.return_code]
    lines = [
        f"### {icon} archdiff transfer",
        "",
        f"- **source**: {_code(plan.source.path)} ({_md(plan.source.description)})",
        f"- **target**: {_code(plan.target.path)} ({_md(plan.target.description)})",
        f"- **output**: {_md(_output_line(report))}",
        "",
        "| | layers | params | bytes |",
        "| --- | ---: | ---: | ---: |",
        f"| copied | {t.copied_layers} | {count(t.copied_params)} | {human_bytes(t.copied_bytes)} |",
        f"| skipped (did not fit) | {t.skipped_layers} | {count(t.skipped_params)} | |",
        f"| kept (no source layer) | {t.kept_layers} | {count(t.kept_params)} | |",
        f"| target total | {t.target_layers} | {count(t.target_params)} | {human_bytes(t.target_bytes)} |",
        f"| unused source layers | {t.unused_source_layers} | {count(t.unused_source_params)} | |",
        "",
    ]
    if plan.problems:
        lines.append(f"**Problems ({len(plan.problems)}), nothing written:**")
        lines.append("")
        lines.extend(f"- {_md(p)}" for p in plan.problems)
        lines.append("")
    lines.append(f"<details><summary>Target layers ({len(plan.layers)})</summary>")
    lines.append("")
    lines.append("| target layer | status | source layer | matched by | variables |")
    lines.append("| --- | --- | --- | --- | --- |")
    for layer in plan.layers:
        lines.append(f"| {_code(layer.target)} | {layer.status} | {_code(layer.source) if layer.source else '—'} | "
                     f"{_md(_matched_by(layer))} | {_md(_variables_text(layer))} |")
    lines.append("")
    lines.append("</details>")
    lines.append("")
    if plan.unused:
        lines.append(f"**Unused source layers ({len(plan.unused)})**")
        lines.append("")
        lines.append("| source layer | params | reason |")
        lines.append("| --- | ---: | --- |")
        for u in plan.unused:
            lines.append(f"| {_code(u.path)} | {count(u.params)} | {_md(u.reason)} |")
        lines.append("")
    for n in plan.notes:
        lines.append(f"> {_md(n)}")
    if plan.notes:
        lines.append("")
    lines.append(f"_{_md(_exit_line(report))}_")
    return "\n".join(lines) + "\n"
