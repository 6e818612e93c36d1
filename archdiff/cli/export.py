"""``archdiff export``: a model as Keras JSON, safe YAML, or a graph file.

JSON and YAML are written in Keras 3's dialect by default (a Keras 2 config is
rewritten, :mod:`archdiff.views.upgrade`); ``--dialect source`` keeps the
file's own config. What was rewritten is said on stderr, one note a line.
"""
from __future__ import annotations

import sys

from archdiff.cli.common import add_model_args, emit, load_model
from archdiff.output import refuse_overwriting_inputs, write_text
from archdiff.views import DIALECTS, FORMATS, MODEL_FORMATS, document_text, export_text, format_for, model_export


def register(sub) -> None:
    p = sub.add_parser("export", help="write a model as json (model_from_json), yaml, graphml, gexf, dot, node-link or html")
    add_model_args(p)
    p.add_argument("-o", "--output", help="output file (the format follows its suffix); stdout when omitted")
    p.add_argument("--format", choices=FORMATS, help="json, yaml, graphml, gexf, dot, node-link or html (a self-contained page that draws the model)")
    p.add_argument("--dialect", choices=DIALECTS, default="keras3",
                   help="json/yaml: keras3 (default; a Keras 2 config is rewritten so that Keras 3 loads it) "
                        "or source (the file's own config, unchanged)")
    p.set_defaults(run=run_export)


def run_export(args) -> int:
    fmt = format_for(args.output, args.format if args.format or args.output else "json")
    arch = load_model(args)
    notes: tuple[str, ...] = ()
    if fmt in MODEL_FORMATS:
        exported = model_export(arch, args.dialect)
        text = document_text(exported.document, fmt)
        notes = exported.notes
    else:
        text = export_text(arch, fmt)
    if args.output:
        refuse_overwriting_inputs(args.output, [args.model])
        write_text(args.output, text)
    else:
        emit(text)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    return 0
