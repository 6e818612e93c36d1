"""The diff stage: pair the layers of two models, compare them, classify the result, gate on it.

This ``__init__`` re-exports the stage's public names, so ``from archdiff.diff import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

from archdiff.diff.engine import (  # noqa: F401
    SCHEMA_VERSION,
    KINDS,
    CLASSIFICATIONS,
    FAIL_ON_SPECIAL,
    CHANGE_KINDS,
    DiffOptions,
    Change,
    renamed,
    class_changed,
    config_changed,
    trainable_changed,
    weight_changed,
    inputs_changed,
    LayerDiff,
    LayerEntry,
    Edge,
    IOChange,
    ModelInfo,
    ArchDiff,
    fails,
    ignore_matches,
    config_diff,
    weight_changes,
    diff,
    class_of_name,
)

__all__ = ['SCHEMA_VERSION', 'KINDS', 'CLASSIFICATIONS', 'FAIL_ON_SPECIAL', 'CHANGE_KINDS', 'DiffOptions', 'Change', 'renamed', 'class_changed', 'config_changed', 'trainable_changed', 'weight_changed', 'inputs_changed', 'LayerDiff', 'LayerEntry', 'Edge', 'IOChange', 'ModelInfo', 'ArchDiff', 'fails', 'ignore_matches', 'config_diff', 'weight_changes', 'diff', 'class_of_name']
