"""The validate stage (the one that imports TensorFlow): rebuild, arrival, shared outputs, fine-tuning.

This ``__init__`` re-exports the stage's public names, so ``from archdiff.validate import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

from archdiff.validate.core import (  # noqa: F401
    PASS,
    FAIL,
    SKIPPED,
    MAX_LISTED,
    ValidateOptions,
    RebuildResult,
    VariableResult,
    LayerArrival,
    WeightsCheck,
    OutputResult,
    OutputsCheck,
    StageResult,
    ScratchResult,
    FinetuneCheck,
    ValidationReport,
    import_modules,
    lambda_layers_with_code,
    rebuild,
    load_weights_into,
    live_layers,
    pair_variables,
    FileValues,
    map_rules,
    pair_layers,
    check_weights,
    config_differences,
    SharedGraph,
    shared_subgraph,
    sub_config,
    compare_outputs,
    Data,
    load_data,
    mixed_precision_config,
    resolve_freeze_until,
    finetune,
    validate,
)

__all__ = ['PASS', 'FAIL', 'SKIPPED', 'MAX_LISTED', 'ValidateOptions', 'RebuildResult', 'VariableResult', 'LayerArrival', 'WeightsCheck', 'OutputResult', 'OutputsCheck', 'StageResult', 'ScratchResult', 'FinetuneCheck', 'ValidationReport', 'import_modules', 'lambda_layers_with_code', 'rebuild', 'load_weights_into', 'live_layers', 'pair_variables', 'FileValues', 'map_rules', 'pair_layers', 'check_weights', 'config_differences', 'SharedGraph', 'shared_subgraph', 'sub_config', 'compare_outputs', 'Data', 'load_data', 'mixed_precision_config', 'resolve_freeze_until', 'finetune', 'validate']
