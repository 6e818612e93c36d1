"""Markdown escaping, character by character, in the escapers and in the reports people read.

A review planted a bug (``*`` no longer escaped by the Markdown renderer) and
no test noticed: the property tests draw random text, which seldom forms
emphasis. Here every character an escaper claims to handle gets text built to
turn into markup if that one escape is dropped (``a*b*c`` into emphasis,
``[x](y)`` into a link, ``~~x~~`` into strikethrough, ``&amp;`` into ``&``
...), rendered by an independent CommonMark parser (markdown-it, with GFM
tables and strikethrough as GitHub renders a pull-request comment), and the
text a reader sees must be the text the file holds. Then the same names go
through ``archdiff diff --format markdown`` and ``archdiff summary --format
markdown``, so a renderer that stops using its escaper, or drops one escape,
fails here too.
"""
from __future__ import annotations

import html
import json
import re

import pytest
from markdown_it import MarkdownIt
from test_diff_support import dense, input_layer, layer, model, save

from archdiff import safetext
from archdiff.safetext import md_code, md_text, visible

MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])

#: For each character the escapers claim (archdiff/safetext.py: md_text's Markdown specials; md_code's
#: backtick fences and ``\|``), text that becomes markup, or loses characters, if that escape is dropped.
HOSTILE = {
    "\\": ["a\\*b*c", "back\\slash\\!", "\\`x`"],
    "`": ["a`b`c", "t``ick`", "`lead", "trail`"],
    "*": ["a*b*c", "**bold**", "*"],
    "_": ["a_b_c", "__dunder__", "_x_"],
    "[": ["[x](y)", "![i](j)", "[ref]"],
    "]": ["x]", "[a]: b"],
    "<": ["<b>x</b>", "<img src=x onerror=alert(1)>", "<script>"],
    ">": ["a>b", "> quote"],
    "|": ["a|b", "|", "x||y"],
    "~": ["~~gone~~", "a~b~c"],
    "&": ["&amp;", "&lt;b&gt;", "&#42;"],
}


def test_every_character_the_escaper_claims_has_hostile_text():
    claimed = set(getattr(safetext, "_MD_SPECIAL", "")) | {"`", "|"}
    assert claimed <= set(HOSTILE), f"no hostile text for {sorted(claimed - set(HOSTILE))}"
    for ch, texts in HOSTILE.items():
        assert texts and all(ch in t for t in texts), ch


def _cell(markdown: str) -> str:
    """The inner HTML of the one cell a table row with ``markdown`` renders to."""
    out = MD.render(f"| h |\n| --- |\n| {markdown} |\n")
    body = out.split("<tbody>")[1]
    cells = re.findall(r"<td>(.*?)</td>", body, re.S)
    assert len(cells) == 1, (markdown, out)
    return cells[0]


def _shown(inner: str, *, allowed=("code",)) -> str:
    """The text a reader sees in rendered HTML; fails on any tag besides ``allowed``."""
    tags = {t.lower() for t in re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", inner)}
    assert tags <= set(allowed), (tags, inner)
    return html.unescape(re.sub(r"</?[a-zA-Z][^>]*>", "", inner))


@pytest.mark.parametrize("ch", list(HOSTILE))
def test_md_text_shows_each_special_character_as_written(ch):
    for text in HOSTILE[ch]:
        assert _shown(_cell(md_text(text))) == visible(text), (ch, text, md_text(text))


@pytest.mark.parametrize("ch", list(HOSTILE))
def test_md_code_shows_each_special_character_as_written(ch):
    for text in HOSTILE[ch]:
        inner = _cell(md_code(text))
        assert inner.startswith("<code>") and inner.endswith("</code>") and inner.count("<code>") == 1, inner
        assert html.unescape(inner[len("<code>"):-len("</code>")]) == visible(text), (ch, text, md_code(text))


# -- the reports ------------------------------------------------------------------------------------------
#: Layer names and class names that would turn into markup; no spaces (the diff renderer folds whitespace).
NAMES = ["n*a*m_e_", "t``ick`", "l[i](nk)", "p|pe", "~~s~~", "amp&amp;", "lt<b>x</b>", "b\\*s*"]
CLASSES = ["Odd*Cls*", "Und_er_", "Ti~~ld~~e", "Amp&amp;", "Br[ack](et)", "Le<i>ss</i>", "Ba\\*ck*", "Pi|pe"]


def _hostile_pair(tmp_path):
    """A: x -> one layer per hostile name (hostile classes); B: each layer's config key changed, one added."""
    def build(extra):
        layers = [input_layer("x", [4])]
        for name, cls in zip(NAMES, CLASSES):
            layers.append(layer(cls, name, ["x"], **{"we*ird_key": extra}))
        outputs = list(NAMES)
        if extra:
            layers.append(dense("a*dd*ed", 2, NAMES[0]))
            outputs.append("a*dd*ed")
        return model(layers, ["x"], outputs, name="m*o*del")

    return save(build(0), tmp_path / "a.json"), save(build(1), tmp_path / "b.json")


def _document_text(markdown: str) -> str:
    out = MD.render(markdown)
    allowed = {"h3", "p", "table", "thead", "tbody", "tr", "th", "td", "code", "details", "summary", "sub",
               "strong", "blockquote", "em", "ul", "li"}
    tags = {t.lower() for t in re.findall(r"</?([a-zA-Z][a-zA-Z0-9]*)", out)}
    assert tags <= allowed, tags - allowed
    for bad in ("<a ", "<img", "<s>", "<del>", "<script", "<b>", "<i>"):
        assert bad not in out, bad
    return html.unescape(re.sub(r"</?[a-zA-Z][^>]*>", "", out))


def test_diff_markdown_shows_hostile_names_classes_and_paths_as_written(tmp_path, cli):
    a, b = _hostile_pair(tmp_path)
    code, out, err = cli("diff", a, b, "--format", "markdown")
    assert code == 1 and not err
    text = _document_text(out)
    data = json.loads(cli("diff", a, b, "--format", "json")[1])
    assert len(data["matched"]) == len(NAMES) + 1 and len(data["added"]) == 1  # + the input
    # Each hostile text reaches the Markdown through a different cell: names as code (changed table) and as
    # text (the added layer's inputs), classes and config paths as text.
    # As written, through safetext.visible (a backslash is doubled so that no escape can be faked).
    for shown in [visible(t) for t in (*NAMES, *CLASSES, "we*ird_key", "a*dd*ed")]:
        assert shown in text, (shown, [line for line in out.splitlines() if shown[:2] in line][:3])
    for name in NAMES:
        assert f"<code>{html.escape(visible(name), quote=False)}</code>" in MD.render(out), name
    # In the cells archdiff writes, emphasis can only be archdiff's own bold: never from a name.
    assert "<em>" not in MD.render(out).split("<details>", 1)[1]


def test_summary_markdown_shows_hostile_names_and_classes_as_written(tmp_path, cli):
    a, _ = _hostile_pair(tmp_path)
    code, out, err = cli("summary", a, "--format", "markdown")
    assert code == 0 and not err
    text = _document_text(out)
    for shown in [*NAMES, *CLASSES, "m*o*del"]:
        assert visible(shown) in text, shown
