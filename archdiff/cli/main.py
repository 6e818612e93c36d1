"""The ``archdiff`` command line: thin over the Python API.

``main(argv=None) -> int``. Exit codes follow diff(1): 0 nothing to report,
1 differences or a policy failure, 2 an error. Errors are one line on stderr;
``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import os
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


def error_line(exc: ArchdiffError) -> str:
    """The one error line: what, where, what to do; nothing from a file or a path shown raw.

    As :meth:`ArchdiffError.one_line`, with :func:`archdiff.safetext.visible`
    applied before spaces are collapsed, so a newline in a file name reads
    ``\\n`` (the name can be found again) and an ESC or U+202E cannot reach
    the terminal.
    """
    from archdiff.safetext import visible

    text = (f"{exc.path}: " if exc.path else "") + exc.message.rstrip(".")
    if exc.hint:
        text += f"; {exc.hint.rstrip('.')}"
    return " ".join(visible(text).split()) + "."


#: Exit status when stdout is a closed pipe (``archdiff layers big.keras | head``): what a shell reports
#: for a tool that SIGPIPE ended (128 + 13), as ``cat`` or ``grep`` would give; nothing is printed.
EXIT_CLOSED_PIPE = 141


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's last flush of what is left cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (AttributeError, ValueError, OSError):
        pass


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass  # stderr gone too: the exit status is all that is left


def main(argv: list[str] | None = None) -> int:
    """Run one command; the collector runs less often meanwhile (archdiff.limits.GC_THRESHOLDS) and the
    caller's thresholds come back when it ends, as does no reader it started and did not need (an error
    in A ends a diff before B's read, begun beside it, is collected)."""
    from archdiff.limits import GC_THRESHOLDS
    from archdiff.read.contain import abandon

    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        return _main(argv)
    finally:
        gc.set_threshold(*previous)
        abandon()


def _main(argv: list[str] | None) -> int:
    _file_names_pass_through(sys.stdout)
    parser = build_parser(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    try:
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, while it can still be reported
        return code
    except ArchdiffError as exc:
        if args.debug:
            raise
        _say(f"archdiff: error: {error_line(exc)}")
        return exc.exit_code
    except KeyboardInterrupt:
        _say("archdiff: interrupted")
        return 130
    except BrokenPipeError:
        # The reader is gone (| head): end quietly, as other tools do.
        _discard_stdout()
        return EXIT_CLOSED_PIPE
    except RecursionError:
        if args.debug:
            raise
        _say("archdiff: error: the input nests too deeply to be a model.")
        return 2
    except MemoryError:
        _say("archdiff: error: out of memory reading the input; it is too large or malformed.")
        return 2
    except OSError as exc:
        if args.debug:
            raise
        if _is_stdout_error(exc):
            _discard_stdout()
            _say(f"archdiff: error: cannot write the output to stdout ({exc.strerror or exc}); "
                 "check the disk or the pipe it goes to.")
            return 2
        _say(f"archdiff: error: {_crash_text(exc)}")
        return 2
    except Exception as exc:  # noqa: BLE001 - any crash is one line and exit 2; --debug shows the traceback
        if args.debug:
            raise
        _say(f"archdiff: error: {_crash_text(exc)}")
        return 2


def _is_stdout_error(exc: OSError) -> bool:
    """Whether ``exc`` came from writing stdout (a full disk, /dev/full), not from a file archdiff opened."""
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO) and exc.filename is None


def _crash_text(exc: BaseException) -> str:
    """An unexpected exception as one line: a bug of archdiff's, said so, with where to look."""
    from archdiff.safetext import visible

    message = " ".join(visible(str(exc)).split())[:300]
    return (f"unexpected {type(exc).__name__}" + (f": {message}" if message else "")
            + "; this is a bug in archdiff: run again with --debug for the traceback and report it.")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
