"""The validate stage (the one that imports TensorFlow): rebuild, arrival, shared outputs, fine-tuning.

One module per part, and this ``__init__`` re-exports the stage's public
names, so ``from archdiff.validate import …`` keeps working whichever
module holds them:

- :mod:`~archdiff.validate.options` (``ValidateOptions``) and
  :mod:`~archdiff.validate.report` (the status words and the frozen result
  records) are plain data; :mod:`~archdiff.validate.render` formats a report.
- :mod:`~archdiff.validate.pipeline`: ``validate``, the four checks in order.
- :mod:`~archdiff.validate.rebuilding` (check 1), :mod:`~archdiff.validate.arrival`
  (check 2), :mod:`~archdiff.validate.subgraph` and :mod:`~archdiff.validate.outputs`
  (check 3), :mod:`~archdiff.validate.finetuning`, :mod:`~archdiff.validate.data`
  and :mod:`~archdiff.validate.precision` (check 4); :mod:`~archdiff.validate.live`
  holds what they share about a live model and a file's stored values.
- :mod:`~archdiff.validate.comparator` (how two outputs are compared, as
  Polygraphy does), :mod:`~archdiff.validate.reference` (saved references),
  :mod:`~archdiff.validate.heads` (the loss of each output).
- :mod:`~archdiff.validate.devices` (device and strategy on each backend),
  :mod:`~archdiff.validate.backends` and :mod:`~archdiff.cli.validate_worker`
  (``--backends``: one process per backend, their outputs compared) and
  :mod:`~archdiff.validate.synthetic` (the built-in task).

Check 1 and 4 live in ``rebuilding`` and ``finetuning``, not ``rebuild`` and
``finetune``: the functions of those names are re-exported here, and a
module named like them would be shadowed by them (``import
archdiff.validate.finetune as m`` would give the function). Importing the
package loads no TensorFlow; every check imports it through
:mod:`archdiff.lazy` when it runs.
"""
from __future__ import annotations

from archdiff.validate.arrival import check_weights
from archdiff.validate.backends import validate_on
from archdiff.validate.comparator import Comparison, Tolerances, compare_arrays
from archdiff.validate.data import Data, load_data
from archdiff.validate.finetuning import finetune, resolve_freeze_until
from archdiff.validate.live import FileValues, live_layers, pair_variables
from archdiff.validate.options import BUDGETS, ValidateOptions
from archdiff.validate.outputs import compare_outputs
from archdiff.validate.pipeline import validate
from archdiff.validate.precision import mixed_precision_config
from archdiff.validate.rebuilding import import_modules, lambda_layers_with_code, load_weights_into, rebuild
from archdiff.validate.reference import load_reference, record_reference, save_reference
from archdiff.validate.report import (
    FAIL,
    MAX_LISTED,
    PASS,
    SKIPPED,
    AgreementCheck,
    BackendsReport,
    FinetuneCheck,
    LayerArrival,
    OutputResult,
    OutputsCheck,
    RebuildResult,
    ReferenceCheck,
    ScratchResult,
    StageResult,
    ValidationReport,
    VariableResult,
    WeightsCheck,
)
from archdiff.validate.subgraph import (
    SharedGraph,
    config_differences,
    map_rules,
    pair_layers,
    shared_subgraph,
    sub_config,
)

__all__ = [
    "PASS", "FAIL", "SKIPPED", "MAX_LISTED", "ValidateOptions", "RebuildResult", "VariableResult", "LayerArrival",
    "WeightsCheck", "OutputResult", "OutputsCheck", "StageResult", "ScratchResult", "FinetuneCheck",
    "ValidationReport", "import_modules", "lambda_layers_with_code", "rebuild", "load_weights_into", "live_layers",
    "pair_variables", "FileValues", "map_rules", "pair_layers", "check_weights", "config_differences",
    "SharedGraph", "shared_subgraph", "sub_config", "compare_outputs", "Data", "load_data",
    "mixed_precision_config", "resolve_freeze_until", "finetune", "validate", "BUDGETS", "Comparison", "Tolerances",
    "compare_arrays", "AgreementCheck", "BackendsReport", "ReferenceCheck", "load_reference", "record_reference",
    "save_reference", "validate_on",
]
