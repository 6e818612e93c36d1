"""``archdiff layers`` and ``archdiff summary``: the layer table and the totals; ``layers --freeze-until``'s recipe.

``archdiff layers MODEL --freeze-until NAME|INDEX`` prints what freezing up to
that layer freezes, the parameter split after, and the code for Keras 3 and
tf-keras (``--format json|python``); ``-o OUT`` writes a copy of the model file
with those ``trainable`` flags (:mod:`archdiff.views.freeze`).
"""
from __future__ import annotations

import sys

from archdiff.cli.common import add_model_args, dump_json, emit, load_model
from archdiff.safetext import visible
from archdiff.views import layer_rows, summary
from archdiff.views.layertable import constructor
from archdiff.views.render import render_layers_csv, render_layers_text, render_summary_markdown, render_summary_text


def register(sub) -> None:
    p = sub.add_parser("layers", help="the layer table: index (as in model.layers), name, class, shape, params")
    add_model_args(p)
    p.add_argument("--grep", metavar="PATTERN",
                   help="only layers whose path or class matches this regex (none: exit 1, as grep)")
    p.add_argument("--operations", action="store_true",
                   help="also list Keras 3 operations (x + y, keras.ops.*): graph nodes that model.layers leaves out")
    p.add_argument("--format", choices=("text", "json", "csv", "python"), default="text",
                   help="csv: the table only; python: --freeze-until's snippet only")
    f = p.add_argument_group("freezing (the layers before one stay fixed while the rest train)")
    f.add_argument("--freeze-until", metavar="NAME|INDEX",
                   help="print what freezing model.layers[:INDEX] does (a NAME, or a path such as "
                        "xception/block14_sepconv1, is the first layer that trains): the frozen and trainable "
                        "layers, the parameter split, and the code for Keras 3 and tf-keras")
    f.add_argument("--snippet", choices=("keras", "tf-keras"),
                   help="the code's flavour for --format python (default: the file's own Keras)")
    f.add_argument("-o", "--output", metavar="OUT",
                   help="with --freeze-until: write a copy of the model file (.keras, .h5, .json) whose config "
                        "carries those trainable flags")
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
    from archdiff.errors import UsageError

    if args.freeze_until is None:
        for flag, value in (("--snippet", args.snippet), ("-o", args.output)):
            if value is not None:
                raise UsageError(f"{flag} goes with --freeze-until", hint="add --freeze-until NAME|INDEX")
        if args.format == "python":
            raise UsageError("--format python prints --freeze-until's code", hint="add --freeze-until NAME|INDEX")
    elif args.grep is not None or args.format == "csv" or args.operations:
        raise UsageError("--freeze-until prints its own list of layers",
                         hint="drop --grep, --operations and --format csv (use text, json or python)")
    arch = load_model(args)
    if args.freeze_until is not None:
        return _run_freeze(args, arch)
    rows = layer_rows(arch, _grep(args.grep), operations=args.operations)
    if args.grep is not None and not rows:
        # As grep(1) does: nothing matched is exit 1, said on stderr, with nothing on stdout.
        print(f"archdiff: no layer path or class matches --grep {visible(args.grep)!s} in {visible(args.model)}",
              file=sys.stderr)
        return 1
    if args.format == "json":
        emit(dump_json({"model": arch.name, "has_topology": arch.has_topology, "notes": list(arch.notes),
                        "constructor": constructor(arch), "layers": rows}))
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


def _run_freeze(args, arch) -> int:
    from archdiff.views.freeze import FLAVOURS, plan_freeze, render_freeze_text, visible_code, write_frozen

    plan = plan_freeze(arch, args.freeze_until)
    if args.output:
        write_frozen(arch, plan, args.output)
    if args.format == "json":
        data = plan.to_dict()
        data["output"] = args.output
        emit(dump_json(data))
    elif args.format == "python":
        flavour = args.snippet or ("tf-keras" if arch.source.dialect == "keras2" else "keras")
        emit(visible_code(plan.snippet(flavour)))
    else:
        own = "tf-keras" if arch.source.dialect == "keras2" else "keras"
        emit(render_freeze_text(plan, (own,) + tuple(f for f in FLAVOURS if f != own)))
    if args.output:
        print(f"archdiff: wrote {visible(args.output)}: {len(plan.frozen)} layers with weights frozen, "
              f"{len(plan.trainable)} trainable", file=sys.stderr)
    return 0
