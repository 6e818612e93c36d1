"""``archdiff export``: a model as Keras JSON, safe YAML, or a graph file."""
from __future__ import annotations

from archdiff.views import FORMATS, export_text, format_for
from archdiff.output import refuse_overwriting_inputs, write_text
from archdiff.cli.common import add_model_args, emit, load_model


def register(sub) -> None:
    p = sub.add_parser("export", help="write a model as json (model_from_json), yaml, graphml, gexf, dot, node-link or html")
    add_model_args(p)
    p.add_argument("-o", "--output", help="output file (the format follows its suffix); stdout when omitted")
    p.add_argument("--format", choices=FORMATS, help="json, yaml, graphml, gexf, dot, node-link or html (a self-contained page that draws the model)")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    fmt = format_for(args.output, args.format if args.format or args.output else "json")
    arch = load_model(args)
    text = export_text(arch, fmt)
    if args.output:
        refuse_overwriting_inputs(args.output, [args.model])
        write_text(args.output, text)
    else:
        emit(text)
    return 0
