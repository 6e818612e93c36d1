"""``archdiff layers`` and ``archdiff summary``: the layer table and the totals."""
from __future__ import annotations

import sys

from archdiff.cli.common import add_model_args, dump_json, emit, load_model
from archdiff.safetext import visible
from archdiff.views import layer_rows, summary
from archdiff.views.render import (render_layers_csv, render_layers_text, render_summary_markdown,
                                   render_summary_text)


def register(sub) -> None:
    p = sub.add_parser("layers", help="the layer table: index (as in model.layers), name, class, shape, params")
    add_model_args(p)
    p.add_argument("--grep", metavar="PATTERN",
                   help="only layers whose path or class matches this regex (none: exit 1, as grep)")
    p.add_argument("--operations", action="store_true",
                   help="also list Keras 3 operations (x + y, keras.ops.*): graph nodes that model.layers leaves out")
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
    rows = layer_rows(arch, _grep(args.grep), operations=args.operations)
    if args.grep is not None and not rows:
        # As grep(1) does: nothing matched is exit 1, said on stderr, with nothing on stdout.
        print(f"archdiff: no layer path or class matches --grep {visible(args.grep)!s} in {visible(args.model)}",
              file=sys.stderr)
        return 1
    if args.format == "json":
        emit(dump_json({"model": arch.name, "has_topology": arch.has_topology, "notes": list(arch.notes),
                        "layers": rows}))
    elif args.format == "csv":
        emit(render_layers_csv(rows))
    else:
        emit(render_layers_text(arch, rows))
    return 0


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
