"""Saved references: a model's seeded inputs and outputs in one ``.npz``, and comparing a later run with them.

``--save-reference ref.npz`` stores the seeded batch fed to the model and the
outputs it gave; ``--reference ref.npz`` feeds a model the stored inputs and
compares its outputs with the stored ones (:mod:`~archdiff.validate.comparator`,
per output, Polygraphy's tolerances and statistics). This is Polygraphy's
``--save-outputs`` / ``--load-outputs`` for Keras, and it crosses stacks: a
reference recorded from the Keras 2 model on tf-keras (:func:`record_reference`
takes any model that has ``inputs``, ``outputs`` and can be called, tf-keras'
too) is matched by the Keras 3 port on JAX.

The file (read with ``allow_pickle=False``; nothing in it runs) holds
``input:NAME`` and ``output:NAME`` arrays, in the model's order, and
``__meta__``: a JSON text (format, Keras version, backend, model name, seed,
batch size, the order of the names).
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from archdiff.errors import InputError
from archdiff.validate.comparator import Tolerances, compare_arrays
from archdiff.validate.report import FAIL, NOT_COMPARED, PASS, OutputResult, ReferenceCheck, output_result

FORMAT = "archdiff-reference/1"
#: The size given to an input dimension the model leaves open (a sequence length, an image side).
OPEN_DIMENSION = 16


@dataclass(frozen=True)
class Reference:
    """A loaded reference: inputs and outputs by name (in their saved order), and what it says of itself."""

    path: str
    inputs: dict
    outputs: dict
    meta: dict


def _name(tensor, fallback: str) -> str:
    name = getattr(tensor, "name", None) or fallback
    return str(name).split(":")[0]


def _dict_keys(model, attr: str) -> list[str] | None:
    """The keys of a model built on a dict of inputs or outputs (keras-hub's backbones), in the order of
    ``model.inputs`` / ``model.outputs`` (Keras flattens a dict by sorted key); Keras' fit and evaluate key their
    data by them."""
    struct = getattr(model, attr, None)
    if not isinstance(struct, dict) or not all(isinstance(k, str) for k in struct):
        return None
    from archdiff.lazy import require_keras

    return [str(k) for k in require_keras().tree.flatten({k: k for k in struct})]


def input_names(model) -> list[str]:
    keys = _dict_keys(model, "_inputs_struct")
    if keys is not None:
        return keys
    names = getattr(model, "input_names", None)
    if names:
        return [str(n) for n in names]
    return [_name(t, f"input_{i}") for i, t in enumerate(model.inputs)]


def output_names(model) -> list[str]:
    keys = _dict_keys(model, "_outputs_struct")
    if keys is not None:
        return keys
    names = getattr(model, "output_names", None)
    if names:
        return [str(n) for n in names]
    return [_name(t, f"output_{i}") for i, t in enumerate(model.outputs)]


def _dtype_name(tensor) -> str:
    dtype = getattr(tensor, "dtype", "float32")
    return str(getattr(dtype, "name", dtype))


def embedding_limit(model) -> int | None:
    """The smallest ``input_dim`` of the model's Embedding layers (nested ones included): ids below it fit all."""
    limits = []
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []) or [])
        if type(layer).__name__ == "Embedding":
            dim = getattr(layer, "input_dim", None)
            if isinstance(dim, int) and dim > 0:
                limits.append(dim)
    return min(limits) if limits else None


def seeded_inputs(model, *, batch: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded batch for every input of ``model`` (floats in [0, 1), integer ids below the Embeddings' size)."""
    rng = np.random.default_rng(seed)
    high = embedding_limit(model) or 2
    out: dict[str, np.ndarray] = {}
    for name, tensor in zip(input_names(model), model.inputs):
        shape = tuple(getattr(tensor, "shape", ()) or ())
        dims = (batch,) + tuple(OPEN_DIMENSION if d is None else int(d) for d in shape[1:])
        dtype = _dtype_name(tensor)
        if "int" in dtype or "bool" in dtype:
            out[name] = rng.integers(0, high, size=dims).astype("int32" if "bool" not in dtype else "bool")
        else:
            out[name] = rng.random(dims, dtype=np.float32).astype(dtype if "float" in dtype else "float32")
    return out


def to_numpy(value) -> np.ndarray:
    """A tensor of any backend (TensorFlow, JAX, a PyTorch tensor on a GPU) as a NumPy array."""
    if hasattr(value, "detach"):
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
    if hasattr(value, "numpy"):
        try:
            return np.asarray(value.numpy())
        except (TypeError, ValueError, RuntimeError):
            pass
    return np.asarray(value)


def run_model(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs (inference mode) on named inputs, by output name."""
    names = input_names(model)
    feed = [inputs[n] for n in names]
    result = model(feed[0] if len(feed) == 1 else feed, training=False)
    if isinstance(result, dict):
        values = [result[k] for k in output_names(model) if k in result] or list(result.values())
    elif isinstance(result, (list, tuple)):
        values = list(result)
    else:
        values = [result]
    return {name: to_numpy(v) for name, v in zip(output_names(model), values)}


def save_reference(path: str, inputs: dict, outputs: dict, meta: dict) -> str:
    """Write a reference ``.npz`` beside itself and rename it into place."""
    from archdiff.output import atomic_path

    arrays = {f"input:{k}": np.asarray(v) for k, v in inputs.items()}
    arrays.update({f"output:{k}": np.asarray(v) for k, v in outputs.items()})
    meta = {**meta, "format": FORMAT, "inputs": list(inputs), "outputs": list(outputs)}
    arrays["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return path


def record_reference(model, path: str, *, batch: int = 8, seed: int = 0, inputs: dict | None = None,
                     meta: dict | None = None) -> dict[str, np.ndarray]:
    """Feed ``model`` a seeded batch (or ``inputs``), save inputs and outputs to ``path``; returns the outputs.

    Works with a Keras 3 model on any backend and with a tf-keras (Keras 2)
    model: the old stack can record what the port must reproduce.
    """
    inputs = inputs if inputs is not None else seeded_inputs(model, batch=batch, seed=seed)
    outputs = run_model(model, inputs)
    about = {"model_name": str(getattr(model, "name", "")), "seed": seed, "batch": batch,
             "framework": type(model).__module__.split(".")[0]}
    about.update(_framework_versions(model))
    save_reference(path, inputs, outputs, {**about, **(meta or {})})
    return outputs


def _framework_versions(model) -> dict:
    import sys

    top = type(model).__module__.split(".")[0]
    module = sys.modules.get(top)
    found = {"keras_version": str(getattr(module, "__version__", ""))}
    if top == "keras":
        try:
            found["backend"] = str(module.backend.backend())
        except Exception:  # noqa: BLE001 - a half-loaded Keras
            pass
    elif top == "tf_keras":
        found["backend"] = "tensorflow (tf-keras)"
    return found


def load_reference(path: str) -> Reference:
    """Read a reference written by :func:`save_reference` (or an ``.npz`` with ``input:``/``output:`` arrays)."""
    if not os.path.isfile(path):
        raise InputError("no such reference file", path=path, hint="write one with --save-reference FILE.npz")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputError(f"not a readable .npz reference ({exc})", path=path,
                         hint="write one with archdiff validate --save-reference FILE.npz") from None
    meta: dict = {}
    if "__meta__" in arrays:
        try:
            meta = json.loads(str(arrays.pop("__meta__")))
        except ValueError:
            raise InputError("the reference's __meta__ is not JSON", path=path) from None
    inputs = {k[len("input:"):]: v for k, v in arrays.items() if k.startswith("input:")}
    outputs = {k[len("output:"):]: v for k, v in arrays.items() if k.startswith("output:")}
    if not inputs or not outputs:
        raise InputError(f"the reference holds {sorted(arrays)[:6]}, not 'input:NAME' and 'output:NAME' arrays",
                         path=path, hint="write one with archdiff validate --save-reference FILE.npz")
    order_in, order_out = meta.get("inputs") or list(inputs), meta.get("outputs") or list(outputs)
    inputs = {k: inputs[k] for k in order_in if k in inputs} | inputs
    outputs = {k: outputs[k] for k in order_out if k in outputs} | outputs
    return Reference(path=path, inputs=inputs, outputs=outputs, meta=meta)


def _match(names: list[str], wanted: list[str]) -> tuple[dict[str, str], list[str]]:
    """``{wanted: name}`` by exact name, else by position when the counts agree; notes on what was assumed."""
    notes = []
    mapping = {w: w for w in wanted if w in names}
    rest_w = [w for w in wanted if w not in mapping]
    rest_n = [n for n in names if n not in mapping.values()]
    if rest_w and len(rest_w) == len(rest_n):
        for w, n in zip(rest_w, rest_n):
            mapping[w] = n
            notes.append(f"'{w}' of the reference is taken to be '{n}' of the model (by position)")
    return mapping, notes


def compare_with_reference(model, reference: Reference, tolerances: Tolerances) -> tuple[ReferenceCheck, dict]:
    """The model fed the reference's inputs, each output compared with the stored one; also the outputs."""
    recorded = {k: v for k, v in reference.meta.items() if k not in ("inputs", "outputs")}
    base = {"path": reference.path, "recorded": recorded}
    names_in = input_names(model)
    in_map, notes = _match(names_in, list(reference.inputs))
    missing = [n for n in names_in if n not in in_map.values()]
    if missing:
        return ReferenceCheck(status=FAIL, reason=f"the reference has no input for {', '.join(map(repr, missing))}",
                              failures=(f"reference: the model's input(s) {', '.join(map(repr, missing))} are not "
                                        f"in '{reference.path}' (it holds {', '.join(reference.inputs)})",), **base), {}
    feed = {model_name: reference.inputs[ref_name] for ref_name, model_name in in_map.items()}
    for name, tensor in zip(names_in, model.inputs):
        want = tuple(getattr(tensor, "shape", ()) or ())[1:]
        have = feed[name].shape[1:]
        if len(want) != len(have) or any(w is not None and int(w) != h for w, h in zip(want, have)):
            reason = f"the reference's input '{name}' is {list(have)} per sample, the model takes {list(want)}"
            return ReferenceCheck(status=FAIL, reason=reason, failures=(f"reference: {reason}",), **base), {}
    produced = run_model(model, feed)
    out_map, out_notes = _match(list(produced), list(reference.outputs))
    results: list[OutputResult] = []
    for ref_name, stored in reference.outputs.items():
        model_name = out_map.get(ref_name)
        if model_name is None:
            results.append(OutputResult(target_layer=ref_name, source_layer=ref_name, status=NOT_COMPARED,
                                        reason="the model has no output of this name"))
            continue
        atol, rtol, stat = tolerances.for_output(model_name)
        results.append(output_result(model_name, ref_name, compare_arrays(produced[model_name], stored, atol=atol,
                                                                          rtol=rtol, stat=stat)))
    failures = tuple(f"reference: output '{r.target_layer}' differs from '{reference.path}' ({r.reason})"
                     for r in results if r.status == FAIL)
    failures += tuple(f"reference: output '{r.target_layer}' of '{reference.path}' was not compared ({r.reason})"
                      for r in results if r.status == NOT_COMPARED)
    where = recorded.get("framework") or "?"
    if recorded.get("keras_version"):
        where += f" {recorded['keras_version']}"
    if recorded.get("backend"):
        where += f" on {recorded['backend']}"
    if failures:
        status, reason = FAIL, (f"{len(failures)} of {len(results)} output(s) differ from the reference "
                                f"(recorded with {where})")
    else:
        largest = max((r.max_abs_diff or 0.0) for r in results)
        status, reason = PASS, (f"{len(results)} output(s) match the reference recorded with {where} "
                                f"(max |diff| {largest:.3g})")
    check = ReferenceCheck(status=status, reason=reason, outputs=tuple(results), failures=failures, **base)
    if notes or out_notes:
        check = ReferenceCheck(**{**check.__dict__, "recorded": {**recorded, "notes": notes + out_notes}})
    return check, produced
