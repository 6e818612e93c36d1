"""``archdiff textconv``: a model as stable text, for git's diff driver.

git runs this on every file routed to the driver and aborts the whole
``git diff`` when it fails, so it never fails: a file that is not a readable
model, or any error while reading one, prints a one-line placeholder (or a
text file's own lines) on stdout and exits 0; ``--no-fallback`` gives the
error instead. Everything printed goes through :mod:`archdiff.safetext`: no
name from the file can start a line of its own.
"""
from __future__ import annotations

import hashlib
import os
import stat

from archdiff.cli.common import add_model_args, emit, load_model
from archdiff.errors import ArchdiffError
from archdiff.safetext import visible

#: A file up to this size that is valid UTF-8 without NUL bytes is shown as its own (escaped) lines.
MAX_TEXT_FALLBACK = 16 * 1024 * 1024


def register(sub) -> None:
    p = sub.add_parser(
        "textconv", help="print a model as stable, canonical text (git's textconv diff driver)",
        description="Print the architecture one fact per line, serialization noise removed, and one line per "
                    "layer with a short digest of its weight values, so that `git diff` shows what changed. "
                    "Files that are not readable models, and errors while "
                    "reading one, are printed as the file's own text lines or a one-line placeholder with a "
                    "digest, exit 0, so that git never fails on them.")
    add_model_args(p, build=False)  # git runs textconv unattended: never a build
    p.add_argument("--no-fallback", dest="fallback", action="store_false",
                   help="fail (exit 2) on a file that is not a readable model instead of printing a placeholder")
    p.add_argument("--no-values", dest="values", action="store_false",
                   help="leave out the per-layer digest of the weight values (reads no tensor data)")
    p.set_defaults(run=run_textconv)


def run_textconv(args) -> int:
    from archdiff.diff.canonical import text_form

    try:
        arch = load_model(args)
        text = text_form(arch, _digests(arch) if getattr(args, "values", True) else None)
    except Exception as exc:  # noqa: BLE001 - git's diff must go on whatever happened (MemoryError too)
        if not args.fallback:
            raise
        emit(fallback(args.model, exc))
        return 0
    emit(text)
    return 0


def _digests(arch) -> dict[str, str]:
    """Each layer's weight-value digest (:func:`archdiff.diff.values.layer_digests`); the architecture alone
    where the weights cannot be read, so that git still shows it."""
    from archdiff.diff.values import layer_digests

    try:
        return layer_digests(arch)
    except ArchdiffError:
        return {}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ArchdiffError):
        return exc.message.rstrip(".")
    if isinstance(exc, MemoryError):
        return "out of memory reading it"
    return f"archdiff failed reading it: {type(exc).__name__}"


def fallback(path: str, exc: BaseException) -> str:
    """What git shows for a file archdiff cannot read as a model: its own text lines, else one placeholder line."""
    reason = " ".join(visible(_reason(exc)).split())
    head = f"# archdiff textconv: not a readable model ({reason})"
    try:
        info = os.stat(path)
    except OSError:
        return head + "\n"
    if not stat.S_ISREG(info.st_mode):
        return head + "; not a regular file\n"
    try:
        digest = hashlib.sha256()
        first = b""
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                if not first:
                    first = chunk
                digest.update(chunk)
        if info.st_size <= MAX_TEXT_FALLBACK and b"\0" not in first[:8192]:
            with open(path, "rb") as fh:
                data = fh.read(MAX_TEXT_FALLBACK + 1)
            try:
                return _text_lines(data.decode("utf-8"))
            except UnicodeDecodeError:
                pass
    except OSError as err:
        return head + f"; cannot read it ({visible(err.strerror or err)})\n"
    return head + f"; binary file, {info.st_size} bytes, sha256 {digest.hexdigest()}\n"


def _text_lines(text: str) -> str:
    """A text file's lines, each escaped (tabs kept): no control or bidi character reaches git's pager raw."""
    lines = text.split("\n")
    out = ["\t".join(visible(piece) for piece in line.split("\t")) for line in lines]
    return "\n".join(out)
