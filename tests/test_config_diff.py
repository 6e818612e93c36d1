"""config_diff's own path for plain configs gives exactly DeepDiff's answer (DeepDiff is the oracle)."""
from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import archdiff.diff.engine as engine

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 2.5, math.nan]),
                    st.builds(float, st.just("nan")),  # a NaN of its own, as each json.loads makes
                    st.sampled_from(["relu", "linear", "same", ""]))
keys = st.sampled_from(["units", "activation", "kernel_size", "config", "seed", "a.b", "name", "x[0]"])
values = st.recursive(
    st.one_of(scalars, st.lists(scalars, max_size=3)),
    lambda inner: st.one_of(st.dictionaries(keys, inner, max_size=4), st.lists(inner, max_size=3)),
    max_leaves=12,
)
configs = st.dictionaries(keys, values, max_size=5)


def _nan_safe(rows):
    return [tuple("nan" if isinstance(v, float) and math.isnan(v) else v for v in r) for r in rows]


@settings(max_examples=1500, derandomize=True, deadline=None)
@given(old=configs, new=configs, edit=st.booleans())
def test_the_plain_path_gives_deepdiffs_answer(old, new, edit):
    if edit:  # mostly-equal pairs are the common case: B is A with one value changed
        new = {**old, **dict(list(new.items())[:1])}
    fast = engine.config_diff(old, new)
    used_plain = engine._plain_diff(old, new, [], {})
    original = engine._plain_diff
    engine._plain_diff = lambda *a: False  # DeepDiff decides everything
    try:
        slow = engine.config_diff(old, new)
    finally:
        engine._plain_diff = original
    assert _nan_safe(fast) == _nan_safe(slow), (old, new, used_plain)
