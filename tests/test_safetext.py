"""The one escaping every human-readable output uses (archdiff.safetext), character by character.

The expected behaviour comes from Unicode's own character database (the
categories of every code point) and from an independent decoder written here,
never from archdiff's output.
"""
from __future__ import annotations

import re
import sys
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from archdiff.safetext import confusable_note, csv_cell, has_hidden, md_code, md_text, visible

HIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def unvisible(text: str) -> str:
    """An independent decoder of visible()'s escapes: proves they are unambiguous."""
    def one(m: re.Match) -> str:
        body = m.group(0)
        simple = {"\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t"}
        if body in simple:
            return simple[body]
        return chr(int(body[2:], 16))
    return re.sub(r"\\\\|\\n|\\r|\\t|\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8}", one, text)


def test_every_hidden_code_point_is_escaped_to_printable_ascii():
    checked = 0
    for code in range(sys.maxunicode + 1):
        ch = chr(code)
        if unicodedata.category(ch) not in HIDDEN_CATEGORIES:
            continue
        out = visible(ch)
        assert out != ch and out.isascii() and out.isprintable(), hex(code)
        assert unvisible(out) == ch
        checked += 1
    assert checked > 900_000  # Cn and Co dominate; the point is that none slipped through


def test_printable_text_of_every_script_is_kept():
    for ch in ["a", "Z", "é", "ß", "я", "і", "層", "🙂", "ا", " "]:
        assert visible(ch) == ch


def test_the_spoofing_characters_of_the_issue_are_escaped():
    assert visible("a\x1b]0;pwned\x07b") == "a\\x1b]0;pwned\\x07b"
    assert visible("ok\rEVIL") == "ok\\rEVIL"
    assert visible("a\nb") == "a\\nb"
    assert visible("x\u202ey") == "x\\u202ey"
    assert visible("cl\u200bassifier") == "cl\\u200bassifier"
    assert visible("\ufeffbom") == "\\ufeffbom"
    assert visible("back\\slash") == "back\\\\slash"  # a real backslash cannot fake an escape


@settings(max_examples=400, derandomize=True)
@given(st.text())
def test_visible_is_one_line_of_printable_text_that_decodes_back(text):
    out = visible(text)
    assert "\n" not in out and "\r" not in out
    assert all(unicodedata.category(c) not in HIDDEN_CATEGORIES for c in out)
    assert unvisible(out) == text
    assert has_hidden(text) == any(unicodedata.category(c) in HIDDEN_CATEGORIES for c in text) or \
        any(c in "\u115f\u1160\u3164\uffa0\u180e\u034f\u2800" or "\ufe00" <= c <= "\ufe0f" for c in text)


MD = MarkdownIt("commonmark").enable("table")


def _cell_html(cell: str) -> str:
    html = MD.render(f"| h |\n| --- |\n| {cell} |\n")
    body = html.split("<tbody>")[1]
    return body


@settings(max_examples=300, derandomize=True)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1))
def test_md_text_and_md_code_stay_in_their_cell_and_make_no_markup(text):
    for render in (md_text, md_code):
        body = _cell_html(render(text))
        assert body.count("<td>") == 1 and body.count("</td>") == 1, (render.__name__, text)
        for tag in ("<a ", "<img", "<em>", "<strong>", "<h1", "<script", "<b>", "<br"):
            assert tag not in body.replace("&lt;", ""), (render.__name__, text, body)


def test_md_neutralises_mentions_references_and_links_by_code_spans():
    out = md_text("ping @octocat about #12, see http://evil.example and www.evil.example")
    for token in ("@octocat", "#12", "http://evil.example", "www.evil.example"):
        assert f"`{token}`" in out or f"`{token}," in out
    html = MD.render(out)
    assert "<code>@octocat</code>" in html and "<code>#12" in html and "<a " not in html


def test_md_code_fences_backticks_and_escapes_pipes():
    assert md_code("plain") == "`plain`"
    assert md_code("a`b") == "`` a`b ``"
    assert md_code("a``b") == "``` a``b ```"
    assert md_code("a|b") == "`a\\|b`"
    html = MD.render("| h |\n| --- |\n| " + md_code("x`<img src=y>`|z") + " |\n")
    assert "<img" not in html and html.count("<td>") == 1


def test_csv_cells_follow_owasp():
    for trigger in ("=", "+", "-", "@", "\t", "\r"):
        cell = csv_cell(trigger + "HYPERLINK(\"http://x\")")
        assert cell.startswith("'") and "\t" not in cell and "\r" not in cell
    assert csv_cell("conv1") == "conv1"
    assert csv_cell(12) == 12 and csv_cell(None) is None


def test_confusable_names_are_explained_with_code_points():
    note = confusable_note("classifier", "classif\u0456er")
    assert note and "U+0456" in note and "CYRILLIC" in note
    note = confusable_note("dense", "de\u200bnse")
    assert note and "U+200B" in note
    assert confusable_note("dense", "dense_1") is None
    assert confusable_note("dense", "dense") is None
