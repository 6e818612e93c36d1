"""The fine-tuning data: the built-in synthetic task, a seeded random task, ``--data FILE.npz`` or ``--data DIR``.

This module owns what check 4 trains and evaluates on, as a :class:`Data`,
and what each output is trained with (:mod:`archdiff.validate.heads`):

* the **built-in task** (:mod:`archdiff.validate.synthetic`) for a model
  taking one image and giving one classification (softmax, sigmoid or the
  guide's one-unit logits);
* a seeded **random task** for every other shape without ``--data`` (several
  inputs and outputs, integer ids for an Embedding, regression heads): it
  proves the mechanics (frozen variables stay, trainable ones move, the loss
  falls as the model fits the samples), not that the transfer helps;
* an ``.npz``: ``x`` and ``y`` for one input and output, or arrays named
  after the model's inputs and outputs (``image``, ``tokens``, ``score``;
  also ``x:NAME`` / ``y:NAME``), with optional ``*_val`` splits;
* a folder with one sub-folder of images per class (``tf.data``, already
  batched; TensorFlow only).

Labels are class indices. Input a user gives wrongly is an
:class:`~archdiff.errors.ArchdiffError` (exit 2); a model the check cannot
train (an output with no fixed size) is :class:`Skip`.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archdiff.errors import InputError, UsageError
from archdiff.validate.heads import BINARY, CLASSES, REGRESSION, Head, choose_heads, random_targets
from archdiff.validate.options import ValidateOptions


class Skip(Exception):
    """A reason the fine-tune check cannot run on this model (reported as skipped, not an error)."""


@dataclass(frozen=True)
class Data:
    """What check 4 trains on (``train``) and evaluates on (``val``), and how the report describes it."""

    kind: str
    train: Any
    val: Any
    description: dict
    builtin: bool = False
    batched: bool = False


@dataclass(frozen=True)
class ModelIO:
    """The live model's inputs ``(name, shape, dtype)`` and outputs ``(name, shape)``, in Keras' order."""

    inputs: tuple[tuple[str, tuple, str], ...]
    outputs: tuple[tuple[str, tuple], ...]
    #: The layer that computes each output, where the output is named otherwise (a dict key: keras-hub's
    #: ``sequence_output``): the head is chosen from that layer.
    output_layers: dict = field(default_factory=dict)
    #: The length an unknown (non-batch) input dimension is fed at; the outputs' shapes are Keras' for that.
    fill: int = 16

    @property
    def output_units(self) -> list[tuple[str, int]]:
        return [(name, int(shape[-1]) if shape and shape[-1] is not None else 1) for name, shape in self.outputs]


def model_io(model, fill: int = 16) -> ModelIO:
    """Inputs and outputs of a live model, or :class:`Skip` when an output has no fixed size.

    An output's unknown dimension (a sequence) gets the size Keras computes for inputs whose unknown
    dimensions are ``fill`` long, as the random task feeds them."""
    from archdiff.validate.reference import input_names, output_names

    inputs = tuple((name, tuple(t.shape), str(getattr(t.dtype, "name", t.dtype)))
                   for name, t in zip(input_names(model), model.inputs))
    outputs = tuple((name, tuple(t.shape)) for name, t in zip(output_names(model), model.outputs))
    for name, shape in outputs:
        if len(shape) > 1 and shape[-1] is None:
            raise Skip(f"the output '{name}' has no fixed number of units")
    if any(d is None for _, shape in outputs for d in shape[1:]):
        outputs = _concrete_outputs(model, inputs, outputs, fill)
    layers = {}
    for name, tensor in zip((n for n, _ in outputs), model.outputs):
        history = getattr(tensor, "_keras_history", None)
        layer = getattr(history[0], "name", None) if history else None
        if isinstance(layer, str) and layer != name:
            layers[name] = layer
    return ModelIO(inputs, outputs, layers, fill)


def _concrete_outputs(model, inputs, outputs, fill: int):
    """The outputs' shapes as Keras computes them for inputs ``fill`` long where their length is unknown."""
    from archdiff.lazy import require_keras

    keras = require_keras()
    specs = [keras.KerasTensor((None,) + tuple(fill if d is None else d for d in shape[1:]), dtype=dtype)
             for _, shape, dtype in inputs]
    struct = getattr(model, "_inputs_struct", None)
    feed = (dict(zip((n for n, _, _ in inputs), specs)) if isinstance(struct, dict)
            else specs[0] if len(specs) == 1 else specs)
    try:
        computed = keras.tree.flatten(model.compute_output_spec(feed))
    except Exception:  # noqa: BLE001 - the model's code: the unknown sizes stay unknown (dropped below)
        return outputs
    if len(computed) != len(outputs):
        return outputs
    return tuple((name, tuple(spec.shape)) for (name, _), spec in zip(outputs, computed))


def _builtin_fits(io_: ModelIO, heads: list[Head]) -> str | None:
    """None when the built-in image task fits the model, else why not."""
    if len(io_.inputs) != 1 or len(io_.outputs) != 1:
        return f"{len(io_.inputs)} input(s) and {len(io_.outputs)} output(s)"
    _, shape, dtype = io_.inputs[0]
    if len(shape) != 4 or "float" not in dtype:
        return f"its input is {list(shape[1:])} ({dtype}), not an image"
    head = heads[0]
    if head.kind == REGRESSION or (head.kind == BINARY and head.units != 1):
        return f"its output is a {head.kind} of {head.units} unit(s)"
    return None


def load_data(options: ValidateOptions, io_: ModelIO, target=None) -> tuple[Data, list[Head]]:
    """The fine-tuning data and the head of each output (built-in, random, an .npz or a folder)."""
    from archdiff.validate import synthetic

    if options.data is None:
        heads = choose_heads(target, io_.output_units, options.loss, layers=io_.output_layers)
        why_not = _builtin_fits(io_, heads)
        if why_not is None:
            image = tuple(io_.inputs[0][1][1:])
            n_classes = heads[0].classes
            try:
                task = synthetic.target_task(image, n_classes=max(2, n_classes), n_train=options.samples,
                                             n_test=options.test_samples, seed=options.seed)
            except ValueError as exc:
                why_not = str(exc)
            else:
                y_train, y_test = task.y_train, task.y_test
                if heads[0].kind == BINARY:
                    y_train, y_test = y_train.astype("float32"), y_test.astype("float32")
                return Data("builtin", (task.x_train, y_train), (task.x_test, y_test),
                            {**task.describe(), "kind": "builtin", "seed": options.seed}, builtin=True), heads
        tokens = _token_task(options, io_, heads, target)
        if tokens is not None:
            return tokens, heads
        return _random_task(options, io_, heads, target, why_not), heads
    path = options.data
    if os.path.isdir(path):
        if len(io_.inputs) != 1 or len(io_.outputs) != 1:
            raise UsageError(f"--data DIR trains a model with one image input and one output; this one has "
                             f"{len(io_.inputs)} input(s) and {len(io_.outputs)} output(s)",
                             hint="give an .npz with arrays named after the model's inputs and outputs")
        heads = choose_heads(target, io_.output_units, options.loss, layers=io_.output_layers)
        return _load_dir(path, options, io_.inputs[0][1], heads[0]), heads
    if path.lower().endswith(".npz"):
        return _load_npz(path, options, io_, target)
    raise UsageError(f"--data '{path}' is neither a folder nor an .npz file",
                     hint="give a folder with one sub-folder of images per class, or an .npz holding arrays x and y")


def _token_input(io_: ModelIO, heads: list[Head], limits: dict[str, int]) -> tuple[str, int, int] | None:
    """``(input name, vocabulary, sequence length)`` where the model is a language model: one classifier head
    whose output is ``(batch, length, vocabulary)``, fed by an integer ``(batch, length)`` input whose
    Embedding has exactly that vocabulary (or, where the Embedding is inside a nested model and its size is not
    known here, an input named ``token_ids``, as keras-hub names a language model's); else None."""
    if len(heads) != 1 or heads[0].kind != CLASSES or len(io_.outputs) != 1:
        return None
    shape = io_.outputs[0][1]
    if len(shape) != 3 or shape[-1] is None:
        return None
    vocabulary = int(shape[-1])
    for name, in_shape, dtype in io_.inputs:
        length = io_.fill if len(in_shape) == 2 and in_shape[1] is None else (in_shape[1] if len(in_shape) == 2
                                                                               else None)
        vocabulary_known = limits.get(name) == vocabulary or (name not in limits and name == "token_ids")
        if "int" in dtype and vocabulary_known and length is not None and \
                (shape[1] is None or int(shape[1]) == int(length)):
            return name, vocabulary, int(length)
    return None


def _token_task(options: ValidateOptions, io_: ModelIO, heads: list[Head], target) -> Data | None:
    """A language model's synthetic next-token task: each sequence counts up by one from a seeded start
    (modulo the vocabulary), and the target of each position is the next token. A model can learn it, so the
    loss falls because the model fits a rule, not noise; other integer inputs are all ones where they are a
    ``*mask`` (every token real) and zeros otherwise (one segment)."""
    from archdiff.validate.outputs import embedding_limits

    limits = embedding_limits(target) if target is not None else {}
    found = _token_input(io_, heads, limits)
    if found is None:
        return None
    token_name, vocabulary, length = found
    rng = np.random.default_rng([options.seed, 405])
    n = options.samples + options.test_samples
    start = rng.integers(0, vocabulary, size=(n, 1))
    sequence = (start + np.arange(length + 1)[None, :]) % vocabulary
    x: dict[str, np.ndarray] = {}
    for name, shape, dtype in io_.inputs:
        dims = (n,) + tuple(io_.fill if d is None else int(d) for d in shape[1:])
        if name == token_name:
            x[name] = sequence[:, :length].astype("int32")
        elif "int" in dtype or "bool" in dtype:
            x[name] = (np.ones if name.endswith("mask") else np.zeros)(dims, dtype="int32")
        else:
            x[name] = rng.random(dims, dtype=np.float32)
    y = {heads[0].name: sequence[:, 1:].astype("int32")}
    cut = options.samples
    train = (_unwrap({k: v[:cut] for k, v in x.items()}), _unwrap({k: v[:cut] for k, v in y.items()}))
    val = (_unwrap({k: v[cut:] for k, v in x.items()}), _unwrap({k: v[cut:] for k, v in y.items()}))
    return Data("tokens", train, val, {"kind": "tokens", "seed": options.seed, "train_samples": options.samples,
                                       "test_samples": options.test_samples, "vocabulary": vocabulary,
                                       "length": length, "token_input": token_name,
                                       "inputs": {name: list(shape[1:]) for name, shape, _ in io_.inputs}})


def _random_task(options: ValidateOptions, io_: ModelIO, heads: list[Head], target, why: str | None) -> Data:
    """Seeded random inputs (ids below the Embeddings' size) and random targets per output."""
    from archdiff.validate.outputs import embedding_limits

    rng = np.random.default_rng([options.seed, 404])
    limits = embedding_limits(target) if target is not None else {}
    n = options.samples + options.test_samples
    x: dict[str, np.ndarray] = {}
    for name, shape, dtype in io_.inputs:
        dims = (n,) + tuple(io_.fill if d is None else int(d) for d in shape[1:])
        if "int" in dtype:
            x[name] = rng.integers(0, max(1, limits.get(name, min(limits.values(), default=2))),
                                   size=dims).astype("int32")
        else:
            x[name] = rng.random(dims, dtype=np.float32)
    y = {head.name: random_targets(head, shape, n, rng) for head, (_, shape) in zip(heads, io_.outputs)}
    cut = options.samples
    train = (_unwrap({k: v[:cut] for k, v in x.items()}), _unwrap({k: v[:cut] for k, v in y.items()}))
    val = (_unwrap({k: v[cut:] for k, v in x.items()}), _unwrap({k: v[cut:] for k, v in y.items()}))
    return Data("random", train, val, {"kind": "random", "seed": options.seed, "train_samples": options.samples,
                                       "test_samples": options.test_samples, "why": why or "",
                                       "inputs": {name: list(shape[1:]) for name, shape, _ in io_.inputs}})


def _unwrap(arrays: dict):
    """One array for a one-input (one-output) model, as Keras' fit takes it; a dict by name otherwise."""
    return next(iter(arrays.values())) if len(arrays) == 1 else arrays


def _npz_arrays(path: str) -> dict[str, np.ndarray]:
    if not os.path.isfile(path):
        raise InputError("no such file", path=path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a readable .npz ({exc})", path=path,
                         hint="write it with numpy.savez(path, x=..., y=...)") from None


def _named(arrays: dict, names: list[str], prefixes: tuple[str, ...], single: str, suffix: str = "") -> dict:
    """The arrays for ``names``: ``NAME``, ``PREFIX:NAME``, or ``single`` (x / y) for a one-name list."""
    found = {}
    for name in names:
        for key in (name + suffix, *(p + name + suffix for p in prefixes)):
            if key in arrays:
                found[name] = arrays[key]
                break
    if not found and len(names) == 1 and single + suffix in arrays:
        found[names[0]] = arrays[single + suffix]
    return found


def _load_npz(path: str, options: ValidateOptions, io_: ModelIO, target) -> tuple[Data, list[Head]]:
    arrays = _npz_arrays(path)
    in_names = [n for n, _, _ in io_.inputs]
    out_names = [n for n, _ in io_.outputs]
    x = _named(arrays, in_names, ("x:", "input:"), "x")
    y = _named(arrays, out_names, ("y:", "target:", "output:"), "y")
    missing = [n for n in in_names if n not in x] + [n for n in out_names if n not in y]
    if missing:
        single = len(in_names) == 1 and len(out_names) == 1
        raise InputError(f"the .npz holds {sorted(arrays)[:8]}, not " + ("arrays 'x' and 'y'" if single else
                         "arrays named after the model's inputs and outputs") + f" (missing: {', '.join(missing)})",
                         path=path, hint="numpy.savez(path, x=images, y=labels), or one array per input and output "
                                         f"named {', '.join(in_names + out_names)}; optional NAME_val arrays")
    counts = {len(v) for v in list(x.values()) + list(y.values())}
    if len(counts) != 1:
        raise InputError(f"the arrays hold different numbers of samples: {sorted(counts)}", path=path)
    for name, shape, _ in io_.inputs:
        expected = tuple(shape[1:])
        got = x[name].shape[1:]
        if len(got) != len(expected) or any(e is not None and e != d for e, d in zip(expected, got)):
            label = "'x'" if len(in_names) == 1 and "x" in arrays else f"'{name}'"
            raise InputError(f"{label} samples are {list(got)}, the model takes {list(expected)}", path=path)
    heads = choose_heads(target, io_.output_units, options.loss, targets=y, layers=io_.output_layers)
    y = {h.name: _targets(y[h.name], h, path) for h in heads}
    xv = _named(arrays, in_names, ("x:", "input:"), "x", "_val")
    yv = _named(arrays, out_names, ("y:", "target:", "output:"), "y", "_val")
    if len(xv) == len(in_names) and len(yv) == len(out_names):
        yv = {h.name: _targets(yv[h.name], h, path) for h in heads}
    else:
        n = next(iter(counts))
        if n < 5:
            raise InputError(f"only {n} samples: too few to split off validation data", path=path)
        order = np.random.default_rng(options.seed).permutation(n)
        cut = max(1, n // 5)
        xv, yv = {k: v[order[:cut]] for k, v in x.items()}, {k: v[order[:cut]] for k, v in y.items()}
        x, y = {k: v[order[cut:]] for k, v in x.items()}, {k: v[order[cut:]] for k, v in y.items()}
    x = {k: (v.astype("float32") if not np.issubdtype(v.dtype, np.integer) else v) for k, v in x.items()}
    xv = {k: (v.astype("float32") if not np.issubdtype(v.dtype, np.integer) else v) for k, v in xv.items()}
    first_in, first_out = x[in_names[0]], y[out_names[0]]
    classes = heads[0].classes if len(heads) == 1 else [h.classes for h in heads]
    return Data("npz", (_unwrap(x), _unwrap(y)), (_unwrap(xv), _unwrap(yv)),
                {"kind": "npz", "path": path, "train_samples": int(len(first_in)), "test_samples": int(len(
                    next(iter(xv.values())))), "classes": classes, "image_shape": list(first_in.shape[1:]),
                 "target_shape": list(first_out.shape[1:])}), heads


def _targets(y: np.ndarray, head: Head, where: str) -> np.ndarray:
    if head.kind == REGRESSION:
        return np.asarray(y).astype("float32")
    labels = _labels(y, head.units if head.kind == CLASSES else 1, where)
    return labels.astype("float32") if head.kind == BINARY else labels


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


def _load_dir(path: str, options: ValidateOptions, input_shape: tuple, head: Head) -> Data:
    from archdiff.lazy import loaded_backend, require_keras

    keras = require_keras()
    if (loaded_backend() or "tensorflow") != "tensorflow":
        raise UsageError(f"--data DIR reads images with tf.data, which needs the TensorFlow backend (this run is "
                         f"on {loaded_backend()})", hint="give an .npz instead, or --backend tensorflow")
    n_classes = head.units if head.kind == CLASSES else 1
    shape = tuple(input_shape[1:])
    if len(shape) != 3 or shape[0] is None or shape[1] is None:
        raise UsageError(f"--data DIR needs a model taking images of a fixed size; this one takes {list(shape)}")
    channels = shape[2]
    color = {1: "grayscale", 3: "rgb", 4: "rgba"}.get(channels)
    if color is None:
        raise UsageError(f"--data DIR reads 1-, 3- or 4-channel images; the model takes {channels} channels")
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


def steps_per_epoch(data: Data, batch_size: int) -> int:
    """Training steps per epoch (0 when a dataset does not know its length)."""
    if data.batched:
        try:
            n = int(data.train.cardinality())
            return max(n, 0)
        except Exception:  # noqa: BLE001
            return 0
    x = data.train[0]
    n = len(next(iter(x.values()))) if isinstance(x, dict) else len(x)
    return int(math.ceil(n / batch_size))
