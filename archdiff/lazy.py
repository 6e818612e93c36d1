"""The one boundary to the heavy, optional frameworks: TensorFlow, Keras 3, tf-keras.

Every import of TensorFlow, Keras or tf-keras in archdiff goes through this
module (in the spirit of Keras' own ``LazyModule``): it owns the install hint,
the quiet start-up (TensorFlow's C++ log level) and the few places where
archdiff needs a piece of Keras that has no public name, and the capture of
what the frameworks print while they run (:func:`quiet_frameworks`). Nothing
else in the package imports these frameworks, nor Keras' private ``keras.src``; a test
(``tests/test_layout.py``) proves it, and another proves that the light
commands never reach this module's imports.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

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
        if "keras" in sys.modules:
            import keras  # noqa: F401
        else:
            with quiet_frameworks():  # the C++ start-up lines TF_CPP_MIN_LOG_LEVEL does not silence
                import keras  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(f"this needs TensorFlow/Keras, which is not installed ({exc.name})",
                                     hint=INSTALL_HINT) from None
    return keras


def require_tensorflow() -> Any:
    """Import TensorFlow, or say how to install it."""
    _quiet()
    try:
        if "tensorflow" in sys.modules:
            import tensorflow as tf
        else:
            with quiet_frameworks():
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


# -- quiet frameworks ---------------------------------------------------------------------
class CapturedLog:
    """What the frameworks printed while :func:`quiet_frameworks` ran: C++ log lines, Python logging, warnings."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    @property
    def text(self) -> str:
        return "".join(line if line.endswith("\n") else line + "\n" for line in self.lines)


#: Loggers of the frameworks (and libraries they pull in) whose records are captured.
FRAMEWORK_LOGGERS = ("tensorflow", "absl", "keras", "tf_keras", "h5py", "jax", "torch")


@contextmanager
def quiet_frameworks(show: bool = False) -> Iterator[CapturedLog]:
    """Capture what TensorFlow, absl and Keras print while the block runs; show it only when ``show``.

    TensorFlow's C++ core and absl write log lines straight to file
    descriptor 2, so fd 2 is pointed at a temporary file for the block (a
    child process inherits that, too); archdiff's own writes to ``sys.stderr``
    (progress bars) still reach the real stderr through a copy of it. Python
    warnings and the frameworks' loggers are recorded the same way. With
    ``show`` (``--debug``) everything captured is written to stderr when the
    block ends; errors, which the CLI prints after the block, stay one line.
    """
    import io
    import logging
    import tempfile
    import warnings

    log = CapturedLog()
    handler = _list_handler(log)
    saved_loggers = []
    for name in FRAMEWORK_LOGGERS:
        logger = logging.getLogger(name)
        saved_loggers.append((logger, logger.handlers[:], logger.propagate))
        logger.handlers = [handler]
        logger.propagate = False
    saved_fd = capture = None
    saved_stderr = sys.stderr
    try:
        sys.stderr.flush()
        real = getattr(sys.stderr, "fileno", lambda: -1)() == 2
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        real = False
    try:
        capture = tempfile.TemporaryFile()
        saved_fd = os.dup(2)
        os.dup2(capture.fileno(), 2)
    except OSError:
        saved_fd = None
    if saved_fd is not None and real:
        # archdiff's own stderr (the progress bar) keeps going to the real stderr.
        sys.stderr = io.TextIOWrapper(io.FileIO(saved_fd, "w", closefd=False), encoding=saved_stderr.encoding,
                                      errors=saved_stderr.errors, line_buffering=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                yield log
            finally:
                log.lines.extend(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                                 for w in caught)
    finally:
        for logger, handlers, propagate in saved_loggers:
            logger.handlers = handlers
            logger.propagate = propagate
        if sys.stderr is not saved_stderr:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            sys.stderr = saved_stderr
        if saved_fd is not None:
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
        if capture is not None:
            capture.seek(0)
            printed = capture.read().decode("utf-8", "replace")
            capture.close()
            if printed:
                log.lines.insert(0, printed)
        if show and log.lines:
            try:
                saved_stderr.write(log.text)
                saved_stderr.flush()
            except (OSError, ValueError):
                pass


def _list_handler(log: CapturedLog) -> Any:
    """A logging handler that keeps each record as one line in ``log``."""
    import logging

    class ListHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            try:
                log.lines.append(f"{record.name}: {record.levelname}: {record.getMessage()}")
            except Exception:  # noqa: BLE001 - a record that cannot be formatted is dropped, never raised
                pass

    return ListHandler()
