"""Validate a weight transfer with Keras: rebuild, prove the weights arrived, fine-tune.

This module owns the one part of archdiff that runs TensorFlow. Given a
target model (its config), the transferred weights (OUT) and optionally the
source they came from, :func:`validate` answers "did the transfer work, and
does the model now learn?" in four checks, and returns a
:class:`ValidationReport` (data only; :mod:`archdiff.validaterender` formats
it):

1. **rebuild**: the target from its config with Keras 3, in safe mode (a
   ``Lambda`` layer's code is refused unless ``unsafe``), custom classes from
   ``imports``; then Keras loads OUT into it.
2. **weights arrived**: every variable of every layer the target shares with
   the source (by name, ``maps``, or the diff's matching) equals, bitwise,
   the value in the source *file* (read with h5py, not through Keras). A
   differing variable is named, and so is what it holds instead: another
   variable of the same layer (swapped), another layer's (shifted), or the
   target's own initial value (not transferred).
3. **outputs**: the largest sub-graph the two models share from their inputs
   (layers paired, same class and config, all inputs shared) is cut out of
   both configs, the source's at the target's input size, and fed the same
   seeded batch; outputs are compared per frontier layer (``atol``/``rtol``).
4. **fine-tune**: as in the Keras transfer-learning guide. Freeze the
   transferred layers (or ``model.layers[:INDEX]``), recompile after every
   change of ``trainable``, train a few epochs, optionally unfreeze with a low
   learning rate. Frozen variables must be bitwise unchanged, trainable ones
   changed, the loss finite and falling. On the built-in task the same target
   is also trained from scratch with the same budget (the transfer gain).

Errors a user can cause raise :class:`~archdiff.errors.ArchdiffError`
(exit 2); a check that fails is data in the report (exit 1).
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import importlib
import math
import os
import sys
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from archdiff.errors import ArchdiffError, InputError, TopologyUnknownError, UnsafeInputError, UsageError
from archdiff.model import Architecture, WeightSpec

PASS = "pass"
FAIL = "fail"
SKIPPED = "skipped"

#: Config keys that do not change what a layer computes (or are spelled
#: differently by Keras 2 and 3): left out when deciding two layers are the same.
_IGNORED_CONFIG_KEYS = frozenset({
    "name", "trainable", "dtype", "build_config", "compile_config", "registered_name", "module", "seed",
    "synchronized", "autocast", "batch_input_shape", "batch_shape", "input_shape", "input_dim",
})
_IGNORED_CONFIG_SUFFIXES = ("_initializer", "_regularizer", "_constraint")

#: How many layers the report lists by name before it counts the rest.
MAX_LISTED = 50


# =============================================================================
# Options and results
# =============================================================================
@dataclass(frozen=True)
class ValidateOptions:
    """Everything ``archdiff validate`` can be told, besides the three paths."""

    imports: tuple[str, ...] = ()
    unsafe: bool = False
    #: Renames as ``archdiff transfer`` takes them: ``OLD=NEW`` or ``re:PATTERN=REPLACEMENT``.
    maps: tuple[str, ...] = ()
    map_files: tuple[str, ...] = ()
    #: "name": pair layers by name (and ``maps``); "auto": the diff's matching.
    match: str = "name"
    atol: float = 1e-5
    rtol: float = 1e-5
    compare_batch: int = 8
    finetune: bool = True
    #: A layer name or an ``archdiff layers`` index: ``model.layers[:INDEX]`` are frozen.
    freeze_until: str | None = None
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3
    unfreeze_lr: float | None = None
    unfreeze_epochs: int | None = None
    #: None: the built-in task; a folder of class folders; or an ``.npz`` with x, y.
    data: str | None = None
    #: Pixel scale for ``--data DIR`` images (None: 1/255).
    rescale: float | None = None
    samples: int = 256
    test_samples: int = 512
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = False
    #: With the built-in task, also train from scratch with the same budget.
    scratch: bool = True

    def to_dict(self) -> dict:
        from dataclasses import asdict

        data = asdict(self)
        for key in ("imports", "maps", "map_files"):
            data[key] = list(data[key])
        return data


@dataclass
class RebuildResult:
    status: str
    model_name: str = ""
    class_name: str = ""
    keras_version: str = ""
    layers: int = 0
    params: int = 0
    safe_mode: bool = True
    imports: list[str] = field(default_factory=list)
    weights_path: str = ""
    weights_format: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "status": self.status, "model_name": self.model_name, "class_name": self.class_name,
            "keras_version": self.keras_version, "layers": self.layers, "params": self.params,
            "safe_mode": self.safe_mode, "imports": list(self.imports), "weights_path": self.weights_path,
            "weights_format": self.weights_format, "notes": list(self.notes),
        }


@dataclass
class VariableResult:
    """One transferred variable: its live value against the source file's."""

    name: str
    source_name: str
    shape: list[int]
    dtype: str
    equal: bool
    max_abs_diff: float | None = None
    #: What the live variable holds instead, where it matches something known.
    holds: str | None = None
    cast_from: str | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name, "source_name": self.source_name, "shape": list(self.shape), "dtype": self.dtype,
            "equal": self.equal, "max_abs_diff": self.max_abs_diff, "holds": self.holds, "cast_from": self.cast_from,
        }


@dataclass
class LayerArrival:
    target: str
    source: str
    #: "arrived", "failed"
    status: str
    variables: list[VariableResult] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict:
        return {"target": self.target, "source": self.source, "status": self.status,
                "variables": [v.to_dict() for v in self.variables], "message": self.message}


@dataclass
class WeightsCheck:
    status: str
    reason: str = ""
    layers: list[LayerArrival] = field(default_factory=list)
    #: Target layers with weights that were not expected to arrive, and why.
    not_transferred: list[dict] = field(default_factory=list)
    #: Source layers with weights that no target layer took.
    unused_source: list[str] = field(default_factory=list)
    checked_variables: int = 0
    equal_variables: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def arrived(self) -> list[str]:
        return [layer.target for layer in self.layers if layer.status == "arrived"]

    def to_dict(self) -> dict:
        return {
            "status": self.status, "reason": self.reason, "layers": [x.to_dict() for x in self.layers],
            "arrived_layers": len(self.arrived), "not_transferred": list(self.not_transferred),
            "unused_source": list(self.unused_source), "checked_variables": self.checked_variables,
            "equal_variables": self.equal_variables, "failures": list(self.failures),
        }


@dataclass
class OutputResult:
    target_layer: str
    source_layer: str
    status: str
    shape: list | None = None
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    reason: str = ""

    def to_dict(self) -> dict:
        return {"target_layer": self.target_layer, "source_layer": self.source_layer, "status": self.status,
                "shape": self.shape, "max_abs_diff": self.max_abs_diff, "max_rel_diff": self.max_rel_diff,
                "reason": self.reason}


@dataclass
class OutputsCheck:
    status: str
    reason: str = ""
    atol: float = 0.0
    rtol: float = 0.0
    batch: int = 0
    seed: int = 0
    input_shapes: dict = field(default_factory=dict)
    source_input_shapes: dict = field(default_factory=dict)
    shared_layers: list[str] = field(default_factory=list)
    #: Paired layers left out of the shared sub-graph, and why (first few).
    excluded: list[dict] = field(default_factory=list)
    outputs: list[OutputResult] = field(default_factory=list)
    #: Where a difference starts: shared layers that differ while their inputs agree.
    origin: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "status": self.status, "reason": self.reason, "atol": self.atol, "rtol": self.rtol,
            "origin": list(self.origin),
            "batch": self.batch, "seed": self.seed, "input_shapes": dict(self.input_shapes),
            "source_input_shapes": dict(self.source_input_shapes), "shared_layers": list(self.shared_layers),
            "excluded": list(self.excluded), "outputs": [o.to_dict() for o in self.outputs],
            "failures": list(self.failures), "notes": list(self.notes),
        }


@dataclass
class StageResult:
    name: str
    epochs: int
    steps: int
    learning_rate: float
    trainable_layers: list[str] = field(default_factory=list)
    frozen_layers: list[str] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    loss_before: float | None = None
    metric_before: float | None = None
    metric_after: float | None = None
    val_loss_after: float | None = None
    time_per_step_ms: float | None = None
    frozen_variables: int = 0
    trainable_variables: int = 0
    frozen_changed: list[str] = field(default_factory=list)
    trainable_unchanged: list[str] = field(default_factory=list)
    loss_finite: bool = True
    loss_falling: bool | None = None
    failures: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "epochs": self.epochs, "steps": self.steps, "learning_rate": self.learning_rate,
            "trainable_layers": _listed(self.trainable_layers), "frozen_layers": _listed(self.frozen_layers),
            "trainable_layer_count": len(self.trainable_layers), "frozen_layer_count": len(self.frozen_layers),
            "loss": list(self.loss), "loss_before": self.loss_before, "metric_before": self.metric_before,
            "metric_after": self.metric_after, "val_loss_after": self.val_loss_after,
            "time_per_step_ms": self.time_per_step_ms, "frozen_variables": self.frozen_variables,
            "trainable_variables": self.trainable_variables, "frozen_changed": list(self.frozen_changed),
            "trainable_unchanged": list(self.trainable_unchanged), "loss_finite": self.loss_finite,
            "loss_falling": self.loss_falling, "failures": list(self.failures),
        }


@dataclass
class ScratchResult:
    epochs: int
    steps: int
    learning_rate: float
    loss: list[float] = field(default_factory=list)
    metric_after: float | None = None
    time_per_step_ms: float | None = None

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "steps": self.steps, "learning_rate": self.learning_rate,
                "loss": list(self.loss), "metric_after": self.metric_after,
                "time_per_step_ms": self.time_per_step_ms}


@dataclass
class FinetuneCheck:
    status: str
    reason: str = ""
    data: dict = field(default_factory=dict)
    device: dict = field(default_factory=dict)
    freeze: dict = field(default_factory=dict)
    loss_name: str = ""
    metric: str = "accuracy"
    stages: list[StageResult] = field(default_factory=list)
    scratch: ScratchResult | None = None
    transfer_gain: float | None = None
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def metric_before(self) -> float | None:
        return self.stages[0].metric_before if self.stages else None

    @property
    def metric_after(self) -> float | None:
        return self.stages[-1].metric_after if self.stages else None

    def to_dict(self) -> dict:
        return {
            "status": self.status, "reason": self.reason, "data": dict(self.data), "device": dict(self.device),
            "freeze": dict(self.freeze), "loss_name": self.loss_name, "metric": self.metric,
            "metric_before": self.metric_before, "metric_after": self.metric_after,
            "stages": [s.to_dict() for s in self.stages],
            "scratch": self.scratch.to_dict() if self.scratch else None, "transfer_gain": self.transfer_gain,
            "failures": list(self.failures), "notes": list(self.notes),
        }


@dataclass
class ValidationReport:
    """What ``archdiff validate`` found; ``exit_code`` is 0 when every check that ran passed, else 1."""

    target: str
    weights: str
    source: str | None
    rebuild: RebuildResult
    weights_arrived: WeightsCheck
    outputs: OutputsCheck
    finetune: FinetuneCheck
    options: ValidateOptions = field(default_factory=ValidateOptions)
    seconds: float | None = None

    @property
    def checks(self) -> list[tuple[str, str]]:
        return [("rebuild", self.rebuild.status), ("weights_arrived", self.weights_arrived.status),
                ("outputs", self.outputs.status), ("finetune", self.finetune.status)]

    @property
    def failures(self) -> list[str]:
        return list(self.weights_arrived.failures) + list(self.outputs.failures) + list(self.finetune.failures)

    @property
    def ok(self) -> bool:
        return all(status != FAIL for _, status in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {
            "schema_version": 1,
            "target": self.target, "weights": self.weights, "source": self.source, "ok": self.ok,
            "exit_code": self.exit_code, "checks": {name: status for name, status in self.checks},
            "failures": self.failures, "rebuild": self.rebuild.to_dict(),
            "weights_arrived": self.weights_arrived.to_dict(), "outputs": self.outputs.to_dict(),
            "finetune": self.finetune.to_dict(), "options": self.options.to_dict(), "seconds": self.seconds,
        }


def _listed(names: list[str]) -> list[str]:
    return list(names[:MAX_LISTED]) + ([f"... and {len(names) - MAX_LISTED} more"] if len(names) > MAX_LISTED else [])


# =============================================================================
# 1. Rebuild
# =============================================================================
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


def _walk_layer_entries(serialized: dict, scope: str = "") -> Iterator[tuple[str, dict]]:
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
            yield from _walk_layer_entries(entry, path)


def lambda_layers_with_code(serialized: dict) -> list[str]:
    """Lambda layers whose function is stored Python bytecode (Keras 2 or 3 form)."""
    found = []
    for path, entry in _walk_layer_entries(serialized):
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


def _strip(serialized: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in serialized.items() if k not in ("keras_version", "backend")}


def _keras2_fixups(serialized: dict) -> dict:
    """Small rewrites Keras 3's legacy loader needs for Keras 2 configs (one-item axis lists)."""
    doc = copy.deepcopy(serialized)
    for _, entry in _walk_layer_entries(doc):
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
    from archdiff.lazy import require_keras

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
    from archdiff.lazy import legacy_model_from_config, safe_mode_scope

    document = _strip(serialized)
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


def _rebuild_error(exc: Exception, path: str, unsafe: bool) -> ArchdiffError:
    text = " ".join(str(exc).split())
    import re

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
    """Keras' own loading of a weights file (or a .keras file's weights) into a rebuilt model."""
    lower = path.lower()
    if not lower.endswith((".keras", ".weights.h5", ".weights.json", ".h5", ".hdf5")):
        raise UsageError(f"Keras cannot load weights from '{os.path.basename(path)}'",
                         hint="give a .keras, .weights.h5 or .h5 file")
    try:
        model.load_weights(path)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds
        text = " ".join(str(exc).split())
        raise InputError(f"Keras could not load these weights into the rebuilt target ({type(exc).__name__}: "
                         f"{text[:300]})", path=path,
                         hint="the weights must have been written for TARGET's architecture "
                              "(archdiff transfer SOURCE TARGET -o OUT writes such a file)") from None


def _count_params(model) -> int:
    total = 0
    for var in model.weights:
        total += int(np.prod(var.shape)) if len(var.shape) else 1
    return total


# =============================================================================
# Live layers and variables
# =============================================================================
def _is_model(layer) -> bool:
    from archdiff.lazy import require_keras

    keras = require_keras()

    return isinstance(layer, keras.Model)


def live_layers(model, prefix: str = "") -> dict[str, Any]:
    """Every layer of a live model by archdiff path (nested models' layers included)."""
    out: dict[str, Any] = {}
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        out[path] = layer
        if _is_model(layer):
            out.update(live_layers(layer, path + "/"))
    return out


def _relative_name(var, layer) -> str:
    path = getattr(var, "path", None) or var.name
    path = path.split(":")[0]
    marker = f"{layer.name}/"
    if path.startswith(marker):
        return path[len(marker):]
    found = path.find("/" + marker)
    if found >= 0:
        return path[found + len(marker) + 1:]
    return path.rsplit("/", 1)[-1]


def pair_variables(live: list[tuple[str, Any]], specs: tuple[WeightSpec, ...]):
    """Pair live variables with a file's specs: by name where both have names, by position otherwise.

    Returns ``(pairs, problem)``: a list of ``(name, variable, spec)`` and None,
    or None and a sentence saying why the variables do not pair.
    """
    if len(live) != len(specs):
        return None, f"{len(live)} variables in the target, {len(specs)} in the source"
    names = [n for n, _ in live]
    spec_names = [s.name for s in specs]
    order: list[int]
    if sorted(names) == sorted(spec_names) and len(set(names)) == len(names):
        index = {n: i for i, n in enumerate(spec_names)}
        order = [index[n] for n in names]
    else:
        leaves = [n.rsplit("/", 1)[-1] for n in names]
        spec_leaves = [n.rsplit("/", 1)[-1] for n in spec_names]
        if sorted(leaves) == sorted(spec_leaves) and len(set(leaves)) == len(leaves):
            index = {n: i for i, n in enumerate(spec_leaves)}
            order = [index[n] for n in leaves]
        else:
            order = list(range(len(specs)))
    pairs = []
    for (name, var), j in zip(live, order):
        spec = specs[j]
        shape = tuple(int(d) for d in var.shape)
        if shape != tuple(spec.shape):
            return None, f"'{name}' is {list(shape)} in the target, {list(spec.shape)} in the source"
        pairs.append((name, var, spec))
    return pairs, None


def _layer_vars(layer) -> list[tuple[str, Any]]:
    return [(_relative_name(v, layer), v) for v in layer.weights]


# =============================================================================
# Reading a weights file's values with h5py (not through Keras)
# =============================================================================
class FileValues:
    """Read-only access to the variable values of an archdiff-loaded file, by WeightSpec."""

    def __init__(self, arch: Architecture):
        self.arch = arch
        self.path = arch.source.path
        self._stack = ExitStack()
        self._files: list = []

    def __enter__(self) -> "FileValues":
        from archdiff.read import hdf5 as h5
        from archdiff.read import read_json_file

        fmt = self.arch.source.format
        try:
            if fmt == "keras":
                zf = self._stack.enter_context(zipfile.ZipFile(self.path))
                self._files.append(self._stack.enter_context(
                    h5.open_zip_member_h5(self.path, zf, "model.weights.h5", where=f"{self.path}:model.weights.h5")))
            elif fmt == "weights.json":
                index = read_json_file(self.path)
                folder = os.path.dirname(os.path.abspath(self.path))
                names: list[str] = []
                for value in (index.get("weight_map") or {}).values():
                    for name in value if isinstance(value, list) else [value]:
                        if name not in names:
                            names.append(name)
                for name in names:
                    shard = os.path.join(folder, os.path.basename(name))
                    self._files.append(self._stack.enter_context(h5.open_h5(shard, where=shard)))
            else:
                self._files.append(self._stack.enter_context(h5.open_h5(self.path, where=self.path)))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def read(self, spec: WeightSpec) -> np.ndarray:
        if not spec.location:
            raise InputError(f"no stored location for variable '{spec.name}'", path=self.path)
        for f in self._files:
            try:
                obj = f.get(spec.location)
            except (OSError, ValueError, RuntimeError):
                obj = None
            if obj is not None and hasattr(obj, "shape"):
                try:
                    return np.asarray(obj[()])
                except (OSError, ValueError, RuntimeError) as exc:
                    raise InputError(f"cannot read '{spec.location}' ({exc})", path=self.path) from None
        raise InputError(f"the file has no dataset '{spec.location}'", path=self.path)


def _digest(value: np.ndarray) -> tuple:
    data = np.ascontiguousarray(value)
    return (str(data.dtype), tuple(data.shape), hashlib.blake2b(data.tobytes(), digest_size=16).digest())


def _same_bits(live: np.ndarray, stored: np.ndarray) -> tuple[bool, str | None]:
    """Bitwise equality; a stored value of another dtype is compared after the cast a transfer makes."""
    if stored.dtype != live.dtype:
        cast = stored.astype(live.dtype)
        return cast.shape == live.shape and cast.tobytes() == np.ascontiguousarray(live).tobytes(), str(stored.dtype)
    return stored.shape == live.shape and np.ascontiguousarray(stored).tobytes() == \
        np.ascontiguousarray(live).tobytes(), None


def _max_abs(a: np.ndarray, b: np.ndarray) -> float | None:
    try:
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    except (TypeError, ValueError):
        return None
    if diff.size == 0:
        return 0.0
    value = float(np.nanmax(diff)) if not np.all(np.isnan(diff)) else float("nan")
    return value


# =============================================================================
# Pairing layers: by name, explicit maps, or the diff's matching
# =============================================================================
def map_rules(maps=(), map_files=()) -> list:
    """``--map`` / ``--map-file`` rules, parsed exactly as ``archdiff transfer`` parses them."""
    from archdiff.transfer import load_map_file, parse_map_rule

    rules = [parse_map_rule(text, "--map") for text in maps]
    for path in map_files:
        rules.extend(load_map_file(path))
    return rules


def pair_layers(source: Architecture, target: Architecture, *, maps=(), map_files=(),
                match: str = "name") -> dict[str, str]:
    """``{target_path: source_path}`` for the layers the target shares with the source.

    Independent of the transfer's own plan on purpose: a transfer that paired
    the wrong layers must not be able to vouch for itself. Renames use the
    transfer's rule syntax (``OLD=NEW``, ``re:PATTERN=REPLACEMENT``).
    """
    if match not in ("name", "auto"):
        raise UsageError(f"--match '{match}' is not one of name, auto")
    pairs: dict[str, str] = {}
    if match == "auto":
        try:
            from archdiff.diff.matching import match_layers
        except ImportError:
            raise UsageError("--match auto needs the diff's layer matching (archdiff.matching), which this "
                             "installation lacks", hint="use --match name with --map OLD=NEW") from None
        for pair in match_layers(source, target).pairs:
            a = getattr(pair, "a", None) or getattr(pair, "a_path", None)
            b = getattr(pair, "b", None) or getattr(pair, "b_path", None)
            if a in source.by_path and b in target.by_path:
                pairs[b] = a
    rules = map_rules(maps, map_files) if (maps or map_files) else []
    # Where each source layer lands in the target under the user's renames (the first rule that applies).
    renamed: dict[str, str] = {}
    for layer in source.layers:
        for rule in rules:
            new = rule.apply(layer.path)
            if new is not None:
                renamed[new] = layer.path
                break
    moved = set(renamed.values()) | set(pairs.values())
    for layer in target.layers:
        if layer.path in pairs:
            continue
        if layer.path in renamed:
            pairs[layer.path] = renamed[layer.path]
        elif layer.path in source.by_path and layer.path not in moved:
            # Same path (nested models included), as archdiff transfer pairs them.
            pairs[layer.path] = layer.path
    return pairs


# =============================================================================
# 2. The weights arrived
# =============================================================================
def check_weights(model, target: Architecture, source: Architecture, pairs: dict[str, str], *,
                  target_values: Architecture | None = None) -> WeightsCheck:
    """Compare every paired variable of the live model bitwise with the source file's value."""
    result = WeightsCheck(status=PASS)
    if not source.has_weights:
        result.status = SKIPPED
        result.reason = "the source file holds no weights"
        return result
    live = live_layers(model)
    used_sources: set[str] = set()
    with ExitStack() as stack:
        values = stack.enter_context(FileValues(source))
        own = None
        if target_values is not None and target_values.has_weights:
            try:
                own = stack.enter_context(FileValues(target_values))
            except ArchdiffError:
                own = None
        index: dict[tuple, list[tuple[str, str]]] | None = None

        def lookup(value: np.ndarray) -> list[tuple[str, str]]:
            nonlocal index
            if index is None:
                index = {}
                for layer in source.layers:
                    for spec in layer.weights or ():
                        index.setdefault(_digest(values.read(spec)), []).append((layer.path, spec.name))
            return index.get(_digest(value), [])

        for layer in target.layers:
            if layer.is_model or not layer.weights:
                continue
            keras_layer = live.get(layer.path)
            if keras_layer is None:
                result.not_transferred.append({"layer": layer.path, "reason": "not found in the rebuilt model"})
                continue
            src_path = pairs.get(layer.path)
            if src_path is None:
                result.not_transferred.append({"layer": layer.path, "reason": "the source has no layer of this name"})
                continue
            src = source.by_path[src_path]
            if not src.weights:
                result.not_transferred.append({"layer": layer.path,
                                               "reason": f"source layer '{src_path}' has no weights"})
                continue
            paired, problem = pair_variables(_layer_vars(keras_layer), src.weights)
            if paired is None:
                result.not_transferred.append({"layer": layer.path, "reason": f"does not fit '{src_path}': {problem}"})
                continue
            used_sources.add(src_path)
            arrival = LayerArrival(target=layer.path, source=src_path, status="arrived")
            own_specs = None
            if own is not None:
                own_layer = target_values.by_path.get(layer.path)
                if own_layer is not None and own_layer.weights:
                    own_pairs, _ = pair_variables(_layer_vars(keras_layer), own_layer.weights)
                    if own_pairs:
                        own_specs = {name: spec for name, _, spec in own_pairs}
            for name, var, spec in paired:
                live_value = np.asarray(var.numpy())
                stored = values.read(spec)
                equal, cast_from = _same_bits(live_value, stored)
                item = VariableResult(name=name, source_name=spec.name, shape=list(live_value.shape),
                                      dtype=str(live_value.dtype), equal=equal, cast_from=cast_from)
                result.checked_variables += 1
                if equal:
                    result.equal_variables += 1
                else:
                    item.max_abs_diff = _max_abs(live_value, stored)
                    item.holds = _what_it_holds(live_value, lookup, layer.path, src_path, spec.name,
                                                own, own_specs.get(name) if own_specs else None)
                arrival.variables.append(item)
            if any(not v.equal for v in arrival.variables):
                arrival.status = "failed"
                arrival.message = _arrival_message(arrival)
                result.failures.append(arrival.message)
            result.layers.append(arrival)
    result.unused_source = [layer.path for layer in source.layers
                            if layer.weights and not layer.is_model and layer.path not in used_sources]
    if not result.layers:
        result.status = FAIL
        result.reason = "no layer of the target takes weights from the source: nothing was transferred"
        result.failures.append("no transferred layer: the target shares no layer with weights of the same shapes "
                               "with the source (use --map OLD=NEW or --match auto for renamed layers)")
    elif result.failures:
        result.status = FAIL
        bad = sum(1 for a in result.layers if a.status == "failed")
        result.reason = f"{bad} of {len(result.layers)} transferred layers do not hold the source's values"
    else:
        result.reason = (f"{result.equal_variables} variables in {len(result.layers)} layers equal the source's, "
                         "bit for bit")
    return result


def _what_it_holds(value, lookup, target_path, src_path, src_name, own, own_spec) -> str | None:
    matches = lookup(value)
    same_layer = [m for m in matches if m[0] == src_path and m[1] != src_name]
    if same_layer:
        return f"{same_layer[0][0]}:{same_layer[0][1]}"
    others = [m for m in matches if m[0] != src_path]
    if others:
        return f"{others[0][0]}:{others[0][1]}"
    if own is not None and own_spec is not None:
        try:
            if _same_bits(value, own.read(own_spec))[0]:
                return "target's own initial value"
        except ArchdiffError:
            pass
    return None


def _arrival_message(arrival: LayerArrival) -> str:
    bad = [v for v in arrival.variables if not v.equal]
    layer = arrival.target
    holds = [v.holds for v in bad]
    in_layer = [v for v in bad if v.holds and v.holds.startswith(arrival.source + ":")]
    if len(in_layer) >= 2 and len(in_layer) == len(bad):
        parts = ", ".join(f"'{v.name}' holds the source's '{v.holds.split(':', 1)[1]}'" for v in in_layer)
        return f"layer '{layer}': variables are swapped: {parts}"
    other_layers = {h.split(":", 1)[0] for h in holds if h and ":" in h and not h.startswith(arrival.source + ":")}
    if len(other_layers) == 1 and all(v.holds for v in bad):
        other = other_layers.pop()
        names = ", ".join(v.name for v in bad)
        return (f"layer '{layer}' holds the weights of source layer '{other}' ({names}), "
                f"not those of '{arrival.source}'")
    parts = []
    for v in bad:
        if v.holds == "target's own initial value":
            parts.append(f"'{v.name}' was not transferred (it still holds the target's own initial value)")
        elif v.holds:
            parts.append(f"'{v.name}' holds the source's '{v.holds}' instead of '{arrival.source}:{v.source_name}'")
        else:
            diff = "" if v.max_abs_diff is None else f" (max |diff| {v.max_abs_diff:.3g})"
            parts.append(f"'{v.name}' differs from the source's '{v.source_name}'{diff}")
    return f"layer '{layer}': " + "; ".join(parts)


# =============================================================================
# 3. The outputs of the shared sub-graph
# =============================================================================
def _ignored_key(key: str) -> bool:
    return key in _IGNORED_CONFIG_KEYS or key.endswith(_IGNORED_CONFIG_SUFFIXES)


def _normal(value):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        items = [_normal(v) for v in value]
        return items
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if not _ignored_key(k) and k != "inbound_nodes"}
    return value


def config_differences(a: dict, b: dict) -> list[str]:
    """Keys (present in both) whose values differ in a way that changes what the layer computes."""
    diffs = []
    for key in sorted(set(a) & set(b)):
        if _ignored_key(key):
            continue
        va, vb = _normal(a[key]), _normal(b[key])
        if key == "axis":
            va = va[0] if isinstance(va, list) and len(va) == 1 else va
            vb = vb[0] if isinstance(vb, list) and len(vb) == 1 else vb
        if va != vb:
            diffs.append(f"{key}: {_short(va)} vs {_short(vb)}")
    return diffs


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class SharedGraph:
    """The shared sub-graph from the inputs: target layer names and their source counterparts."""

    #: target input name -> source input name
    inputs: dict[str, str]
    #: target layer name -> source layer name (non-input layers, top level)
    layers: dict[str, str]
    #: ordered frontier refs on the target side: (name, node_index, tensor_index)
    frontier: list[tuple[str, int, int]]
    excluded: list[dict]


def shared_subgraph(target: Architecture, source: Architecture, pairs: dict[str, str],
                    not_transferred: dict[str, str] | None = None) -> SharedGraph:
    """Paired top-level layers whose inputs are all shared, grown from the models' inputs.

    A layer whose weights were not transferred (``not_transferred``: path ->
    why) cannot compute what the source's does, so it is not shared.
    """
    not_transferred = not_transferred or {}
    t_inputs = [r.layer for r in target.inputs]
    s_inputs = [r.layer for r in source.inputs]
    inputs: dict[str, str] = {}
    for i, name in enumerate(t_inputs):
        counterpart = pairs.get(name)
        if counterpart in s_inputs:
            inputs[name] = counterpart
        elif name in s_inputs:
            inputs[name] = name
        elif i < len(s_inputs) and len(t_inputs) == len(s_inputs):
            inputs[name] = s_inputs[i]
    top = [layer for layer in target.layers if layer.depth == 0]
    src_top = {layer.name: layer for layer in source.layers if layer.depth == 0}
    shared: dict[str, str] = {}
    excluded: list[dict] = []

    def mapped(ref) -> tuple | None:
        if ref.layer in inputs:
            return (inputs[ref.layer], ref.node_index, ref.tensor_index)
        if ref.layer in shared:
            return (shared[ref.layer], ref.node_index, ref.tensor_index)
        return None

    for layer in top:
        if layer.name in inputs or layer.class_name == "InputLayer":
            continue
        src_path = pairs.get(layer.path)
        if src_path is None or src_path not in src_top:
            continue
        src = src_top[src_path]
        reason = None
        if src.class_name != layer.class_name and {src.class_name, layer.class_name} != {"Model", "Functional"}:
            reason = f"class {layer.class_name} in the target, {src.class_name} in the source"
        elif len(src.calls) != len(layer.calls):
            reason = f"called {len(layer.calls)} time(s) in the target, {len(src.calls)} in the source"
        else:
            for call, src_call in zip(layer.calls, src.calls):
                refs = [mapped(r) for r in call.inputs]
                if any(r is None for r in refs):
                    missing = [r.layer for r, m in zip(call.inputs, refs) if m is None]
                    reason = f"its input {', '.join(repr(m) for m in missing)} is not shared"
                    break
                if refs != [(r.layer, r.node_index, r.tensor_index) for r in src_call.inputs]:
                    reason = "its inputs come from different layers in the source"
                    break
            if reason is None:
                diffs = config_differences(dict(layer.config), dict(src.config))
                if diffs:
                    reason = "config differs: " + "; ".join(diffs[:3])
        if reason is None and layer.path in not_transferred:
            reason = f"its weights were not transferred ({not_transferred[layer.path]})"
        if reason is None and layer.is_model:
            inner_t = [x for x in target.descendants(layer.path) if not x.is_model]
            inner_s = {x.path[len(src.path):]: x for x in source.descendants(src.path)}
            for x in inner_t:
                other = inner_s.get(x.path[len(layer.path):])
                if other is None or other.class_name != x.class_name:
                    reason = f"its layer '{x.path}' has no counterpart in '{src.path}'"
                    break
                if x.path in not_transferred:
                    reason = f"the weights of its layer '{x.path}' were not transferred ({not_transferred[x.path]})"
                    break
        if reason is None:
            shared[layer.name] = src.name
        else:
            excluded.append({"layer": layer.path, "reason": reason})

    consumers: dict[str, set[str]] = {}
    for layer in top:
        for call in layer.calls:
            for ref in call.inputs:
                consumers.setdefault(ref.layer, set()).add(layer.name)
    outputs = {r.layer for r in target.outputs}
    frontier = []
    for layer in top:
        if layer.name not in shared:
            continue
        users = consumers.get(layer.name, set())
        if layer.name in outputs or not users or any(u not in shared for u in users):
            for node in range(max(1, len(layer.calls))):
                count = len(layer.output_shapes) if layer.output_shapes and len(layer.calls) <= 1 else 1
                for t in range(count):
                    frontier.append((layer.name, node, t))
    return SharedGraph(inputs=inputs, layers=shared, frontier=frontier, excluded=excluded)


def _entry_name(entry: dict) -> str | None:
    inner = entry.get("config") if isinstance(entry.get("config"), dict) else {}
    return entry.get("name", inner.get("name"))


def _set_input_shape(config: dict, shape: tuple) -> None:
    keys = [k for k in ("batch_shape", "batch_input_shape") if k in config]
    if not keys and "input_shape" in config:
        config["input_shape"] = list(shape[1:])
        return
    for key in keys or ["batch_shape"]:
        config[key] = list(shape)


def sub_config(serialized: dict, keep: set[str], inputs: list[str], outputs: list[tuple[str, int, int]],
               input_shapes: dict[str, tuple]) -> dict:
    """A model config holding only ``keep`` (plus its inputs), with the given outputs and input shapes."""
    doc = _strip(serialized)
    config = doc["config"]
    entries = config.get("layers") or []
    if doc.get("class_name") == "Sequential" or "input_layers" not in config:
        last = outputs[-1][0] if outputs else None
        kept = []
        for entry in entries:
            name = _entry_name(entry)
            inner = entry.get("config") or {}
            if entry.get("class_name") == "InputLayer":
                if inputs and inputs[0] in input_shapes:
                    _set_input_shape(inner, input_shapes[inputs[0]])
                kept.append(entry)
                continue
            if not kept or all(e.get("class_name") == "InputLayer" for e in kept):
                # Keras 2 style: the first layer declares the input.
                for key in ("batch_input_shape", "batch_shape", "input_shape"):
                    if key in inner and inputs and inputs[0] in input_shapes:
                        _set_input_shape(inner, input_shapes[inputs[0]])
                        break
            kept.append(entry)
            if name == last:
                break
        config["layers"] = kept
        config.pop("build_input_shape", None)
        return doc
    kept = []
    for entry in entries:
        name = _entry_name(entry)
        if entry.get("class_name") == "InputLayer" and name in inputs:
            _set_input_shape(entry["config"], input_shapes[name]) if name in input_shapes else None
            kept.append(entry)
        elif name in keep:
            kept.append(entry)
    config["layers"] = kept
    config["input_layers"] = [[name, 0, 0] for name in inputs]
    config["output_layers"] = [list(ref) for ref in outputs]
    return doc


def _seeded_batch(shapes: dict[str, tuple], dtypes: dict[str, str], batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in shapes.items():
        full = (batch,) + tuple(int(d) for d in shape[1:])
        dtype = dtypes.get(name) or "float32"
        if "int" in dtype:
            out[name] = rng.integers(0, 2, size=full).astype(dtype)
        else:
            out[name] = rng.random(full, dtype=np.float32).astype(dtype if "float" in dtype else "float32")
    return out


def _concrete(shape: tuple | None, fallback: tuple | None) -> tuple | None:
    if shape is None:
        return fallback
    dims = [None]
    for i, d in enumerate(shape[1:], start=1):
        if d is None:
            other = fallback[i] if fallback is not None and i < len(fallback) else None
            dims.append(other if other is not None else 32)
        else:
            dims.append(int(d))
    return tuple(dims)


def _assign_from_file(model, arch: Architecture, values: FileValues) -> list[str]:
    """Give a rebuilt sub-model the stored values of ``arch``'s layers, by path. Returns problems."""
    problems = []
    by_path = arch.by_path
    for path, layer in live_layers(model).items():
        if _is_model(layer) or not layer.weights:
            continue
        stored = by_path.get(path)
        if stored is None or not stored.weights:
            problems.append(f"'{path}' has no stored weights")
            continue
        paired, problem = pair_variables(_layer_vars(layer), stored.weights)
        if paired is None:
            problems.append(f"'{path}': {problem}")
            continue
        for _, var, spec in paired:
            var.assign(values.read(spec).astype(var.dtype))
    return problems


def _copy_from_live(sub, full) -> None:
    full_layers = live_layers(full)
    for path, layer in live_layers(sub).items():
        if _is_model(layer) or not layer.weights:
            continue
        layer.set_weights(full_layers[path].get_weights())


def compare_outputs(model, target: Architecture, source: Architecture, pairs: dict[str, str], *,
                    atol: float, rtol: float, batch: int, seed: int, unsafe: bool,
                    not_transferred: dict[str, str] | None = None) -> OutputsCheck:
    """Feed the shared sub-graph of both models the same batch; compare per frontier layer."""
    result = OutputsCheck(status=PASS, atol=atol, rtol=rtol, batch=batch, seed=seed)
    if not source.has_topology or source.config is None:
        result.status = SKIPPED
        result.reason = "the source file holds no architecture (weights only), so its outputs cannot be computed"
        return result
    if not source.has_weights:
        result.status = SKIPPED
        result.reason = "the source file holds no weights"
        return result
    graph = shared_subgraph(target, source, pairs, not_transferred)
    result.excluded = graph.excluded[:MAX_LISTED]
    result.shared_layers = list(graph.layers)
    if not graph.inputs:
        result.status = SKIPPED
        result.reason = "the models' inputs do not correspond (different names and counts)"
        return result
    if not graph.layers or not graph.frontier:
        result.status = SKIPPED
        result.reason = "the models share no layer after their inputs"
        return result

    t_specs = {s.name: s for s in target.input_specs}
    s_specs = {s.name: s for s in source.input_specs}
    shapes: dict[str, tuple] = {}
    dtypes: dict[str, str] = {}
    src_shapes: dict[str, tuple] = {}
    for t_name, s_name in graph.inputs.items():
        t_spec, s_spec = t_specs.get(t_name), s_specs.get(s_name)
        s_shape = tuple(s_spec.shape) if s_spec and s_spec.shape else None
        t_shape = tuple(t_spec.shape) if t_spec and t_spec.shape else None
        shape = _concrete(t_shape, s_shape)
        if shape is None:
            result.status = SKIPPED
            result.reason = f"the input '{t_name}' has no known shape"
            return result
        shapes[t_name] = shape
        dtypes[t_name] = (t_spec.dtype if t_spec else None) or "float32"
        src_shapes[s_name] = s_shape
        if s_shape is not None and len(s_shape) != len(shape):
            result.status = SKIPPED
            result.reason = (f"input '{t_name}' has rank {len(shape)} in the target, {len(s_shape)} in the source: "
                             "no comparison is possible")
            return result
        if s_shape is not None and any(a is not None and b is not None and a != b
                                       for a, b in zip(s_shape[1:], shape[1:])):
            result.notes.append(f"input '{t_name}' is {list(shape[1:])} in the target, {list(s_shape[1:])} in the "
                                f"source: the source's layers are run at the target's size")
    result.input_shapes = {k: list(v) for k, v in shapes.items()}
    result.source_input_shapes = {k: (list(v) if v else None) for k, v in src_shapes.items()}
    batch_inputs = _seeded_batch(shapes, dtypes, batch, seed)

    frontier = list(graph.frontier)
    accepted: list[tuple[str, int, int]] = []
    tried: set[tuple] = set()
    attempts = 0

    parents = {layer.name: [r.layer for c in layer.calls for r in c.inputs]
               for layer in target.layers if layer.depth == 0}

    def ancestors(outputs) -> set[str]:
        seen: set[str] = set()
        stack = [ref[0] for ref in outputs]
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            stack.extend(parents.get(name, []))
        return seen

    def build_pair(outputs):
        needed = ancestors(outputs)
        keep_t = {n for n in graph.layers if n in needed}
        keep_s = {graph.layers[n] for n in keep_t}
        t_in = [r.layer for r in target.inputs if r.layer in graph.inputs and r.layer in needed]
        s_in = [graph.inputs[n] for n in t_in]
        s_out = [(graph.layers[n], node, t) for n, node, t in outputs]
        t_doc = sub_config(dict(target.config), keep_t, t_in, outputs, shapes)
        s_doc = sub_config(dict(source.config), keep_s, s_in, s_out,
                           {graph.inputs[k]: v for k, v in shapes.items()})
        t_sub = rebuild(target, unsafe=unsafe, serialized=t_doc)
        s_sub = rebuild(source, unsafe=unsafe, serialized=s_doc)
        return t_sub, s_sub, t_in

    built = None
    failure_reason = ""
    try:
        built = build_pair(frontier)
        accepted = frontier
    except ArchdiffError as exc:
        failure_reason = exc.message
    if built is None:
        # Narrow down: try each frontier output alone, stepping back to its inputs when it cannot run.
        queue = list(frontier)
        while queue and attempts < 24:
            ref = queue.pop(0)
            if ref in tried:
                continue
            tried.add(ref)
            attempts += 1
            try:
                build_pair([ref])
                accepted.append(ref)
            except ArchdiffError as exc:
                result.outputs.append(OutputResult(target_layer=ref[0], source_layer=graph.layers[ref[0]],
                                                   status="not_compared",
                                                   reason=_why_not(exc.message, resized=bool(result.notes))))
                for parent in parents.get(ref[0], []):
                    if parent in graph.layers:
                        queue.append((parent, 0, 0))
        if not accepted:
            result.status = SKIPPED
            result.reason = ("no part of the shared sub-graph can run in both models"
                             + (f": {_why_not(failure_reason, resized=bool(result.notes))}" if failure_reason else ""))
            return result
        built = build_pair(accepted)
    t_sub, s_sub, t_in = built
    problems = _fill_pair(t_sub, s_sub, model, source)
    if problems:
        result.status = SKIPPED
        result.reason = "the source's stored weights do not fit its own rebuilt layers: " + "; ".join(problems[:3])
        return result
    feed = [batch_inputs[n] for n in t_in]
    failing: list[OutputResult] = []
    for ref, (a, b) in zip(accepted, _run_pair(t_sub, s_sub, feed)):
        item = _compare_one(ref, graph.layers[ref[0]], a, b, atol, rtol)
        result.outputs.append(item)
        if item.status == FAIL:
            failing.append(item)
    if failing:
        result.status = FAIL
        origin = []
        try:
            origin = _where_it_starts(target, graph, build_pair, model, source, feed, atol, rtol)
        except ArchdiffError:
            pass
        result.origin = origin
        start = ""
        if origin:
            start = "; the difference starts at " + ", ".join(
                f"layer '{o['layer']}' (max |diff| {o['max_abs_diff']:.3g})" for o in origin[:3])
        for item in failing:
            problem = item.reason or (f"max |diff| {item.max_abs_diff:.3g} over atol {atol:g} + rtol {rtol:g}")
            result.failures.append(f"output of layer '{item.target_layer}' differs between target and source "
                                   f"({problem}){start}")
        compared = len([o for o in result.outputs if o.status != "not_compared"])
        result.reason = f"{len(failing)} of {compared} shared outputs differ{start}"
    else:
        compared_items = [o for o in result.outputs if o.status == PASS]
        result.reason = (f"{len(compared_items)} output(s) of the {len(graph.layers)}-layer shared sub-graph agree "
                         f"(max |diff| {max((o.max_abs_diff or 0.0) for o in compared_items):.3g})")
    return result


def _fill_pair(t_sub, s_sub, model, source: Architecture) -> list[str]:
    """Target sub-model: values from the live (OUT-loaded) model; source sub-model: from the source file."""
    _copy_from_live(t_sub, model)
    with FileValues(source) as values:
        return _assign_from_file(s_sub, source, values)


def _run_pair(t_sub, s_sub, feed) -> list[tuple[np.ndarray, np.ndarray]]:
    t_out = t_sub(feed, training=False)
    s_out = s_sub(feed, training=False)
    t_out = t_out if isinstance(t_out, (list, tuple)) else [t_out]
    s_out = s_out if isinstance(s_out, (list, tuple)) else [s_out]
    return [(np.asarray(a), np.asarray(b)) for a, b in zip(t_out, s_out)]


def _compare_one(ref, source_layer: str, a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> OutputResult:
    """allclose semantics per element; the relative figure is |diff| over the output's largest magnitude."""
    name = ref[0] + (f"[{ref[1]}]" if ref[1] else "") + (f"[{ref[2]}]" if ref[2] else "")
    item = OutputResult(target_layer=name, source_layer=source_layer, status=PASS, shape=list(a.shape))
    if a.shape != b.shape:
        item.status = "not_compared"
        item.reason = f"output shapes differ: {list(a.shape)} vs {list(b.shape)}"
        return item
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    diff = np.abs(a64 - b64)
    item.max_abs_diff = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(b64).max()) if b64.size else 0.0
    item.max_rel_diff = item.max_abs_diff / scale if scale > 0 else (0.0 if item.max_abs_diff == 0 else math.inf)
    finite = bool(np.all(np.isfinite(a64)) and np.all(np.isfinite(b64)))
    if not finite:
        item.status = FAIL
        item.reason = "non-finite values"
    elif not np.all(diff <= atol + rtol * np.abs(b64)):
        item.status = FAIL
    return item


def _where_it_starts(target: Architecture, graph: "SharedGraph", build_pair, model, source, feed,
                     atol: float, rtol: float) -> list[dict]:
    """The shared layers whose outputs differ while all their shared inputs agree."""
    refs = []
    order = [layer for layer in target.layers if layer.depth == 0 and layer.name in graph.layers]
    for layer in order:
        for node in range(max(1, len(layer.calls))):
            refs.append((layer.name, node, 0))
    t_sub, s_sub, _ = build_pair(refs)
    if _fill_pair(t_sub, s_sub, model, source):
        return []
    differing: dict[str, float] = {}
    for ref, (a, b) in zip(refs, _run_pair(t_sub, s_sub, feed)):
        item = _compare_one(ref, graph.layers[ref[0]], a, b, atol, rtol)
        if item.status == FAIL:
            differing[ref[0]] = max(differing.get(ref[0], 0.0), item.max_abs_diff or 0.0)
    origin = []
    for layer in order:
        if layer.name not in differing:
            continue
        inputs = {r.layer for c in layer.calls for r in c.inputs}
        if not inputs & set(differing):
            origin.append({"layer": layer.name, "max_abs_diff": differing[layer.name]})
    return origin


def _why_not(message: str, *, resized: bool = False) -> str:
    """Why a part of the shared sub-graph could not be run, in one short line."""
    import re

    text = " ".join(message.split())
    inner = re.search(r"\((\w+Error: .*)\)$", text)
    if inner:
        text = inner.group(1)
    prefix = "cannot run at the target's input size: " if resized else "cannot be rebuilt on its own: "
    return (prefix + text)[:300]


# =============================================================================
# 4. Fine-tuning
# =============================================================================
@dataclass
class Data:
    kind: str
    train: Any
    val: Any
    description: dict
    builtin: bool = False
    batched: bool = False


def _model_io(model) -> tuple[tuple, int]:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise _Skip("fine-tuning handles models with one input and one output; this one has "
                    f"{len(model.inputs)} input(s) and {len(model.outputs)} output(s)")
    shape = tuple(model.inputs[0].shape)
    units = model.outputs[0].shape[-1]
    if units is None:
        raise _Skip("the model's output has no fixed number of classes")
    return shape, int(units)


class _Skip(Exception):
    """A reason the fine-tune check cannot run on this model (reported, not an error)."""


def load_data(options: ValidateOptions, input_shape: tuple, n_classes: int) -> Data:
    """The fine-tuning data: the built-in task, an .npz, or a folder of class folders."""
    from archdiff.validate import synthetic

    if options.data is None:
        image = tuple(input_shape[1:])
        try:
            task = synthetic.target_task(image, n_classes=max(2, n_classes), n_train=options.samples,
                                         n_test=options.test_samples, seed=options.seed)
        except ValueError as exc:
            raise _Skip(f"the built-in task does not fit this model ({exc}); give --data DIR or --data file.npz")
        if n_classes < 2:
            raise _Skip("the built-in task is a classification of 2 or more classes; this model has one output unit")
        return Data("builtin", (task.x_train, task.y_train), (task.x_test, task.y_test),
                    {**task.describe(), "kind": "builtin", "seed": options.seed}, builtin=True)
    path = options.data
    if os.path.isdir(path):
        return _load_dir(path, options, input_shape, n_classes)
    if path.lower().endswith(".npz"):
        return _load_npz(path, options, input_shape, n_classes)
    raise UsageError(f"--data '{path}' is neither a folder nor an .npz file",
                     hint="give a folder with one sub-folder of images per class, or an .npz holding arrays x and y")


def _load_npz(path: str, options: ValidateOptions, input_shape: tuple, n_classes: int) -> Data:
    if not os.path.isfile(path):
        raise InputError("no such file", path=path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a readable .npz ({exc})", path=path, hint="write it with numpy.savez(path, x=..., y=...)")
    if "x" not in arrays or "y" not in arrays:
        raise InputError(f"the .npz holds {sorted(arrays)}, not arrays 'x' and 'y'", path=path,
                         hint="numpy.savez(path, x=images, y=labels); optional x_val, y_val")
    x, y = arrays["x"], arrays["y"]
    if len(x) != len(y):
        raise InputError(f"'x' has {len(x)} samples and 'y' {len(y)}", path=path)
    expected = tuple(input_shape[1:])
    if len(x.shape) - 1 != len(expected) or any(e is not None and e != d for e, d in zip(expected, x.shape[1:])):
        raise InputError(f"'x' samples are {list(x.shape[1:])}, the model takes {list(expected)}", path=path)
    y = _labels(y, n_classes, path)
    if "x_val" in arrays and "y_val" in arrays:
        xv, yv = arrays["x_val"], _labels(arrays["y_val"], n_classes, path)
    else:
        if len(x) < 5:
            raise InputError(f"only {len(x)} samples: too few to split off validation data", path=path)
        order = np.random.default_rng(options.seed).permutation(len(x))
        cut = max(1, len(x) // 5)
        xv, yv = x[order[:cut]], y[order[:cut]]
        x, y = x[order[cut:]], y[order[cut:]]
    return Data("npz", (x.astype("float32"), y), (xv.astype("float32"), yv),
                {"kind": "npz", "path": path, "train_samples": int(len(x)), "test_samples": int(len(xv)),
                 "classes": n_classes, "image_shape": list(x.shape[1:])})


def _labels(y: np.ndarray, n_classes: int, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == n_classes and n_classes > 1:
        y = y.argmax(axis=1)  # one-hot
    y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if not np.issubdtype(y.dtype, np.integer):
        if np.all(np.equal(np.mod(y, 1), 0)):
            y = y.astype(np.int64)
        else:
            raise InputError("labels 'y' must be class indices (integers) or one-hot rows", path=where)
    limit = max(2, n_classes)
    if len(y) and (y.min() < 0 or y.max() >= limit):
        raise InputError(f"labels run from {int(y.min())} to {int(y.max())}; the model has {n_classes} output "
                         f"unit(s), so labels must be 0..{limit - 1}", path=where)
    return y.astype("int32")


def _load_dir(path: str, options: ValidateOptions, input_shape: tuple, n_classes: int) -> Data:
    from archdiff.lazy import require_keras

    keras = require_keras()
    shape = tuple(input_shape[1:])
    if len(shape) != 3 or shape[0] is None or shape[1] is None:
        raise UsageError(f"--data DIR needs a model taking images of a fixed size; this one takes {list(shape)}")
    channels = shape[2]
    color = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    if color is None:
        raise UsageError(f"--data DIR reads 1-, 3- or 4-channel images; the model takes {channels} channels")
    import contextlib
    import io

    try:
        # Keras prints "Found N files ..." on stdout, where the report goes: keep it out.
        with contextlib.redirect_stdout(io.StringIO()):
            train, val = keras.utils.image_dataset_from_directory(
                path, validation_split=0.2, subset="both", seed=options.seed, image_size=(shape[0], shape[1]),
                batch_size=options.batch_size, label_mode="int", color_mode=color, shuffle=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises ValueError and others
        raise InputError(f"cannot read images per class from this folder ({' '.join(str(exc).split())[:200]})",
                         path=path, hint="lay it out as DIR/<class name>/<image files>") from None
    names = list(getattr(train, "class_names", []))
    if len(names) != max(2, n_classes) and not (n_classes == 1 and len(names) == 2):
        raise InputError(f"the folder has {len(names)} classes ({', '.join(names[:6])}), the model's output has "
                         f"{n_classes} unit(s)", path=path, hint="give the data the model's head was built for")
    scale = options.rescale if options.rescale is not None else 1.0 / 255.0
    train = train.map(lambda x, y: (x * scale, y))
    val = val.map(lambda x, y: (x * scale, y))
    return Data("dir", train, val, {"kind": "dir", "path": path, "classes": len(names), "class_names": names,
                                    "image_shape": list(shape), "rescale": scale}, batched=True)


def _loss_for(model, target: Architecture, n_classes: int):
    from archdiff.lazy import require_keras

    keras = require_keras()
    out_name = target.outputs[0].layer if target.outputs else None
    layer = target.by_path.get(out_name) if out_name else None
    activation = None
    if layer is not None:
        activation = layer.config.get("activation")
        if layer.class_name == "Softmax":
            activation = "softmax"
        elif layer.class_name == "Activation":
            activation = layer.config.get("activation")
    if isinstance(activation, dict):
        activation = activation.get("class_name") or activation.get("config")
    if n_classes == 1:
        logits = activation != "sigmoid"
        return keras.losses.BinaryCrossentropy(from_logits=logits), "binary_crossentropy" + (
            " (from logits)" if logits else "")
    logits = activation != "softmax"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=logits), "sparse_categorical_crossentropy" + (
        " (from logits)" if logits else "")


def mixed_precision_config(serialized: dict, *, top: bool = True) -> dict:
    """The config with every layer computing in mixed_float16, except inputs and the model's outputs.

    The outputs stay float32, as Keras' mixed-precision guide advises, so the
    softmax and the loss are computed in full precision.
    """
    doc = _strip(serialized)
    config = doc.get("config") or {}
    outputs = set()
    if top:
        for ref in config.get("output_layers") or []:
            if isinstance(ref, list) and ref and isinstance(ref[0], str):
                outputs.add(ref[0])
            elif isinstance(ref, list):
                outputs.update(r[0] for r in ref if isinstance(r, list) and r)
    entries = config.get("layers") or []
    if top and doc.get("class_name") == "Sequential" and entries:
        outputs.add(_entry_name(entries[-1]))
    for entry in entries:
        name = _entry_name(entry)
        if entry.get("class_name") == "InputLayer" or name in outputs:
            continue
        inner = entry.get("config")
        if isinstance(inner, dict):
            if isinstance(inner.get("layers"), list):
                nested = mixed_precision_config({"class_name": entry["class_name"], "config": inner}, top=False)
                inner.update(nested["config"])
                continue
            inner["dtype"] = "mixed_float16"
    return doc


def resolve_freeze_until(model, spec: str) -> int:
    """``--freeze-until NAME|INDEX`` to the index in ``model.layers`` (the ``archdiff layers`` index)."""
    names = [layer.name for layer in model.layers]
    text = spec.strip()
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index <= len(names):
            raise UsageError(f"--freeze-until {index} is out of range: the model has layers 0..{len(names) - 1}",
                             hint="see the indices with 'archdiff layers TARGET'")
        return index
    if text in names:
        return names.index(text)
    close = difflib.get_close_matches(text, names, n=3)
    raise UsageError(f"--freeze-until '{text}': no top-level layer has this name",
                     hint=(f"did you mean {', '.join(repr(c) for c in close)}? " if close else "")
                     + "see the names and indices with 'archdiff layers TARGET'")


def _snapshot(model) -> dict[int, tuple[str, np.ndarray]]:
    return {id(v): (v.path, np.array(v.numpy(), copy=True)) for v in model.weights}


def _frozen_layers(model, paths: set[str]) -> list:
    live = live_layers(model)
    return [live[p] for p in sorted(paths) if p in live]


def _all_layer_paths(model) -> dict[int, str]:
    return {id(layer): path for path, layer in live_layers(model).items()}


def _history_losses(history) -> list[float]:
    return [float(v) for v in (history.history.get("loss") or [])]


def _evaluate(model, data: Data, batch_size: int) -> tuple[float, float]:
    if data.batched:
        values = model.evaluate(data.val, verbose=0, return_dict=True)
    else:
        x, y = data.val
        values = model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True)
    loss = float(values.get("loss", float("nan")))
    metric = next((float(v) for k, v in values.items() if "acc" in k), float("nan"))
    return loss, metric


def _fit(model, data: Data, epochs: int, batch_size: int, callbacks, seed: int):
    from archdiff.lazy import require_keras

    keras = require_keras()
    keras.utils.set_random_seed(seed)
    if data.batched:
        return model.fit(data.train, epochs=epochs, verbose=0, callbacks=callbacks)
    x, y = data.train
    return model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=callbacks, shuffle=True)


def _steps_per_epoch(data: Data, batch_size: int) -> int:
    if data.batched:
        try:
            n = int(data.train.cardinality())
            return max(n, 0)
        except Exception:  # noqa: BLE001
            return 0
    return int(math.ceil(len(data.train[0]) / batch_size))


def _progress_callback(label: str, epochs: int, enabled: bool):
    if not enabled:
        return None
    from archdiff.lazy import require_keras

    keras = require_keras()

    class Progress(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            text = f"{loss:.4f}" if isinstance(loss, (int, float)) else "?"
            print(f"archdiff validate: {label}: epoch {epoch + 1}/{epochs}, loss {text}", file=sys.stderr, flush=True)

    return Progress()


def _train_stage(model, stage: StageResult, data: Data, options: ValidateOptions, optimizer, loss,
                 frozen_paths: set[str], path_of: dict[int, str], progress: bool, seed: int) -> None:
    """Compile, record, fit, and check one stage: frozen unchanged, trainable changed, loss finite and falling."""
    from archdiff.validate.devices import StepTimes, step_timer

    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])  # after every change of trainable
    stage.loss_before, stage.metric_before = _evaluate(model, data, options.batch_size)
    before = _snapshot(model)
    frozen_vars = {}
    for layer in _frozen_layers(model, frozen_paths):
        for var in layer.weights:
            frozen_vars[id(var)] = f"{path_of.get(id(layer), layer.name)}/{_relative_name(var, layer)}"
    trainable_vars = {id(v): v.path for v in model.trainable_weights if id(v) not in frozen_vars}
    stage.frozen_variables = len(frozen_vars)
    stage.trainable_variables = len(trainable_vars)
    times = StepTimes()
    callbacks = [step_timer(times)]
    extra = _progress_callback(stage.name, stage.epochs, progress)
    if extra is not None:
        callbacks.append(extra)
    history = _fit(model, data, stage.epochs, options.batch_size, callbacks, seed)
    stage.loss = _history_losses(history)
    stage.time_per_step_ms = times.per_step_ms()
    stage.steps = len(times.seconds)
    stage.val_loss_after, stage.metric_after = _evaluate(model, data, options.batch_size)
    after = {id(v): v for v in model.weights}
    for key, name in frozen_vars.items():
        var = after.get(key)
        if var is not None and np.asarray(var.numpy()).tobytes() != before[key][1].tobytes():
            stage.frozen_changed.append(name)
    for key, name in trainable_vars.items():
        var = after.get(key)
        if var is not None and np.asarray(var.numpy()).tobytes() == before[key][1].tobytes():
            stage.trainable_unchanged.append(name)
    stage.loss_finite = bool(stage.loss) and all(math.isfinite(v) for v in stage.loss)
    # With one epoch there is no trend to judge: loss_falling stays None (not checked).
    if len(stage.loss) >= 2:
        stage.loss_falling = stage.loss[-1] < stage.loss[0]
    if stage.frozen_changed:
        stage.failures.append(f"{stage.name}: frozen variable(s) changed during training: "
                              + ", ".join(stage.frozen_changed[:8])
                              + (f" and {len(stage.frozen_changed) - 8} more" if len(stage.frozen_changed) > 8 else ""))
    if not trainable_vars:
        stage.failures.append(f"{stage.name}: nothing is trainable: every layer with weights is frozen "
                              "(choose fewer with --freeze-until)")
    elif stage.trainable_unchanged:
        stage.failures.append(f"{stage.name}: trainable variable(s) did not change: "
                              + ", ".join(stage.trainable_unchanged[:8])
                              + (f" and {len(stage.trainable_unchanged) - 8} more"
                                 if len(stage.trainable_unchanged) > 8 else "")
                              + " (no gradient reaches them)")
    if not stage.loss_finite:
        stage.failures.append(f"{stage.name}: the training loss is not finite: {stage.loss}")
    elif stage.loss_falling is False and stage.name == "stage 1":
        stage.failures.append(f"{stage.name}: the training loss did not fall "
                              f"({stage.loss[0]:.4g} in the first epoch, {stage.loss[-1]:.4g} in the last)")


def finetune(target: Architecture, weights_path: str, transferred: list[str] | None, options: ValidateOptions,
             *, progress: bool = False, plan=None) -> FinetuneCheck:
    """Step 4: freeze, train, check; then optionally unfreeze; and train from scratch on the built-in task."""
    from archdiff.validate import devices
    from archdiff.lazy import require_keras

    keras = require_keras()
    result = FinetuneCheck(status=PASS)
    if not options.finetune:
        result.status = SKIPPED
        result.reason = "fine-tuning was not asked for (--no-finetune)"
        return result
    if options.epochs < 1:
        raise UsageError(f"--epochs {options.epochs}: train at least one epoch")
    plan = plan or devices.choose(options.device, mixed_precision=options.mixed_precision)
    strategy = devices.make_strategy(plan)
    plan = devices.with_strategy_name(plan, strategy)
    result.device = plan.to_dict()
    serialized = dict(target.config)
    if plan.mixed_precision:
        serialized = mixed_precision_config(serialized)

    def build(load: bool):
        with strategy.scope():
            m = rebuild(target, unsafe=options.unsafe, serialized=serialized)
            if load:
                load_weights_into(m, weights_path)
        return m

    keras.utils.set_random_seed(options.seed)
    model = build(True)
    try:
        input_shape, n_classes = _model_io(model)
        data = load_data(options, input_shape, n_classes)
    except _Skip as why:
        result.status = SKIPPED
        result.reason = str(why)
        return result
    result.data = data.description
    loss, result.loss_name = _loss_for(model, target, n_classes)
    path_of = _all_layer_paths(model)

    # -- what is frozen ------------------------------------------------------------
    frozen_paths: set[str] = set()
    if options.freeze_until is not None:
        index = resolve_freeze_until(model, options.freeze_until)
        top = model.layers[:index]
        for layer in top:
            frozen_paths.add(path_of[id(layer)])
            if _is_model(layer):
                frozen_paths.update(p for p, x in live_layers(layer, path_of[id(layer)] + "/").items())
        result.freeze = {"mode": "until", "until": options.freeze_until, "index": index,
                         "first_trainable": model.layers[index].name if index < len(model.layers) else None}
    elif transferred:
        frozen_paths = set(transferred)
        result.freeze = {"mode": "transferred", "until": None, "index": None, "first_trainable": None}
    else:
        result.freeze = {"mode": "none", "until": None, "index": None, "first_trainable": None}
        result.notes.append("no transferred layers are known (no --source) and no --freeze-until: nothing frozen")
    live = live_layers(model)
    for path in frozen_paths:
        if path in live:
            live[path].trainable = False
    frozen_with_weights = sorted(p for p in frozen_paths if p in live and live[p].weights and not _is_model(live[p]))
    bn_frozen = [p for p in frozen_with_weights if type(live[p]).__name__.startswith("BatchNormalization")]
    result.freeze["layers"] = _listed(frozen_with_weights)
    result.freeze["layer_count"] = len(frozen_with_weights)
    if bn_frozen:
        result.notes.append(f"{len(bn_frozen)} frozen BatchNormalization layer(s) run in inference mode "
                            "(Keras 3: trainable=False also means training=False), so their moving statistics "
                            "stay as transferred")
    trainable_paths = sorted(p for p, x in live.items() if x.weights and not _is_model(x) and p not in frozen_paths
                             and x.trainable)

    def make_optimizer(lr):
        opt = keras.optimizers.Adam(learning_rate=lr)
        return keras.optimizers.LossScaleOptimizer(opt) if plan.mixed_precision else opt

    steps_per_epoch = _steps_per_epoch(data, options.batch_size)
    with strategy.scope():
        stage1 = StageResult(name="stage 1", epochs=options.epochs, steps=0, learning_rate=options.learning_rate,
                             trainable_layers=trainable_paths, frozen_layers=frozen_with_weights)
        _train_stage(model, stage1, data, options, make_optimizer(options.learning_rate), loss, frozen_paths,
                     path_of, progress, options.seed)
        result.stages.append(stage1)
        if options.unfreeze_lr is not None:
            keep_frozen = set(bn_frozen)
            for path, layer in live.items():
                if path in keep_frozen:
                    continue
                layer.trainable = True
            epochs2 = options.unfreeze_epochs if options.unfreeze_epochs is not None else options.epochs
            stage2 = StageResult(name="stage 2 (unfrozen)", epochs=epochs2, steps=0,
                                 learning_rate=options.unfreeze_lr,
                                 trainable_layers=sorted(p for p, x in live.items() if x.weights and not _is_model(x)
                                                         and p not in keep_frozen),
                                 frozen_layers=sorted(keep_frozen))
            if epochs2 > 0:
                _train_stage(model, stage2, data, options, make_optimizer(options.unfreeze_lr), loss, keep_frozen,
                             path_of, progress, options.seed + 1)
                result.stages.append(stage2)
                if keep_frozen:
                    result.notes.append("stage 2 keeps the frozen BatchNormalization layers frozen, in inference "
                                        "mode, as the Keras transfer-learning guide advises")
    for stage in result.stages:
        result.failures.extend(stage.failures)

    # -- from scratch, same budget (built-in task) ---------------------------------
    if data.builtin and options.scratch:
        total_epochs = sum(s.epochs for s in result.stages)
        keras.utils.set_random_seed(options.seed)
        scratch_model = build(False)
        with strategy.scope():
            scratch_model.compile(optimizer=make_optimizer(options.learning_rate), loss=loss, metrics=["accuracy"])
            times = devices.StepTimes()
            callbacks = [devices.step_timer(times)]
            extra = _progress_callback("from scratch", total_epochs, progress)
            if extra is not None:
                callbacks.append(extra)
            history = _fit(scratch_model, data, total_epochs, options.batch_size, callbacks, options.seed)
            _, metric = _evaluate(scratch_model, data, options.batch_size)
        result.scratch = ScratchResult(epochs=total_epochs, steps=len(times.seconds),
                                       learning_rate=options.learning_rate, loss=_history_losses(history),
                                       metric_after=metric, time_per_step_ms=times.per_step_ms())
        if result.metric_after is not None and metric is not None:
            result.transfer_gain = round(result.metric_after - metric, 6)
    result.data["steps_per_epoch"] = steps_per_epoch
    if result.failures:
        result.status = FAIL
        result.reason = f"{len(result.failures)} fine-tuning check(s) failed"
    else:
        before, after = result.metric_before, result.metric_after
        result.reason = (f"frozen variables unchanged, trainable ones changed, loss finite and falling; "
                         f"accuracy {before:.3f} -> {after:.3f}")
    return result


# =============================================================================
# The whole validation
# =============================================================================
@contextmanager
def _float32_policy():
    """Checks 1-3 compare in float32 whatever the global dtype policy is."""
    from archdiff.lazy import require_keras

    keras = require_keras()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def validate(target: str, weights: str | None = None, source: str | None = None,
             options: ValidateOptions | None = None, *, progress: bool | None = None,
             plan=None) -> ValidationReport:
    """Rebuild TARGET, load WEIGHTS (default: TARGET's own), and run the checks against SOURCE."""
    import time

    from archdiff.read import load

    started = time.perf_counter()
    options = options or ValidateOptions()
    if progress is None:
        progress = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    target_arch = load(target)
    weights_path = weights or target
    weights_arch = load(weights_path, infer_shapes=False) if weights else target_arch
    if not weights_arch.has_weights and weights is None:
        raise UsageError(f"'{target}' holds no weights to validate",
                         hint="give the transferred weights with --weights OUT")
    source_arch = load(source) if source else None
    imported = import_modules(options.imports)
    if options.finetune and plan is None:
        from archdiff.validate import devices

        # Chosen first, so that --device gpu on a machine without one fails before any work.
        plan = devices.choose(options.device, mixed_precision=options.mixed_precision)

    from archdiff.lazy import require_keras

    keras = require_keras()
    with _float32_policy():
        keras.utils.set_random_seed(options.seed)
        model = rebuild(target_arch, unsafe=options.unsafe)
        load_weights_into(model, weights_path)
        rebuild_result = RebuildResult(
            status=PASS, model_name=model.name, class_name=type(model).__name__,
            keras_version=getattr(keras, "__version__", ""), layers=len(model.layers), params=_count_params(model),
            safe_mode=not options.unsafe, imports=imported, weights_path=weights_path,
            weights_format=weights_arch.source.format)
        if target_arch.source.dialect == "keras2":
            rebuild_result.notes.append("a Keras 2 config, rebuilt with Keras 3")

        if source_arch is None:
            weights_check = WeightsCheck(status=SKIPPED, reason="no --source: nothing to compare the weights with")
            outputs_check = OutputsCheck(status=SKIPPED, reason="no --source: nothing to compare the outputs with")
            transferred = None
        else:
            pairs = pair_layers(source_arch, target_arch, maps=options.maps, map_files=options.map_files,
                                match=options.match)
            own = target_arch if (weights and weights_path != target and target_arch.has_weights) else None
            weights_check = check_weights(model, target_arch, source_arch, pairs, target_values=own)
            outputs_check = compare_outputs(model, target_arch, source_arch, pairs, atol=options.atol,
                                            rtol=options.rtol, batch=options.compare_batch, seed=options.seed,
                                            unsafe=options.unsafe,
                                            not_transferred={x["layer"]: x["reason"]
                                                             for x in weights_check.not_transferred})
            transferred = weights_check.arrived
    finetune_check = finetune(target_arch, weights_path, transferred, options, progress=progress, plan=plan)
    return ValidationReport(target=target, weights=weights_path, source=source, rebuild=rebuild_result,
                            weights_arrived=weights_check, outputs=outputs_check, finetune=finetune_check,
                            options=options, seconds=round(time.perf_counter() - started, 3))


__all__ = [
    "FinetuneCheck", "OutputsCheck", "RebuildResult", "ValidateOptions", "ValidationReport", "WeightsCheck",
    "check_weights", "compare_outputs", "finetune", "pair_layers", "rebuild", "validate",
]
