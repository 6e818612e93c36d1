"""Renderers of a :class:`~archdiff.validate.ValidationReport`: text, JSON and Markdown.

The report is data; this is the only place that formats it for people. Text
colours the check statuses on a terminal only; JSON follows
``archdiff/schemas/validate.schema.json``; Markdown suits a pull request
(details fold away in ``<details>``). Every name, path and message goes
through :mod:`archdiff.safetext` (text: ``visible``, applied to each line
before the status labels are painted; Markdown: its ``md_text`` / ``md_code``,
the escaping every Markdown report shares).
"""
from __future__ import annotations

import json
import math

from archdiff.safetext import md_code, md_text, visible
from archdiff.textfmt import count, paint, table, use_colour
from archdiff.validate.report import ARRIVED, FAIL, PASS, SKIPPED, ValidationReport

FORMATS = ("text", "json", "markdown")

_COLOURS = {PASS: "green", FAIL: "red", SKIPPED: "yellow"}
_TITLES = (("rebuild", "1. rebuild"), ("weights_arrived", "2. weights arrived"), ("outputs", "3. outputs"),
           ("finetune", "4. fine-tune"))
#: Rows shown per table in text before "... and N more" (JSON always has them all).
TEXT_ROWS = 30


def render(report: ValidationReport, fmt: str = "text", *, colour: bool | None = None) -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "markdown":
        return render_markdown(report)
    return render_text(report, colour=colour)


def render_json(report: ValidationReport) -> str:
    return json.dumps(_finite(report.to_dict()), indent=2, allow_nan=False, default=str) + "\n"


def _finite(value):
    """JSON has no NaN or infinity: a diverged loss is written as null (the failure says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# -- shared pieces ----------------------------------------------------------------------
def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value == 0:
            return "0"
        if abs(value) >= 1e4 or abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def _rebuild_summary(report: ValidationReport) -> str:
    r = report.rebuild
    mode = "safe mode" if r.safe_mode else "UNSAFE mode (Lambda code allowed)"
    text = f"{r.class_name} '{r.model_name}': {r.layers} layers, {count(r.params)} params; Keras {r.keras_version}, {mode}"
    if r.imports:
        text += f"; imported {', '.join(r.imports)}"
    return text


def _summary(report: ValidationReport, key: str) -> str:
    if key == "rebuild":
        return _rebuild_summary(report)
    return getattr(report, key).reason


def _arrival_rows(report: ValidationReport, limit: int | None) -> tuple[list[list[str]], int]:
    rows = []
    layers = report.weights_arrived.layers
    shown = layers if limit is None else [a for a in layers if a.status != ARRIVED] + \
        [a for a in layers if a.status == ARRIVED]
    for arrival in shown[: limit if limit is not None else len(shown)]:
        if arrival.status == ARRIVED:
            detail = ", ".join(v.name + (f" (cast from {v.cast_from})" if v.cast_from else "") for v in arrival.variables)
        else:
            detail = arrival.message.split(": ", 1)[-1]
        rows.append([arrival.target, arrival.source, arrival.status, detail])
    return rows, len(layers) - len(rows)


def _output_rows(report: ValidationReport) -> list[list[str]]:
    rows = []
    for o in report.outputs.outputs:
        rows.append([o.target_layer, o.source_layer, o.status, "x".join(str(d) for d in (o.shape or [])) or "-",
                     _num(o.max_abs_diff), _num(o.max_rel_diff), o.reason or ""])
    return rows


def _stage_rows(report: ValidationReport) -> list[list[str]]:
    f = report.finetune
    rows = []
    for s in f.stages:
        loss = f"{_num(s.loss[0])} -> {_num(s.loss[-1])}" if s.loss else "-"
        rows.append([s.name, str(s.epochs), str(s.steps), f"{s.learning_rate:g}", loss,
                     f"{_num(s.metric_before)} -> {_num(s.metric_after)}", _num(s.time_per_step_ms, 1),
                     f"{s.frozen_variables}/{s.trainable_variables}"])
    if f.scratch is not None:
        sc = f.scratch
        loss = f"{_num(sc.loss[0])} -> {_num(sc.loss[-1])}" if sc.loss else "-"
        rows.append(["from scratch", str(sc.epochs), str(sc.steps), f"{sc.learning_rate:g}", loss,
                     f"-> {_num(sc.metric_after)}", _num(sc.time_per_step_ms, 1), "0/all"])
    return rows


def _data_line(report: ValidationReport) -> str:
    d = report.finetune.data
    kind = d.get("kind")
    shape = "x".join(str(x) for x in d.get("image_shape", []) or [])
    if kind == "builtin":
        return (f"built-in synthetic task: {d.get('classes')} classes, {d.get('train_samples')} training / "
                f"{d.get('test_samples')} held-out images of {shape}, seed {d.get('seed')}")
    if kind == "npz":
        return (f"{d.get('path')}: {d.get('train_samples')} training / {d.get('test_samples')} validation samples "
                f"of {shape}, {d.get('classes')} classes")
    if kind == "dir":
        return (f"{d.get('path')}: images per class ({d.get('classes')} classes, resized to {shape}, "
                f"pixels x {d.get('rescale'):.4g}), 80/20 split")
    return "-"


def _device_line(report: ValidationReport) -> str:
    d = report.finetune.device
    if not d:
        return "-"
    where = ", ".join(d.get("devices") or []) or d.get("device", "?")
    text = f"{str(d.get('device', '?')).upper()} ({where}), strategy {d.get('strategy')}"
    if d.get("replicas", 1) > 1:
        text += f", {d['replicas']} replicas"
    if d.get("workers", 1) > 1:
        text += f", {d['workers']} workers"
    if d.get("mixed_precision"):
        text += ", mixed_float16"
    steps = [s.time_per_step_ms for s in report.finetune.stages if s.time_per_step_ms is not None]
    if steps:
        text += f"; {steps[0]:.1f} ms per step"
    return text


def _freeze_line(report: ValidationReport) -> str:
    fr = report.finetune.freeze
    mode = fr.get("mode")
    n = fr.get("layer_count", 0)
    names = ", ".join(fr.get("layers") or [])
    if mode == "until":
        first = fr.get("first_trainable")
        return (f"model.layers[:{fr.get('index')}] (--freeze-until {fr.get('until')}; first trainable layer: "
                f"{first or 'none'}); {n} layers with weights frozen")
    if mode == "transferred":
        return f"the {n} transferred layers: {names}"
    return "nothing frozen"


def _gain_line(report: ValidationReport) -> str | None:
    f = report.finetune
    if f.transfer_gain is None or f.scratch is None:
        return None
    sign = "+" if f.transfer_gain >= 0 else ""
    return (f"transfer gain: {sign}{f.transfer_gain:.3f} accuracy ({_num(f.metric_after)} with the transferred "
            f"weights, {_num(f.scratch.metric_after)} from scratch, same {f.scratch.steps} steps)")


def _exit_line(report: ValidationReport) -> str:
    if report.exit_code == 0:
        ran = [name for name, status in report.checks if status == PASS]
        return f"exit 0: every check that ran passed ({len(ran)} of 4)"
    return f"exit 1: {len(report.failures)} failure(s); the transfer is not proven"


# -- text ----------------------------------------------------------------------------------
def render_text(report: ValidationReport, *, colour: bool | None = None) -> str:
    on = use_colour() if colour is None else colour
    out = [
        visible(f"target:  {report.target}"),
        visible(f"weights: {report.weights} ({report.rebuild.weights_format})"),
        visible(f"source:  {report.source or '- (no --source: checks 2 and 3 skipped)'}"),
        "",
    ]
    width = max(len(title) for _, title in _TITLES)
    for key, title in _TITLES:
        status = dict(report.checks)[key]
        label = paint(f"[{status.upper():7}]", _COLOURS.get(status, "bold"), on)
        out.append(f"{label} {title.ljust(width)}  {visible(_summary(report, key))}")
        out.extend("    " + line for line in _details_text(report, key))
    if report.failures:
        out.append("")
        out.append(paint(f"failures ({len(report.failures)}):", "red", on))
        out.extend(visible(f"  - {f}") for f in report.failures)
    out.append("")
    if report.seconds is not None:
        out.append(f"validated in {report.seconds:.1f} s")
    out.append(_exit_line(report))
    return "\n".join(out) + "\n"


def _indent_table(headers, rows, align=None) -> list[str]:
    # Cells escaped before the layout, so that widths count what is shown and a cell cannot break a line.
    return table(headers, [[visible(cell) for cell in row] for row in rows], align=align).split("\n")


def _details_text(report: ValidationReport, key: str) -> list[str]:
    """The lines under one check, escaped (:func:`archdiff.safetext.visible`) once, here."""
    lines: list[str] = []
    if key == "rebuild":
        lines.extend(visible(f"note: {n}") for n in report.rebuild.notes)
        return lines
    if key == "weights_arrived":
        w = report.weights_arrived
        if not w.layers and not w.not_transferred:
            return lines
        rows, more = _arrival_rows(report, TEXT_ROWS)
        if rows:
            lines.extend(_indent_table(["target layer", "source layer", "status", "variables"], rows))
            if more:
                lines.append(f"... and {more} more layers (all arrived; --format json lists them)")
        if w.not_transferred:
            shown = w.not_transferred[:8]
            lines.append(visible(f"not transferred ({len(w.not_transferred)}): "
                                 + "; ".join(f"{x['layer']} ({x['reason']})" for x in shown)
                                 + (f"; ... and {len(w.not_transferred) - 8} more" if len(w.not_transferred) > 8
                                    else "")))
        if w.unused_source:
            lines.append(visible(f"source layers no target layer took ({len(w.unused_source)}): "
                                 + ", ".join(w.unused_source[:8]) + (" ..." if len(w.unused_source) > 8 else "")))
        return lines
    if key == "outputs":
        o = report.outputs
        if o.outputs:
            lines.extend(_indent_table(["output of", "source layer", "status", "shape", "max |diff|", "max rel",
                                        "note"], _output_rows(report), align="llllrrl"))
        if o.input_shapes:
            shapes = ", ".join(f"{k} {v[1:]}" for k, v in o.input_shapes.items())
            lines.append(visible(f"shared sub-graph: {len(o.shared_layers)} layers from inputs {shapes}; seeded "
                                 f"batch of {o.batch} (seed {o.seed}); pass when |diff| <= atol {o.atol:g} + rtol "
                                 f"{o.rtol:g} x |source|"))
        lines.extend(visible(f"note: {n}") for n in o.notes)
        if o.excluded:
            lines.append(visible("paired but not shared: "
                                 + "; ".join(f"{x['layer']} ({x['reason']})" for x in o.excluded[:5])
                                 + (f"; ... and {len(o.excluded) - 5} more" if len(o.excluded) > 5 else "")))
        return lines
    f = report.finetune
    if f.status == SKIPPED:
        return lines
    lines.append(visible(f"data:   {_data_line(report)}"))
    lines.append(visible(f"device: {_device_line(report)}"))
    lines.append(visible(f"frozen: {_freeze_line(report)}"))
    lines.append(visible(f"loss:   {f.loss_name}; metric: {f.metric}"))
    lines.extend(_indent_table(["stage", "epochs", "steps", "lr", "train loss", "accuracy", "ms/step",
                                "frozen/trainable vars"], _stage_rows(report), align="lrrrllrr"))
    gain = _gain_line(report)
    if gain:
        lines.append(visible(gain))
    lines.extend(visible(f"note: {n}") for n in f.notes)
    lines.extend(visible(f"note: {n}") for n in f.device.get("notes", []))
    return lines


# -- Markdown ---------------------------------------------------------------------------------
# One Markdown escaping for every report: archdiff.safetext's.
_md = md_text


def _code(text) -> str:
    return md_code(text) if text else ""


_ICONS = {PASS: "✅ pass", FAIL: "❌ fail", SKIPPED: "⏭️ skipped"}


def render_markdown(report: ValidationReport) -> str:
    icon = "✅" if report.exit_code == 0 else "❌"
    lines = [
        f"### {icon} archdiff validate",
        "",
        f"- **target**: {_code(report.target)}",
        f"- **weights**: {_code(report.weights)}",
        f"- **source**: {_code(report.source) if report.source else '— (checks 2 and 3 skipped)'}",
        "",
        "| check | status | result |",
        "| --- | --- | --- |",
    ]
    for key, title in _TITLES:
        status = dict(report.checks)[key]
        lines.append(f"| {title} | {_ICONS.get(status, status)} | {_md(_summary(report, key))} |")
    lines.append("")
    if report.failures:
        lines.append(f"**Failures ({len(report.failures)}):**")
        lines.append("")
        lines.extend(f"- {_md(f)}" for f in report.failures)
        lines.append("")
    f = report.finetune
    if f.status != SKIPPED and f.stages:
        lines.append(f"**Fine-tuning** on {_md(_data_line(report))}; {_md(_device_line(report))}; "
                     f"frozen: {_md(_freeze_line(report))}.")
        lines.append("")
        lines.append("| stage | epochs | steps | lr | train loss | accuracy | ms/step |")
        lines.append("| --- | ---: | ---: | ---: | --- | --- | ---: |")
        for row in _stage_rows(report):
            lines.append("| " + " | ".join(_md(c) for c in row[:7]) + " |")
        lines.append("")
        gain = _gain_line(report)
        if gain:
            lines.append(f"**{_md(gain)}**")
            lines.append("")
    w = report.weights_arrived
    if w.layers:
        lines.append(f"<details><summary>Transferred layers ({len(w.layers)})</summary>")
        lines.append("")
        lines.append("| target layer | source layer | status | variables |")
        lines.append("| --- | --- | --- | --- |")
        rows, _ = _arrival_rows(report, None)
        for row in rows:
            lines.append(f"| {_code(row[0])} | {_code(row[1])} | {row[2]} | {_md(row[3])} |")
        lines.append("")
        if w.not_transferred:
            lines.append("Not transferred: " + ", ".join(f"{_code(x['layer'])} ({_md(x['reason'])})"
                                                         for x in w.not_transferred))
            lines.append("")
        lines.append("</details>")
        lines.append("")
    o = report.outputs
    if o.outputs:
        lines.append(f"<details><summary>Shared sub-graph outputs ({len(o.outputs)})</summary>")
        lines.append("")
        lines.append("| output of | status | shape | max abs diff | max rel diff | note |")
        lines.append("| --- | --- | --- | ---: | ---: | --- |")
        for row in _output_rows(report):
            lines.append(f"| {_code(row[0])} | {row[2]} | {row[3]} | {row[4]} | {row[5]} | {_md(row[6])} |")
        lines.append("")
        lines.extend(f"- {_md(n)}" for n in o.notes)
        lines.append("</details>")
        lines.append("")
    lines.append(f"_{_md(_exit_line(report))}_")
    return "\n".join(lines) + "\n"
