"""Rename rules: ``--map OLD=NEW``, ``re:PATTERN=REPLACEMENT`` and map files, for ``diff`` and ``transfer``.

A :class:`MapRule` renames a layer path of the first model (the diff's A, the
transfer's source), and for a nested model every path under it, to a path of
the second. Rules come from the command line (:func:`parse_map_rule`) or from
a map file (:func:`load_map_file`: YAML/JSON ``{OLD: NEW}`` or text lines
``OLD=NEW``). The matcher pairs layers by them before anything else
(:func:`archdiff.diff.matching.match_layers` ``rules=``); a transfer pairs by
them in :mod:`archdiff.transfer.plan`, and adds the matcher's findings for
``--match auto`` (:mod:`archdiff.transfer.rules`). They live here, with the
matcher, because both stages use them and transfer already depends on diff.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from archdiff.errors import UsageError


# -- rules -------------------------------------------------------------------------
@dataclass(frozen=True)
class MapRule:
    """A rename from source layer paths to target layer paths.

    Exact rules (``OLD=NEW``) rename the layer at path OLD, and everything under
    it when OLD is a nested model (``base=backbone`` renames ``base/conv1`` to
    ``backbone/conv1``). Regex rules (``re:PATTERN=REPLACEMENT``) substitute the
    first match of PATTERN in the path, ``\\1`` for groups, like ``sed s///``.
    """

    old: str
    new: str
    regex: bool = False
    #: Where the rule came from: ``--map``, ``rules.yaml:3``, ``--match auto``.
    origin: str = "--map"

    @property
    def text(self) -> str:
        return f"{'re:' if self.regex else ''}{self.old}={self.new}"

    @property
    def kind(self) -> str:
        if self.origin == "--match auto":
            return "auto"
        return "regex" if self.regex else "map"

    def apply(self, path: str) -> str | None:
        """The renamed path, or None when the rule does not apply to ``path``."""
        if self.regex:
            match = re.search(self.old, path)
            if match is None:
                return None
            try:
                replaced = match.expand(self.new)
            except (re.error, IndexError) as exc:
                raise UsageError(f"{self.origin} '{self.text}': the replacement does not fit the pattern ({exc})",
                                 hint="use \\1, \\2 ... for the pattern's groups") from None
            return path[:match.start()] + replaced + path[match.end():]
        if path == self.old:
            return self.new
        if path.startswith(self.old + "/"):
            return self.new + path[len(self.old):]
        return None


def parse_map_rule(text: str, origin: str = "--map") -> MapRule:
    """``OLD=NEW`` or ``re:PATTERN=REPLACEMENT`` (split at the last ``=``) into a rule."""
    if text.startswith("re:"):
        body = text[3:]
        old, sep, new = body.rpartition("=")
        if not sep or not old:
            raise UsageError(f"{origin} '{text}' is not re:PATTERN=REPLACEMENT",
                             hint="for example --map 're:^old_(.*)$=new_\\1'")
        try:
            re.compile(old)
        except re.error as exc:
            raise UsageError(f"{origin} '{text}': '{old}' is not a valid regular expression ({exc})") from None
        return MapRule(old, new, regex=True, origin=origin)
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise UsageError(f"{origin} '{text}' is not OLD=NEW",
                         hint="give the source layer's path, '=', and the target layer's path: --map fc1=dense_1")
    return MapRule(old.strip("/"), new.strip("/"), origin=origin)


def load_map_file(path: str) -> tuple[MapRule, ...]:
    """Rules from a file: YAML/JSON (``{OLD: NEW}``, a list of ``OLD=NEW``) or text lines ``OLD=NEW``.

    In text files blank lines and lines starting with ``#`` are ignored.
    """
    from archdiff.limits import MAX_CONFIG_BYTES

    try:
        size = os.path.getsize(path)
        if size > MAX_CONFIG_BYTES:
            raise UsageError(f"the map file holds {size} bytes, over the limit of {MAX_CONFIG_BYTES}", path=path)
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise UsageError("no such map file", path=path) from None
    except OSError as exc:
        raise UsageError(f"cannot read the map file ({exc.strerror})", path=path) from None
    base = os.path.basename(path)
    if path.lower().endswith((".yaml", ".yml", ".json")):
        from archdiff.read import parse_json_bytes, parse_yaml_text

        if path.lower().endswith(".json"):
            document = parse_json_bytes(data, where=path)
        else:
            document = parse_yaml_text(data, where=path)
        if isinstance(document, dict) and set(document) == {"map"}:
            document = document["map"]
        rules = []
        if isinstance(document, dict):
            for i, (old, new) in enumerate(document.items(), 1):
                if not isinstance(old, str) or not isinstance(new, str):
                    raise UsageError(f"entry {i} ({old!r}: {new!r}) is not a pair of layer names", path=path)
                rules.append(parse_map_rule(f"{old}={new}", f"{base} entry {i}"))
        elif isinstance(document, list):
            for i, item in enumerate(document, 1):
                if isinstance(item, str):
                    rules.append(parse_map_rule(item, f"{base} item {i}"))
                elif isinstance(item, dict) and set(item) == {"old", "new"} and all(
                        isinstance(v, str) for v in item.values()):
                    rules.append(parse_map_rule(f"{item['old']}={item['new']}", f"{base} item {i}"))
                else:
                    raise UsageError(f"item {i} is neither 'OLD=NEW' nor {{old: ..., new: ...}}", path=path)
        else:
            raise UsageError("a map file holds a mapping {OLD: NEW} or a list of 'OLD=NEW'", path=path)
        return tuple(rules)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError("the map file is not UTF-8 text", path=path) from None
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rules.append(parse_map_rule(line, f"{base}:{number}"))
    return tuple(rules)
