"""The one boundary to the heavy, optional frameworks: TensorFlow, Keras 3, tf-keras.

Every import of TensorFlow, Keras or tf-keras in archdiff goes through this
module (in the spirit of Keras' own ``LazyModule``): it owns the install hint,
the quiet start-up (TensorFlow's C++ log level) and the few places where
archdiff needs a piece of Keras that has no public name. Nothing else in the
package imports these frameworks, nor Keras' private ``keras.src``; a test
(``tests/test_layout.py``) proves it, and another proves that the light
commands never reach this module's imports.
"""
from __future__ import annotations

import os
from typing import Any

from archdiff.errors import MissingDependencyError

#: How to get the frameworks when they are missing.
INSTALL_HINT = "install it with: pip install 'archdiff[tensorflow]'"


def _quiet() -> None:
    # TensorFlow reads this when its C++ core loads: set it before the first import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def require_keras() -> Any:
    """Import Keras 3, or say how to install it."""
    _quiet()
    try:
        import keras  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"this needs TensorFlow/Keras, which is not installed ({exc.name})",
                                     hint=INSTALL_HINT) from None
    return keras


def require_tensorflow() -> Any:
    """Import TensorFlow, or say how to install it."""
    _quiet()
    try:
        import tensorflow as tf
    except ImportError as exc:
        raise MissingDependencyError(f"this needs TensorFlow, which is not installed ({exc.name})",
                                     hint=INSTALL_HINT) from None
    return tf


def is_framework_module(module_name: str) -> bool:
    """Whether importing ``module_name`` means importing one of the heavy frameworks."""
    return module_name.split(".")[0] in ("keras", "tensorflow", "tf_keras")


def legacy_model_from_config(document: dict) -> Any:
    """Keras 3's own reader of a Keras 2 model config (what its legacy HDF5 loader uses).

    Keras 3 has no public name for it; this is the one place archdiff reaches
    into Keras' internals, and it falls back to an error Keras raises anyway
    when a future Keras moves the function.
    """
    require_keras()
    import importlib

    saving_utils = importlib.import_module("keras.src.legacy.saving.saving_utils")
    return saving_utils.model_from_config(document)


def safe_mode_scope(safe: bool) -> Any:
    """Keras' safe-mode scope, so that every nested deserialization honours ``safe``.

    ``deserialize_keras_object(safe_mode=...)`` sets it for its own call; the
    legacy reader of Keras 2 configs does not, hence the explicit scope. Like
    :func:`legacy_model_from_config` it has no public name in Keras 3.
    """
    require_keras()
    import importlib

    return importlib.import_module("keras.src.saving.serialization_lib").SafeModeScope(safe)
