"""``archdiff transfer SOURCE TARGET -o OUT``: copy trained weights by layer name.

Exit codes: 0 every target layer with weights got them from the source; 1 some
target layers kept their own weights (no source layer, or skipped with
``--skip-mismatch``); 2 an error, nothing written. See docs/transfer.md.
"""
from __future__ import annotations

from archdiff.errors import UsageError
from archdiff.cli.common import emit


def register(sub) -> None:
    p = sub.add_parser(
        "transfer",
        help="copy trained weights from SOURCE into a copy of TARGET by layer name (Keras 2 and Keras 3 files)",
        description=(
            "Copy every variable of every layer TARGET shares with SOURCE by name (nested models by path) into "
            "a copy of TARGET, written to OUT in TARGET's format. Never shifts weights by position across layers. "
            "Exit 0: every target layer got its weights; 1: some kept their own; 2: error, nothing written."
        ),
    )
    p.add_argument("source", help="file with the trained weights: .keras, .h5 (Keras 2 or 3), .weights.h5, "
                                  ".weights.json (sharded)")
    p.add_argument("target", help="the model to fill: .keras, or its weights as .weights.h5 or .h5")
    p.add_argument("-o", "--output", metavar="OUT", help="the new file, in TARGET's format (required unless --dry-run)")
    p.add_argument("--map", dest="maps", action="append", default=[], metavar="OLD=NEW",
                   help="rename source layer OLD (a path; a nested model renames its layers too) to target layer "
                        "NEW; 're:PATTERN=REPLACEMENT' substitutes a regex (\\1 for groups); repeatable")
    p.add_argument("--map-file", dest="map_files", action="append", default=[], metavar="FILE",
                   help="rename rules from a file: YAML/JSON {OLD: NEW} or lines OLD=NEW (# comments)")
    p.add_argument("--match", choices=("name", "auto"), default="name",
                   help="name: same path after the rules (default); auto: also the renames the diff detects")
    p.add_argument("--skip-mismatch", action="store_true",
                   help="leave matched layers whose shapes differ as they are (reported), instead of failing")
    p.add_argument("--allow-cast", action="store_true",
                   help="allow lossy dtype changes (float32 into float16 ...); lossless ones are always allowed")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text", help="report format")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    p.set_defaults(run=run_transfer)


def _options(args):
    from archdiff.transfer import TransferOptions, load_map_file, parse_map_rule

    rules = [parse_map_rule(text, "--map") for text in args.maps]
    for path in args.map_files:
        rules.extend(load_map_file(path))
    return TransferOptions(maps=tuple(rules), match=args.match, skip_mismatch=args.skip_mismatch,
                           allow_cast=args.allow_cast)


def run_transfer(args) -> int:
    from archdiff.transfer import TransferError, TransferReport, apply_transfer, dry_run, plan_transfer
    from archdiff.transfer.render import render

    if not args.output and not args.dry_run:
        raise UsageError("no output file", hint="give -o OUT, or --dry-run to see the plan only")
    plan = plan_transfer(args.source, args.target, _options(args))
    if args.dry_run:
        report = dry_run(plan, args.output)
        emit(render(report, args.format))
        return report.return_code
    try:
        report = apply_transfer(plan, args.output, progress=False if args.no_progress else None)
    except TransferError as exc:
        if exc.plan is not None:
            emit(render(TransferReport(exc.plan, args.output), args.format))
        raise
    emit(render(report, args.format))
    return report.return_code
