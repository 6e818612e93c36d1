"""``archdiff transfer SOURCE TARGET -o OUT``: copy trained weights by layer name.

Exit codes: 0 the transfer did what was asked (target layers the source
lacks, such as a new head, keep their own weights); 1 refused on coverage,
nothing written (``--require-all``, ``--min-coverage``, or models that
probably do not correspond, unless ``--allow-low-coverage``); 2 an error,
nothing written. The report goes to stdout; every dry run and every refusal
or error also says its one reason on stderr. See docs/transfer.md.
"""
from __future__ import annotations

import sys

from archdiff.cli.common import add_build_args, build_options, emit
from archdiff.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "transfer",
        help="copy trained weights from SOURCE into a copy of TARGET by layer name (Keras 2 and Keras 3 files)",
        description=(
            "Copy every variable of every layer TARGET shares with SOURCE by name (nested models by path) into "
            "a copy of TARGET, written to OUT in TARGET's format. Never shifts weights by position across layers. "
            "Exit 0: done as asked (a new head keeps its own weights); 1: refused on coverage, nothing written; "
            "2: error, nothing written."
        ),
    )
    p.add_argument("source", help="file with the trained weights: .keras, .h5 (Keras 2 or 3), .weights.h5, "
                                  ".weights.json (sharded)")
    p.add_argument("target", help="the model to fill: .keras, or its weights as .weights.h5, .h5 or .weights.json "
                                  "(sharded)")
    p.add_argument("-o", "--output", metavar="OUT", help="the new file, in TARGET's format (required unless --dry-run)")
    p.add_argument("--map", dest="maps", action="append", default=[], metavar="OLD=NEW",
                   help="rename source layer OLD (a path; a nested model renames its layers too) to target layer "
                        "NEW; 're:PATTERN=REPLACEMENT' substitutes a regex (\\1 for groups; re:^=base/ puts the "
                        "source under the target's nested model 'base'); repeatable")
    p.add_argument("--map-file", dest="map_files", action="append", default=[], metavar="FILE",
                   help="rename rules from a file: YAML/JSON {OLD: NEW} or lines OLD=NEW (# comments)")
    p.add_argument("--match", choices=("name", "auto"), default="name",
                   help="name: same path after the rules (default); auto: also the renames the diff detects, and "
                        "a model nested in the other under a prefix")
    p.add_argument("--skip-mismatch", action="store_true",
                   help="leave matched layers whose shapes differ as they are (reported), instead of failing")
    p.add_argument("--adapt", action="append", default=[], metavar="NAME[,NAME]",
                   help="adapt variables whose shapes differ, each reported: input-channels (the first "
                        "convolution, as timm's adapt_input_conv), reshape (same elements, another layout), "
                        "slice-pad (sizes grew or shrank; new parts set to 0, or 1 for gamma/moving_variance)")
    p.add_argument("--allow-cast", action="store_true",
                   help="allow lossy dtype changes (float32 into float16 ...); lossless ones are always allowed")
    p.add_argument("--require-all", action="store_true",
                   help="refuse (exit 1, nothing written) unless every target layer with weights gets them")
    p.add_argument("--min-coverage", type=_fraction, metavar="FRACTION",
                   help="refuse (exit 1, nothing written) unless at least FRACTION (0-1) of the target's layers "
                        "with weights get them")
    p.add_argument("--allow-low-coverage", action="store_true",
                   help="write even when under half of the source's layers are used and under half of the "
                        "target's filled (by default refused: the models probably do not correspond)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, write nothing (exit code as for a run)")
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text", help="report format")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")
    add_build_args(p)
    p.set_defaults(run=run_transfer)


def _fraction(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (0.9 means 90%)")
    return value


def _options(args):
    from archdiff.transfer import TransferOptions, load_map_file, parse_map_rule

    rules = [parse_map_rule(text, "--map") for text in args.maps]
    for path in args.map_files:
        rules.extend(load_map_file(path))
    return TransferOptions(maps=tuple(rules), match=args.match, skip_mismatch=args.skip_mismatch,
                           allow_cast=args.allow_cast, adapt=tuple(args.adapt), require_all=args.require_all,
                           min_coverage=args.min_coverage, allow_low_coverage=args.allow_low_coverage)


def _say(text: str) -> None:
    from archdiff.safetext import visible

    print(f"archdiff: {visible(' '.join(text.split()))}", file=sys.stderr)


def run_transfer(args) -> int:
    from archdiff.transfer import TransferError, TransferReport, apply_transfer, dry_run, plan_transfer
    from archdiff.transfer.apply import problem_hint, problem_line
    from archdiff.transfer.render import dry_run_line, render

    if not args.output and not args.dry_run:
        raise UsageError("no output file", hint="give -o OUT, or --dry-run to see the plan only")
    from archdiff.read.dispatch import prefetch
    from archdiff.read.hdf5 import preload

    preload()  # the writer needs h5py, and the two readers' children inherit it instead of importing it
    source, target = args.source, args.target
    prefetch(target)  # read in its child while the source is read: side by side
    building = build_options(args)
    if building["build"]:  # keras-hub: pair by the variables' Keras names, located in the files by Keras
        from archdiff.read import load
        from archdiff.read.build import alike

        built = {path: load(path, **building) for path in (source, target)}
        paths = {id(arch): path for path, arch in built.items()}
        source, target = alike(built[source], built[target], lambda arch: load(paths[id(arch)]))
    plan = plan_transfer(source, target, _options(args))
    if args.dry_run:
        report = dry_run(plan, args.output)
        emit(render(report, args.format))
        code = report.exit_code
        if code == 2:
            _say(f"error: dry run: {problem_line(plan, dry_run=True)}; {problem_hint(plan)}.")
        elif code == 1:
            _say(f"refused (dry run): {plan.refusal}; nothing would be written.")
        else:
            _say(dry_run_line(report))
        return code
    try:
        report = apply_transfer(plan, args.output, progress=False if args.no_progress else None)
    except TransferError as exc:
        if exc.plan is None:
            raise
        emit(render(TransferReport(exc.plan, args.output), args.format))
        if exc.exit_code == 1:
            _say(exc.one_line())
        else:
            _say(f"error: {exc.one_line()}")
        return exc.exit_code
    emit(render(report, args.format))
    return report.exit_code
