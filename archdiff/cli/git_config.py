"""``archdiff git-config``: set up git so that `git diff` shows model architectures."""
from __future__ import annotations

from archdiff.cli.common import emit
from archdiff.safetext import visible


def register(sub) -> None:
    p = sub.add_parser(
        "git-config", help="set up the git diff driver (diff.archdiff.textconv) and print .gitattributes lines",
        description="Write diff.archdiff.textconv to the repository's git config (or with --global to yours), "
                    "print the .gitattributes lines that route model files through it, and with "
                    "--write-attributes add them to the repository's .gitattributes.")
    p.add_argument("--global", dest="global_", action="store_true", help="write to your global git config")
    p.add_argument("--write-attributes", action="store_true",
                   help="append the missing lines to .gitattributes at the repository root")
    p.add_argument("--pattern", action="append", default=[], metavar="GLOB",
                   help="also route these paths through the driver, e.g. 'models/*.json' (repeatable)")
    p.add_argument("--command", metavar="CMD", help="the textconv command git runs (default: this install's "
                                                     "archdiff console script by its absolute path, or this "
                                                     "Python's -m archdiff textconv: it works without archdiff "
                                                     "on PATH)")
    p.add_argument("--print-only", action="store_true", help="change nothing; print what would be set")
    p.set_defaults(run=run_git_config)


def run_git_config(args) -> int:
    from archdiff.diff import gitdriver

    command = args.command or gitdriver.textconv_command()
    patterns = [*gitdriver.DEFAULT_PATTERNS, *args.pattern]
    lines = gitdriver.attribute_lines(patterns)
    scope = "global" if args.global_ else "repository"
    out = []
    if args.print_only:
        out.append(f"# would run: git config {'--global' if args.global_ else '--local'} "
                   f"diff.{gitdriver.DRIVER}.textconv '{command}'")
    else:
        for key, value in gitdriver.configure(command, global_=args.global_):
            out.append(f"# set {key} = {value} ({scope} git config)")
    if args.write_attributes and not args.print_only:
        root = gitdriver.repo_root()
        added = gitdriver.append_attributes(root, lines)
        if added:
            out.append(f"# added {len(added)} line{'s' if len(added) != 1 else ''} to {root}/.gitattributes:")
        else:
            out.append(f"# {root}/.gitattributes already has these lines:")
    else:
        out.append("# add these lines to .gitattributes (or run again with --write-attributes):")
    out.extend(lines)
    emit("\n".join(visible(line) for line in out))
    return 0
