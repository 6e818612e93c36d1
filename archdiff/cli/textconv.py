"""``archdiff textconv``: a model as stable text, for git's diff driver."""
from __future__ import annotations

import hashlib
import os

from archdiff.errors import ArchdiffError
from archdiff.cli.common import add_model_args, emit, load_model


def register(sub) -> None:
    p = sub.add_parser(
        "textconv", help="print a model as stable, canonical text (git's textconv diff driver)",
        description="Print the architecture one fact per line, serialization noise removed, so that "
                    "`git diff` shows what changed. Files that are not readable models are printed as they are "
                    "(text) or as a one-line digest (binary), so that git never fails on them.")
    add_model_args(p)
    p.add_argument("--no-fallback", dest="fallback", action="store_false",
                   help="fail (exit 2) on a file that is not a readable model instead of printing it raw")
    p.set_defaults(run=run_textconv)


def run_textconv(args) -> int:
    from archdiff.diff.canonical import text_form

    try:
        arch = load_model(args)
    except ArchdiffError as exc:
        if not args.fallback or not os.path.isfile(args.model):
            raise
        emit(_fallback(args.model, exc))
        return 0
    emit(text_form(arch))
    return 0


def _fallback(path: str, exc: ArchdiffError) -> str:
    with open(path, "rb") as fh:
        data = fh.read()
    if b"\0" not in data[:8192]:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    digest = hashlib.sha256(data).hexdigest()
    return (f"# archdiff textconv: not a readable model ({exc.message})\n"
            f"binary file: {len(data)} bytes, sha256 {digest}\n")
