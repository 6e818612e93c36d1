"""The transfer stage: pair variables by layer name, check, write a verified copy of the target.

``rules`` holds the rename rules (``--map``, ``re:``, map files; ``--match
auto``'s renames and nestings); ``plan`` pairs layers and variables and checks
them into a ``TransferPlan`` (coverage and the exit code included); ``adapt``
is the opt-in shape adapters (``--adapt``); ``apply`` carries a plan out and
returns the ``TransferReport``; ``write`` moves the bytes (streamed copies,
temporary and scratch files, signals, checksums); ``render`` formats the
report. Files are reached only through :mod:`archdiff.store`.

This ``__init__`` re-exports the stage's public names, so ``from archdiff.transfer import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

from archdiff.transfer.adapt import (  # noqa: F401
    ADAPTERS,
    Adaptation,
    adapt_array,
    plan_adaptation,
)
from archdiff.transfer.apply import (  # noqa: F401
    SCHEMA_VERSION,
    TransferError,
    TransferReport,
    apply_transfer,
    check_output,
    dry_run,
    transfer,
)
from archdiff.transfer.plan import (  # noqa: F401
    LAYER_STATUSES,
    VAR_ACTIONS,
    WEIGHT_FILE_FORMATS,
    FileInfo,
    LayerTransfer,
    Totals,
    TransferOptions,
    TransferPlan,
    UnusedLayer,
    VariableTransfer,
    coverage_refusal,
    pair_variables,
    plan_transfer,
)
from archdiff.transfer.rules import (  # noqa: F401
    MapRule,
    load_map_file,
    parse_map_rule,
)

__all__ = ['SCHEMA_VERSION', 'WEIGHT_FILE_FORMATS', 'TransferError', 'MapRule', 'parse_map_rule', 'load_map_file', 'TransferOptions', 'FileInfo', 'VAR_ACTIONS', 'LAYER_STATUSES', 'VariableTransfer', 'LayerTransfer', 'UnusedLayer', 'Totals', 'TransferPlan', 'TransferReport', 'coverage_refusal', 'ADAPTERS', 'Adaptation', 'adapt_array', 'plan_adaptation', 'check_output', 'pair_variables', 'plan_transfer', 'apply_transfer', 'dry_run', 'transfer']
