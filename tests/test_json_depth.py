"""The JSON depth limit read off the text (``json_depth``) agrees with a walk of the parsed document."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archdiff.errors import LimitExceededError
from archdiff.limits import MAX_DOCUMENT_DEPTH
from archdiff.read.documents import json_depth, parse_json_bytes

#: Text that tries to look like structure: brackets, quotes and backslashes inside strings and keys.
tricky = st.text(alphabet=st.sampled_from(list('[]{}"\\\\ab,:\\n\\u') + ["\u00e9", "\U0001f600"]), max_size=8)
documents = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), tricky),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(tricky, inner, max_size=4)),
    max_leaves=30,
)


def walked_depth(document) -> int:
    """Container levels, as check_document counts them: ``{}`` is 1, a scalar 0."""
    level = [document] if isinstance(document, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        level = [v for obj in level for v in (obj.values() if isinstance(obj, dict) else obj)
                 if isinstance(v, (dict, list))]
    return depth


@settings(max_examples=500, derandomize=True)
@given(document=documents, ensure_ascii=st.booleans(), indent=st.sampled_from([None, 1]))
def test_the_text_gives_the_depth_a_walk_gives(document, ensure_ascii, indent):
    data = json.dumps(document, ensure_ascii=ensure_ascii, indent=indent).encode("utf-8")
    assert json_depth(data) == walked_depth(document)


@pytest.mark.parametrize("depth", [MAX_DOCUMENT_DEPTH - 1, MAX_DOCUMENT_DEPTH, MAX_DOCUMENT_DEPTH + 1])
def test_the_limit_is_exact(depth):
    data = ("[" * depth + '"]}[{\\\\"' + "]" * depth).encode()
    assert json_depth(data) == (depth if depth <= MAX_DOCUMENT_DEPTH else None)
    if depth > MAX_DOCUMENT_DEPTH:
        with pytest.raises(LimitExceededError, match="nests deeper"):
            parse_json_bytes(data, where="deep.json")
    else:
        assert parse_json_bytes(data, where="deep.json")
