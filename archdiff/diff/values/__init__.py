"""Weight values in the diff: what training changed, variable by variable, without TensorFlow.

* ``figures``: the arithmetic (:class:`Figures`, :class:`Accumulator`,
  :func:`bytes_equal`), no files;
* ``compare``: pairing and reading through :mod:`archdiff.store`
  (:func:`compare_values`, :class:`ValueComparison`, :class:`LayerValues`,
  :class:`VariableValues`) and the per-layer digests textconv prints
  (:func:`layer_digests`).

:func:`compare_weights` compares two weight files alone; :func:`archdiff.diff.diff`
compares values as part of a diff whenever both sides carry weights
(``DiffOptions.values``), and its result carries the comparison
(``ArchDiff.values``).
"""
from __future__ import annotations

import os

from archdiff.diff.values.compare import (
    BLOCK_BYTES,
    VALUE_MODES,
    VARIABLE_STATUSES,
    LayerValues,
    ValueComparison,
    VariableValues,
    compare_datasets,
    compare_values,
    has_stored_weights,
    layer_digests,
    preload,
)
from archdiff.diff.values.figures import HUGE, SUSPICIONS, Accumulator, Figures, bytes_equal, figures_of


def compare_weights(a, b, *, mode: str = "figures", detect_renames: bool = True, maps: tuple = ()) -> ValueComparison:
    """Compare the weight values of two model or weight files (paths or loaded ``Architecture``\\ s).

    Layers are paired as ``archdiff diff`` pairs them (names, renames, nested
    models, ``maps``: :class:`~archdiff.diff.matching.MapRule`), variables as a
    transfer does; see :func:`compare_values`.
    """
    from archdiff.diff.matching import match_layers
    from archdiff.errors import UsageError
    from archdiff.read import load

    arch_a = load(a) if isinstance(a, (str, os.PathLike)) else a
    arch_b = load(b) if isinstance(b, (str, os.PathLike)) else b
    for label, arch in (("A", arch_a), ("B", arch_b)):
        if not has_stored_weights(arch):
            raise UsageError(f"{label} ({arch.source.shown}) holds no weights to compare",
                             hint="give a .keras, .h5, .weights.h5 or .weights.json file")
    matching = match_layers(arch_a, arch_b, detect_renames=detect_renames, rules=tuple(maps))
    return compare_values(arch_a, arch_b, [(p.a, p.b) for p in matching.pairs], mode=mode)


__all__ = ['BLOCK_BYTES', 'VALUE_MODES', 'VARIABLE_STATUSES', 'LayerValues', 'ValueComparison', 'VariableValues',
           'compare_datasets', 'compare_values', 'compare_weights', 'has_stored_weights', 'layer_digests', 'preload',
           'HUGE', 'SUSPICIONS', 'Accumulator', 'Figures', 'bytes_equal', 'figures_of']
