"""Build zoo models with real Keras and record Keras' own answers: run as a script, never imported by tests.

``python tests/zoo/builder.py k3|k2 FOLDER NAME=SIZE[:json] ...`` builds each
application ``NAME`` of ``keras.applications`` (k3) or ``tf_keras.applications``
(k2) with ``weights=None`` at input ``SIZE`` x ``SIZE``, seeds every variable
with distinct random values (so that each variable's bytes say which variable
it is), saves it in every format its Keras writes (``:json``: only ``to_json()``, into
``NAME@json/``, for a cheap look at a large model), and writes ``truth.json``
last (a folder without it is an unfinished build). Keras 3 and tf-keras never
share a process.

What ``truth.json`` holds, all read off the live model:

* ``rows``: ``enumerate(model.layers)`` (recursively for nested models):
  index, name, path, depth, class, the class in Keras' snake case;
* ``totals``: ``count_params()``, trainable and non-trainable counts;
* ``weights``: per layer path, the shape and dtype of each of ``layer.weights``,
  and a digest of its corner ``[:2, :2, ...]`` (its fingerprint: the values are distinct);
* ``operations``: the Keras 3 operations of the graph (not in ``model.layers``),
  or tf-keras' ``TFOpLambda`` / ``SlicingOpLambda`` layers.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

#: The files each flavour writes, by role.
FORMATS = {
    "k3": {"keras": "model.keras", "h5": "model.h5", "weights": "model.weights.h5", "json": "model.json"},
    "k2": {"h5": "model.h5", "weights_h5": "model_weights.h5", "json": "model.json"},
}


def digest(array) -> str:
    import numpy as np

    return hashlib.sha1(np.ascontiguousarray(array).tobytes()).hexdigest()


def corner(array) -> str:
    """The digest of the array's corner ``[:2, :2, ...]``: distinct random values make it the variable's
    fingerprint, and reading it back costs a few bytes (tests/zoo/oracle.py)."""
    return digest(array[tuple(slice(0, 2) for _ in array.shape)] if array.ndim else array)


def snake_case(name: str) -> str:
    """Keras 3's own ``to_snake_case`` (how a ``.weights.h5`` keys a layer's group); tf-keras: the same rule."""
    import importlib

    try:
        return importlib.import_module("keras.src.utils.naming").to_snake_case(name)
    except ImportError:
        return importlib.import_module("tf_keras.src.utils.generic_utils").to_snake_case(name)


def rows_of(model, prefix="", depth=0):
    out = []
    for index, layer in enumerate(model.layers):
        path = prefix + layer.name
        out.append([index, layer.name, path, depth, type(layer).__name__, snake_case(type(layer).__name__)])
        if type(layer).__name__ in ("Functional", "Sequential", "Model"):
            out.extend(rows_of(layer, path + "/", depth + 1))
    return out


def weights_of(model, prefix="", *, digests=True):
    out = {}
    for layer in model.layers:
        path = prefix + layer.name
        if type(layer).__name__ in ("Functional", "Sequential", "Model"):
            out.update(weights_of(layer, path + "/", digests=digests))
            continue
        out[path] = [{"shape": list(map(int, w.shape)), "dtype": str(getattr(w.dtype, "name", w.dtype)),
                      "trainable": bool(w.trainable), "corner": corner(w.numpy()) if digests else None}
                     for w in layer.weights]
    return out


def seed_weights(model, rng) -> None:
    """Distinct random values in every variable (a fresh model's BatchNorm statistics are all 0 or 1)."""
    import numpy as np

    values = []
    for w in model.weights:
        dtype = np.dtype(str(getattr(w.dtype, "name", w.dtype)))
        shape = tuple(int(d) for d in w.shape)
        if dtype.kind == "f":
            values.append((rng.random(shape, dtype=np.float32) + 0.5).astype(dtype))
        else:
            values.append(rng.integers(0, 1000, shape).astype(dtype))
    model.set_weights(values)


def operations_of(keras, flavour, model):
    if flavour == "k3":
        # A Sequential has no .operations: its layers are all it runs. A nested model's operations are its own.
        found: set[str] = set()

        def walk(m) -> None:
            for op in getattr(m, "operations", ()):
                if not isinstance(op, keras.layers.Layer):
                    found.add(type(op).__name__)
                elif type(op).__name__ in ("Functional", "Sequential"):
                    walk(op)

        walk(model)
        return sorted(found)
    return sorted({type(l).__name__ for l in model.layers if type(l).__name__ in ("TFOpLambda", "SlicingOpLambda")})


def build_one(keras, flavour, name, size, folder, *, json_only=False):
    import numpy as np

    os.makedirs(folder, exist_ok=True)
    truth_path = os.path.join(folder, "truth.json")
    if os.path.exists(truth_path):
        return
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    started = time.perf_counter()
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3))
    files = {"json": FORMATS[flavour]["json"]} if json_only else FORMATS[flavour]
    if not json_only:
        seed_weights(model, np.random.default_rng(0))
    if json_only:
        pass
    elif "keras" in files:
        model.save(os.path.join(folder, files["keras"]))
    if "h5" in files:
        model.save(os.path.join(folder, files["h5"]))
    if "weights" in files:
        model.save_weights(os.path.join(folder, files["weights"]))
    if "weights_h5" in files:
        model.save_weights(os.path.join(folder, files["weights_h5"]))
    with open(os.path.join(folder, files["json"]), "w") as f:
        f.write(model.to_json())
    trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
    non_trainable = int(sum(int(np.prod(w.shape)) for w in model.non_trainable_weights))
    truth = {
        "name": name, "flavour": flavour, "size": size, "keras_version": keras.__version__,
        "rows": rows_of(model), "totals": [int(model.count_params()), trainable, non_trainable],
        "weights": weights_of(model, digests=not json_only), "operations": operations_of(keras, flavour, model),
        "files": files, "build_seconds": round(time.perf_counter() - started, 2),
    }
    tmp = truth_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(truth, f)
    os.replace(tmp, truth_path)


def main(argv):
    flavour, root, *specs = argv
    if flavour == "k3":
        import keras
    else:
        import tf_keras as keras
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("absl").setLevel(logging.ERROR)
    for spec in specs:
        name, _, size = spec.partition("=")
        size, _, mode = size.partition(":")
        json_only = mode == "json"
        build_one(keras, flavour, name, int(size), os.path.join(root, name + ("@json" if json_only else "")),
                  json_only=json_only)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
