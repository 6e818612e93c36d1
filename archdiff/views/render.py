"""People's views of one Architecture: the layer table (text, CSV) and the summary (text, Markdown).

Every name and class from the file goes through :mod:`archdiff.safetext`
before it is printed; the JSON forms are :func:`archdiff.views.layer_rows`
and :func:`archdiff.views.summary` themselves.
"""
from __future__ import annotations

import csv
import io

from archdiff.model import Architecture
from archdiff.safetext import csv_cell, md_code, md_text, visible
from archdiff.textfmt import count, human_bytes, table
from archdiff.views.graph import shape_text


def _shape(value):
    if value is None:
        return None
    if value and isinstance(value[0], list):
        return [tuple(v) for v in value]
    return tuple(value)


def render_layers_csv(rows: list[dict]) -> str:
    """``layers --format csv``: one row per layer, cells neutralised against formula injection (OWASP)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["index", "path", "name", "depth", "class_name", "output_shape", "params", "trainable"])
    for r in rows:
        writer.writerow([csv_cell(v) for v in (
            r["index"], r["path"], r["name"], r["depth"], r["class_name"], shape_text(_shape(r["output_shape"])),
            "" if r["params"] is None else r["params"], r["trainable"])])
    return buf.getvalue()


def constructor_lines(arch: Architecture) -> list[str]:
    """A model built from constructor arguments (keras-hub's): its class and each argument, one per line."""
    if arch.constructor is None:
        return []
    from archdiff.diff.canonical import dumps, json_visible, normal_value  # loads archdiff.diff: only for such a model

    module = f" ({visible(arch.constructor_module)})" if arch.constructor_module else ""
    lines = [f"constructor: {visible(arch.class_name or '?')}{module}, called with:"]
    for key, value in arch.constructor.items():
        lines.append(f"  {visible(key)}: {json_visible(dumps(normal_value(value)))}")
    return lines


def render_layers_text(arch: Architecture, rows: list[dict]) -> str:
    if not rows and arch.constructor is not None:
        # No layer is known (a constructor config without weights): no empty table, the arguments instead.
        return "\n".join([*constructor_lines(arch), *(f"note: {visible(n)}" for n in arch.notes)])
    body = []
    for r in rows:
        label = "  " * r["depth"] + visible(r["path"] if r["depth"] else r["name"])
        index = ("  " * r["depth"]) + ("?" if r["index"] is None else str(r["index"]))
        body.append([index, label, visible(r["class_name"]), shape_text(_shape(r["output_shape"])),
                     count(r["params"]) if r["params"] is not None else "?",
                     "?" if r["trainable"] is None else "yes" if r["trainable"] else "no"])
    lines = [table(["index", "layer", "class", "output shape", "params", "trainable"], body, align="llllrl")]
    lines.extend(constructor_lines(arch))
    lines.extend(f"note: {visible(n)}" for n in arch.notes)
    return "\n".join(lines)


def _connected(arch: Architecture, layer) -> str:
    refs = []
    for call in layer.calls:
        for ref in call.inputs:
            refs.append(f"{visible(ref.layer)}[{ref.node_index}][{ref.tensor_index}]")
    return ", ".join(refs)


def _totals(data: dict) -> list[str]:
    def line(label, key):
        n = data[key]
        if n is None and data.get("total_params") is not None:
            floor = data.get("non_trainable_params_at_least")
            extra = f"; at least {floor:,} non-trainable by nature" if floor and key != "trainable_params" else ""
            return f"{label}: unknown (the input does not record which layers are frozen{extra})"
        if n is None:
            return f"{label}: unknown (no weights in the input)"
        return f"{label}: {n:,} ({human_bytes(n * 4)})"

    return [line(" Total params", "total_params"), line(" Trainable params", "trainable_params"),
            line(" Non-trainable params", "non_trainable_params")]


def render_summary_text(arch: Architecture, data: dict) -> str:
    functional = arch.class_name not in ("Sequential", None)
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
    rows = []
    for layer in arch.keras_layers():
        label = "  " * layer.depth + f"{visible(layer.name)} ({visible(layer.class_name)})"
        params = arch.params(layer)
        row = [label, shape_text(layer.output_shape), count(params) if params is not None else "?"]
        if functional:
            row.append(_connected(arch, layer) if layer.depth == 0 else "")
        rows.append(row)
    out = [f'Model: "{visible(arch.name)}"' + (f" ({visible(arch.class_name)})" if arch.class_name else "")]
    if rows or arch.constructor is None:
        out.append(table(headers, rows, align="llr" + ("l" if functional else "")))
    out.extend(constructor_lines(arch))
    out.extend(_totals(data))
    out.extend(f"note: {visible(n)}" for n in arch.notes)
    return "\n".join(out)


def render_summary_markdown(arch: Architecture, data: dict) -> str:
    lines = [f"### Model {md_code(arch.name)}", ""]
    if arch.keras_layers() or arch.constructor is None:
        lines += ["| Layer (type) | Output Shape | Param # |", "| --- | --- | ---: |"]
    for layer in arch.keras_layers():
        params = arch.params(layer)
        indent = "&nbsp;&nbsp;" * layer.depth
        lines.append(f"| {indent}{md_code(layer.name)} ({md_text(layer.class_name)}) | "
                     f"{md_text(shape_text(layer.output_shape))} | "
                     f"{count(params) if params is not None else '?'} |")
    lines.append("")
    for label, key in (("Total params", "total_params"), ("Trainable params", "trainable_params"),
                       ("Non-trainable params", "non_trainable_params")):
        lines.append(f"- **{label}**: {count(data[key])}")
    if arch.constructor is not None:
        from archdiff.diff.canonical import dumps, normal_value

        lines += ["", f"Built by {md_code(arch.class_name or '?')} from constructor arguments:", ""]
        lines += [f"- {md_code(key)}: {md_code(dumps(normal_value(value)))}" for key, value in arch.constructor.items()]
    return "\n".join(lines)
