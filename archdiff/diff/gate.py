"""The gate: model files diffed against a git revision, each checked against the policy, as data.

This module owns what ``archdiff gate`` (and the pre-commit hook) decides: the
policy it uses (:func:`find_policy`: ``--policy``, else a
``.archdiff-policy.yaml`` at the repository root), what it fails on without
one (:data:`GATE_DEFAULT_FAIL_ON`), and, for each file, the version at the
revision against the one in the working tree, loaded, diffed, checked and
given its exit code (:func:`gate_file`, :func:`iter_gate_files`,
:func:`gate_files`). As in nbdime's ``gitfiles.py`` and ``nbdiffapp.py``, the
library iterates and returns data; the command (``archdiff.cli.diff``) only
loops and prints. :func:`decide` is the exit code of a diff under a policy,
for ``archdiff diff --policy`` as well.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Iterator

from archdiff.diff.options import DiffOptions
from archdiff.diff.result import SCHEMA_VERSION, ArchDiff
from archdiff.errors import ArchdiffError, InputError

if TYPE_CHECKING:
    from archdiff.diff.policy import Policy, PolicyResult
    from archdiff.model import Architecture

#: What the gate fails on when neither --fail-on nor a policy says otherwise.
GATE_DEFAULT_FAIL_ON = ("weights-breaking", "interface-changing")
#: What happened to one file: diffed, deleted from the working tree, or new since the revision.
STATUSES = ("compared", "deleted", "new")


def decide(d: ArchDiff, policy_result: PolicyResult | None, *, fail_on_given: bool) -> int:
    """The exit code: with a policy, the policy decides (and --fail-on, if given, adds to it)."""
    if policy_result is None:
        return d.exit_code
    code = 0 if policy_result.passed else 1
    if fail_on_given and d.exit_code:
        code = 1
    return code


def find_policy(explicit: str | None = None) -> tuple[str | None, Policy | None]:
    """The policy file the gate uses and the policy read from it, or ``(None, None)``.

    ``explicit`` (``--policy``) if given, else a default policy file at the root
    of the git repository around the current directory (which must be one).
    """
    from archdiff.diff import gitdriver
    from archdiff.diff.policy import find_default, load_policy

    root = gitdriver.repo_root()
    path = explicit or find_default(root)
    return path, (load_policy(path) if path else None)


def default_fail_on(policy: Policy | None) -> tuple[str, ...]:
    """The kinds the gate fails on when --fail-on is not given: a policy's rules decide, else the breaking ones."""
    return ("any",) if policy is not None else GATE_DEFAULT_FAIL_ON


@dataclass(frozen=True)
class FileResult:
    """One file of the gate: its status, and for a compared file the diff, the policy's verdict, the exit code."""

    path: str
    #: One of :data:`STATUSES`.
    status: str
    exit_code: int
    diff: ArchDiff | None = None
    policy: PolicyResult | None = None

    def to_dict(self) -> dict:
        from archdiff.diff.render.json import to_json_dict

        report = None
        if self.diff is not None:
            report = to_json_dict(self.diff, policy=self.policy, exit_code=self.exit_code)
        return {"path": self.path, "status": self.status, "exit_code": self.exit_code, "report": report}


@dataclass(frozen=True)
class GateResult:
    """Every file of one gate run, in the order given."""

    against: str
    #: The policy file used, if any.
    policy_path: str | None
    options: DiffOptions
    files: tuple[FileResult, ...]

    @property
    def exit_code(self) -> int:
        """The worst of the files' exit codes: 1 if any file fails, else 0 (no files: 0)."""
        return max((f.exit_code for f in self.files), default=0)

    def to_dict(self) -> dict:
        """The gate's JSON form (``$defs/gateReport`` of archdiff/schemas/diff.schema.json)."""
        return {"schema_version": SCHEMA_VERSION, "against": self.against, "policy": self.policy_path,
                "exit_code": self.exit_code, "files": [f.to_dict() for f in self.files]}


def gate_file(path: str, *, against: str = "HEAD", options: DiffOptions | None = None,
              policy: Policy | None = None, fail_on_given: bool = False) -> FileResult:
    """Diff ``path`` as it was at ``against`` with the working tree's, check it against ``policy``.

    Without ``options``, the gate's defaults (:func:`default_fail_on`). A file that
    cannot be read raises (an :class:`~archdiff.errors.ArchdiffError` naming
    ``REV:PATH`` for the old version); the files before it are not lost to a
    caller that iterates (:func:`iter_gate_files`).
    """
    from archdiff.diff import gitdriver
    from archdiff.diff.engine import diff
    from archdiff.diff.policy import check
    from archdiff.read import load

    options = options or DiffOptions(fail_on=default_fail_on(policy))
    if not os.path.exists(path):
        return FileResult(path, "deleted", 0)
    old = gitdriver.blob_at(against, path)
    if old is None:
        return FileResult(path, "new", 0)
    with gitdriver.as_file(old, path) as old_path:
        try:
            a = load(old_path)
        except ArchdiffError as exc:
            raise InputError(exc.message, path=f"{against}:{path}", hint=exc.hint) from None
    b = load(path)
    a = _relabel(a, f"{against}:{path}")
    d = diff(a, b, options)
    result = check(d, policy) if policy is not None else None
    return FileResult(path, "compared", decide(d, result, fail_on_given=fail_on_given), d, result)


def iter_gate_files(paths: Iterable[str], *, against: str = "HEAD", options: DiffOptions | None = None,
                    policy: Policy | None = None, fail_on_given: bool = False) -> Iterator[FileResult]:
    """:func:`gate_file` for each path in turn, as it goes (one diff held at a time)."""
    for path in paths:
        yield gate_file(path, against=against, options=options, policy=policy, fail_on_given=fail_on_given)


def gate_files(paths: Iterable[str], *, against: str = "HEAD", options: DiffOptions | None = None,
               policy: Policy | None = None, policy_path: str | None = None,
               fail_on_given: bool = False) -> GateResult:
    """Every path through the gate (see :func:`iter_gate_files`), collected."""
    options = options or DiffOptions(fail_on=default_fail_on(policy))
    files = tuple(iter_gate_files(paths, against=against, options=options, policy=policy,
                                  fail_on_given=fail_on_given))
    return GateResult(against, policy_path, options, files)


def _relabel(arch: Architecture, label: str) -> Architecture:
    """The old version is read from a temporary file: name it ``REV:PATH`` in the report."""
    return replace(arch, source=replace(arch.source, path=label))
