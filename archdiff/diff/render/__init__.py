"""Renderers of an :class:`~archdiff.diff.ArchDiff`: one module per report, one dispatcher.

``text`` (git-diff-like, for a terminal), ``markdown`` (a pull-request
comment), ``json`` (the documented schema) and ``html`` (a self-contained page
with both graphs; its scripts and styles in ``assets/``); the pieces they
share are in ``common``. :func:`render` picks text, JSON or Markdown by name;
the HTML page needs both architectures and is made by
:func:`archdiff.diff.render.html.render_diff_html`. This ``__init__``
re-exports the names other modules use, so ``from archdiff.diff.render import …``
works whichever module holds them.
"""
from __future__ import annotations

from archdiff.diff.render.common import MAX_VALUE, change_text, merged, source_text, value_text
from archdiff.diff.render.json import render_json, to_json_dict
from archdiff.diff.render.markdown import MAX_MD_ROWS, md_code, md_escape, render_markdown
from archdiff.diff.render.text import MAX_RUN, policy_text, render_text
from archdiff.diff.result import ArchDiff

#: The report formats :func:`render` writes.
FORMATS = ("text", "json", "markdown")


def render(d: ArchDiff, fmt: str, *, colour: bool = False, policy=None, exit_code: int | None = None,
           full: bool = False) -> str:
    """``d`` as a ``fmt`` report (anything but "json" and "markdown" is text), with the policy result if any."""
    if fmt == "json":
        return render_json(d, policy=policy, exit_code=exit_code)
    if fmt == "markdown":
        return render_markdown(d, policy=policy, exit_code=exit_code)
    return render_text(d, colour=colour, policy=policy, exit_code=exit_code, full=full)


__all__ = ["FORMATS", "MAX_MD_ROWS", "MAX_RUN", "MAX_VALUE", "change_text", "md_code", "md_escape", "merged",
           "policy_text", "render", "render_json", "render_markdown", "render_text", "source_text", "to_json_dict",
           "value_text"]
