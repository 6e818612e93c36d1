"""``archdiff layers`` and ``archdiff summary``: the layer table and the totals."""
from __future__ import annotations

import csv
import io

from archdiff.views import shape_text
from archdiff.views import layer_rows, summary
from archdiff.model import Architecture
from archdiff.textfmt import count, human_bytes, table
from archdiff.cli.common import add_model_args, dump_json, emit, load_model


def register(sub) -> None:
    p = sub.add_parser("layers", help="the layer table: index (as in model.layers), name, class, shape, params")
    add_model_args(p)
    p.add_argument("--grep", metavar="PATTERN", help="only layers whose path or class matches this regex")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text")
    p.set_defaults(run=run_layers)

    s = sub.add_parser("summary", help="like Keras' model.summary(), with the three parameter totals")
    add_model_args(s)
    s.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    s.set_defaults(run=run_summary)


def _grep(pattern):
    import re

    from archdiff.errors import UsageError

    if pattern is None:
        return None
    try:
        re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--grep '{pattern}' is not a valid regular expression ({exc})") from None
    return pattern


def run_layers(args) -> int:
    arch = load_model(args)
    rows = layer_rows(arch, _grep(args.grep))
    if args.format == "json":
        emit(dump_json({"model": arch.name, "has_topology": arch.has_topology, "notes": list(arch.notes),
                        "layers": rows}))
    elif args.format == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["index", "path", "name", "depth", "class_name", "output_shape", "params", "trainable"])
        for r in rows:
            writer.writerow([r["index"], r["path"], r["name"], r["depth"], r["class_name"],
                             shape_text(_shape(r["output_shape"])), "" if r["params"] is None else r["params"],
                             r["trainable"]])
        emit(buf.getvalue())
    else:
        emit(render_layers_text(arch, rows))
    return 0


def _shape(value):
    if value is None:
        return None
    if value and isinstance(value[0], list):
        return [tuple(v) for v in value]
    return tuple(value)


def render_layers_text(arch: Architecture, rows: list[dict]) -> str:
    body = []
    for r in rows:
        label = "  " * r["depth"] + (r["path"] if r["depth"] else r["name"])
        index = ("  " * r["depth"]) + str(r["index"])
        body.append([index, label, r["class_name"], shape_text(_shape(r["output_shape"])),
                     count(r["params"]) if r["params"] is not None else "?", "yes" if r["trainable"] else "no"])
    lines = [table(["index", "layer", "class", "output shape", "params", "trainable"], body, align="llllrl")]
    lines.extend(f"note: {n}" for n in arch.notes)
    return "\n".join(lines)


def run_summary(args) -> int:
    arch = load_model(args)
    data = summary(arch)
    if args.format == "json":
        emit(dump_json(data))
    elif args.format == "markdown":
        emit(render_summary_markdown(arch, data))
    else:
        emit(render_summary_text(arch, data))
    return 0


def _connected(arch: Architecture, layer) -> str:
    refs = []
    for call in layer.calls:
        for ref in call.inputs:
            refs.append(f"{ref.layer}[{ref.node_index}][{ref.tensor_index}]")
    return ", ".join(refs)


def _totals(data: dict) -> list[str]:
    def line(label, key):
        n = data[key]
        if n is None:
            return f"{label}: unknown (no weights in the input)"
        return f"{label}: {n:,} ({human_bytes(n * 4)})"

    return [line(" Total params", "total_params"), line(" Trainable params", "trainable_params"),
            line(" Non-trainable params", "non_trainable_params")]


def render_summary_text(arch: Architecture, data: dict) -> str:
    functional = arch.class_name not in ("Sequential", None)
    headers = ["Layer (type)", "Output Shape", "Param #"] + (["Connected to"] if functional else [])
    rows = []
    for layer in arch.layers:
        label = "  " * layer.depth + f"{layer.name} ({layer.class_name})"
        params = arch.params(layer)
        row = [label, shape_text(layer.output_shape), count(params) if params is not None else "?"]
        if functional:
            row.append(_connected(arch, layer) if layer.depth == 0 else "")
        rows.append(row)
    out = [f'Model: "{arch.name}"' + (f" ({arch.class_name})" if arch.class_name else "")]
    out.append(table(headers, rows, align="llr" + ("l" if functional else "")))
    out.extend(_totals(data))
    out.extend(f"note: {n}" for n in arch.notes)
    return "\n".join(out)


def render_summary_markdown(arch: Architecture, data: dict) -> str:
    lines = [f"### Model `{arch.name}`", "", "| Layer (type) | Output Shape | Param # |", "| --- | --- | ---: |"]
    for layer in arch.layers:
        params = arch.params(layer)
        indent = "&nbsp;&nbsp;" * layer.depth
        lines.append(f"| {indent}`{layer.name}` ({layer.class_name}) | {shape_text(layer.output_shape)} | "
                     f"{count(params) if params is not None else '?'} |")
    lines.append("")
    for label, key in (("Total params", "total_params"), ("Trainable params", "trainable_params"),
                       ("Non-trainable params", "non_trainable_params")):
        lines.append(f"- **{label}**: {count(data[key])}")
    return "\n".join(lines)
