"""CI glue for ``archdiff diff`` and ``archdiff gate``: the job summary and workflow-command annotations.

This module owns what the two commands leave for a CI system after their
report is rendered:

- the **job summary**: the Markdown report appended to ``--summary FILE``,
  or to ``$GITHUB_STEP_SUMMARY`` when GitHub Actions sets it
  (:func:`append_summary`: one ``O_APPEND`` write, so a summary file that
  other steps share is never replaced, truncated or interleaved; a report
  that would take the file past GitHub's 1 MiB limit is shortened to its
  verdicts);
- **annotations** (``--annotations github``): one ``::error`` workflow
  command per model file that fails, one ``::warning`` per file that changed
  and passes, escaped as GitHub's runner decodes them (:func:`escape_data`,
  :func:`escape_property`), every name from a model file made visible by
  :func:`archdiff.safetext.visible` first; a text or Markdown report printed
  on stdout is fenced with ``::stop-commands::`` and a random token, so that
  a layer name cannot act as a workflow command in the log (:meth:`CiReport.begin`).

The commands make a :class:`CiReport` with :func:`from_args` before their
work (so a bad ``--summary`` is refused before anything is read), feed it
each result, and call :meth:`CiReport.begin` and :meth:`CiReport.finish`
around printing their report.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator, TextIO

from archdiff.errors import ArchdiffError, OutputError
from archdiff.safetext import md_code, md_text, visible

if TYPE_CHECKING:
    from archdiff.diff.gate import FileResult
    from archdiff.diff.policy import PolicyResult
    from archdiff.diff.result import ArchDiff

#: The file GitHub Actions gives each step for its job summary.
GITHUB_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
#: ``--annotations`` values.
ANNOTATION_FORMATS = ("none", "github")
#: GitHub drops a step summary larger than this (1 MiB) and shows an error instead.
SUMMARY_LIMIT = 1024 * 1024
#: A summary file with one of these names is refused: appending Markdown would spoil a model or a config.
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5", ".json", ".yaml", ".yml", ".npz")
#: Names listed per annotation (changed, added, removed layers; failed rules) before "and N more".
MAX_LISTED = 5


# -- workflow commands ---------------------------------------------------------------------
def escape_data(text: object) -> str:
    """A workflow command's message, as the runner decodes it (actions/toolkit ``escapeData``)."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: object) -> str:
    """A workflow command's property value (actions/toolkit ``escapeProperty``): ``:`` and ``,`` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(command: str, message: str, **properties: str | None) -> str:
    """``::command key=value,...::message`` with every part escaped; properties that are None are left out."""
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items() if value is not None)
    return f"::{command}{' ' + props if props else ''}::{escape_data(message)}"


def annotation_file(path: str, workspace: str | None = None) -> str | None:
    """``path`` as GitHub places an annotation: relative to the workspace, ``/``-separated; None if not a file."""
    if not os.path.isfile(path):
        return None
    workspace = workspace or os.environ.get("GITHUB_WORKSPACE") or os.getcwd()
    full = os.path.abspath(path)
    try:
        rel = os.path.relpath(full, os.path.abspath(workspace))
    except ValueError:  # another drive (Windows)
        rel = full
    if rel.startswith(os.pardir + os.sep) or rel == os.pardir:
        rel = full
    return visible(rel.replace(os.sep, "/"))


def _listed(names: Iterable[str], limit: int = MAX_LISTED) -> str:
    names = [visible(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def annotation_message(path: str, d: ArchDiff, policy: PolicyResult | None, exit_code: int,
                       *, against: str | None = None) -> str:
    """What one file's annotation says: the verdict, the counts, the failed rules, the layers involved."""
    verdict = "fails the gate" if exit_code else "passes"
    where = f" against {visible(against)}" if against else ""
    also = [k for k in d.kinds if k != d.classification]
    lines = [f"{visible(path)}{where}: {d.classification}" + (f" (also {', '.join(also)})" if also else "")
             + f"; {verdict}."]
    s = d.summary()
    counts = [f"{s[key]} {label}" for key, label in (("changed", "changed"), ("added", "added"),
                                                     ("removed", "removed"), ("renamed", "renamed"))
              if s[key]]
    if s["io_changes"]:
        counts.append(f"{s['io_changes']} input/output changes")
    if counts:
        lines.append("Layers: " + ", ".join(counts) + ".")
    if d.params_delta:
        sign = "+" if d.params_delta > 0 else ""
        lines.append(f"Parameters: {d.a.total_params:,} -> {d.b.total_params:,} ({sign}{d.params_delta:,}).")
    if d.values is not None and d.values.changed:
        from archdiff.diff.render.common import values_line

        lines.append(f"Weights: {values_line(d.values)}; most changed: "
                     + _listed((lv.b for lv in d.values.changed), 3) + ".")
    if policy is not None and not policy.passed:
        for rule in policy.failed[:MAX_LISTED]:
            why = visible(rule.message)
            if rule.violations:
                why += ": " + _listed(rule.violations, 3)
            lines.append(f"Policy rule {visible(rule.rule)} failed: {why}")
    changed = d.changed
    if changed:
        lines.append("Changed: " + _listed(
            f"{m.b} ({', '.join(sorted({c.effect for c in m.changes if c.kind != 'renamed'}))})" for m in changed))
    if d.added:
        lines.append("Added: " + _listed(e.path for e in d.added))
    if d.removed:
        lines.append("Removed: " + _listed(e.path for e in d.removed))
    return "\n".join(lines)


def annotation(path: str, d: ArchDiff, policy: PolicyResult | None, exit_code: int, *,
               against: str | None = None, workspace: str | None = None) -> str | None:
    """The ``::error`` (the file fails) or ``::warning`` (it changed and passes) line; None when identical."""
    if not exit_code and d.identical:
        return None
    level = "error" if exit_code else "warning"
    title = f"archdiff: {d.classification}"
    if policy is not None and not policy.passed:
        title += ", policy failed"
    return workflow_command(level, annotation_message(path, d, policy, exit_code, against=against),
                            file=annotation_file(path, workspace), title=title)


# -- the job summary -----------------------------------------------------------------------
def summary_target(explicit: str | None, *, disabled: bool = False, environ=None) -> str | None:
    """Where the summary goes: ``--summary FILE``, else ``$GITHUB_STEP_SUMMARY`` if set; None with ``--no-summary``."""
    if disabled:
        return None
    if explicit:
        return explicit
    environ = os.environ if environ is None else environ
    return environ.get(GITHUB_SUMMARY_ENV) or None


def check_summary_target(path: str, inputs: Iterable[str]) -> None:
    """Refuse a summary file that is an input (appending would change it) or cannot be created."""
    from archdiff.output import refuse_overwriting_inputs

    refuse_overwriting_inputs(path, list(inputs))
    if os.path.isdir(path):
        raise OutputError("the summary path is a directory", path=path, hint="give a file name to append to")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise OutputError(f"the folder '{folder}' does not exist", path=path,
                          hint="create it first or choose another --summary file")
    if path.lower().endswith(MODEL_SUFFIXES) or _looks_binary(path):
        raise OutputError("the summary file is a model, a config or binary data (appending Markdown would spoil it)",
                          path=path, hint="give a Markdown file to append to, or a new path")


def _looks_binary(path: str) -> bool:
    """Whether a regular file holds binary data (a NUL byte near its start: a model, an archive)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as fh:
            return b"\0" in fh.read(8192)
    except OSError:
        return False


def append_summary(path: str, text: str, *, limit: int = SUMMARY_LIMIT, short: str | None = None) -> None:
    """Append ``text`` to ``path`` in one ``O_APPEND`` write; never replace or truncate what is there.

    Appending is what GitHub asks of every step writing ``$GITHUB_STEP_SUMMARY``;
    one write of the whole report keeps it in one piece beside other writers.
    When the file would grow past ``limit``, ``short`` (the verdicts alone) is
    written instead, or nothing if even that does not fit.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as exc:
        raise OutputError(f"cannot open the summary file ({exc.strerror})", path=path,
                          hint="check the path and its folder's permissions") from None
    try:
        size = os.fstat(fd).st_size
        data = _block(text, after=size)
        if size + len(data) > limit:
            data = _block(short, after=size) if short is not None else b""
            if size + len(data) > limit:
                data = b""
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError as exc:
        raise OutputError(f"cannot append to the summary file ({exc.strerror})", path=path,
                          hint="check the free space and the file's permissions") from None
    finally:
        os.close(fd)


def _block(text: str | None, *, after: int) -> bytes:
    """A Markdown block that ends its line, and after ``after`` bytes of earlier steps, starts a paragraph."""
    if not text:
        return b""
    body = text if text.endswith("\n") else text + "\n"
    return (("\n" if after else "") + body).encode("utf-8", "surrogateescape")


# -- what the commands feed ----------------------------------------------------------------
@dataclass
class _Entry:
    path: str
    status: str
    exit_code: int
    markdown: str = ""
    classification: str | None = None
    error: str | None = None


@dataclass
class CiReport:
    """The summary and annotations of one ``diff`` or ``gate`` run, collected as it goes.

    An inactive report (no summary file, annotations ``none``) collects nothing
    and writes nothing, so the commands call it unconditionally.
    """

    command: str
    summary: str | None = None
    annotations: str = "none"
    against: str | None = None
    #: Where annotations go: stdout, unless stdout carries a JSON report (the runner reads stderr too).
    stream: TextIO | None = None
    #: Whether the report itself goes to stdout as text or Markdown (then :meth:`begin` fences it).
    report_on_stdout: bool = False
    workspace: str | None = None
    #: What the gate checked against, for the summary's first line.
    policy_path: str | None = None
    fail_on: tuple[str, ...] = ()
    entries: list[_Entry] = field(default_factory=list)
    _lines: list[str] = field(default_factory=list)
    _resume: str | None = None

    @property
    def active(self) -> bool:
        return self.summary is not None or self.annotations != "none"

    def add(self, f: FileResult) -> None:
        """One file's result (a gate's :class:`~archdiff.diff.gate.FileResult`)."""
        if not self.active:
            return
        entry = _Entry(f.path, f.status, f.exit_code)
        if f.diff is not None:
            entry.classification = f.diff.classification
            # Past GitHub's limit the summary keeps the verdicts only: stop holding reports it will not show.
            if self.summary is not None and sum(len(e.markdown) for e in self.entries) <= SUMMARY_LIMIT:
                from archdiff.diff.render import render_markdown

                entry.markdown = render_markdown(f.diff, policy=f.policy, exit_code=f.exit_code)
            if self.annotations == "github":
                line = annotation(f.path, f.diff, f.policy, f.exit_code, against=self.against,
                                  workspace=self.workspace)
                if line:
                    self._lines.append(line)
        self.entries.append(entry)

    def add_diff(self, path: str, d: ArchDiff, policy: PolicyResult | None, exit_code: int) -> None:
        """``archdiff diff``'s one result; ``path`` is B, the new model."""
        from archdiff.diff.gate import FileResult

        self.add(FileResult(path, "compared", exit_code, d, policy))

    def watch(self, results: Iterable[FileResult], *, policy_path: str | None = None,
              fail_on: Iterable[str] = ()) -> Iterator[FileResult]:
        """The gate's ``results`` passed through and collected; on an error, the summary and annotations say so.

        ``policy_path`` and ``fail_on`` are what the gate decides by, for the summary's first line.
        """
        self.policy_path, self.fail_on = policy_path, tuple(fail_on)
        try:
            for f in results:
                self.add(f)
                yield f
        except ArchdiffError as exc:
            if self.active:
                path = exc.path or "?"
                self.entries.append(_Entry(path, "error", 2, error=exc.one_line()))
                if self.annotations == "github":
                    plain = path.split(":", 1)[1] if self.against and path.startswith(self.against + ":") else path
                    self._lines.append(workflow_command("error", visible(exc.one_line()),
                                                        file=annotation_file(plain, self.workspace),
                                                        title="archdiff: cannot check this file"))
                self.finish()
            raise

    def begin(self) -> None:
        """Before the report goes to stdout: stop the runner reading workflow commands in it.

        A layer named ``::add-mask::weights-breaking`` or ``x ##[set-output name=ok]yes``
        would otherwise be run as a command when the report prints it (the runner
        reads ``##[...]`` anywhere in a line). GitHub's ``stop-commands`` pauses that
        until a token no model file can know; :meth:`finish` prints it first.
        """
        if self.annotations != "github" or not self.report_on_stdout or self._resume:
            return
        import secrets

        self._resume = "archdiff-" + secrets.token_hex(16)
        sys.stdout.write(f"::stop-commands::{self._resume}\n")
        sys.stdout.flush()

    def finish(self) -> None:
        """Print the annotations and append the summary (after the command printed its report)."""
        if self._resume:
            sys.stdout.write(f"::{self._resume}::\n")
            sys.stdout.flush()
            self._resume = None
        if self._lines:
            stream = self.stream or sys.stdout
            stream.write("".join(line + "\n" for line in self._lines))
            stream.flush()
            self._lines = []
        if self.summary is None:
            return
        if self.command == "diff":
            full = "".join(e.markdown for e in self.entries)
            short = "\n".join(self._table(short_form=True)) + "\n"
        else:
            head = self._gate_head()
            table = self._table()
            reports = [e.markdown for e in self.entries if e.markdown]
            full = "\n".join(head + table) + "\n" + ("\n---\n\n".join([""] + reports) if reports else "")
            short = "\n".join(head + table + ["", "_The per-file reports would take the summary past GitHub's "
                                                  "1 MiB limit; `archdiff gate --format markdown -o FILE` "
                                                  "writes them in full._"]) + "\n"
        target, self.summary = self.summary, None  # once only, even if finish is called again
        append_summary(target, full, short=short)

    # -- Markdown pieces --------------------------------------------------------------
    def _gate_head(self) -> list[str]:
        failed = sum(1 for e in self.entries if e.exit_code)
        files = f"{len(self.entries)} file{'s' if len(self.entries) != 1 else ''}"
        if any(e.status == "error" for e in self.entries):
            verdict = "❌ error"
        elif failed:
            verdict = f"❌ failed ({failed} of {files})"
        else:
            verdict = f"✅ passed ({files})"
        if self.policy_path:
            rule = f"policy {md_code(self.policy_path)}"
        else:
            rule = "failing on " + ", ".join(md_code(k) for k in self.fail_on)
        against = f" against {md_code(self.against)}" if self.against else ""
        return [f"## archdiff gate: {verdict}", "", f"Model files{against}, {rule}.", ""]

    def _table(self, *, short_form: bool = False) -> list[str]:
        if not self.entries:
            return ["No model files given; nothing to check."]
        rows = ["| file | status | classification | result |", "| --- | --- | --- | --- |"]
        for e in self.entries:
            if e.status == "error":
                result = f"error: {md_text(e.error)}"
            elif e.status == "compared":
                result = "❌ fails" if e.exit_code else "✅ passes"
            else:
                result = "nothing to compare" if e.status == "new" else "nothing to check"
            status = f"new at {md_code(self.against)}" if e.status == "new" and self.against else e.status
            rows.append(f"| {md_code(e.path)} | {status} | {md_text(e.classification or '')} | {result} |")
        if short_form:
            rows = [f"### archdiff {self.command}", ""] + rows + [
                "", "_The full report would take the summary past GitHub's 1 MiB limit._"]
        return rows


def from_args(args, *, command: str, inputs: Iterable[str], environ=None) -> CiReport:
    """The :class:`CiReport` the options ask for (``--summary``, ``--no-summary``, ``--annotations``).

    Checks the summary file now, before any model is read: one error line and
    exit 2 for a summary that is an input or cannot be created.
    """
    environ = os.environ if environ is None else environ
    target = summary_target(getattr(args, "summary", None), disabled=getattr(args, "no_summary", False),
                            environ=environ)
    if target is not None:
        check_summary_target(target, inputs)
    on_stdout = not getattr(args, "output", None)
    json_on_stdout = on_stdout and getattr(args, "format", None) == "json"
    return CiReport(command=command, summary=target, annotations=getattr(args, "annotations", "none") or "none",
                    against=getattr(args, "against", None), stream=sys.stderr if json_on_stdout else None,
                    report_on_stdout=on_stdout and not json_on_stdout,
                    workspace=environ.get("GITHUB_WORKSPACE") or None)
