"""The gate: model files diffed against a git revision, each checked against the policy, as data.

This module owns what ``archdiff gate`` (and the pre-commit hook) decides: the
policy it uses (:func:`resolve_policy`: ``--policy``, else a
``.archdiff-policy.yaml`` at the repository root, **as it is at the revision
gated against**, so that a pull request cannot relax its own gate; a policy
changed in the working tree is reported and can only add failures unless
``--policy-from-worktree`` trusts it), what it fails on without one
(:data:`GATE_DEFAULT_FAIL_ON`), and, for each file, the version at the
revision against the one in the working tree, loaded, diffed, checked and
given its exit code (:func:`gate_file`, :func:`iter_gate_files`,
:func:`gate_files`). A path in neither is an error, never a silent pass. As
in nbdime's ``gitfiles.py`` and ``nbdiffapp.py``, the library iterates and
returns data; the command (``archdiff.cli.diff``) only loops and prints.
:func:`decide` is the exit code of a diff under a policy, for
``archdiff diff --policy`` as well.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Iterable, Iterator

from archdiff.diff.options import DiffOptions
from archdiff.diff.result import SCHEMA_VERSION, ArchDiff
from archdiff.errors import ArchdiffError, InputError, UsageError
from archdiff.vocabulary import GATE_DEFAULT_FAIL_ON

if TYPE_CHECKING:
    from archdiff.diff.policy import Policy, PolicyResult
    from archdiff.model import Architecture

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


@dataclass(frozen=True)
class GatePolicy:
    """The policy a gate run checks against, and where it came from."""

    #: The policy that decides: read at the revision (or the working tree's with --policy-from-worktree,
    #: or a file outside the repository as it is); None: the default gate (:data:`GATE_DEFAULT_FAIL_ON`).
    policy: Policy | None = None
    #: Where it was read from, as the reports name it (``HEAD:.archdiff-policy.yaml`` when the working
    #: tree's differs; the path relative to the repository when both are the same).
    path: str | None = None
    #: The working tree's version where it differs from the revision's and is not trusted: checked as
    #: well, so that it can add failures and never remove one.
    worktree: Policy | None = None
    #: What was found, for the report (a policy changed, new or deleted in the working tree).
    notes: tuple[str, ...] = ()


def find_policy(explicit: str | None = None, *, against: str = "HEAD") -> tuple[str | None, Policy | None]:
    """The policy file the gate decides with and the policy read from it, or ``(None, None)``.

    :func:`resolve_policy` with the policy as it is at ``against``; the working
    tree's version, where it differs, is in :attr:`GatePolicy.worktree`.
    """
    found = resolve_policy(explicit, against=against)
    return found.path, found.policy


def resolve_policy(explicit: str | None = None, *, against: str = "HEAD", from_worktree: bool = False,
                   cwd: str | None = None) -> GatePolicy:
    """The gate's policy: ``explicit`` (``--policy``) or a default policy file at the repository root.

    A policy inside the repository is read as it is at ``against``, so that a
    change cannot relax the gate that checks it; where the working tree's
    version differs (changed, new or deleted) the result says so, and the
    working tree's is kept in :attr:`GatePolicy.worktree` to be checked as
    well. ``from_worktree`` trusts the working tree's alone. A file outside
    the repository (a CI's own policy) is read as it is.
    """
    from archdiff.diff import gitdriver
    from archdiff.diff.policy import DEFAULT_NAMES, load_policy

    root = gitdriver.repo_root(cwd)
    if explicit is not None:
        full = os.path.abspath(os.path.join(cwd or os.getcwd(), explicit))
        rel = os.path.relpath(full, root)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return GatePolicy(load_policy(explicit), explicit)
        candidates = [rel]
    else:
        candidates = list(DEFAULT_NAMES)
    for rel in candidates:
        full = os.path.join(root, rel)
        label = rel.replace(os.sep, "/")
        in_tree = os.path.lexists(full)
        if from_worktree:
            if in_tree or explicit is not None:
                policy = load_policy(full)
                return GatePolicy(replace(policy, source=label), label,
                                  notes=(f"the policy {label} is taken from the working tree "
                                         "(--policy-from-worktree)",))
            continue
        old = gitdriver.blob_at(against, full, cwd=root)
        if old is None and not in_tree:
            continue
        at_rev = _policy_from_blob(old, label, against) if old is not None else None
        if old is not None and in_tree and _same_bytes(full, old):
            return GatePolicy(replace(at_rev, source=label), label)
        tree = replace(load_policy(full), source=f"{label} (working tree)") if in_tree else None
        if at_rev is None:
            note = (f"the policy {label} is new in the working tree (not at {against}): it is checked as well "
                    f"as the default gate and can only add failures (--policy-from-worktree trusts it)")
            return GatePolicy(None, None, tree, (note,))
        if tree is None:
            note = f"the policy {label} is deleted in the working tree; {against}'s decides"
        else:
            note = (f"the policy {label} differs in the working tree from {against}: {against}'s decides and "
                    f"the working tree's can only add failures (--policy-from-worktree trusts it)")
        return GatePolicy(at_rev, f"{against}:{label}", tree, (note,))
    if explicit is not None:
        load_policy(explicit)  # raises: no such policy file
    return GatePolicy()


def _policy_from_blob(data: bytes, label: str, against: str) -> Policy:
    from archdiff.diff.policy import PolicyError, parse_policy
    from archdiff.read import parse_yaml_text

    where = f"{against}:{label}"
    if len(data) > 1_000_000:
        raise PolicyError("the policy file is over 1 MB; that is not a policy", path=where)
    return parse_policy(parse_yaml_text(data, where=where), source=where)


def _same_bytes(path: str, data: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(data) + 1) == data
    except OSError:
        return False


def check_policies(d: ArchDiff, policy: Policy | None, worktree: Policy | None) -> PolicyResult | None:
    """``d`` checked against the deciding policy and an untrusted working-tree one, as one result.

    The working tree's rules are added, marked as such, so that they can fail
    the gate and never pass it.
    """
    from archdiff.diff.policy import PolicyResult, check

    result = check(d, policy) if policy is not None else None
    if worktree is None:
        return result
    extra = check(d, worktree)
    tagged = tuple(replace(r, message=f"{worktree.source}: {r.message}") for r in extra.rules)
    if result is None:
        return PolicyResult(worktree, tagged, extra.notes)
    return PolicyResult(result.policy, result.rules + tagged, result.notes + extra.notes)


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
    #: What the run found about its policy (see :attr:`GatePolicy.notes`).
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        """The worst of the files' exit codes: 1 if any file fails, else 0 (no files: 0)."""
        return max((f.exit_code for f in self.files), default=0)

    def to_dict(self) -> dict:
        """The gate's JSON form (``$defs/gateReport`` of archdiff/schemas/diff.schema.json)."""
        return {"schema_version": SCHEMA_VERSION, "against": self.against, "policy": self.policy_path,
                "exit_code": self.exit_code, "notes": list(self.notes), "files": [f.to_dict() for f in self.files]}


def gate_file(path: str, *, against: str = "HEAD", options: DiffOptions | None = None,
              policy: Policy | None = None, fail_on_given: bool = False,
              worktree_policy: Policy | None = None) -> FileResult:
    """Diff ``path`` as it was at ``against`` with the working tree's, check it against ``policy``.

    Without ``options``, the gate's defaults (:func:`default_fail_on`).
    ``worktree_policy`` (:attr:`GatePolicy.worktree`) is checked as well and
    can only add failures. The file is named relative to the repository
    (``REV:models/net.keras`` for the old version). A path that is neither in
    the working tree nor at ``against`` is an error, and so is a file that
    cannot be read (naming ``REV:PATH`` for the old version); the files
    before it are not lost to a caller that iterates (:func:`iter_gate_files`).
    """
    from archdiff.diff import gitdriver
    from archdiff.diff.engine import diff
    from archdiff.read import load

    options = options or DiffOptions(fail_on=default_fail_on(policy))
    if options.values != "off":
        from archdiff.read.hdf5 import preload

        preload()
    root = gitdriver.repo_root()
    rel = os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/")
    old = gitdriver.blob_at(against, path)
    if not os.path.lexists(path):
        if old is None:
            raise UsageError(f"'{path}' is neither in the working tree nor at {against}",
                             hint="check the path (the gate never passes a file it cannot find)")
        return FileResult(rel, "deleted", 0)
    if old is None:
        return FileResult(rel, "new", 0)
    with gitdriver.as_file(old, path) as old_path:
        try:
            a = load(old_path)
        except ArchdiffError as exc:
            raise InputError(exc.message, path=f"{against}:{rel}", hint=exc.hint) from None
        b = load(path)
        a = _relabel(a, f"{against}:{rel}")
        b = _relabel(b, rel)
        # Inside the block: the value comparison reads the old version's weights from its temporary file.
        d = diff(a, b, options)
    result = check_policies(d, policy, worktree_policy)
    if policy is None and result is not None:
        # No deciding policy: the default gate decides, and the working tree's policy can add failures.
        code = max(d.exit_code, 0 if result.passed else 1)
    else:
        code = decide(d, result, fail_on_given=fail_on_given)
    return FileResult(rel, "compared", code, d, result)


def iter_gate_files(paths: Iterable[str], *, against: str = "HEAD", options: DiffOptions | None = None,
                    policy: Policy | None = None, fail_on_given: bool = False,
                    worktree_policy: Policy | None = None) -> Iterator[FileResult]:
    """:func:`gate_file` for each path in turn, as it goes (one diff held at a time)."""
    for path in paths:
        yield gate_file(path, against=against, options=options, policy=policy, fail_on_given=fail_on_given,
                        worktree_policy=worktree_policy)


def gate_files(paths: Iterable[str], *, against: str = "HEAD", options: DiffOptions | None = None,
               policy: Policy | None = None, policy_path: str | None = None,
               fail_on_given: bool = False, worktree_policy: Policy | None = None,
               notes: tuple[str, ...] = ()) -> GateResult:
    """Every path through the gate (see :func:`iter_gate_files`), collected."""
    options = options or DiffOptions(fail_on=default_fail_on(policy))
    files = tuple(iter_gate_files(paths, against=against, options=options, policy=policy,
                                  fail_on_given=fail_on_given, worktree_policy=worktree_policy))
    return GateResult(against, policy_path, options, files, notes)


def _relabel(arch: Architecture, label: str) -> Architecture:
    """The old version is read from a temporary file: name it ``REV:PATH`` in the report (``Source.label``;
    ``Source.path`` stays the file, which the value comparison opens)."""
    return replace(arch, source=replace(arch.source, label=label))
