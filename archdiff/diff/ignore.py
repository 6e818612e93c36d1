"""The ``--ignore`` pattern language: which changes a pattern hides.

This module owns :func:`ignore_matches`; the engine asks it about every
change before keeping it (and counts the ones hidden).
"""
from __future__ import annotations

import fnmatch
import re
from typing import Iterable

_DEEPDIFF_PATH = re.compile(r"\[(?:'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|(\d+))\]")


def _pattern_path(pattern: str) -> str:
    """Accept deepdiff's ``root['a']['b'][0]`` spelling as well as ``a.b[0]``."""
    if pattern.startswith("root"):
        parts = []
        for m in _DEEPDIFF_PATH.finditer(pattern[4:]):
            if m.group(3) is not None:
                parts.append(f"[{m.group(3)}]")
            else:
                key = m.group(1) if m.group(1) is not None else m.group(2)
                parts.append(("." if parts else "") + key)
        return "".join(parts)
    return pattern


def _path_matches(path: str, pattern: str) -> bool:
    if fnmatch.fnmatchcase(path, pattern):
        return True
    if path.startswith(pattern + ".") or path.startswith(pattern + "["):
        return True
    if fnmatch.fnmatchcase(path, pattern + ".*") or fnmatch.fnmatchcase(path, pattern + "[*"):
        return True
    if "." not in pattern and "[" not in pattern:
        components = [c.split("[", 1)[0] for c in path.split(".")]
        return any(fnmatch.fnmatchcase(c, pattern) for c in components)
    return False


def ignore_matches(patterns: Iterable[str], layer_paths: Iterable[str], change_path: str) -> bool:
    """Whether an ``--ignore`` pattern hides a change.

    ``PATH`` hides changes at that config path or below it (``a.b``, ``a.b[0]``,
    deepdiff's ``root['a']['b']`` also works), globs allowed; a bare key with
    no dot hides that key at any depth. ``LAYER:PATH`` limits it to layers whose
    path (in A or B) matches the glob ``LAYER``. Other change kinds have paths
    too: ``trainable``, ``class_name``, ``inputs``, ``name``, ``weights.NAME``.
    """
    layer_paths = list(layer_paths)
    for raw in patterns:
        layer_glob = None
        pattern = raw
        if ":" in raw and not raw.startswith("root"):
            layer_glob, _, pattern = raw.partition(":")
        pattern = _pattern_path(pattern.strip())
        if layer_glob is not None and not any(fnmatch.fnmatchcase(p, layer_glob) for p in layer_paths):
            continue
        if not pattern or pattern == "*" or _path_matches(change_path, pattern):
            return True
    return False
