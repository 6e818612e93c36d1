"""Bugs this suite found in modules still being written by others, kept as failing tests.

Each is marked ``xfail(strict=True)``: when the owner fixes it, the test
passes, strict xfail fails, and the marker must be removed (the test then
guards the fix). Listed in docs/robustness.md with the input and traceback.
"""
from __future__ import annotations

from dataclasses import replace

import pytest

import archdiff
from archdiff.errors import ArchdiffError

import harness


def _rename(arch, index: int, name: str):
    layers = list(arch.layers)
    layers[index] = replace(layers[index], name=name, path=name)
    return replace(arch, layers=tuple(layers))


@pytest.mark.xfail(strict=True, raises=AttributeError,
                   reason="transfer.py _match: two unruled source claims on one target path crash on winner.rule "
                          "(None) at transfer.py:556 instead of raising an ArchdiffError")
def test_transfer_plan_with_a_slash_name_beside_a_nested_model():
    # A Keras 2 weights-only file lists the nested model 'base' (whose weights include conv1/...) and a
    # top-level layer 'base/conv1'; the target has a top-level layer 'base/conv1'. load() now refuses such a
    # legacy file (fixtures/broken/h5_name_slash_ambiguous.h5), but plan_transfer crashes on these
    # Architectures, which a config (tf-keras allows '/' in names) or the API can still produce.
    from archdiff.transfer import plan_transfer

    source = _rename(archdiff.load(harness.FIXTURES / "keras2" / "nested_weights.h5"), 2, "base/conv1")
    target = _rename(archdiff.load(harness.FIXTURES / "keras3" / "functional.keras"), 2, "base/conv1")
    try:
        plan_transfer(source, target)
    except ArchdiffError:
        pass
