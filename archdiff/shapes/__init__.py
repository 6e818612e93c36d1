"""Output shapes and weight specs inferred from configs alone (pure Python), checked against Keras.

This ``__init__`` re-exports the stage's public names, so ``from archdiff.shapes import …``
keeps working whichever module inside the package holds them.
"""
from __future__ import annotations

from archdiff.shapes.rules import (  # noqa: F401
    variable_dtype,
    operation_output_shapes,
    layer_output_shapes,
    layer_weights,
    infer,
)

__all__ = ['variable_dtype', 'operation_output_shapes', 'layer_output_shapes', 'layer_weights', 'infer']
