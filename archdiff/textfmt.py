"""Plain-text building blocks shared by the renderers: tables, numbers, colour.

Colour is used only on a terminal (and never when NO_COLOR is set), so
piped output stays plain.
"""
from __future__ import annotations

import os
import sys


def table(headers: list[str], rows: list[list[str]], *, align: str | None = None) -> str:
    """A fixed-width table; ``align`` holds 'l' or 'r' per column."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    align = align or "l" * len(headers)

    def fmt(cells: list[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.rjust(widths[i]) if align[i] == "r" else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), rule, *(fmt(r) for r in rows)])


def human_bytes(n: int) -> str:
    """``n`` bytes with a binary unit; a count beyond a float (400 digits, from a hostile config) still formats."""
    try:
        size = float(n)
    except OverflowError:
        return f"{n // 1024 ** 4:,} TB"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.2f} {unit}"
        size /= 1024
    return f"{n} B"


def percent(part: int | float, whole: int | float) -> float | None:
    """``100 * part / whole``; None when ``whole`` is 0 or the answer is beyond a float (a count of 400 digits)."""
    if not whole:
        return None
    try:
        value = 100 * part / whole
    except OverflowError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def use_colour(stream=None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


_CODES = {"red": "31", "green": "32", "yellow": "33", "blue": "34", "magenta": "35", "cyan": "36",
          "bold": "1", "dim": "2"}


def paint(text: str, colour: str, enabled: bool) -> str:
    if not enabled:
        return text
    return f"\033[{_CODES[colour]}m{text}\033[0m"
