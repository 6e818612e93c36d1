"""The one boundary to the heavy, optional frameworks: TensorFlow, Keras 3, tf-keras, JAX, PyTorch.

Every import of TensorFlow, Keras, tf-keras, JAX or PyTorch in archdiff goes
through this module (in the spirit of Keras' own ``LazyModule``): it owns the
install hints, the quiet start-up (TensorFlow's C++ log level), the choice of
Keras' backend, and the few places where archdiff needs a piece of Keras that
has no public name, and the capture of what the frameworks print while they run
(:func:`quiet_frameworks`). Nothing else in the package imports these frameworks, nor
Keras' private ``keras.src``; a test (``tests/test_layout.py``) proves it, and
another proves that the light commands never reach this module's imports.

**The backend.** Keras 3 fixes its backend (TensorFlow, JAX or PyTorch) once,
when it is first imported, from ``KERAS_BACKEND`` (else ``~/.keras/keras.json``,
else TensorFlow). :func:`select_backend` is the one place archdiff sets it,
before that import; once Keras is loaded with another backend in this process
it cannot change, and :func:`select_backend` says so in one line
(:class:`BackendError`) rather than running on the wrong one.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from archdiff.errors import MissingDependencyError, UsageError

#: How to get the frameworks when they are missing.
INSTALL_HINT = "install it with: pip install 'archdiff[tensorflow]'"

#: The Keras 3 backends archdiff can run on, and the module each one needs.
BACKENDS = ("tensorflow", "jax", "torch")
_BACKEND_MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
BACKEND_INSTALL_HINTS = {
    "tensorflow": "install it with: pip install 'archdiff[tensorflow]'",
    "jax": "install it with: pip install 'archdiff[jax]' (CPU; for CUDA: pip install 'jax[cuda12]')",
    "torch": "install it with: pip install torch (a CPU build is enough)",
}
#: Top-level module names that mean "a heavy framework is being imported".
FRAMEWORK_MODULES = ("keras", "tensorflow", "tf_keras", "jax", "jaxlib", "torch")


class BackendError(UsageError):
    """Keras is already running on another backend in this process (it cannot switch)."""


def _quiet() -> None:
    # TensorFlow reads this when its C++ core loads: set it before the first import.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def backend_installed(name: str) -> bool:
    """Whether the framework a backend needs can be imported here (without importing it)."""
    module = _BACKEND_MODULE.get(name)
    if module is None:
        return False
    if module in sys.modules:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def loaded_backend() -> str | None:
    """The backend Keras runs on in this process, or None while Keras is not imported yet."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return str(keras.backend.backend())
    except Exception:  # noqa: BLE001 - a half-imported Keras: treat as not loaded
        return None


def select_backend(name: str | None) -> str:
    """Make Keras run on backend ``name`` (None: whatever Keras would choose), before it is imported.

    Returns the backend that will run. Raises :class:`BackendError` when Keras
    was already imported with another backend in this process, and
    :class:`~archdiff.errors.MissingDependencyError` (with the install hint)
    when the backend's framework is not installed.
    """
    if name is not None and name not in BACKENDS:
        raise UsageError(f"--backend '{name}' is not one of {', '.join(BACKENDS)}")
    # Keras on JAX or PyTorch still loads TensorFlow where it is installed (keras.utils.set_random_seed does).
    _quiet()
    loaded = loaded_backend()
    if loaded is not None:
        if name is not None and loaded != name:
            raise BackendError(
                f"Keras was already imported in this process with the {loaded} backend, so it cannot run on {name}",
                hint=f"run archdiff in a fresh process (or set KERAS_BACKEND={name} before anything imports Keras)")
        return loaded
    if name is None:
        name = os.environ.get("KERAS_BACKEND") or None
        if name is None:
            return "tensorflow" if backend_installed("tensorflow") else next(
                (b for b in BACKENDS if backend_installed(b)), "tensorflow")
        if name not in BACKENDS:
            raise UsageError(f"KERAS_BACKEND='{name}' is not one of {', '.join(BACKENDS)}")
    if not backend_installed(name):
        raise MissingDependencyError(f"the Keras backend '{name}' is not installed (no module "
                                     f"'{_BACKEND_MODULE[name]}')", hint=BACKEND_INSTALL_HINTS[name])
    # Keras reads this when it is first imported, and only then.
    os.environ["KERAS_BACKEND"] = name
    return name


def require_keras() -> Any:
    """Import Keras 3, or say how to install it."""
    _quiet()
    if "keras" not in sys.modules and not os.environ.get("KERAS_BACKEND") and not backend_installed("tensorflow"):
        # Keras' own default is TensorFlow: where only JAX or PyTorch is installed (a GPU box), use that.
        other = next((b for b in BACKENDS if backend_installed(b)), None)
        if other is not None:
            os.environ["KERAS_BACKEND"] = other
    try:
        if "keras" in sys.modules:
            import keras  # noqa: F401
        else:
            with quiet_frameworks():  # the C++ start-up lines TF_CPP_MIN_LOG_LEVEL does not silence
                import keras  # noqa: F401
    except ImportError as exc:
        backend = os.environ.get("KERAS_BACKEND") or "tensorflow"
        if exc.name in (None, "keras", "tensorflow") or backend not in BACKENDS:
            raise MissingDependencyError(f"this needs TensorFlow/Keras, which is not installed ({exc.name})",
                                         hint=INSTALL_HINT) from None
        # Keras is there, but its backend could not load: say which backend and what it lacks.
        raise MissingDependencyError(f"Keras could not load its {backend} backend: the module '{exc.name}' is "
                                     "missing", hint=BACKEND_INSTALL_HINTS[backend]) from None
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


def require_backend_module(name: str) -> Any:
    """The framework module of a backend (``tensorflow``, ``jax``, ``torch``), or its install hint."""
    if name == "tensorflow":
        return require_tensorflow()
    module = _BACKEND_MODULE.get(name)
    if module is None:
        raise UsageError(f"'{name}' is not one of {', '.join(BACKENDS)}")
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(f"the Keras backend '{name}' is not installed ({exc.name})",
                                     hint=BACKEND_INSTALL_HINTS[name]) from None


def backend_info() -> dict:
    """What runs: ``{"backend", "backend_version", "keras_version"}`` (imports Keras)."""
    keras = require_keras()
    name = str(keras.backend.backend())
    module = sys.modules.get(_BACKEND_MODULE.get(name, name))
    return {"backend": name, "backend_version": str(getattr(module, "__version__", "") or ""),
            "keras_version": str(getattr(keras, "__version__", ""))}


def is_framework_module(module_name: str) -> bool:
    """Whether importing ``module_name`` means importing one of the heavy frameworks."""
    return module_name.split(".")[0] in FRAMEWORK_MODULES


def legacy_model_from_config(document: dict) -> Any:
    """Keras 3's own reader of a Keras 2 model config (what its legacy HDF5 loader uses).

    Keras 3 has no public name for it; this is the one place archdiff reaches
    into Keras' internals, and it falls back to an error Keras raises anyway
    when a future Keras moves the function.
    """
    require_keras()
    saving_utils = importlib.import_module("keras.src.legacy.saving.saving_utils")
    return saving_utils.model_from_config(document)


def safe_mode_scope(safe: bool) -> Any:
    """Keras' safe-mode scope, so that every nested deserialization honours ``safe``.

    ``deserialize_keras_object(safe_mode=...)`` sets it for its own call; the
    legacy reader of Keras 2 configs does not, hence the explicit scope. Like
    :func:`legacy_model_from_config` it has no public name in Keras 3.
    """
    require_keras()
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
