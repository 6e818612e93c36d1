"""Architecture and ArchDiff in a notebook and a REPL: ``_repr_html_``, ``_repr_pretty_`` and ``__repr__``.

Tested on the strings Jupyter, IPython and a REPL get: the HTML is parsed with the standard library's
HTMLParser (not archdiff's code) and compared with Keras' recorded layer table (fixtures/expected); the diff's
graph frame is unescaped and compared with the HTML report itself; crafted names must come out escaped.
One test opens the notebook HTML in headless Chromium and waits for the framed graph to lay itself out.
"""
from __future__ import annotations

import dataclasses
import html
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support import FIXTURES, expected_for
from test_diff_support import arch, dense, input_layer, model
from test_git import edited_keras, set_activation
from test_html_browser import browser  # noqa: F401  (the module-scoped Chromium fixture)

from archdiff.diff import diff
from archdiff.diff.render.html import render_diff_html
from archdiff.read import load
from archdiff.views import notebook

FUNCTIONAL = FIXTURES / "keras3" / "functional.keras"
NESTED = FIXTURES / "keras3" / "nested.keras"
#: A name with a terminal escape, a line break, a right-to-left override and markup.
CRAFTED = "x\x1b[2J\n\u202e<script>alert(1)</script>&"


class Page(HTMLParser):
    """Tags, table rows (cell texts) and iframe attributes of an HTML fragment."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.rows: list[list[str]] = []
        self.frames: list[dict[str, str | None]] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "iframe":
            self.frames.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).replace("\xa0", " ").strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


class Pretty:
    """IPython's pretty printer, as far as ``_repr_pretty_`` uses it."""

    def __init__(self):
        self.out: list[str] = []

    def text(self, s: str) -> None:
        self.out.append(s)


def crafted_model(tmp_path: Path):
    doc = model([input_layer("in", [4]), dense(CRAFTED, 3, "in")], ["in"], [CRAFTED], name=CRAFTED)
    return arch(doc, tmp_path)


# -- a model ----------------------------------------------------------------------------------------
def test_repr_is_one_short_line():
    a = load(str(FUNCTIONAL))
    text = repr(a)
    expected = expected_for(FUNCTIONAL)
    assert text == (f"<Architecture 'functional_model' Functional: {len(expected['layers'])} layers, "
                    f"{expected['total_params']:,} params, keras from {FUNCTIONAL}>")
    assert repr([a]) == f"[{text}]"  # a list of models reads as well


def test_html_table_is_keras_layer_table():
    a = load(str(NESTED))
    page = Page(a._repr_html_())
    expected = expected_for(NESTED)
    header, *rows = page.rows
    assert header == ["#", "layer", "class", "output shape", "params", "trainable"]
    assert [r[0] for r in rows] == [str(layer["index"]) for layer in expected["layers"]]
    assert [r[1] for r in rows] == [layer["path"] for layer in expected["layers"]]
    assert [r[2] for r in rows] == [layer["class_name"] for layer in expected["layers"]]
    assert [int(r[4].replace(",", "")) for r in rows] == [layer["params"] for layer in expected["layers"]]
    assert f"{expected['total_params']:,} params, {expected['trainable_params']:,} trainable" in a._repr_html_()
    assert "script" not in page.tags


def test_long_models_are_cut_in_the_middle():
    path = FIXTURES / "keras2" / "many_layers.h5"
    a = load(str(path))
    expected = [str(layer["path"]) for layer in expected_for(path)["layers"]]
    assert len(expected) > notebook.MAX_ROWS
    _, *rows = Page(a._repr_html_()).rows
    assert len(rows) == notebook.MAX_ROWS + 1
    head, tail = notebook.HEAD_ROWS, notebook.MAX_ROWS - notebook.HEAD_ROWS
    assert [r[1] for r in rows[:head]] == expected[:head]
    assert rows[head] == [f"… {len(expected) - notebook.MAX_ROWS} more layers …"]
    assert [r[1] for r in rows[head + 1:]] == expected[-tail:]
    p = Pretty()
    a._repr_pretty_(p, False)
    (text,) = p.out
    lines = text.splitlines()
    assert lines[0] == repr(a) and f"... {len(expected) - notebook.MAX_ROWS} more layers ..." in lines
    assert len(lines) == 1 + 2 + notebook.MAX_ROWS + 1 + len(a.notes)  # line, table header, rows, gap, notes


def test_pretty_shows_the_layer_table_and_stops_on_cycles():
    a = load(str(FUNCTIONAL))
    p = Pretty()
    a._repr_pretty_(p, False)
    assert p.out[0].splitlines()[1].split() == ["index", "layer", "class", "output", "shape", "params", "trainable"]
    assert "shared_dense" in p.out[0]
    p = Pretty()
    a._repr_pretty_(p, True)
    assert p.out == [repr(a)]


def test_crafted_names_are_escaped_everywhere(tmp_path):
    a = crafted_model(tmp_path)
    text = repr(a)
    assert "\n" not in text and "\x1b" not in text and "\u202e" not in text
    assert "\\x1b[2J\\n\\u202e" in text
    markup = a._repr_html_()
    page = Page(markup)
    assert "script" not in page.tags and "\x1b" not in markup and "\u202e" not in markup
    assert any("<script>alert(1)</script>&" in cell for row in page.rows for cell in row)  # shown, as text


# -- a diff ---------------------------------------------------------------------------------------------
def test_diff_repr_is_one_line_with_the_verdict():
    a, b = load(str(FUNCTIONAL)), load(str(NESTED))
    d = diff(a, b)
    s = d.summary()
    assert repr(d) == (f"<ArchDiff {FUNCTIONAL} -> {NESTED}: {d.classification}, exit {d.exit_code}; "
                       f"{s['added']} added, {s['removed']} removed>")
    assert "matching=" not in repr(d)  # not the dataclass' field dump
    p = Pretty()
    d._repr_pretty_(p, False)
    assert p.out[0].startswith(f"archdiff: {d.classification}")


def test_diff_html_shows_summary_changes_and_the_report_in_a_sandboxed_frame(tmp_path):
    a = load(str(FUNCTIONAL))
    b_doc_path = tmp_path / "b.keras"
    edited_keras(FUNCTIONAL, b_doc_path, set_activation("branch_b", "relu"))
    b = load(str(b_doc_path))
    d = diff(a, b)
    markup = d._repr_html_()
    page = Page(markup)
    assert f"archdiff: {d.classification}" in html.unescape(markup)
    changed = [r for r in page.rows if r and r[0] == "branch_b"]
    assert changed == [["branch_b", "Dense", "activation", "tanh", "relu", "weights-compatible"]]
    (frame,) = page.frames
    assert frame["sandbox"] == "allow-scripts"  # scripts run; no allow-same-origin: the notebook is out of reach
    assert frame["srcdoc"] == render_diff_html(d, a, b)  # the HTML report itself, escaped whole
    assert "script" not in page.tags  # the page's scripts live only inside srcdoc

    # A diff that does not hold its architectures shows the summary and says how to get the graph.
    bare = dataclasses.replace(d, architectures=None)
    page = Page(bare._repr_html_())
    assert not page.frames and "diff_html(d, a, b)" in bare._repr_html_()
    assert Page(notebook.diff_html(bare, a, b)).frames[0]["srcdoc"] == render_diff_html(d, a, b)


def test_diff_html_escapes_crafted_names(tmp_path):
    a = crafted_model(tmp_path)
    doc = model([input_layer("in", [4]), dense(CRAFTED, 5, "in")], ["in"], [CRAFTED], name="other")
    b = arch(doc, tmp_path, "b.json")
    d = diff(a, b)
    markup = d._repr_html_()
    summary = markup.split("<iframe", 1)[0]
    page = Page(summary)
    assert "script" not in page.tags and "\x1b" not in summary and "\u202e" not in summary
    assert "\n" not in repr(d) and "\x1b" not in repr(d)


# -- in a browser ---------------------------------------------------------------------------------------
@pytest.mark.browser
def test_the_framed_graph_lays_out_in_a_browser(tmp_path, browser):  # noqa: F811
    a, b = load(str(FUNCTIONAL)), load(str(NESTED))
    d = diff(a, b)
    notebook_page = tmp_path / "notebook.html"
    notebook_page.write_text(f"<!DOCTYPE html><html><body><h1>a notebook</h1>{d._repr_html_()}</body></html>",
                             encoding="utf-8")
    page = browser.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: requests.append(r.url))
    page.goto(notebook_page.resolve().as_uri())
    frame = page.frame_locator("iframe")
    frame.locator("html[data-ready=true]").wait_for(state="attached", timeout=120_000)
    assert d.classification in frame.locator("#headline").inner_text()
    assert frame.locator("svg .node").count() > 0
    assert not errors, errors
    assert requests == [notebook_page.resolve().as_uri()]  # nothing fetched from the network
    page.close()

