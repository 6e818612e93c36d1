"""archdiff: read, graph, diff and transfer weights between Keras model architectures.

The light API (``load``, ``to_graph``, ``layer_rows``, ``summary``, exports)
never imports TensorFlow or Keras; only validation and the Python factory
reader do.
"""
from __future__ import annotations

__version__ = "0.1.0"

from archdiff.errors import ArchdiffError, InputError, MissingDependencyError, TopologyUnknownError  # noqa: E402
from archdiff.model import Architecture, Layer, WeightSpec  # noqa: E402
from archdiff.read import load  # noqa: E402
from archdiff.views import (  # noqa: E402
    layer_rows,
    summary,
    to_graph,  # noqa: E402
)


def model_from_yaml(text_or_path, custom_objects=None, *, safe_mode: bool = True):
    """Rebuild a Keras model from YAML: the safe replacement of Keras' removed API."""
    from archdiff.views import model_from_yaml as _impl

    return _impl(text_or_path, custom_objects=custom_objects, safe_mode=safe_mode)


def compare_weights(a, b, *, mode: str = "figures", detect_renames: bool = True, maps: tuple = ()):
    """Compare the weight values of two model or weight files, variable by variable, without TensorFlow.

    Returns :class:`archdiff.diff.values.ValueComparison` (see
    :func:`archdiff.diff.values.compare_weights`); ``archdiff.diff.diff(a, b)``
    carries the same comparison in its result (``.values``).
    """
    from archdiff.diff.values import compare_weights as _impl

    return _impl(a, b, mode=mode, detect_renames=detect_renames, maps=maps)


__all__ = [
    "ArchdiffError", "Architecture", "InputError", "Layer", "MissingDependencyError",
    "TopologyUnknownError", "WeightSpec", "compare_weights", "layer_rows", "load", "model_from_yaml", "summary",
    "to_graph",
]
