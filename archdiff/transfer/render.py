"""Renderers of a :class:`~archdiff.transfer.TransferReport`: text, JSON and Markdown.

The report is data; this is the only place that formats it for people. Text
colours the statuses on a terminal only; JSON follows
``archdiff/schemas/transfer.schema.json``; Markdown suits a pull request
(the per-layer table folds away in ``<details>``). A report of weights that
were not written (a dry run, a refusal, an error) speaks in the conditional:
"would copy", never "copied". Every name, path and message goes through
:mod:`archdiff.safetext` (text: ``visible``; Markdown: its ``md_text`` /
``md_code``, the escaping every Markdown report shares).
"""
from __future__ import annotations

import json

from archdiff.safetext import md_code, md_text, visible
from archdiff.textfmt import count, human_bytes, paint, table, use_colour
from archdiff.transfer.apply import TransferReport
from archdiff.transfer.plan import LayerTransfer

FORMATS = ("text", "json", "markdown")

_COLOURS = {"copied": "green", "adapted": "green", "skipped": "yellow", "kept": "cyan", "mismatch": "red"}

#: A layer's status as a report of weights not written says it.
_WOULD = {"copied": "would copy", "adapted": "would adapt", "skipped": "would skip", "kept": "would keep",
          "mismatch": "mismatch"}


def _status(report: TransferReport, status: str) -> str:
    return status if report.written else _WOULD.get(status, status)


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
        if v.action in ("cast", "adapt"):
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


def _output_line(report: TransferReport, escape=visible) -> str:
    out = escape(report.output) if report.output else None
    if report.dry_run:
        return f"{out} (dry run: nothing written)" if out else "(dry run: nothing written)"
    if report.written:
        return f"{out} (written, every copied variable read back and verified)"
    return f"{out or '-'} (nothing written)"


def _s(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _summary_lines(report: TransferReport) -> list[str]:
    t = report.plan.totals
    done = report.written
    extra = []
    if t.cast_params:
        extra.append(f"{count(t.cast_params)} of them cast")
    if t.adapted_params:
        extra.append(f"{count(t.adapted_params)} of them adapted in {_s(t.adapted_layers, 'layer')} (--adapt)")
    lines = [f"{'copied' if done else 'would copy'} {count(t.copied_params)} params ({human_bytes(t.copied_bytes)}) "
             f"into {t.copied_layers} of {t.target_layers} target layers with weights"
             + "".join(f", {e}" for e in extra)]
    if t.skipped_layers:
        lines.append(f"{'skipped' if done else 'would skip'} {_s(t.skipped_layers, 'matched layer')} that "
                     f"{'did' if done else 'do'} not fit ({count(t.skipped_params)} params "
                     f"{'keep' if done else 'would keep'} the target's values)")
    if t.kept_layers:
        one = t.kept_layers == 1
        lines.append(f"{'kept' if done else 'would keep'} {_s(t.kept_layers, 'target layer')} as "
                     f"{'it' if one else 'they'} {('was' if one else 'were') if done else ('is' if one else 'are')} "
                     f"({count(t.kept_params)} params): no source layer")
    if t.mismatched_layers:
        lines.append(f"{t.mismatched_layers} matched layer{'s do' if t.mismatched_layers != 1 else ' does'} not "
                     "fit (see the problems)")
    if t.unused_source_layers:
        lines.append(f"{_s(t.unused_source_layers, 'source layer')} {'unused' if done else 'would be unused'} "
                     f"({count(t.unused_source_params)} params)")
    return lines


def _exit_line(report: TransferReport, escape=visible) -> str:
    code = report.exit_code
    plan = report.plan
    if code == 0:
        left = plan.totals.kept_layers + plan.totals.skipped_layers
        rest = (f" ({_s(left, 'target layer')} {'kept' if report.written else 'would keep'} "
                f"{'its' if left == 1 else 'their'} own weights)") if left else ""
        if report.written:
            return f"exit 0: written as asked{rest}"
        return f"exit 0: the transfer would run as asked{rest}; dry run, nothing written"
    if code == 1:
        return f"exit 1: refused, nothing written: {escape(plan.refusal)}"
    return "exit 2: the transfer cannot run as asked; nothing written"


def dry_run_line(report: TransferReport) -> str:
    """The one line a dry run that could run says on stderr (the CLI adds ``archdiff: ``)."""
    t = report.plan.totals
    left = t.kept_layers + t.skipped_layers
    return (f"dry run, nothing written: the transfer would copy {count(t.copied_params)} params into "
            f"{t.copied_layers} of {t.target_layers} target layers with weights"
            + (f" ({left} would keep their own)" if left else ""))


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
    statuses = [_status(report, layer.status) for layer in plan.layers]
    for layer, status in zip(plan.layers, statuses):
        rows.append([visible(layer.target), status, visible(layer.source or "-"), visible(_matched_by(layer)),
                     visible(_variables_text(layer))])
    if rows:
        out.append(_table_keep_colour(["target layer", "status", "source layer", "matched by", "variables"], rows,
                                      plan.layers, statuses, on))
    else:
        out.append("(the target has no layers with weights)")
    if plan.unused:
        out.append("")
        out.append(f"unused source layers ({len(plan.unused)}):" if report.written
                   else f"source layers that would be unused ({len(plan.unused)}):")
        for u in plan.unused:
            out.append(visible(f"  {u.path} ({count(u.params)} params): {u.reason}"))
    if plan.problems:
        out.append("")
        out.append(paint(f"problems ({len(plan.problems)}), nothing written:", "red", on))
        out.extend(visible(f"  {p}") for p in plan.problems)
    if plan.refusal:
        out.append("")
        out.append(paint("refused, nothing written:", "red", on))
        out.append(visible(f"  {plan.refusal}"))
    if plan.notes:
        out.append("")
        out.extend(visible(f"note: {n}") for n in plan.notes)
    out.append("")
    out.extend(visible(line) for line in _summary_lines(report))
    out.append(_exit_line(report))
    return "\n".join(out) + "\n"


def _table_keep_colour(headers, rows, layers, statuses, on: bool) -> str:
    if not on:
        return table(headers, rows)
    # Colour codes would throw the widths off: lay out plain, then paint the status cells.
    plain = rows
    lines = table(headers, plain).split("\n")
    width = max(len("status"), *(len(status) for status in statuses))
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
    icon = {0: "✅", 1: "⚠️", 2: "❌"}[report.exit_code]
    done = report.written
    lines = [
        f"### {icon} archdiff transfer",
        "",
        f"- **source**: {_code(plan.source.path)} ({_md(plan.source.description)})",
        f"- **target**: {_code(plan.target.path)} ({_md(plan.target.description)})",
        f"- **output**: {_md(_output_line(report, escape=str))}",
        "",
        "| | layers | params | bytes |",
        "| --- | ---: | ---: | ---: |",
        f"| {'copied' if done else 'would copy'} | {t.copied_layers} | {count(t.copied_params)} | "
        f"{human_bytes(t.copied_bytes)} |",
    ]
    if t.adapted_layers:
        lines.append(f"| {'adapted' if done else 'would adapt'} (part of the above, --adapt) | {t.adapted_layers} | "
                     f"{count(t.adapted_params)} | |")
    lines += [
        f"| {'skipped' if done else 'would skip'} (did not fit) | {t.skipped_layers} | {count(t.skipped_params)} | |",
        f"| {'kept' if done else 'would keep'} (no source layer) | {t.kept_layers} | {count(t.kept_params)} | |",
        f"| target total | {t.target_layers} | {count(t.target_params)} | {human_bytes(t.target_bytes)} |",
        f"| {'unused' if done else 'would be unused'} source layers | {t.unused_source_layers} | "
        f"{count(t.unused_source_params)} | |",
        "",
    ]
    if plan.problems:
        lines.append(f"**Problems ({len(plan.problems)}), nothing written:**")
        lines.append("")
        lines.extend(f"- {_md(p)}" for p in plan.problems)
        lines.append("")
    if plan.refusal:
        lines.append(f"**Refused, nothing written:** {_md(plan.refusal)}")
        lines.append("")
    lines.append(f"<details><summary>Target layers ({len(plan.layers)})</summary>")
    lines.append("")
    lines.append("| target layer | status | source layer | matched by | variables |")
    lines.append("| --- | --- | --- | --- | --- |")
    for layer in plan.layers:
        lines.append(f"| {_code(layer.target)} | {_status(report, layer.status)} | "
                     f"{_code(layer.source) if layer.source else '—'} | "
                     f"{_md(_matched_by(layer))} | {_md(_variables_text(layer))} |")
    lines.append("")
    lines.append("</details>")
    lines.append("")
    if plan.unused:
        lines.append(f"**{'Unused source layers' if done else 'Source layers that would be unused'} "
                     f"({len(plan.unused)})**")
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
    lines.append(f"_{_md(_exit_line(report, escape=str))}_")
    return "\n".join(lines) + "\n"
