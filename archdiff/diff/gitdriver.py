"""Git integration: the textconv diff driver's settings, .gitattributes lines, old blobs.

This module owns everything archdiff asks of git: where the repository is,
writing ``diff.archdiff.textconv`` with ``git config``, the ``.gitattributes``
lines that route model files through it, and reading a file as it was at a
revision (for ``archdiff gate``). Git is run as a subprocess with an argument
list, never through a shell.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

from archdiff.errors import ArchdiffError, UsageError

DRIVER = "archdiff"
#: Files routed through the driver by default; model ``.json`` files need a pattern of their own
#: (``--pattern 'models/*.json'``) since most JSON files in a repository are not models.
DEFAULT_PATTERNS = ("*.keras", "*.h5", "*.hdf5")


class GitError(ArchdiffError):
    """Git is missing, or a git command failed."""


def _git(args: list[str], *, cwd: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    exe = shutil.which("git")
    if exe is None:
        raise GitError("git is not installed (or not on PATH)", hint="install git, then run this again")
    proc = subprocess.run([exe, *args], cwd=cwd, capture_output=True)
    if check and proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:2])} failed: {message[-1] if message else f'exit {proc.returncode}'}")
    return proc


def repo_root(cwd: str | None = None) -> str:
    proc = _git(["rev-parse", "--show-toplevel"], cwd=cwd, check=False)
    if proc.returncode != 0:
        raise UsageError("not inside a git repository", path=os.path.abspath(cwd or os.getcwd()),
                         hint="run this in a git working tree, or use --global for the driver settings")
    return proc.stdout.decode("utf-8", "surrogateescape").strip()


def textconv_command() -> str:
    """How git should run ``archdiff textconv``: the console script beside this Python, else ``python -m``."""
    here = os.path.dirname(os.path.abspath(sys.executable))
    script = shutil.which("archdiff")
    if script and os.path.dirname(os.path.abspath(script)) == here:
        return "archdiff textconv"
    return f"{shlex.quote(sys.executable)} -m archdiff textconv"


def configure(command: str, *, global_: bool, cwd: str | None = None) -> list[tuple[str, str]]:
    """Write the driver's settings; return what was set."""
    scope = ["--global"] if global_ else ["--local"]
    if not global_:
        repo_root(cwd)
    settings = [(f"diff.{DRIVER}.textconv", command)]
    for key, value in settings:
        _git(["config", *scope, key, value], cwd=cwd)
    return settings


def attribute_lines(patterns: tuple[str, ...] | list[str] = DEFAULT_PATTERNS) -> list[str]:
    lines = []
    for pattern in patterns:
        if not pattern or any(ch in pattern for ch in "\n\r") or pattern.strip() != pattern:
            raise UsageError(f"'{pattern}' is not a usable .gitattributes pattern")
        lines.append(f"{pattern} diff={DRIVER}")
    return lines


def append_attributes(root: str, lines: list[str]) -> list[str]:
    """Add the lines missing from ``<root>/.gitattributes``; return those added."""
    from archdiff.output import write_text

    target = os.path.join(root, ".gitattributes")
    existing = ""
    if os.path.exists(target):
        with open(target, encoding="utf-8") as fh:
            existing = fh.read()
    present = {" ".join(line.split()) for line in existing.splitlines()}
    missing = [line for line in lines if " ".join(line.split()) not in present]
    if not missing:
        return []
    text = existing
    if text and not text.endswith("\n"):
        text += "\n"
    if not existing:
        text += "# Keras model files: `git diff` shows their architecture (archdiff git-config)\n"
    text += "\n".join(missing) + "\n"
    write_text(target, text)
    return missing


def blob_at(rev: str, path: str, *, cwd: str | None = None) -> bytes | None:
    """The bytes of ``path`` at revision ``rev``; None when it does not exist there."""
    root = repo_root(cwd)
    rel = os.path.relpath(os.path.abspath(path), root)
    if rel.startswith(".."):
        raise UsageError(f"'{path}' is outside the repository at '{root}'")
    rel = rel.replace(os.sep, "/")
    if rev.startswith("-"):
        raise UsageError(f"'{rev}' is not a revision")
    proc = _git(["cat-file", "-e", f"{rev}:{rel}"], cwd=root, check=False)
    if proc.returncode != 0:
        verify = _git(["rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=root, check=False)
        if verify.returncode != 0:
            raise UsageError(f"'{rev}' is not a revision of this repository",
                             hint="give a commit, branch or tag with --against")
        return None
    return _git(["cat-file", "blob", f"{rev}:{rel}"], cwd=root).stdout


@contextmanager
def as_file(data: bytes, name: str) -> Iterator[str]:
    """Write blob bytes to a temporary file keeping ``name``'s suffix (readers look at it)."""
    base = os.path.basename(name)
    folder = tempfile.mkdtemp(prefix="archdiff-")
    path = os.path.join(folder, base)
    try:
        with open(path, "wb") as fh:
            fh.write(data)
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        try:
            os.rmdir(folder)
        except OSError:
            pass


__all__ = ["DEFAULT_PATTERNS", "DRIVER", "GitError", "append_attributes", "as_file",
           "attribute_lines", "blob_at", "configure", "repo_root", "textconv_command"]
