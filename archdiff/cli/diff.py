"""``archdiff diff`` (two models) and ``archdiff gate`` (changed files against a git revision)."""
from __future__ import annotations

import os
import sys

from archdiff.errors import ArchdiffError, InputError, UsageError
from archdiff.output import refuse_overwriting_inputs, write_text
from archdiff.textfmt import use_colour
from archdiff.cli.common import dump_json, emit, factory_kwargs

#: ``--fail-on`` values: archdiff.diff.FAIL_ON_SPECIAL + archdiff.diff.KINDS.
FAIL_ON_CHOICES = ("any", "none", "cosmetic", "weights-compatible", "weights-breaking", "interface-changing",
                   "topology-changing")
#: What ``archdiff gate`` fails on when neither --fail-on nor a policy says otherwise.
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
    return DiffOptions(detect_renames=args.detect_renames, strict=args.strict, ignore=tuple(args.ignore),
                       fail_on=fail_on or tuple(default_fail_on))


def decide(d, policy_result, *, fail_on_given: bool) -> int:
    """The exit code: with a policy, the policy decides (and --fail-on, if given, adds to it)."""
    if policy_result is None:
        return d.exit_code
    code = 0 if policy_result.passed else 1
    if fail_on_given and d.exit_code:
        code = 1
    return code


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
    from archdiff.diff import gitdriver
    from archdiff.diff import SCHEMA_VERSION, diff
    from archdiff.diff.render import render, to_json_dict
    from archdiff.diff.policy import check, find_default, load_policy
    from archdiff.read import load

    if args.format == "html":
        raise UsageError("archdiff gate has no html report", hint="use archdiff diff A B --format html -o report.html")
    root = gitdriver.repo_root()
    policy_path = args.policy or find_default(root)
    policy = load_policy(policy_path) if policy_path else None
    default_fail_on = ("any",) if policy is not None else GATE_DEFAULT_FAIL_ON
    options = options_from(args, default_fail_on=default_fail_on)
    fail_on_given = bool(args.fail_on)
    colour = _colour(args)
    reports = []
    texts = []
    worst = 0
    for path in args.files:
        if not os.path.exists(path):
            reports.append({"path": path, "status": "deleted", "exit_code": 0, "report": None})
            texts.append(f"archdiff gate: {path}: deleted; nothing to check\n")
            continue
        old = gitdriver.blob_at(args.against, path)
        if old is None:
            reports.append({"path": path, "status": "new", "exit_code": 0, "report": None})
            texts.append(f"archdiff gate: {path}: new at {args.against}; nothing to compare\n")
            continue
        with gitdriver.as_file(old, path) as old_path:
            try:
                a = load(old_path)
            except ArchdiffError as exc:
                raise InputError(exc.message, path=f"{args.against}:{path}", hint=exc.hint) from None
        b = load(path)
        a = _relabel(a, f"{args.against}:{path}")
        d = diff(a, b, options)
        result = check(d, policy) if policy is not None else None
        if policy is not None:
            code = decide(d, result, fail_on_given=fail_on_given)
        else:
            code = d.exit_code
        worst = max(worst, code)
        if args.format == "json":
            reports.append({"path": path, "status": "compared", "exit_code": code,
                            "report": to_json_dict(d, policy=result, exit_code=code)})
        else:
            texts.append(render(d, args.format, colour=colour, policy=result, exit_code=code, full=args.full))
    if args.format == "json":
        text = dump_json({"schema_version": SCHEMA_VERSION, "against": args.against,
                          "policy": policy_path, "exit_code": worst, "files": reports})
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


def _relabel(arch, label: str):
    from dataclasses import replace

    return replace(arch, source=replace(arch.source, path=label))

