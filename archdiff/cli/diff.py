"""``archdiff diff`` (two models) and ``archdiff gate`` (changed files against a git revision).

This module owns the two commands' arguments and how their reports are
printed. The work is the library's: :func:`archdiff.diff.diff` and the policy
for ``diff``, :mod:`archdiff.diff.gate` (which iterates over the files) for ``gate``.
"""
from __future__ import annotations

import sys

from archdiff.errors import UsageError
from archdiff.output import refuse_overwriting_inputs, write_text
from archdiff.textfmt import use_colour
from archdiff.cli.common import dump_json, emit, factory_kwargs

#: ``--fail-on`` values: archdiff.diff.FAIL_ON_SPECIAL + archdiff.diff.KINDS.
FAIL_ON_CHOICES = ("any", "none", "cosmetic", "weights-compatible", "weights-breaking", "interface-changing",
                   "topology-changing")
#: What ``archdiff gate`` fails on when neither --fail-on nor a policy says otherwise (for its --help;
#: the same as archdiff.diff.gate.GATE_DEFAULT_FAIL_ON, which tests/test_diff_api.py checks).
GATE_DEFAULT_FAIL_ON = ("weights-breaking", "interface-changing")


def _add_diff_options(p) -> None:
    # Spelled out rather than imported: building the parser must not import the diff engine
    # (every command pays for it); tests/test_diff.py checks these equal archdiff.diff's.
    kinds = FAIL_ON_CHOICES
    p.add_argument("--format", choices=("text", "json", "markdown", "html"), default="text",
                   help="text (git-diff-like), json (schema: archdiff/schemas/diff.schema.json), markdown "
                        "(a pull-request comment) or html (a self-contained page with the graphs; needs -o)")
    p.add_argument("--strict", action="store_true",
                   help="show serialization noise too (module names, shared_object_id, dtype policy objects, "
                        "keys written with default values ...), as cosmetic changes")
    p.add_argument("--ignore", action="append", default=[], metavar="PATH",
                   help="hide changes at this config path (a.b.c, a glob, or a bare key at any depth; "
                        "LAYER_GLOB:PATH for some layers only); repeatable")
    p.add_argument("--no-renames", dest="detect_renames", action="store_false",
                   help="match layers by name only (no rename detection)")
    p.add_argument("--fail-on", action="append", default=[], metavar="KIND",
                   help=f"exit 1 only if the diff has one of these kinds: {', '.join(kinds)} "
                        "(repeatable or comma-separated; default: any)")
    p.add_argument("--policy", metavar="FILE", help="a YAML policy to gate on (see docs/diff.md)")
    p.add_argument("--full", action="store_true", help="text: list unchanged layers and long runs in full")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the text report (auto: only on a terminal, never when NO_COLOR is set)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")


def register(sub) -> None:
    p = sub.add_parser(
        "diff", help="what changed between two models: layers, renames, configs, weights, inputs/outputs",
        description="Compare two models (any formats and Keras versions). Exit 0 identical, 1 different "
                    "(as --fail-on / --policy say), 2 error.")
    p.add_argument("a", metavar="A", help="the old model: file or package.module:callable")
    p.add_argument("b", metavar="B", help="the new model: file or package.module:callable")
    p.add_argument("--arg", dest="factory_args", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for both module:callable factories")
    p.add_argument("--arg-a", dest="factory_args_a", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for A's factory only")
    p.add_argument("--arg-b", dest="factory_args_b", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for B's factory only")
    p.add_argument("--map", dest="maps", action="append", default=[], metavar="OLD=NEW",
                   help="pair A's layer OLD (a path; a nested model's layers go with it) with B's NEW before "
                        "anything else; 're:PATTERN=REPLACEMENT' substitutes a regex (re:^=base/ puts A under "
                        "B's nested model 'base'); repeatable, as in transfer")
    p.add_argument("--map-file", dest="map_files", action="append", default=[], metavar="FILE",
                   help="rename rules from a file: YAML/JSON {OLD: NEW} or lines OLD=NEW (# comments)")
    _add_diff_options(p)
    p.set_defaults(run=run_diff)

    g = sub.add_parser(
        "gate", help="diff changed model files against a git revision and fail on breaking changes "
                     "(the pre-commit hook)",
        description="For each FILE, diff the version at --against (default HEAD) with the one in the working "
                    "tree. Without --policy, a .archdiff-policy.yaml at the repository root is used if there "
                    "is one; without a policy or --fail-on, the gate fails on "
                    + " and ".join(GATE_DEFAULT_FAIL_ON) + " changes.")
    g.add_argument("files", nargs="*", metavar="FILE", help="model files (pre-commit passes the staged ones)")
    g.add_argument("--against", default="HEAD", metavar="REV", help="the revision to compare with (default HEAD)")
    _add_diff_options(g)
    g.set_defaults(run=run_gate)


def options_from(args, *, default_fail_on=("any",)):
    from archdiff.diff import DiffOptions

    fail_on = tuple(v.strip() for raw in args.fail_on for v in raw.split(",") if v.strip())
    maps = []
    if getattr(args, "maps", None) or getattr(args, "map_files", None):
        from archdiff.diff.matching.rules import load_map_file, parse_map_rule

        maps = [parse_map_rule(text, "--map") for text in args.maps]
        for path in args.map_files:
            maps.extend(load_map_file(path))
    return DiffOptions(detect_renames=args.detect_renames, strict=args.strict, ignore=tuple(args.ignore),
                       fail_on=fail_on or tuple(default_fail_on), maps=tuple(maps))


def _colour(args) -> bool:
    if args.output or args.format != "text":
        return False
    if args.color == "always":
        return True
    if args.color == "never":
        return False
    return use_colour(sys.stdout)


def _write(args, text: str, inputs: list[str]) -> None:
    if args.output:
        refuse_overwriting_inputs(args.output, inputs)
        write_text(args.output, text)
    else:
        emit(text)


def run_diff(args) -> int:
    from archdiff.diff import diff
    from archdiff.diff.gate import decide
    from archdiff.diff.render import render
    from archdiff.read import load

    if args.format == "html" and not args.output:
        raise UsageError("--format html writes a page, not terminal text", hint="add -o report.html")
    options = options_from(args)
    policy = None
    if args.policy:
        from archdiff.diff.policy import load_policy

        policy = load_policy(args.policy)
    both = factory_kwargs(args.factory_args)
    a = load(args.a, factory_kwargs={**both, **factory_kwargs(args.factory_args_a)})
    b = load(args.b, factory_kwargs={**both, **factory_kwargs(args.factory_args_b)})
    d = diff(a, b, options)
    result = None
    if policy is not None:
        from archdiff.diff.policy import check

        result = check(d, policy)
    code = decide(d, result, fail_on_given=bool(args.fail_on))
    if args.format == "html":
        from archdiff.diff.render.html import render_diff_html

        text = render_diff_html(d, a, b, policy=result, exit_code=code)
    else:
        text = render(d, args.format, colour=_colour(args), policy=result, exit_code=code, full=args.full)
    _write(args, text, [args.a, args.b])
    return code


def run_gate(args) -> int:
    from archdiff.diff.gate import GateResult, default_fail_on, find_policy, iter_gate_files
    from archdiff.diff.render import render

    if args.format == "html":
        raise UsageError("archdiff gate has no html report", hint="use archdiff diff A B --format html -o report.html")
    policy_path, policy = find_policy(args.policy)
    options = options_from(args, default_fail_on=default_fail_on(policy))
    colour = _colour(args)
    files = []
    texts = []
    worst = 0
    for f in iter_gate_files(args.files, against=args.against, options=options, policy=policy,
                             fail_on_given=bool(args.fail_on)):
        worst = max(worst, f.exit_code)
        if args.format == "json":
            files.append(f)
        elif f.status == "deleted":
            texts.append(f"archdiff gate: {f.path}: deleted; nothing to check\n")
        elif f.status == "new":
            texts.append(f"archdiff gate: {f.path}: new at {args.against}; nothing to compare\n")
        else:
            texts.append(render(f.diff, args.format, colour=colour, policy=f.policy, exit_code=f.exit_code,
                                full=args.full))
    if args.format == "json":
        text = dump_json(GateResult(args.against, policy_path, options, tuple(files)).to_dict())
    else:
        if not args.files:
            texts.append("archdiff gate: no model files given; nothing to check\n")
        text = ("\n" if args.format == "text" else "\n---\n\n").join(texts)
        if args.format == "text" and args.files:
            verdict = "failed" if worst else "passed"
            text += f"\narchdiff gate: {verdict} ({len(args.files)} file{'s' if len(args.files) != 1 else ''}" \
                    f"{', policy ' + policy_path if policy_path else ', failing on ' + ', '.join(options.fail_on)})\n"
    _write(args, text, list(args.files))
    return worst
