"""Safe text: every name, class or message from a file goes through here before people see it.

Text from model files is untrusted. A layer name can hold an ESC sequence that
clears a terminal, a CR that overwrites a line, a LF that adds a fake line to
``git diff``, a right-to-left override that reverses what follows, or
invisible and look-alike characters that make ``classifier -> classifіer``
look like no change. This module owns the one escaping every human-readable
output uses:

- :func:`visible`: control, bidi, invisible and separator characters shown as
  unambiguous escapes (``\\x1b``, ``\\n``, ``\\u202e``); a backslash is doubled
  so an escape cannot be faked. Printable text, non-ASCII letters included,
  is kept as it is.
- :func:`md_text` / :func:`md_code`: Markdown table cells and code spans
  (no HTML, no links or images, no ``@mention`` or ``#123`` references, no
  cell splits, no headings).
- :func:`csv_cell`: OWASP's CSV-injection rule (a cell starting with ``=``,
  ``+``, ``-``, ``@``, TAB or CR gets a leading ``'``), after :func:`visible`.
- :func:`confusable_note`: why two names that look alike are not equal.

JSON and HTML are exact, escaped by their own encoders, and do not use this.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Any

#: Characters that do not show, or change how what follows shows, beyond the Unicode C* categories.
_INVISIBLE_EXTRA = frozenset("\u115f\u1160\u3164\uffa0\u180e\u034f\u2800")
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
#: Escapes only the line-breaking characters' cousins need beyond Cc/Cf (U+2028/9 are Zl/Zp).
_ESCAPE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _needs_escape(ch: str) -> bool:
    if ch in _SHORT_ESCAPES:
        return True
    if " " <= ch <= "~":  # printable ASCII: the common case, decided without a table
        return False
    if ch in _INVISIBLE_EXTRA or "\ufe00" <= ch <= "\ufe0f":  # variation selectors
        return True
    return unicodedata.category(ch) in _ESCAPE_CATEGORIES


def _escape(ch: str) -> str:
    short = _SHORT_ESCAPES.get(ch)
    if short:
        return short
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: Any) -> str:
    """``text`` with every control, bidi, invisible or separator character shown as an escape.

    Idempotence is not a goal: ``visible`` is applied once, where text leaves
    archdiff for a person. ASCII text without control characters or
    backslashes comes back unchanged.
    """
    s = str(text)
    if s.isascii() and s.isprintable() and "\\" not in s:
        return s
    return "".join(_escape(ch) if _needs_escape(ch) else ch for ch in s)


def has_hidden(text: Any) -> bool:
    """Whether :func:`visible` would have to escape something in ``text`` (a backslash aside)."""
    return any(_needs_escape(ch) and ch != "\\" for ch in str(text))


# -- Markdown -----------------------------------------------------------------------
#: Characters that can start markup or HTML in running text or a GFM table cell.
_MD_SPECIAL = frozenset("\\`*_[]<>|~&")
#: Text GitHub turns into a link or a notification: ``@user``, ``#123``, ``GH-1``, URLs, ``www.`` hosts.
_MD_LIVE = re.compile(r"[@#][\w.\-/]*|\b[\w+.-]+://\S*|\bwww\.\S*|\bGH-\d+", re.IGNORECASE)


def _md_plain(text: str) -> str:
    return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in text)


def md_text(text: Any) -> str:
    """Running text or a table cell: Markdown, HTML and GitHub's live references neutralised.

    Markup characters are backslash-escaped. GitHub links ``@mentions``,
    ``#123`` references and URLs found in rendered text, whatever escaping
    they had in the source, but never inside code: such tokens become code
    spans, which show them as they are and link nothing.
    """
    s = visible(text)
    out = []
    last = 0
    for m in _MD_LIVE.finditer(s):
        out.append(_md_plain(s[last:m.start()]))
        out.append(md_code(m.group(0)))
        last = m.end()
    out.append(_md_plain(s[last:]))
    return "".join(out)


def md_code(text: Any) -> str:
    """An inline code span, safe inside a GFM table cell.

    Inside a code span nothing is markup, mentions are not linked and HTML is
    literal; only backticks (answered by a longer fence) and ``|`` (GFM splits
    table cells on it even inside code; ``\\|`` is its documented escape) need
    care. Line breaks cannot happen: :func:`visible` has escaped them.
    """
    s = visible(text).replace("|", "\\|")
    if not s:
        return ""
    longest = run = 0
    for ch in s:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if (s.startswith("`") or s.endswith("`") or longest) else ""
    return f"{fence}{pad}{s}{pad}{fence}"


# -- CSV -------------------------------------------------------------------------------
_CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula (OWASP), with hidden characters made visible.

    Numbers pass through as numbers; text that starts with a formula trigger
    gets a leading apostrophe, as OWASP's CSV-injection guidance recommends.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    s = str(value)
    if s.startswith(_CSV_TRIGGERS):  # checked before escaping: a leading TAB or CR is itself a trigger
        return "'" + visible(s)
    return visible(s)


# -- look-alikes -----------------------------------------------------------------------
#: Letters of other scripts that render like Latin ones (a subset of Unicode TR39's confusables:
#: Cyrillic and Greek letters that fonts draw identically to ASCII).
_LOOKALIKE = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "һ": "h", "і": "i", "ј": "j", "к": "k", "м": "m", "н": "h", "о": "o",
    "р": "p", "с": "c", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "І": "I", "Ј": "J", "О": "O", "Р": "P",
    "С": "C", "Ѕ": "S", "Т": "T", "Х": "X", "У": "Y",
    # Greek
    "α": "a", "ο": "o", "ρ": "p", "ν": "v", "ι": "i", "κ": "k", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Latin letters that pass for others
    "ı": "i", "ɡ": "g", "ℓ": "l",
}


def skeleton(text: str) -> str:
    """``text`` as it looks: NFKC-folded, invisible characters dropped, look-alike letters mapped to Latin."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(_LOOKALIKE.get(ch, ch) for ch in folded if not (_needs_escape(ch) and ch not in "\\\n\r\t"))


def confusable_note(a: str, b: str) -> str | None:
    """When ``a`` and ``b`` differ but look the same: which code points make the difference; else None."""
    if a == b or skeleton(a) != skeleton(b):
        return None
    differing = sorted({ch for ch in set(a) ^ set(b) if not ch.isascii() or _needs_escape(ch)})
    described = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed')}" for ch in differing[:6])
    return f"the names differ only by look-alike or invisible characters ({described})"
