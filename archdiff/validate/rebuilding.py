"""Check 1, rebuild: a Keras 3 model from an Architecture's config, safely, and Keras loading OUT into it.

This module owns safe mode (a ``Lambda`` layer's stored bytecode is refused
before Keras sees it, unless ``unsafe``), ``--import MODULE`` for custom
classes, the fallback to Keras 3's legacy reader for Keras 2 configs, and the
few helpers that walk a serialized model config (used again to cut sub-models
out of it). Named ``rebuilding`` rather than ``rebuild`` so that the
package's ``rebuild`` function does not shadow the module.
"""
from __future__ import annotations

import copy
import importlib
import os
import re
from typing import Iterator

from archdiff.errors import ArchdiffError, InputError, TopologyUnknownError, UnsafeInputError, UsageError
from archdiff.model import Architecture


def import_modules(names) -> list[str]:
    """Import the user's modules so that their registered Keras classes are known."""
    done = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UsageError(f"--import '{name}' cannot be imported ({exc})",
                             hint="give a module importable from this environment (check PYTHONPATH)") from None
        except Exception as exc:  # noqa: BLE001 - user code; report, don't trace
            raise UsageError(f"--import '{name}' raised {type(exc).__name__}: {exc}") from None
        done.append(name)
    return done


def walk_layer_entries(serialized: dict, scope: str = "") -> Iterator[tuple[str, dict]]:
    """Every layer entry of a serialized model, nested models included, with its path."""
    config = serialized.get("config") if isinstance(serialized, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        return
    for entry in config["layers"]:
        if not isinstance(entry, dict):
            continue
        inner = entry.get("config") if isinstance(entry.get("config"), dict) else {}
        name = entry.get("name", inner.get("name", "?"))
        path = f"{scope}/{name}" if scope else str(name)
        yield path, entry
        if isinstance(inner.get("layers"), list):
            yield from walk_layer_entries(entry, path)


def lambda_layers_with_code(serialized: dict) -> list[str]:
    """Lambda layers whose function is stored Python bytecode (Keras 2 or 3 form)."""
    found = []
    for path, entry in walk_layer_entries(serialized):
        if entry.get("class_name") != "Lambda":
            continue
        config = entry.get("config") or {}
        for key in ("function", "output_shape"):
            value = config.get(key)
            if isinstance(value, dict) and value.get("class_name") == "__lambda__":
                found.append(path)
                break
            if isinstance(value, (list, tuple)) and value and isinstance(value[0], str) and \
                    config.get(f"{key}_type", "lambda") == "lambda":
                found.append(path)
                break
    return found


def strip_versions(serialized: dict) -> dict:
    """A deep copy of a serialized model without the ``to_json()`` wrapper keys Keras does not take back."""
    return {k: copy.deepcopy(v) for k, v in serialized.items() if k not in ("keras_version", "backend")}


def _keras2_fixups(serialized: dict) -> dict:
    """Small rewrites Keras 3's legacy loader needs for Keras 2 configs (one-item axis lists)."""
    doc = copy.deepcopy(serialized)
    for _, entry in walk_layer_entries(doc):
        config = entry.get("config")
        if isinstance(config, dict) and isinstance(config.get("axis"), list) and len(config["axis"]) == 1:
            config["axis"] = int(config["axis"][0])
    return doc


def rebuild(arch: Architecture, *, unsafe: bool = False, serialized: dict | None = None):
    """A Keras 3 model from an Architecture's config (fresh, untrained variables).

    Safe mode is Keras' own: a ``Lambda`` with stored bytecode is refused
    (before Keras sees it) unless ``unsafe``. A Keras 2 config that Keras 3
    cannot read directly goes through Keras 3's legacy loader.
    """
    from archdiff.lazy import legacy_model_from_config, require_keras, safe_mode_scope

    keras = require_keras()
    if serialized is None:
        if arch.config is None or not arch.has_topology:
            raise TopologyUnknownError(
                "cannot rebuild a model from this input: it holds no architecture (weights only, or a subclassed "
                "model)", path=arch.source.path,
                hint="give the model's .keras, full-model .h5, .json or .yaml as TARGET")
        serialized = dict(arch.config)
    if not unsafe:
        code = lambda_layers_with_code(serialized)
        if code:
            raise UnsafeInputError(
                f"Lambda layer{'s' if len(code) > 1 else ''} {', '.join(repr(c) for c in code[:5])} hold Python "
                "code, which archdiff will not run in safe mode", path=arch.source.path,
                hint="pass --unsafe only if you trust where this file came from")
    document = strip_versions(serialized)
    first_error: Exception | None = None
    with safe_mode_scope(not unsafe):
        try:
            return keras.saving.deserialize_keras_object(copy.deepcopy(document), safe_mode=not unsafe)
        except Exception as exc:  # noqa: BLE001 - Keras raises many kinds; explained below
            first_error = exc
        if arch.source.dialect == "keras2" or "module" not in document:
            try:
                return legacy_model_from_config(_keras2_fixups(document))
            except Exception:  # noqa: BLE001 - report the first, more telling error
                pass
    raise _rebuild_error(first_error, arch.source.path, unsafe)


#: What a resource failure says somewhere in an exception chain (Keras wraps the cause in its own errors).
_RESOURCE_WORDS = re.compile(r"\bOOM\b|out of memory|Unable to allocate|failed to allocate|Cannot allocate memory",
                             re.IGNORECASE)


def resource_failure(exc: BaseException | None) -> str | None:
    """``exc``'s chain (cause, context) as one line when it is a resource failure (memory), else None.

    Keras reports an allocation that fails while a layer is built as a failure
    to deserialize the model's class; the cause says what really happened.
    """
    seen = 0
    while exc is not None and seen < 20:
        text = " ".join(str(exc).split())
        if isinstance(exc, MemoryError) or type(exc).__name__ in ("ResourceExhaustedError", "OutOfMemoryError") \
                or _RESOURCE_WORDS.search(text):
            match = _RESOURCE_WORDS.search(text)
            brief = text[match.start():match.start() + 160] if match else text[:180]
            return f"{type(exc).__name__}: {brief}".rstrip(": ")
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _resource_error(what: str, cause: str, path: str) -> ArchdiffError:
    return InputError(f"{what}: out of memory ({cause})", path=path,
                      hint="the model's variables do not fit in this machine's memory (see their sizes with "
                           "'archdiff summary'); use a machine with more memory, or a smaller model")


def _rebuild_error(exc: Exception, path: str, unsafe: bool) -> ArchdiffError:
    resource = resource_failure(exc)
    if resource:
        return _resource_error("cannot rebuild the model", resource, path)
    text = " ".join(str(exc).split())
    missing = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if missing:
        return InputError(f"cannot rebuild the model: Keras does not know the class '{missing.group(1)}'", path=path,
                          hint="register it with @keras.saving.register_keras_serializable() in a module and pass "
                               "--import MODULE")
    if "Lambda" in text and "safe" in text.lower() and not unsafe:
        return UnsafeInputError("cannot rebuild the model: it holds a Lambda layer with Python code", path=path,
                                hint="pass --unsafe only if you trust where this file came from")
    return InputError(f"Keras 3 cannot rebuild the model from its config ({type(exc).__name__}: {text[:300]})",
                      path=path, hint="check the file with 'archdiff layers'; custom classes need --import MODULE")


def load_weights_into(model, path: str) -> None:
    """Keras' own loading of a weights file (or a .keras file's weights) into a rebuilt model.

    A keras-hub preset folder is loaded as keras-hub loads it: a backbone's
    ``model.weights.h5`` (or sharded ``model.weights.json``) with ``load_weights``;
    a task's backbone weights into ``model.backbone`` and its ``task.weights.h5``
    with the task's own ``load_task_weights``.
    """
    lower = path.lower()
    preset = os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json"))
    if not preset and not lower.endswith((".keras", ".weights.h5", ".weights.json", ".h5", ".hdf5")):
        raise UsageError(f"Keras cannot load weights from '{os.path.basename(path)}'",
                         hint="give a .keras, .weights.h5 or .h5 file, or a keras-hub preset folder")
    try:
        if preset:
            _load_preset(model, path)
        else:
            model.load_weights(path)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds
        resource = resource_failure(exc)
        if resource:
            raise _resource_error("Keras could not load these weights", resource, path) from None
        text = " ".join(str(exc).split())
        raise InputError(f"Keras could not load these weights into the rebuilt target ({type(exc).__name__}: "
                         f"{text[:300]})", path=path,
                         hint="the weights must have been written for TARGET's architecture "
                              "(archdiff transfer SOURCE TARGET -o OUT writes such a file)") from None


def _load_preset(model, folder: str) -> None:
    from archdiff.read.preset import SHARDED, TASK, task_files

    task_weights, backbone_weights = task_files(folder)
    if backbone_weights is None:
        raise UsageError("the preset folder holds no model.weights.h5 or model.weights.json to load", path=folder,
                         hint="give the folder a transfer wrote, or its weights file")
    if not os.path.isfile(os.path.join(folder, TASK)):
        model.load_weights(backbone_weights)
        return
    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(model, "load_task_weights"):
        raise UsageError("a task preset's weights load into a keras-hub task (one with a backbone), and the "
                         "rebuilt target is not one", path=folder, hint="give the task preset as TARGET too")
    backbone.load_weights(backbone_weights if not backbone_weights.endswith(SHARDED) else backbone_weights)
    if task_weights is not None:
        model.load_task_weights(task_weights)


def entry_name(entry: dict) -> str | None:
    """The name of one layer entry of a serialized model (Keras 2 and 3 put it in different places)."""
    inner = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return entry.get("name", inner.get("name"))
