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
import stat
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
    """How git should run ``archdiff textconv``, by absolute paths: it must work without archdiff on PATH.

    The console script beside this Python if there is one, else this Python
    with ``-m archdiff``; where this Python finds this archdiff only through
    ``PYTHONPATH`` (a source checkout), this Python with ``-m archdiff`` and
    that ``PYTHONPATH`` set. git runs the command with the shell, so every
    part is quoted.
    """
    import archdiff

    python = os.path.abspath(sys.executable)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(archdiff.__file__)))
    if not _importable_without_pythonpath(package_parent):
        return f"PYTHONPATH={shlex.quote(package_parent)} {shlex.quote(python)} -m archdiff textconv"
    for name in ("archdiff", "archdiff.exe"):
        script = os.path.join(os.path.dirname(python), name)
        if os.path.isfile(script) and os.access(script, os.X_OK):  # the console script of this install
            return f"{shlex.quote(script)} textconv"
    return f"{shlex.quote(python)} -m archdiff textconv"


def _importable_without_pythonpath(package_parent: str) -> bool:
    """Whether this Python imports this archdiff without the PYTHONPATH of the current environment."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    probe = "import archdiff, os; print(os.path.dirname(os.path.dirname(os.path.abspath(archdiff.__file__))))"
    try:
        proc = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60,
                              cwd=os.path.expanduser("~") if os.path.isdir(os.path.expanduser("~")) else "/")
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0 and os.path.realpath(proc.stdout.strip()) == os.path.realpath(package_parent)


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
    if os.path.lexists(target):
        # Only a regular file is read and replaced: opening a FIFO would block forever, a directory or a
        # device is not ours to replace. A symlink to a regular file is followed and written where it points.
        try:
            info = os.stat(target)
        except OSError as exc:
            raise UsageError(f"cannot read .gitattributes ({exc.strerror})", path=target,
                             hint="fix or remove it, then run this again") from None
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise UsageError(f".gitattributes is {kind}", path=target,
                             hint="make it a regular file (or remove it), or add the printed lines yourself")
        target = os.path.realpath(target)
        try:
            with open(target, encoding="utf-8") as fh:
                existing = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise UsageError(f"cannot read .gitattributes ({why})", path=target,
                             hint="fix it, or add the printed lines yourself") from None
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
