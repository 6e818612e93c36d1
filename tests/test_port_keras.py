"""Porting into the model you have, checked against Keras: nested <-> flat, sharded files, the input adapter.

Keras 3 runs in this process (``archdiff.lazy.require_keras``); archdiff runs as a
user runs it, in a fresh process without TensorFlow. Every model gets distinct
seeded random values, so a tensor given to the wrong variable shows.

* The transfer-learning guide's model (``inputs -> base(training=False) -> GAP
  -> Dropout -> Dense(1)``) with a MobileNetV2 (alpha 0.35, 96x96,
  ``weights=None``) base, filled by ``--match auto`` from the flat base's file,
  equals variable by variable what Keras gives with
  ``model.get_layer(base).load_weights(flat_base_weights)``; the same base two
  levels deep and under another name; and back, from the nested model into the
  flat base.
* A sharded ``*.weights.json`` target written by archdiff loads in Keras
  (``model.load_weights``) with the source's values, and a sharded source fills a
  ``.keras`` target.
* ``--adapt input-channels``: a 1-channel copy of an RGB model answers a grey
  image as the RGB model answers the same image in 3 channels.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from support import run_cli

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from archdiff.lazy import require_keras

    return require_keras()


def leaves(model, prefix=""):
    for layer in model.layers:
        path = prefix + layer.name
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Sequential", "Model"):
            yield from leaves(layer, path + "/")
        else:
            yield path, layer


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    for _, layer in leaves(model):
        values = []
        for w in layer.weights:
            v = rng.standard_normal(tuple(w.shape)).astype("float32")
            if "variance" in w.path:
                v = np.abs(v) + 0.5
            values.append(v)
        if values:
            layer.set_weights(values)
    return model


def variables(model) -> dict[str, np.ndarray]:
    return {f"{path}::{i}": np.asarray(w) for path, layer in leaves(model) for i, w in enumerate(layer.weights)}


def mobilenet(keras, name="xception"):
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    # Keras names it after the architecture; the guide's base keeps whatever name it has.
    return keras.Model(base.input, base.output, name=name)


def guide(keras, base, head=1):
    """The transfer-learning guide's model around ``base``."""
    inputs = keras.Input((96, 96, 3))
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    return keras.Model(inputs, keras.layers.Dense(head, name="dense")(x))  # named: auto names vary per session


def transfer(*args) -> dict:
    proc = run_cli("transfer", *map(str, args), "--format", "json", "--no-progress")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return json.loads(proc.stdout)


def assert_equal_variables(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    bad = [k for k in want if not np.array_equal(got[k], want[k])]
    assert not bad, f"{len(bad)} variables differ from Keras': {bad[:5]}"


def test_the_guides_nested_model_filled_from_the_flat_base_equals_keras(keras, tmp_path):
    flat = randomize(mobilenet(keras), 1)
    flat.save(tmp_path / "flat.keras")
    flat.save_weights(tmp_path / "flat.weights.h5")
    nested = randomize(guide(keras, mobilenet(keras)), 2)
    nested.save(tmp_path / "nested.keras")

    # Keras' own way: load the flat base's weights into the nested base.
    oracle = keras.models.load_model(tmp_path / "nested.keras")
    oracle.get_layer("xception").load_weights(tmp_path / "flat.weights.h5")
    want = variables(oracle)

    report = transfer(tmp_path / "flat.keras", tmp_path / "nested.keras", "-o", tmp_path / "out.keras",
                      "--match", "auto")
    (n,) = report["nesting"]
    assert (n["a"], n["b"], n["rule"]) == ("", "xception", "re:^=xception/")
    assert report["totals"]["kept_layers"] == 1  # the new Dense head keeps its own weights
    got = variables(keras.models.load_model(tmp_path / "out.keras"))
    assert_equal_variables(got, want)
    # The head is the target's own, the base the flat model's.
    assert np.array_equal(got["dense::0"], variables(nested)["dense::0"])
    assert np.array_equal(got["xception/Conv1::0"], variables(flat)["Conv1::0"])

    # Without --match auto nothing matches, and the error says what would.
    proc = run_cli("transfer", tmp_path / "flat.keras", tmp_path / "nested.keras", "--dry-run")
    assert proc.returncode == 2 and "--match auto" in proc.stderr and "re:^=xception/" in proc.stderr

    # And back: the nested model's base into a fresh flat base.
    fresh = randomize(mobilenet(keras), 3)
    fresh.save(tmp_path / "fresh.keras")
    nested.get_layer("xception").save_weights(tmp_path / "inner.weights.h5")
    back_oracle = keras.models.load_model(tmp_path / "fresh.keras")
    back_oracle.load_weights(tmp_path / "inner.weights.h5")
    report = transfer(tmp_path / "nested.keras", tmp_path / "fresh.keras", "-o", tmp_path / "back.keras",
                      "--match", "auto")
    assert [(n["a"], n["b"]) for n in report["nesting"]] == [("xception", "")]
    assert_equal_variables(variables(keras.models.load_model(tmp_path / "back.keras")), variables(back_oracle))


def tiny_base(keras, name):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, name="block1_conv1")(inputs)
    x = keras.layers.BatchNormalization(name="block1_bn")(x)
    x = keras.layers.Activation("relu", name="block1_act")(x)
    x = keras.layers.SeparableConv2D(12, 3, name="block2_sepconv1")(x)
    x = keras.layers.BatchNormalization(name="block2_bn")(x)
    return keras.Model(inputs, keras.layers.Conv2D(16, 1, name="block3_conv1")(x), name=name)


def test_a_base_two_levels_deep_under_another_name_equals_keras(keras, tmp_path):
    flat = randomize(tiny_base(keras, "xception"), 4)
    flat.save(tmp_path / "flat.keras")
    flat.save_weights(tmp_path / "flat.weights.h5")
    inner = keras.Input((16, 16, 3))
    backbone = tiny_base(keras, "backbone")
    wrapper = keras.Model(inner, keras.layers.GlobalAveragePooling2D()(backbone(inner)), name="wrapper")
    inputs = keras.Input((16, 16, 3))
    outer = randomize(keras.Model(inputs, keras.layers.Dense(3, name="head")(wrapper(inputs))), 5)
    outer.save(tmp_path / "outer.keras")
    oracle = keras.models.load_model(tmp_path / "outer.keras")
    oracle.get_layer("wrapper").get_layer("backbone").load_weights(tmp_path / "flat.weights.h5")

    report = transfer(tmp_path / "flat.keras", tmp_path / "outer.keras", "-o", tmp_path / "out.keras",
                      "--match", "auto")
    (n,) = report["nesting"]
    assert n["b"] == "wrapper/backbone" and any("under another name" in e for e in n["evidence"])
    assert any("2 levels deep" in e for e in n["evidence"])
    assert_equal_variables(variables(keras.models.load_model(tmp_path / "out.keras")), variables(oracle))

    # The diff says the same, with its inner diff empty (topology only: the two bases hold other random values,
    # which the value comparison rightly reports).
    proc = run_cli("diff", tmp_path / "flat.keras", tmp_path / "outer.keras", "--format", "json", "--topology-only")
    data = json.loads(proc.stdout)
    assert [(x["a"], x["b"]) for x in data["nesting"]] == [("", "wrapper/backbone")]
    assert not data["removed"]
    assert all(not m["changes"] for m in data["matched"] if m["how"] == "nesting")


def test_sharded_targets_written_by_archdiff_load_in_keras(keras, tmp_path):
    source = randomize(tiny_base(keras, "net"), 6)
    source.save(tmp_path / "source.keras")
    target = randomize(tiny_base(keras, "net"), 7)
    (tmp_path / "t").mkdir()
    target.save_weights(tmp_path / "t" / "model.weights.json", max_shard_size=0.000001)
    shards = sorted(p.name for p in (tmp_path / "t").glob("*.weights.h5"))
    assert len(shards) > 1
    out = tmp_path / "o" / "ported.weights.json"
    out.parent.mkdir()
    report = transfer(tmp_path / "source.keras", tmp_path / "t" / "model.weights.json", "-o", out)
    assert report["output"]["verified"] and report["totals"]["kept_layers"] == 0
    # Named as Keras names the shards of an index called ported.weights.json.
    assert sorted(p.name for p in out.parent.iterdir()) == ["ported.weights.json"] + [
        f"ported_{i:05}.weights.h5" for i in range(len(shards))]
    index = json.loads(out.read_text())
    original = json.loads((tmp_path / "t" / "model.weights.json").read_text())
    assert list(index["weight_map"]) == list(original["weight_map"])
    loaded = tiny_base(keras, "net")
    loaded.load_weights(out)
    assert_equal_variables(variables(loaded), variables(source))
    # And as a source: the sharded file fills a .keras model.
    fresh = randomize(tiny_base(keras, "net"), 8)
    fresh.save(tmp_path / "fresh.keras")
    transfer(out, tmp_path / "fresh.keras", "-o", tmp_path / "from_sharded.keras")
    assert_equal_variables(variables(keras.models.load_model(tmp_path / "from_sharded.keras")), variables(source))


def test_the_input_channels_adapter_makes_a_grey_model_answer_as_the_rgb_one(keras, tmp_path):
    def cnn(channels):
        inputs = keras.Input((12, 12, channels))
        x = keras.layers.Conv2D(6, 3, name="stem")(inputs)
        x = keras.layers.Conv2D(4, 3, name="body")(keras.layers.Activation("relu")(x))
        return keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="cnn")

    rgb = randomize(cnn(3), 9)
    rgb.save(tmp_path / "rgb.keras")
    grey = randomize(cnn(1), 10)
    grey.save(tmp_path / "grey.keras")
    proc = run_cli("transfer", tmp_path / "rgb.keras", tmp_path / "grey.keras", "-o", tmp_path / "out.keras")
    assert proc.returncode == 2 and "shape (3, 3, 3, 6) in the source, (3, 3, 1, 6)" in proc.stderr
    report = transfer(tmp_path / "rgb.keras", tmp_path / "grey.keras", "-o", tmp_path / "out.keras",
                      "--adapt", "input-channels")
    stem = next(x for x in report["layers"] if x["target"] == "stem")
    assert stem["status"] == "adapted" and stem["variables"][0]["adapter"] == "input-channels"
    adapted = keras.models.load_model(tmp_path / "out.keras")
    image = np.random.default_rng(11).standard_normal((2, 12, 12, 1)).astype("float32")
    np.testing.assert_allclose(np.asarray(adapted(image)), np.asarray(rgb(np.repeat(image, 3, axis=-1))),
                               rtol=1e-4, atol=1e-5)


TF_KERAS_BASE = r'''
import sys
import numpy as np
import tf_keras as keras

folder = sys.argv[1]
base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
rng = np.random.default_rng(21)
values = {}
for layer in base.layers:
    arrays = []
    for w in layer.weights:
        v = rng.standard_normal(tuple(w.shape)).astype("float32")
        arrays.append(np.abs(v) + 0.5 if "variance" in w.name else v)
    if arrays:
        layer.set_weights(arrays)
        for i, v in enumerate(arrays):
            values[f"{layer.name}::{i}"] = v
base.save(folder + "/flat_k2.h5")
base.save_weights(folder + "/flat_k2_weights.h5")
np.savez(folder + "/values.npz", **values)
print(base.name)
'''


def test_a_keras2_flat_base_fills_the_keras3_guide_model(keras, tmp_path):
    """The common case: the pretrained base is a Keras 2 .h5 (full model, or save_weights), the model Keras 3."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", TF_KERAS_BASE, str(tmp_path)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    name = proc.stdout.strip().splitlines()[-1]
    base = keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, include_top=False, weights=None)
    assert base.name == name  # the guide's base keeps the application's name
    nested = randomize(guide(keras, base), 22)
    nested.save(tmp_path / "nested.keras")
    want = dict(np.load(tmp_path / "values.npz"))
    own = variables(nested)
    for source in ("flat_k2.h5", "flat_k2_weights.h5"):
        out = tmp_path / f"out_{source}.keras"
        report = transfer(tmp_path / source, tmp_path / "nested.keras", "-o", out, "--match", "auto")
        assert [n["b"] for n in report["nesting"]] == [name], source
        got = variables(keras.models.load_model(out))
        inner = {k[len(name) + 1:]: v for k, v in got.items() if k.startswith(name + "/")}
        assert inner.keys() == want.keys(), source
        assert all(np.array_equal(inner[k], want[k]) for k in want), source
        assert np.array_equal(got["dense::0"], own["dense::0"])
