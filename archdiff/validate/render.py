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
from archdiff.validate.report import ARRIVED, FAIL, PASS, SKIPPED, BackendsReport, ValidationReport

FORMATS = ("text", "json", "markdown")

_COLOURS = {PASS: "green", FAIL: "red", SKIPPED: "yellow"}
_TITLES = (("rebuild", "1. rebuild"), ("weights_arrived", "2. weights arrived"), ("outputs", "3. outputs"),
           ("finetune", "4. fine-tune"), ("reference", "+  reference"))
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
    backend = f" on {r.backend} {r.backend_version}".rstrip() if r.backend else ""
    text = (f"{r.class_name} '{r.model_name}': {r.layers} layers, {count(r.params)} params; Keras {r.keras_version}"
            f"{backend}, {mode}")
    if r.imports:
        text += f"; imported {', '.join(r.imports)}"
    return text


def _summary(report: ValidationReport, key: str) -> str:
    if key == "rebuild":
        return _rebuild_summary(report)
    text = report.reason_of(key)
    if key in report.unaccepted_skips:
        text += f" (not accepted: --allow-skip {key})"
    elif dict(report.checks).get(key) == SKIPPED:
        text += " (skip accepted)"
    return text


def _titles(report: ValidationReport):
    present = dict(report.checks)
    return [(key, title) for key, title in _TITLES if key in present]


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


def _output_rows(outputs) -> list[list[str]]:
    rows = []
    for o in outputs:
        rows.append([o.target_layer, o.source_layer, o.status, "x".join(str(d) for d in (o.shape or [])) or "-",
                     _num(o.max_abs_diff), _num(o.mean_abs_diff), _num(o.max_rel_diff), _num(o.cosine_similarity, 6),
                     o.reason or ""])
    return rows


_OUTPUT_HEADERS = ["output of", "compared with", "status", "shape", "max |diff|", "mean |diff|", "max rel", "cosine",
                   "note"]


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
    if kind == "random":
        shapes = ", ".join(f"{k} {v}" for k, v in (d.get("inputs") or {}).items())
        return (f"seeded random task (seed {d.get('seed')}): {d.get('train_samples')} training / "
                f"{d.get('test_samples')} held-out samples; inputs {shapes}")
    if kind == "tokens":
        return (f"synthetic next-token task (seed {d.get('seed')}): {d.get('train_samples')} training / "
                f"{d.get('test_samples')} held-out sequences of {d.get('length')} tokens counting up by one, "
                f"vocabulary {d.get('vocabulary')}, fed as '{d.get('token_input')}'")
    if kind == "dir":
        return (f"{d.get('path')}: images per class ({d.get('classes')} classes, resized to {shape}, "
                f"pixels x {d.get('rescale'):.4g}), 80/20 split")
    return "-"


def _device_line(report: ValidationReport) -> str:
    d = report.finetune.device
    if not d:
        return "-"
    where = ", ".join(d.get("devices") or []) or d.get("device", "?")
    kinds = sorted(set(d.get("device_kinds") or []))
    if kinds:
        where += f": {', '.join(kinds)}"
    text = f"{str(d.get('device', '?')).upper()} ({where}), strategy {d.get('strategy')}"
    if d.get("backend"):
        text += f" ({d['backend']})"
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
    shown = list(fr.get("layers") or [])
    names = ", ".join(shown[:8]) + (f", ... and {n - 8} more" if n > 8 else "")
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
    ran = [name for name, status in report.checks if status == PASS]
    if report.exit_code == 0:
        skipped = [name for name, status in report.checks if status == SKIPPED]
        accepted = f"; skipped as accepted: {', '.join(skipped)}" if skipped else ""
        return f"exit 0: every check passed ({len(ran)} of {len(report.checks)}){accepted}"
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
    width = max(len(title) for _, title in _titles(report))
    for key, title in _titles(report):
        status = dict(report.checks)[key]
        label = paint(f"[{status.upper():7}]", _COLOURS.get(status, "bold"), on)
        out.append(f"{label} {title.ljust(width)}  {visible(_summary(report, key))}")
        out.extend("    " + line for line in _details_text(report, key))
    if report.failures:
        out.append("")
        out.append(paint(f"failures ({len(report.failures)}):", "red", on))
        out.extend(visible(f"  - {f}") for f in report.failures)
    out.append("")
    if report.saved_reference:
        out.append(f"reference saved: {report.saved_reference} (inputs and outputs of the seeded batch)")
    if report.seconds is not None:
        memory = f", peak memory {report.peak_rss_mb:.0f} MiB" if report.peak_rss_mb else ""
        out.append(f"validated in {report.seconds:.1f} s{memory}")
    out.append(_exit_line(report))
    return "\n".join(out) + "\n"


def _rule(stat: str, atol: float, rtol: float) -> str:
    if stat == "elementwise":
        return f"an element fails when |diff| > atol {atol:g} and |diff|/|source| > rtol {rtol:g} (Polygraphy)"
    return f"fails when the {stat} |diff| > atol {atol:g} and the {stat} relative error > rtol {rtol:g} (Polygraphy)"


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
            lines.extend(_indent_table(_OUTPUT_HEADERS, _output_rows(o.outputs), align="llllrrrrl"))
        if o.input_shapes:
            shapes = ", ".join(f"{k} {v[1:]}" for k, v in o.input_shapes.items())
            lines.append(visible(f"shared sub-graph: {len(o.shared_layers)} layers from inputs {shapes}; seeded "
                                 f"batch of {o.batch} (seed {o.seed}); {_rule(o.check_error_stat, o.atol, o.rtol)}"))
        if o.nested:
            lines.append(visible("compared inside the nested model(s) " + ", ".join(o.nested)))
        lines.extend(visible(f"note: {n}") for n in o.notes)
        if o.excluded:
            lines.append(visible("paired but not shared: "
                                 + "; ".join(f"{x['layer']} ({x['reason']})" for x in o.excluded[:5])
                                 + (f"; ... and {len(o.excluded) - 5} more" if len(o.excluded) > 5 else "")))
        return lines
    if key == "reference":
        r = report.reference
        if r is not None and r.outputs:
            lines.extend(_indent_table(_OUTPUT_HEADERS, _output_rows(r.outputs), align="llllrrrrl"))
        if r is not None and r.recorded:
            about = ", ".join(f"{k} {v}" for k, v in r.recorded.items() if k != "notes")
            lines.append(visible(f"{r.path}: recorded with {about}"))
            lines.extend(visible(f"note: {n}") for n in r.recorded.get("notes") or [])
        return lines
    f = report.finetune
    if f.status == SKIPPED:
        return lines
    lines.append(visible(f"data:   {_data_line(report)}"))
    lines.append(visible(f"device: {_device_line(report)}"))
    lines.append(visible(f"frozen: {_freeze_line(report)}"))
    lines.append(visible(f"loss:   {f.loss_name}; metric: {f.metric}"))
    for name, head in f.losses.items():
        if len(f.losses) > 1 or head.get("why", "").startswith("one linear"):
            lines.append(visible(f"        {name}: {head.get('loss')}"
                                 f"{' (from logits)' if head.get('from_logits') else ''} - {head.get('why')}"))
    lines.extend(_indent_table(["stage", "epochs", "steps", "lr", "train loss", f.metric, "ms/step",
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
    for key, title in _titles(report):
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
        lines.append(f"| stage | epochs | steps | lr | train loss | {f.metric} | ms/step |")
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
        lines.append("| output of | status | shape | max abs diff | mean abs diff | max rel diff | cosine | note |")
        lines.append("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
        for row in _output_rows(o.outputs):
            lines.append(f"| {_code(row[0])} | {row[2]} | {row[3]} | {row[4]} | {row[5]} | {row[6]} | {row[7]} "
                         f"| {_md(row[8])} |")
        lines.append("")
        lines.extend(f"- {_md(n)}" for n in o.notes)
        lines.append("</details>")
        lines.append("")
    lines.append(f"_{_md(_exit_line(report))}_")
    return "\n".join(lines) + "\n"


# -- several backends ---------------------------------------------------------------------------
def render_backends(report: BackendsReport, fmt: str = "text", *, colour: bool | None = None) -> str:
    """A ``--backends`` report: each backend's own report (as it rendered it), then their agreement."""
    if fmt == "json":
        return json.dumps(_finite(report.to_dict()), indent=2, allow_nan=False, default=str) + "\n"
    rows = [[c["backend"], c["baseline"], c["output"], c["status"], "x".join(str(d) for d in c.get("shape") or []),
             _num(c.get("max_abs_diff")), _num(c.get("mean_abs_diff")), _num(c.get("max_rel_diff")),
             _num(c.get("cosine_similarity"), 6)] for c in report.agreement.comparisons]
    headers = ["backend", "against", "output", "status", "shape", "max |diff|", "mean |diff|", "max rel", "cosine"]
    a = report.agreement
    if fmt == "markdown":
        icon = "✅" if report.exit_code == 0 else "❌"
        out = [f"## {icon} archdiff validate on {', '.join(report.backends)}", ""]
        for name, text in zip(report.backends, report.rendered):
            out += [f"#### {name}", "", text.rstrip(), ""]
        out += [f"#### agreement across backends: {_ICONS.get(a.status, a.status)}", "", _md(a.reason), ""]
        if rows:
            out.append("| " + " | ".join(headers) + " |")
            out.append("|" + " --- |" * len(headers))
            out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
            out.append("")
        out += [f"- {_md(f)}" for f in report.failures]
        out.append(f"_{_md(_backends_exit_line(report))}_")
        return "\n".join(out) + "\n"
    on = use_colour() if colour is None else colour
    out = [f"archdiff validate on {len(report.backends)} backends: {', '.join(report.backends)} (one process each)", ""]
    for name, data, text in zip(report.backends, report.reports, report.rendered):
        rebuild = data.get("rebuild") or {}
        version = " ".join(x for x in (rebuild.get("backend_version"), f"(Keras {rebuild['keras_version']})"
                                       if rebuild.get("keras_version") else "") if x)
        out.append(paint(f"== {name} {version} ==".replace("  ", " "), "bold", on))
        out.append(text.rstrip())
        out.append("")
    label = paint(f"[{a.status.upper():7}]", _COLOURS.get(a.status, "bold"), on)
    out.append(f"{label} backends agree  {a.reason}")
    if rows:
        out.extend("    " + line for line in _indent_table(headers, rows, align="lllllrrrr"))
    if report.failures:
        out.append("")
        out.append(paint(f"failures ({len(report.failures)}):", "red", on))
        out.extend(f"  - {f}" for f in report.failures)
    out.append("")
    if report.seconds is not None:
        out.append(f"validated on {len(report.backends)} backends in {report.seconds:.1f} s")
    out.append(_backends_exit_line(report))
    return "\n".join(out) + "\n"


def _backends_exit_line(report: BackendsReport) -> str:
    if report.exit_code == 0:
        return f"exit 0: every check passed on {', '.join(report.backends)}, and the backends agree"
    return f"exit 1: {len(report.failures)} failure(s) across {', '.join(report.backends)}"
