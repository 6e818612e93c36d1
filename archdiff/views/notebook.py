"""How an Architecture and an ArchDiff show themselves: Jupyter's HTML, IPython's text, a REPL's one line.

This module owns the display methods the two classes take from it
(``Architecture`` calls these functions from its ``__repr__``,
``_repr_pretty_`` and ``_repr_html_``; ``ArchDiff`` binds them directly):

- ``__repr__``: one short line, safe on any terminal (:func:`model_repr`,
  :func:`diff_repr`);
- ``_repr_pretty_`` (IPython's terminal): the line and the layer table for a
  model, the text report for a diff (:func:`model_pretty`, :func:`diff_pretty`);
- ``_repr_html_`` (Jupyter): a compact table for a model (:func:`model_html`);
  for a diff the summary, the changed, added and removed layers, and the graph
  as the HTML report (:func:`archdiff.diff.render.html.render_diff_html`) in a
  sandboxed ``<iframe srcdoc>`` (:func:`diff_html`).

Names from model files go through :func:`archdiff.safetext.visible` and then
:func:`html.escape`; the report page is escaped whole into ``srcdoc``, and the
frame may run the page's scripts but not reach the notebook (no
``allow-same-origin``).
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, Iterable

from archdiff.safetext import visible
from archdiff.textfmt import count

if TYPE_CHECKING:
    from archdiff.diff.result import ArchDiff
    from archdiff.model import Architecture

#: Rows of a model's table shown in full; a longer model shows its first and last rows around a gap.
MAX_ROWS = 60
#: How a long table is cut: this many rows first and ``MAX_ROWS - HEAD_ROWS`` last.
HEAD_ROWS = 40
#: Changed, added and removed layers listed in a diff's HTML before "and N more".
MAX_DIFF_ROWS = 50
#: A graph page larger than this (bytes) is not embedded; :func:`diff_html` says how to write it to a file.
MAX_GRAPH_BYTES = 20 * 1024 * 1024
#: The graph frame's height (CSS).
GRAPH_HEIGHT = "640px"

_STYLE = ("<style>.archdiff-nb table{border-collapse:collapse;font-size:12px}"
          ".archdiff-nb th,.archdiff-nb td{text-align:left;padding:2px 8px;border-bottom:1px solid #e5e5e5}"
          ".archdiff-nb td.n{text-align:right;font-variant-numeric:tabular-nums}"
          ".archdiff-nb code{font-size:12px}.archdiff-nb .gap td{text-align:center;color:#888}</style>")


def _h(text: Any) -> str:
    """Untrusted text for HTML: hidden characters shown as escapes, then markup escaped."""
    return html.escape(visible(text), quote=True)


def _code(text: Any) -> str:
    return f"<code>{_h(text)}</code>"


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: Iterable[int] = ()) -> str:
    """An HTML table; cells are already HTML."""
    right = set(numeric)
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class=n>{c}</td>" if i in right else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _shape(value: Any) -> str:
    from archdiff.views.graph import shape_text

    if value is None:
        return ""
    if value and isinstance(value[0], list):
        return shape_text([tuple(v) for v in value])
    return shape_text(tuple(value))


# -- a model ----------------------------------------------------------------------------
def _params_phrase(arch: Architecture) -> str:
    counts = arch.param_counts()
    if counts is None:
        return "params unknown (no weights)"
    return f"{counts.total:,} params"


def model_repr(arch: Architecture) -> str:
    """``<Architecture 'name' Functional: 8 layers, 268 params, keras from PATH>``: one line, escaped."""
    kind = f" {visible(arch.class_name)}" if arch.class_name else " (weights only)"
    return (f"<Architecture '{visible(arch.name)}'{kind}: {len(arch.keras_layers())} layers, "
            f"{_params_phrase(arch)}, {visible(arch.source.format)} from {visible(arch.source.shown)}>")


def model_text(arch: Architecture, *, max_rows: int = MAX_ROWS) -> str:
    """The one line and the layer table (as ``archdiff layers`` prints it), cut in the middle past ``max_rows``."""
    from archdiff.views import layer_rows
    from archdiff.views.render import render_layers_text

    rows = layer_rows(arch)
    lines = render_layers_text(arch, rows).split("\n")
    if len(rows) > max_rows:
        # Two header lines, then one line per row, then the notes: cut the rows, keep the columns aligned.
        head = min(HEAD_ROWS, max_rows)
        tail = max_rows - head
        body = lines[2:2 + len(rows)]
        lines = (lines[:2] + body[:head] + [f"... {len(rows) - max_rows} more layers ..."]
                 + body[len(body) - tail:] + lines[2 + len(rows):])
    table = "\n".join(lines)
    return model_repr(arch) + "\n" + table


def model_pretty(arch: Architecture, p: Any, cycle: bool) -> None:
    """IPython's ``_repr_pretty_``: :func:`model_text`."""
    p.text(model_repr(arch) if cycle else model_text(arch))


def model_html(arch: Architecture, *, max_rows: int = MAX_ROWS) -> str:
    """Jupyter's ``_repr_html_`` of a model: what it is, its inputs and outputs, and a compact layer table."""
    from archdiff.views import layer_rows

    counts = arch.param_counts()
    facts = [f"<strong>{_h(arch.name)}</strong>" + (f" ({_h(arch.class_name)})" if arch.class_name
                                                      else " (weights only)"),
             f"{len(arch.keras_layers())} layers"]
    if counts is None:
        facts.append("params unknown (no weights)")
    else:
        split = "" if counts.trainable is None else f", {counts.trainable:,} trainable"
        facts.append(f"{counts.total:,} params{split}")
    version = f", Keras {_h(arch.source.keras_version)}" if arch.source.keras_version else ""
    facts.append(f"{_h(arch.source.format)}{version} from {_code(arch.source.shown)}")
    out = [_STYLE, "<div class=archdiff-nb>", "<p>" + " · ".join(facts) + "</p>"]
    if arch.input_specs:
        ins = ", ".join(f"{_code(s.name)} {_h(_shape(s.shape and list(s.shape)))} {_h(s.dtype or '')}".rstrip()
                        for s in arch.input_specs)
        out.append(f"<p>inputs: {ins}</p>")
    rows = layer_rows(arch)
    head, tail = len(rows), 0
    if len(rows) > max_rows:
        head = min(HEAD_ROWS, max_rows)
        tail = max_rows - head
    body = [_layer_tr(r) for r in rows[:head]]
    if head < len(rows):
        body.append(f"<tr class=gap><td colspan=6>… {len(rows) - head - tail} more layers …</td></tr>")
        body.extend(_layer_tr(r) for r in rows[len(rows) - tail:])
    out.append("<table><thead><tr><th>#</th><th>layer</th><th>class</th><th>output shape</th><th>params</th>"
               "<th>trainable</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>")
    out.extend(f"<p><em>note:</em> {_h(n)}</p>" for n in arch.notes)
    out.append("</div>")
    return "".join(out)


def _layer_tr(r: dict) -> str:
    index = "?" if r["index"] is None else str(r["index"])
    name = "&nbsp;&nbsp;" * r["depth"] + _code(r["path"] if r["depth"] else r["name"])
    params = "?" if r["params"] is None else f"{r['params']:,}"
    trainable = "?" if r["trainable"] is None else ("yes" if r["trainable"] else "no")
    return (f"<tr><td class=n>{index}</td><td>{name}</td><td>{_h(r['class_name'])}</td>"
            f"<td>{_h(_shape(r['output_shape']))}</td><td class=n>{params}</td><td>{trainable}</td></tr>")


# -- a diff -----------------------------------------------------------------------------
def diff_repr(d: ArchDiff) -> str:
    """``<ArchDiff a.keras -> b.keras: weights-breaking, exit 1; 2 changed, 1 added>``: one line, escaped."""
    s = d.summary()
    counts = [f"{s[k]} {k}" for k in ("changed", "added", "removed", "renamed") if s[k]]
    tail = "; " + ", ".join(counts) if counts else ""
    return (f"<ArchDiff {visible(d.a.path)} -> {visible(d.b.path)}: {d.classification}, "
            f"exit {d.exit_code}{tail}>")


def diff_pretty(d: ArchDiff, p: Any, cycle: bool) -> None:
    """IPython's ``_repr_pretty_``: the text report, without colour."""
    from archdiff.diff.render import render_text

    p.text(diff_repr(d) if cycle else render_text(d).rstrip("\n"))


def _value(value: Any) -> str:
    from archdiff.diff.render import value_text

    if value is None:
        return "-"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or "(none)"
    return value_text(value, 80)


def _cut(rows: list[list[str]], width: int, what: str) -> list[list[str]]:
    if len(rows) <= MAX_DIFF_ROWS:
        return rows
    return rows[:MAX_DIFF_ROWS] + [[f"… and {len(rows) - MAX_DIFF_ROWS} more {what}"] + [""] * (width - 1)]


def diff_summary_html(d: ArchDiff) -> str:
    """The summary and the changed, added and removed layers of a diff, as HTML (no graph)."""
    s = d.summary()
    others = [k for k in d.kinds if k != d.classification]
    out = [_STYLE, "<div class=archdiff-nb>",
           f"<p>archdiff: <strong>{_h(d.classification)}</strong>"
           + (f" (also {', '.join(_h(k) for k in others)})" if others else "")
           + f" · exit code {d.exit_code}</p>"]
    delta = ""
    if d.params_delta is not None:
        delta = f" ({'+' if d.params_delta >= 0 else ''}{d.params_delta:,})"
    out.append(_table(["", "A", "B"], [
        ["file", _code(d.a.path), _code(d.b.path)],
        ["model", _h(d.a.name) + (f" ({_h(d.a.class_name)})" if d.a.class_name else ""),
         _h(d.b.name) + (f" ({_h(d.b.class_name)})" if d.b.class_name else "")],
        ["layers", str(d.a.layers), str(d.b.layers)],
        ["params", count(d.a.total_params), count(d.b.total_params) + delta],
    ]))
    labels = {"matched": "matched", "changed": "changed", "renamed": "renamed", "added": "added",
              "removed": "removed", "io_changes": "input/output changes"}
    counts = ", ".join(f"{s[k]} {label}" for k, label in labels.items() if s[k])
    out.append(f"<p>{counts or 'nothing to compare'}</p>")
    rows = [[_code(m.b), _h(m.class_b), _h(c.path), _code(_value(c.old)), _code(_value(c.new)), _h(c.effect)]
            for m in d.changed for c in m.changes if c.kind != "renamed"]
    if rows:
        out.append(f"<details open><summary>Changed layers ({len(d.changed)})</summary>"
                   + _table(["layer", "class", "what", "A", "B", "effect"], _cut(rows, 6, "changes")) + "</details>")
    if d.renamed:
        rows = [[_code(m.a), _code(m.b), _h(m.class_b), _h(m.how)] for m in d.renamed]
        out.append(f"<details><summary>Renamed layers ({len(d.renamed)})</summary>"
                   + _table(["A", "B", "class", "matched by"], _cut(rows, 4, "layers")) + "</details>")
    for title, entries in (("Added layers", d.added), ("Removed layers", d.removed)):
        if entries:
            rows = [[_code(e.path), _h(e.class_name), "?" if e.params is None else f"{e.params:,}"] for e in entries]
            out.append(f"<details><summary>{title} ({len(entries)})</summary>"
                       + _table(["layer", "class", "params"], _cut(rows, 3, "layers"), numeric=(2,)) + "</details>")
    if d.io_changes:
        rows = [[f"{c.side} {c.index}", _h(c.what), _code(_value(c.old)), _code(_value(c.new)), _h(c.effect)]
                for c in d.io_changes]
        out.append(f"<details><summary>Inputs and outputs ({len(d.io_changes)})</summary>"
                   + _table(["which", "what", "A", "B", "effect"], _cut(rows, 5, "changes")) + "</details>")
    out.extend(f"<p><em>note:</em> {_h(n)}</p>" for n in d.notes)
    out.append("</div>")
    return "".join(out)


def graph_frame(page: str, *, height: str = GRAPH_HEIGHT) -> str:
    """An HTML page in a sandboxed frame: ``srcdoc`` escaped whole; scripts run, the notebook stays out of reach."""
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" sandbox="allow-scripts" '
            f'style="width:100%;height:{height};border:1px solid #ddd" title="archdiff graph"></iframe>')


def diff_html(d: ArchDiff, a: Architecture | None = None, b: Architecture | None = None, *,
              graph: bool = True) -> str:
    """Jupyter's ``_repr_html_`` of a diff: :func:`diff_summary_html`, then the graph page in a frame.

    The graph needs both architectures: those passed, else the ones the diff
    was made from (``d.architectures``, kept by :func:`archdiff.diff.diff`).
    """
    summary = diff_summary_html(d)
    if not graph:
        return summary
    if a is None or b is None:
        a, b = d.architectures or (None, None)
    if a is None or b is None:
        return summary + ("<p><em>No graph: this diff does not hold the two architectures; "
                          "<code>archdiff.views.notebook.diff_html(d, a, b)</code> draws it.</em></p>")
    from archdiff.diff.render.html import render_diff_html

    page = render_diff_html(d, a, b)
    if len(page.encode("utf-8", "surrogateescape")) > MAX_GRAPH_BYTES:
        return summary + ("<p><em>The graph page is too large to embed here; write it with "
                          "<code>archdiff diff A B --format html -o report.html</code>.</em></p>")
    return summary + graph_frame(page)
