"""``archdiff diff`` (two models) and ``archdiff gate`` (changed files against a git revision).

This module owns the two commands' arguments and how their reports are
printed. The work is the library's: :func:`archdiff.diff.diff` and the policy
for ``diff``, :mod:`archdiff.diff.gate` (which iterates over the files) for ``gate``;
what both leave for CI (the job summary, annotations) is :mod:`archdiff.ci`'s.
"""
from __future__ import annotations

import sys

from archdiff.cli.common import add_build_args, build_options, dump_json, emit, factory_kwargs
from archdiff.errors import UsageError
from archdiff.output import refuse_overwriting_inputs, write_text
from archdiff.textfmt import use_colour

# The tables come from archdiff.vocabulary, which the diff stage uses too: building the parser must not
# import the diff engine, and a help text cannot drift from what the code does.
from archdiff.vocabulary import (
    DIFF_DEFAULT_FAIL_ON,
    DIFF_FORMATS,
    FAIL_ON_CHOICES,
    GATE_DEFAULT_FAIL_ON,
    GATE_FORMATS,
    VALUE_MODES,
)

_FORMAT_HELP = {"text": "text (git-diff-like)", "json": "json (schema: archdiff/schemas/diff.schema.json)",
                "markdown": "markdown (a pull-request comment)",
                "html": "html (a self-contained page with the graphs; needs -o)"}


#: Names of files that can hold weights (values are compared only when both do).
_WEIGHT_FILES = (".keras", ".h5", ".hdf5", ".weights.json")
#: Names of files whose weights tree is usually read without h5py (Keras 3's: archdiff.read.hdf5_lite).
_LITE_FILES = (".keras", ".weights.h5")


def _and(words) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def _add_diff_options(p, *, formats: tuple[str, ...], default_fail_on: str) -> None:
    names = [_FORMAT_HELP[f] for f in formats]
    p.add_argument("--format", choices=formats, default="text",
                   help=", ".join(names[:-1]) + " or " + names[-1])
    p.add_argument("--strict", action="store_true",
                   help="show serialization noise too (module names, shared_object_id, dtype policy objects, "
                        "keys written with default values ...), as cosmetic changes")
    p.add_argument("--ignore", action="append", default=[], metavar="PATH",
                   help="hide changes at this config path (a.b.c, a glob, or a bare key at any depth; "
                        "LAYER_GLOB:PATH for some layers only); repeatable")
    p.add_argument("--no-renames", dest="detect_renames", action="store_false",
                   help="match layers by name only (no rename detection)")
    p.add_argument("--fail-on", action="append", default=[], metavar="KIND",
                   help=f"exit 1 only if the diff has one of these kinds: {', '.join(FAIL_ON_CHOICES)} "
                        f"(repeatable or comma-separated; default: {default_fail_on})")
    p.add_argument("--values", choices=VALUE_MODES, default=None,
                   help="compare weight values when both sides carry weights: figures (max |delta|, relative "
                        "change, cosine, fraction changed, NaN/Inf; the default), equal (equal or not, stops at "
                        "the first difference) or off")
    p.add_argument("--topology-only", action="store_true",
                   help="compare the architectures only: shapes and dtypes of weights, not their values "
                        "(--values off)")
    p.add_argument("--policy", metavar="FILE", help="a YAML policy to gate on (see docs/diff.md)")
    p.add_argument("--full", action="store_true", help="text: list unchanged layers and long runs in full")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the text report (auto: only on a terminal, never when NO_COLOR is set)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    # CI (archdiff.ci, docs/ci.md): the Markdown report for the job page, annotations for the files.
    p.add_argument("--summary", metavar="FILE",
                   help="also append the Markdown report to FILE (default: $GITHUB_STEP_SUMMARY when it is set)")
    p.add_argument("--no-summary", action="store_true", help="append nothing to $GITHUB_STEP_SUMMARY")
    p.add_argument("--annotations", choices=("none", "github"), default="none",
                   help="github: after the report, a ::error workflow command for each model file that fails "
                        "and a ::warning for each that changed and passes (default: none)")


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
    add_build_args(p)
    p.add_argument("--map", dest="maps", action="append", default=[], metavar="OLD=NEW",
                   help="pair A's layer OLD (a path; a nested model's layers go with it) with B's NEW before "
                        "anything else; 're:PATTERN=REPLACEMENT' substitutes a regex (re:^=base/ puts A under "
                        "B's nested model 'base'); repeatable, as in transfer")
    p.add_argument("--map-file", dest="map_files", action="append", default=[], metavar="FILE",
                   help="rename rules from a file: YAML/JSON {OLD: NEW} or lines OLD=NEW (# comments)")
    _add_diff_options(p, formats=DIFF_FORMATS, default_fail_on=", ".join(DIFF_DEFAULT_FAIL_ON) + ", or the policy's rules")
    p.set_defaults(run=run_diff)

    g = sub.add_parser(
        "gate", help="diff changed model files against a git revision and fail on breaking changes "
                     "(the pre-commit hook)",
        description="For each FILE, diff the version at --against (default HEAD) with the one in the working "
                    "tree; a FILE in neither is an error. Without --policy, a .archdiff-policy.yaml at the "
                    "repository root is used if there is one, as it is at --against: a policy changed in the "
                    "working tree is reported and can only add failures (unless --policy-from-worktree). "
                    "Without a policy or --fail-on, the gate fails on " + _and(GATE_DEFAULT_FAIL_ON) + " changes.")
    g.add_argument("files", nargs="*", metavar="FILE", help="model files (pre-commit passes the staged ones)")
    g.add_argument("--against", default="HEAD", metavar="REV", help="the revision to compare with (default HEAD)")
    g.add_argument("--policy-from-worktree", action="store_true",
                   help="trust the policy as it is in the working tree (by default the policy at --against "
                        "decides, and a changed work-tree policy can only add failures)")
    _add_diff_options(g, formats=GATE_FORMATS, default_fail_on=", ".join(GATE_DEFAULT_FAIL_ON)
                      + " without a policy, else the policy's rules")
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
    values = getattr(args, "values", None)
    if getattr(args, "topology_only", False):
        if values not in (None, "off"):
            raise UsageError(f"--topology-only compares no values, and --values {values} asks to",
                             hint="give one of them")
        values = "off"
    return DiffOptions(detect_renames=args.detect_renames, strict=args.strict, ignore=tuple(args.ignore),
                       fail_on=fail_on or tuple(default_fail_on), maps=tuple(maps), values=values or "figures")


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
    from archdiff.ci import from_args as ci_report
    from archdiff.diff import diff
    from archdiff.diff.gate import decide
    from archdiff.diff.render import render
    from archdiff.read import load

    if args.format == "html" and not args.output:
        raise UsageError("--format html writes a page, not terminal text", hint="add -o report.html")
    ci = ci_report(args, command="diff", inputs=[args.a, args.b])
    options = options_from(args)
    policy = None
    if args.policy:
        from archdiff.diff.policy import load_policy

        policy = load_policy(args.policy)
    from archdiff.read.dispatch import prefetch
    from archdiff.read.hdf5 import preload
    from archdiff.read.hdf5_lite import enabled as lite_enabled

    # The inputs are read in their children side by side. A Keras 3 file's tree needs no h5py (read.hdf5_lite)
    # unless that reader is off. Any other weight file's reader needs h5py: imported here first then, for both
    # children to inherit, instead of three imports on two cores.
    weights = all(str(x).lower().endswith(_WEIGHT_FILES) for x in (args.a, args.b))
    values = weights and options.values != "off"
    lite = all(str(x).lower().endswith(_LITE_FILES) for x in (args.a, args.b)) and lite_enabled()
    if weights and not lite:
        preload()
    prefetch(args.a)
    prefetch(args.b)
    if values:
        # Their values are read without h5py too (archdiff.store.lite), with numpy: only numpy is imported
        # meanwhile then; h5py is imported where a file turns out to need it.
        preload(h5py=not lite)
    both = factory_kwargs(args.factory_args)
    building = build_options(args)
    a = load(args.a, factory_kwargs={**both, **factory_kwargs(args.factory_args_a)}, **building)
    b = load(args.b, factory_kwargs={**both, **factory_kwargs(args.factory_args_b)}, **building)
    if building["build"]:
        from archdiff.read.build import alike

        a, b = alike(a, b, lambda arch: load(args.a if arch is a else args.b,
                                             factory_kwargs={**both, **factory_kwargs(
                                                 args.factory_args_a if arch is a else args.factory_args_b)}))
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
    ci.add_diff(args.b, d, result, code)
    ci.begin()
    _write(args, text, [args.a, args.b])
    ci.finish()
    return code


def run_gate(args) -> int:
    from archdiff.ci import from_args as ci_report
    from archdiff.diff.gate import GateResult, default_fail_on, iter_gate_files, resolve_policy
    from archdiff.diff.render import render
    from archdiff.safetext import md_code, md_text, visible

    ci = ci_report(args, command="gate", inputs=args.files)
    found = resolve_policy(args.policy, against=args.against, from_worktree=args.policy_from_worktree)
    policy_path, policy = found.path, found.policy
    options = options_from(args, default_fail_on=default_fail_on(policy))
    colour = _colour(args)
    files = []
    texts = []
    worst = 0
    markdown = args.format == "markdown"

    def said(path: str, what: str) -> str:
        if markdown:
            return f"**archdiff gate**: {md_code(path)}: {md_text(what)}\n"
        return f"archdiff gate: {visible(path)}: {visible(what)}\n"

    for note in found.notes:
        texts.append(f"> **Note:** {md_text(note)}\n" if markdown else f"archdiff gate: note: {visible(note)}\n")
    for f in ci.watch(iter_gate_files(args.files, against=args.against, options=options, policy=policy,
                                      fail_on_given=bool(args.fail_on), worktree_policy=found.worktree),
                      policy_path=policy_path, fail_on=options.fail_on):
        worst = max(worst, f.exit_code)
        if args.format == "json":
            files.append(f)
        elif f.status == "deleted":
            texts.append(said(f.path, "deleted in the working tree; nothing to check"))
        elif f.status == "new":
            texts.append(said(f.path, f"new (not at {args.against}); nothing to compare"))
        else:
            texts.append(render(f.diff, args.format, colour=colour, policy=f.policy, exit_code=f.exit_code,
                                full=args.full))
    if args.format == "json":
        text = dump_json(GateResult(args.against, policy_path, options, tuple(files), found.notes).to_dict())
    else:
        if not args.files:
            texts.append("**archdiff gate**: no model files given; nothing to check\n" if markdown
                         else "archdiff gate: no model files given; nothing to check\n")
        text = ("\n" if args.format == "text" else "\n---\n\n").join(texts)
        if args.format == "text" and args.files:
            verdict = "failed" if worst else "passed"
            decided = (f"policy {visible(policy_path)}" if policy_path
                       else f"failing on {', '.join(options.fail_on)}")
            if found.worktree is not None:
                decided += f", and the working tree's {visible(found.worktree.source)}"
            text += f"\narchdiff gate: {verdict} ({len(args.files)} file{'s' if len(args.files) != 1 else ''}, " \
                    f"{decided})\n"
    ci.begin()
    _write(args, text, list(args.files))
    ci.finish()
    return worst
