"""The ``archdiff`` command line: thin over the Python API.

``main(argv=None) -> int``. Exit codes follow diff(1): 0 nothing to report,
1 differences or a policy failure, 2 an error. Errors are one line on stderr;
``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from archdiff.errors import ArchdiffError

#: Command modules under archdiff.cli; each has register(subparsers).
COMMAND_MODULES = ("layers", "export", "diff", "textconv", "git_config", "transfer", "validate")


def _wanted(argv: list[str] | None) -> tuple[str, ...]:
    """The command modules this run needs: only the named command's, else all (for help)."""
    args = sys.argv[1:] if argv is None else argv
    first = next((a for a in args if not a.startswith("-")), None)
    if first is not None:
        name = first.replace("-", "_")
        if name in COMMAND_MODULES:
            return (name,)
        for module in COMMAND_MODULES:  # commands that share a module (summary is in layers)
            if name in _ALIASES.get(module, ()):
                return (module,)
    return COMMAND_MODULES


#: Commands registered by a module whose name differs from theirs.
_ALIASES = {"layers": ("summary",), "diff": ("gate",)}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the named command's module is imported."""
    from archdiff import __version__

    parser = argparse.ArgumentParser(
        prog="archdiff",
        description="Read, graph, diff and transfer weights between Keras model architectures.",
    )
    parser.add_argument("--version", action="version", version=f"archdiff {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _wanted(argv) if argv is not None else COMMAND_MODULES:
        try:
            module = importlib.import_module(f"archdiff.cli.{name}")
        except ModuleNotFoundError as exc:
            # Commands still being written are left out until their module lands.
            if exc.name != f"archdiff.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser





def _file_names_pass_through(stream) -> None:
    """Let a file name that is not UTF-8 (decoded with surrogateescape, as argv is) be printed as its bytes.

    A strict stream (a UTF-8 locale's default) would crash on it instead.
    """
    try:
        if stream.errors == "strict":
            stream.reconfigure(errors="surrogateescape")
    except (AttributeError, ValueError, OSError):
        pass


def main(argv: list[str] | None = None) -> int:
    _file_names_pass_through(sys.stdout)
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ArchdiffError as exc:
        if args.debug:
            raise
        print(f"archdiff: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("archdiff: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except RecursionError:
        if args.debug:
            raise
        print("archdiff: error: the input nests too deeply to be a model.", file=sys.stderr)
        return 2
    except MemoryError:
        print("archdiff: error: out of memory reading the input; it is too large or malformed.", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
