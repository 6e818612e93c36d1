"""The transfer stage: pair variables by layer name, check, write a verified copy of the target.

This ``__init__`` re-exports the stage's public names, so ``from archdiff.transfer import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

from archdiff.transfer.plan import (  # noqa: F401
    SCHEMA_VERSION,
    WEIGHT_FILE_FORMATS,
    TransferError,
    MapRule,
    parse_map_rule,
    load_map_file,
    TransferOptions,
    FileInfo,
    VAR_ACTIONS,
    LAYER_STATUSES,
    VariableTransfer,
    LayerTransfer,
    UnusedLayer,
    Totals,
    TransferPlan,
    TransferReport,
    check_output,
    plan_transfer,
    apply_transfer,
    dry_run,
    transfer,
)

__all__ = ['SCHEMA_VERSION', 'WEIGHT_FILE_FORMATS', 'TransferError', 'MapRule', 'parse_map_rule', 'load_map_file', 'TransferOptions', 'FileInfo', 'VAR_ACTIONS', 'LAYER_STATUSES', 'VariableTransfer', 'LayerTransfer', 'UnusedLayer', 'Totals', 'TransferPlan', 'TransferReport', 'check_output', 'plan_transfer', 'apply_transfer', 'dry_run', 'transfer']
