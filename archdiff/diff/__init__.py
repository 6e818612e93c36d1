"""The diff stage: pair the layers of two models, compare them, classify the result, gate on it.

The modules, in the order the data flows:

* ``kinds``: the vocabulary (kinds of difference and of change, one constructor
  per change, :func:`classify`, the validators);
* ``options``: :class:`DiffOptions`; ``canonical``: configs without
  serialization noise; ``ignore``: the ``--ignore`` patterns;
* ``matching`` (a package): which layer of A is which layer of B;
* ``values`` (a package): weight values compared variable by variable (``compare_weights``);
* ``engine``: :func:`diff`, which builds the result; ``result``: :class:`ArchDiff`
  and its records, with ``to_dict()`` and the exit code;
* ``render`` (a package): text, JSON, Markdown and HTML reports;
* ``policy``: the YAML policy; ``gate``: files against a git revision;
  ``gitdriver``: everything asked of git.

This ``__init__`` re-exports the stage's public names, so ``from archdiff.diff import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

import importlib

#: Each re-exported name by the module inside the package that holds it. The
#: stage's modules are imported on first use (PEP 562): ``transfer`` needs the
#: matcher's rules and ``layers`` none of it, and importing the engine, the gate
#: and the value comparison up front cost a transfer about 40 ms of its start.
_EXPORTS = {
    'engine': (
        'class_of_name',
        'config_diff',
        'diff',
        'weight_changes',
    ),
    'gate': (
        'GATE_DEFAULT_FAIL_ON',
        'FileResult',
        'GateResult',
        'decide',
        'find_policy',
        'gate_file',
        'gate_files',
        'iter_gate_files',
    ),
    'ignore': (
        'ignore_matches',
    ),
    'kinds': (
        'CHANGE_KINDS',
        'CLASSIFICATIONS',
        'EFFECTS',
        'FAIL_ON_SPECIAL',
        'IO_SIDES',
        'IO_WHATS',
        'KINDS',
        'OPS',
        'class_changed',
        'classify',
        'config_changed',
        'inputs_changed',
        'io_changed',
        'model_class_changed',
        'model_renamed',
        'renamed',
        'trainable_changed',
        'validate_change',
        'validate_diff',
        'validate_io_change',
        'values_changed',
        'weight_changed',
    ),
    'matching': (
        'Matching',
        'Pair',
        'match_layers',
    ),
    'options': (
        'DiffOptions',
    ),
    'result': (
        'SCHEMA_VERSION',
        'ArchDiff',
        'Change',
        'Edge',
        'IOChange',
        'LayerDiff',
        'LayerEntry',
        'ModelInfo',
        'fails',
    ),
    'values': (
        'LayerValues',
        'ValueComparison',
        'VariableValues',
        'compare_weights',
    ),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    # Names exported before the stage was split into modules (keep them).
    'SCHEMA_VERSION', 'KINDS', 'CLASSIFICATIONS', 'FAIL_ON_SPECIAL', 'CHANGE_KINDS', 'DiffOptions', 'Change',
    'renamed', 'class_changed', 'config_changed', 'trainable_changed', 'weight_changed', 'inputs_changed',
    'LayerDiff', 'LayerEntry', 'Edge', 'IOChange', 'ModelInfo', 'ArchDiff', 'fails', 'ignore_matches',
    'config_diff', 'weight_changes', 'diff', 'class_of_name',
    # The vocabulary's new names.
    'EFFECTS', 'OPS', 'IO_SIDES', 'IO_WHATS', 'model_renamed', 'model_class_changed', 'io_changed', 'classify',
    'validate_change', 'validate_io_change', 'validate_diff',
    # Matching and the gate (the renderers are archdiff.diff.render's: a name "render" here would hide that package).
    'Matching', 'Pair', 'match_layers',
    'GATE_DEFAULT_FAIL_ON', 'FileResult', 'GateResult', 'decide', 'find_policy', 'gate_file', 'gate_files',
    'iter_gate_files',
    # Weight values.
    'values_changed', 'ValueComparison', 'LayerValues', 'VariableValues', 'compare_weights',
]
