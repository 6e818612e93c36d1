"""``examples/port_keras2_to_keras3.py`` runs as documented, and Keras 3 loads what it wrote.

The Keras 2 file is the committed tf-keras fixture ``keras2/resnet_small.h5``;
the changed Keras 3 model is the same body with a new head (``new_fc``, and
``predictions`` with 3 classes instead of 10), built here. The example (a
fresh process, archdiff's Python API only) ports, freezes up to
``conv3_block1_1_conv`` and prints the report; Keras 3 then finds the old
weights in every shared layer (read from the .h5 with h5py), the new head's
own values, and exactly the layers before index 29 frozen.
"""
from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from support import FIXTURES, ROOT

pytestmark = pytest.mark.tensorflow

EXAMPLE = ROOT / "examples" / "port_keras2_to_keras3.py"
OLD = FIXTURES / "keras2" / "resnet_small.h5"


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from archdiff.lazy import require_keras

    return require_keras()


def run_example(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, str(EXAMPLE), *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=env)


def new_model(keras, path):
    body = keras.models.load_model(FIXTURES / "keras3" / "resnet_small.keras")
    x = keras.layers.Dense(12, activation="relu", name="new_fc")(body.get_layer("avg_pool").output)
    model = keras.Model(body.input, keras.layers.Dense(3, name="predictions")(x), name="resnet_new")
    rng = np.random.default_rng(3)
    for layer in model.layers:
        values = []
        for w in layer.weights:
            v = rng.standard_normal(tuple(w.shape)).astype("float32")
            values.append(np.abs(v) + 0.5 if "variance" in w.path else v)
        if values:
            layer.set_weights(values)
    model.save(path)
    return model


def legacy_values(path) -> dict[str, list[np.ndarray]]:
    with h5py.File(path) as f:
        root = f["model_weights"]
        out = {}
        for name in root.attrs["layer_names"]:
            name = name.decode() if isinstance(name, bytes) else name
            names = [n.decode() if isinstance(n, bytes) else n for n in root[name].attrs["weight_names"]]
            if names:
                out[name] = [root[name][n][()] for n in names]
        return out


def test_the_example_ports_freezes_and_keras_loads_it(keras, tmp_path):
    new = new_model(keras, tmp_path / "new.keras")
    out = tmp_path / "ported.keras"
    proc = run_example(OLD, tmp_path / "new.keras", out, "--freeze-until", "conv3_block1_1_conv")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert "would copy" in text and "ported: " in text and "every copied variable verified" in text
    assert "predictions" in text and "would skip" in text  # 10 classes into 3: the new head keeps its own
    assert "for layer in model.layers[:29]:" in text and f"load_model('{out}')" in text
    assert not list(tmp_path.glob(".*"))  # the intermediate file is gone

    model = keras.models.load_model(out)
    old = legacy_values(OLD)
    for layer in model.layers:
        if not layer.weights:
            continue
        got = [np.asarray(w) for w in layer.weights]
        if layer.name in ("new_fc", "predictions"):
            want = [np.asarray(w) for w in new.get_layer(layer.name).weights]
        else:
            want = old[layer.name]
        assert len(got) == len(want) and all(np.array_equal(a, b) for a, b in zip(got, want)), layer.name
    frozen = {layer.name for layer in model.layers if layer.weights and not layer.trainable}
    assert frozen == {layer.name for i, layer in enumerate(model.layers) if i < 29 and layer.weights}


def test_the_example_refuses_what_it_cannot_port(tmp_path, keras):
    new_model(keras, tmp_path / "new.keras")
    proc = run_example(FIXTURES / "keras2" / "functional.h5", tmp_path / "new.keras", tmp_path / "out.keras")
    assert proc.returncode == 2 and "not ported (exit 2)" in proc.stderr
    assert "no target layer matched" in proc.stderr and not (tmp_path / "out.keras").exists()
