"""The live Keras model's layers and variables, and the values a weights file stores for them.

Checks 2 to 4 all look at a rebuilt model by archdiff path (nested models'
layers included) and pair its variables with the :class:`~archdiff.model.WeightSpec`
of a file; the stored values are read with h5py (:class:`FileValues`), never
through Keras, so that a check does not trust the code it checks.
"""
from __future__ import annotations

import hashlib
import os
import zipfile
from contextlib import ExitStack
from typing import Any

import numpy as np

from archdiff.errors import InputError
from archdiff.model import Architecture, WeightSpec


def count_params(model) -> int:
    """Every variable's element count, non-trainable ones included (what ``count_params`` would say)."""
    total = 0
    for var in model.weights:
        total += int(np.prod(var.shape)) if len(var.shape) else 1
    return total


def is_model(layer) -> bool:
    """Whether a live layer is itself a model (its layers have paths of their own)."""
    from archdiff.lazy import require_keras

    keras = require_keras()
    return isinstance(layer, keras.Model)


def live_layers(model, prefix: str = "") -> dict[str, Any]:
    """Every layer of a live model by archdiff path (nested models' layers included)."""
    out: dict[str, Any] = {}
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        out[path] = layer
        if is_model(layer):
            out.update(live_layers(layer, path + "/"))
    return out


def relative_name(var, layer) -> str:
    """A variable's name relative to its layer (``kernel``, ``cell/kernel``), whatever the scope above it."""
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


def layer_vars(layer) -> list[tuple[str, Any]]:
    """A live layer's variables with their names relative to it, in Keras' order."""
    return [(relative_name(v, layer), v) for v in layer.weights]


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


def digest(value: np.ndarray) -> tuple:
    """A key equal for two arrays exactly when dtype, shape and bytes are (to find where a value came from)."""
    data = np.ascontiguousarray(value)
    return (str(data.dtype), tuple(data.shape), hashlib.blake2b(data.tobytes(), digest_size=16).digest())


def same_bits(live: np.ndarray, stored: np.ndarray) -> tuple[bool, str | None]:
    """Bitwise equality; a stored value of another dtype is compared after the cast a transfer makes."""
    if stored.dtype != live.dtype:
        cast = stored.astype(live.dtype)
        return cast.shape == live.shape and cast.tobytes() == np.ascontiguousarray(live).tobytes(), str(stored.dtype)
    return stored.shape == live.shape and np.ascontiguousarray(stored).tobytes() == \
        np.ascontiguousarray(live).tobytes(), None


def max_abs(a: np.ndarray, b: np.ndarray) -> float | None:
    """The largest absolute difference (NaN when every difference is NaN; None when not numeric)."""
    try:
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    except (TypeError, ValueError):
        return None
    if diff.size == 0:
        return 0.0
    value = float(np.nanmax(diff)) if not np.all(np.isnan(diff)) else float("nan")
    return value
