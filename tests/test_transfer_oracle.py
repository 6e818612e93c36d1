"""``archdiff transfer`` against Keras itself: Keras 2 -> Keras 3, Keras 3 -> Keras 3, nested models.

Small ResNet-style models (conv/BN/Add blocks, ``conv2_block1_1_conv``-style
names) are built with seeded random weights: a source with its original head,
and a target that shares the body and has a new head (a new ``new_fc`` layer,
and ``predictions`` with another number of classes). tf-keras (Keras 2) and
Keras 3 never share a process: each phase is a fresh interpreter, and they
exchange ``.npz`` files keyed ``<layer path>::<index in layer.weights>``.

1. Keras 3 builds and saves the targets (.keras and .weights.h5) and the Keras 3
   sources; records every starting value.
2. tf-keras builds the Keras 2 sources (saved as legacy .h5 and weights .h5), and
   the same targets given the Keras 3 starting values, then runs its own
   ``load_weights(by_name=True, skip_mismatch=True)``: the oracle.
3. ``archdiff transfer`` (a fresh process, as a user runs it) writes OUT.
4. Keras 3 loads every OUT into the target model.

For every layer shared with the source the loaded weights equal the source's
bitwise; the new head keeps the target's own; tf-keras agrees variable for
variable. Also: Keras' own loader shifts weights when a layer is inserted at
the front, and archdiff does not.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support import run_cli

pytestmark = pytest.mark.tensorflow

MODELS = r'''
import numpy as np


def _conv_bn(k, x, filters, name, stride=1):
    x = k.layers.Conv2D(filters, 3, strides=stride, padding="same", name=name + "_conv")(x)
    x = k.layers.BatchNormalization(name=name + "_bn")(x)
    return k.layers.Activation("relu", name=name + "_relu")(x)


def _block(k, x, filters, name):
    shortcut = k.layers.Conv2D(filters, 1, name=name + "_0_conv")(x)
    shortcut = k.layers.BatchNormalization(name=name + "_0_bn")(shortcut)
    y = _conv_bn(k, x, filters, name + "_1")
    y = k.layers.Conv2D(filters, 3, padding="same", name=name + "_2_conv")(y)
    y = k.layers.BatchNormalization(name=name + "_2_bn")(y)
    y = k.layers.Add(name=name + "_add")([shortcut, y])
    return k.layers.Activation("relu", name=name + "_out")(y)


def _body(k, x):
    x = k.layers.ZeroPadding2D(1, name="conv1_pad")(x)
    x = _conv_bn(k, x, 8, "conv1", stride=2)
    x = _block(k, x, 8, "conv2_block1")
    x = _block(k, x, 12, "conv3_block1")
    return k.layers.GlobalAveragePooling2D(name="avg_pool")(x)


def _head(k, x, new):
    if new:
        x = k.layers.Dense(12, activation="relu", name="new_fc")(x)
        return k.layers.Dense(3, name="predictions")(x)
    return k.layers.Dense(10, activation="softmax", name="predictions")(x)


def resnet(k, new_head):
    inputs = k.Input((16, 16, 3), name="image")
    return k.Model(inputs, _head(k, _body(k, inputs), new_head), name="resnet_" + ("new" if new_head else "src"))


def nested(k, new_head):
    base_in = k.Input((16, 16, 3), name="base_input")
    base = k.Model(base_in, _body(k, base_in), name="base")
    inputs = k.Input((16, 16, 3), name="image")
    return k.Model(inputs, _head(k, base(inputs), new_head), name="nested_" + ("new" if new_head else "src"))


def chain(k, front):
    inputs = k.Input((8,), name="x")
    x = inputs
    if front:
        x = k.layers.Dense(8, name="inserted")(x)
    x = k.layers.Dense(8, name="d1")(x)
    x = k.layers.Dense(8, name="d2")(x)
    return k.Model(inputs, k.layers.Dense(4, name="d3")(x), name="chain")


BUILDERS = {"resnet": resnet, "nested": nested}


def leaves(model, prefix=""):
    for layer in model.layers:
        path = prefix + layer.name
        if type(layer).__name__ in ("Functional", "Sequential", "Model"):
            yield from leaves(layer, path + "/")
        else:
            yield path, layer


def randomize(model, seed):
    """Distinct seeded values everywhere (positive variances), so a misplaced tensor is visible."""
    rng = np.random.default_rng(seed)
    for _, layer in leaves(model):
        values = []
        for w in layer.weights:
            v = rng.standard_normal(tuple(w.shape)).astype("float32")
            if "variance" in w.name:
                v = np.abs(v) + 0.5
            values.append(v)
        if values:
            layer.set_weights(values)


def dump(model):
    return {f"{path}::{i}": np.array(w.numpy()) for path, layer in leaves(model)
            for i, w in enumerate(layer.weights)}


def assign(model, values):
    for path, layer in leaves(model):
        n = len(layer.weights)
        if n:
            layer.set_weights([values[f"{path}::{i}"] for i in range(n)])
'''

PHASE_KERAS3_BUILD = r'''
import sys
import numpy as np
import keras
from models import *

folder = sys.argv[1]
keras.utils.set_random_seed(0)
for name, build in BUILDERS.items():
    for new_head, seed in ((True, 1), (False, 2)):
        model = build(keras, new_head)
        randomize(model, seed + (10 if name == "nested" else 0))
        stem = f"{folder}/k3_{name}_{'tgt' if new_head else 'src'}"
        model.save(stem + ".keras")
        model.save_weights(stem + ".weights.h5")
        np.savez(stem + "_init.npz", **dump(model))
for front, seed in ((False, 5), (True, 6)):
    model = chain(keras, front)
    randomize(model, seed)
    stem = f"{folder}/k3_chain_{'front' if front else 'plain'}"
    model.save_weights(stem + ".weights.h5")
    np.savez(stem + "_init.npz", **dump(model))
'''

PHASE_KERAS2 = r'''
import sys
import numpy as np
import tf_keras as keras
from models import *

folder = sys.argv[1]
keras.utils.set_random_seed(0)
for name, build in BUILDERS.items():
    source = build(keras, False)
    randomize(source, 100 + (10 if name == "nested" else 0))
    stem = f"{folder}/k2_{name}_src"
    source.save(stem + ".h5")
    source.save_weights(stem + "_weights.h5", save_format="h5")
    np.savez(stem + "_init.npz", **dump(source))
    # The oracle: tf-keras' own by-name loading into the same target, from the same starting values.
    for fmt in (".h5", "_weights.h5"):
        target = build(keras, True)
        assign(target, dict(np.load(f"{folder}/k3_{name}_tgt_init.npz")))
        target.load_weights(stem + fmt, by_name=True, skip_mismatch=True)
        np.savez(f"{folder}/oracle_k2_{name}{fmt.replace('.', '_')}.npz", **dump(target))
'''

PHASE_KERAS3_LOAD = r'''
import json
import sys
import numpy as np
import keras
from models import *

folder = sys.argv[1]
jobs = json.loads(sys.argv[2])
for out, kind, name in jobs:
    if out.endswith(".keras"):
        model = keras.models.load_model(out, compile=False)
    else:
        model = chain(keras, True) if name == "chain" else BUILDERS[name](keras, True)
        model.load_weights(out)
    np.savez(out + ".npz", **dump(model))
# Keras' own loader, for the record: a layer inserted at the front, skip_mismatch=True.
model = chain(keras, True)
model.load_weights(f"{folder}/k3_chain_plain.weights.h5", skip_mismatch=True)
np.savez(f"{folder}/keras_chain_shifted.npz", **dump(model))
'''


def run_phase(folder: Path, code: str, *args: str) -> None:
    script = folder / "phase.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=str(folder), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, str(script), str(folder), *args], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def archdiff(*args) -> subprocess.CompletedProcess:
    return run_cli("transfer", *map(str, args), "--format", "json")


#: (OUT file name, SOURCE, TARGET, model family, extra args)
TRANSFERS = [
    ("k2_resnet_h5__k3.keras", "k2_resnet_src.h5", "k3_resnet_tgt.keras", "resnet"),
    ("k2_resnet_w__k3.weights.h5", "k2_resnet_src_weights.h5", "k3_resnet_tgt.weights.h5", "resnet"),
    ("k2_nested_h5__k3.keras", "k2_nested_src.h5", "k3_nested_tgt.keras", "nested"),
    ("k2_nested_w__k3.weights.h5", "k2_nested_src_weights.h5", "k3_nested_tgt.weights.h5", "nested"),
    ("k3_resnet__k3.weights.h5", "k3_resnet_src.weights.h5", "k3_resnet_tgt.weights.h5", "resnet"),
    ("k3_resnet__k3.keras", "k3_resnet_src.keras", "k3_resnet_tgt.keras", "resnet"),
    ("k3_nested__k3.keras", "k3_nested_src.weights.h5", "k3_nested_tgt.keras", "nested"),
    ("k3_nested__k3.weights.h5", "k3_nested_src.keras", "k3_nested_tgt.weights.h5", "nested"),
    ("chain__front.weights.h5", "k3_chain_plain.weights.h5", "k3_chain_front.weights.h5", "chain"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oracle")
    (folder / "models.py").write_text(MODELS)
    run_phase(folder, PHASE_KERAS3_BUILD)
    run_phase(folder, PHASE_KERAS2)
    reports = {}
    hashes = {}
    for out, source, target, _ in TRANSFERS:
        for name in (source, target):
            hashes[name] = (folder / name).read_bytes()
        done = archdiff(folder / source, folder / target, "-o", folder / out, "--skip-mismatch")
        assert done.returncode == 0, done.stderr
        reports[out] = json.loads(done.stdout)
        for name in (source, target):
            assert (folder / name).read_bytes() == hashes[name], f"{name} changed"
    jobs = [(str(folder / out), "load", family) for out, _, _, family in TRANSFERS]
    run_phase(folder, PHASE_KERAS3_LOAD, json.dumps(jobs))

    def npz(name):
        return dict(np.load(folder / name))

    return folder, reports, npz


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def source_init(source: str) -> str:
    stem = source.split(".")[0].replace("_weights", "")
    return stem + "_init.npz"


@pytest.mark.parametrize("out,source,target,family", TRANSFERS[:-1], ids=[t[0] for t in TRANSFERS[:-1]])
def test_shared_layers_get_the_source_and_the_new_head_keeps_its_own(world, out, source, target, family):
    folder, reports, npz = world
    loaded = npz(out + ".npz")
    src = npz(source_init(source))
    tgt = npz(f"k3_{family}_tgt_init.npz")
    assert set(loaded) == set(tgt)
    head = {k for k in loaded if k.split("::")[0] in ("new_fc", "predictions")}
    assert head == {"new_fc::0", "new_fc::1", "predictions::0", "predictions::1"}
    for key, value in loaded.items():
        want = tgt[key] if key in head else src[key]
        assert same_bits(value, want), key
    report = reports[out]
    status = {layer["target"]: layer["status"] for layer in report["layers"]}
    assert status.pop("new_fc") == "kept" and status.pop("predictions") == "skipped"
    assert set(status.values()) == {"copied"}
    # A new head keeping its own weights is what was asked: exit 0 (issue 13).
    assert report["exit_code"] == 0 and report["output"]["verified"]
    assert report["unused_source_layers"] == []


@pytest.mark.parametrize("out,fmt", [(t[0], ".h5" if t[1].endswith("src.h5") else "_weights.h5")
                                     for t in TRANSFERS if t[1].startswith("k2_")])
def test_tf_keras_by_name_loading_agrees_variable_for_variable(world, out, fmt):
    folder, _, npz = world
    family = "nested" if "nested" in out else "resnet"
    oracle = npz(f"oracle_k2_{family}{fmt.replace('.', '_')}.npz")
    loaded = npz(out + ".npz")
    assert set(oracle) == set(loaded)
    for key in oracle:
        assert same_bits(loaded[key], oracle[key]), key


def test_keras_shifts_weights_after_an_inserted_layer_and_archdiff_does_not(world):
    folder, reports, npz = world
    src = npz("k3_chain_plain_init.npz")
    tgt = npz("k3_chain_front_init.npz")
    shifted = npz("keras_chain_shifted.npz")
    # Keras: the inserted layer gets d1's weights, d1 gets d2's: a silent shift by one.
    assert same_bits(shifted["inserted::0"], src["d1::0"])
    assert same_bits(shifted["d1::0"], src["d2::0"])
    # archdiff: every layer gets its own weights by name; the inserted one keeps its own.
    ours = npz("chain__front.weights.h5.npz")
    assert same_bits(ours["inserted::0"], tgt["inserted::0"])
    for name in ("d1", "d2", "d3"):
        for i in (0, 1):
            assert same_bits(ours[f"{name}::{i}"], src[f"{name}::{i}"])
    report = reports["chain__front.weights.h5"]
    assert {x["target"]: x["status"] for x in report["layers"]} == {
        "inserted": "kept", "d1": "copied", "d2": "copied", "d3": "copied"}
    assert report["exit_code"] == 0


def test_without_skip_mismatch_the_new_head_stops_the_transfer_and_nothing_is_written(world, tmp_path):
    folder, _, _ = world
    out = tmp_path / "out.keras"
    done = run_cli("transfer", folder / "k2_resnet_src.h5", folder / "k3_resnet_tgt.keras", "-o", out)
    assert done.returncode == 2
    assert "predictions" in done.stderr and "(12, 10)" in done.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
