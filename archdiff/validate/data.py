"""The fine-tuning data: the built-in synthetic task, ``--data FILE.npz`` or ``--data DIR``.

This module owns what check 4 trains and evaluates on, as a :class:`Data`:
arrays ``(x, y)`` for the built-in task and an ``.npz`` (batched by Keras'
``fit``), or ``tf.data`` datasets already batched for a folder with one
sub-folder of images per class. Labels are class indices. Input a user
gives wrongly is an :class:`~archdiff.errors.ArchdiffError` (exit 2); a model
the check cannot train (several inputs, no class count) is :class:`Skip`.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np

from archdiff.errors import InputError, UsageError
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


def model_io(model) -> tuple[tuple, int]:
    """The one input's shape and the number of output units (classes), or :class:`Skip`."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise Skip("fine-tuning handles models with one input and one output; this one has "
                   f"{len(model.inputs)} input(s) and {len(model.outputs)} output(s)")
    shape = tuple(model.inputs[0].shape)
    units = model.outputs[0].shape[-1]
    if units is None:
        raise Skip("the model's output has no fixed number of classes")
    return shape, int(units)


def load_data(options: ValidateOptions, input_shape: tuple, n_classes: int) -> Data:
    """The fine-tuning data: the built-in task, an .npz, or a folder of class folders."""
    from archdiff.validate import synthetic

    if options.data is None:
        image = tuple(input_shape[1:])
        try:
            task = synthetic.target_task(image, n_classes=max(2, n_classes), n_train=options.samples,
                                         n_test=options.test_samples, seed=options.seed)
        except ValueError as exc:
            raise Skip(f"the built-in task does not fit this model ({exc}); give --data DIR or --data file.npz") \
                from None
        if n_classes < 2:
            raise Skip("the built-in task is a classification of 2 or more classes; this model has one output unit")
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
    return int(math.ceil(len(data.train[0]) / batch_size))
