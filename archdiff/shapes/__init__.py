"""Output shapes and weight specs inferred from configs alone (pure Python), checked against Keras.

The stage is a family of modules: ``helpers`` (shared reading of shapes and
config options), ``registry`` (the one registry of rules and the per-layer
lookups), one module per layer family holding each class's output-shape rule
and weight rule side by side (``core``, ``conv``, ``pooling``,
``normalization``, ``merging``, ``reshaping``, ``recurrent``, ``attention``,
``preprocessing``, ``operations``), and ``propagate`` (shapes over a whole
Architecture). Importing this package imports every family, which fills the
registry. This ``__init__`` re-exports the stage's public names, so
``from archdiff.shapes import …`` keeps working whichever module holds them.
"""
from __future__ import annotations

# Each family registers its rules on import; the order does not matter.
from archdiff.shapes import (  # noqa: F401
    attention,
    conv,
    core,
    merging,
    normalization,
    operations,
    pooling,
    preprocessing,
    recurrent,
    reshaping,
)
from archdiff.shapes.operations import operation_output_shapes
from archdiff.shapes.propagate import infer
from archdiff.shapes.registry import layer_output_shapes, layer_weights, variable_dtype

__all__ = ['variable_dtype', 'operation_output_shapes', 'layer_output_shapes', 'layer_weights', 'infer']
