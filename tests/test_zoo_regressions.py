"""Small regression tests for the disagreements with Keras that the zoo (tests/test_zoo.py) found.

Each builds the smallest model that shows the case with real tf-keras, in its
own process (tests/keras_build.py), and checks archdiff against tf-keras'
own answers recorded there.
"""
from __future__ import annotations

import textwrap

import pytest
from keras_build import build

import archdiff
from archdiff.transfer import transfer

pytestmark = pytest.mark.tensorflow

TABLE = """
def table(m):
    return [[i, l.name, type(l).__name__] for i, l in enumerate(m.layers)]
"""


def build_k2(code: str, folder) -> dict:
    return build("k2", TABLE + textwrap.dedent(code), folder)


def test_a_tf_keras_layer_named_with_a_slash_beside_its_prefix_is_read(tmp_path):
    """tf-keras' MobileNetV3 names a layer 'Conv/BatchNorm' beside its 'Conv'; HDF5 nests the second group in
    the first, Keras loads the file, so archdiff must read it (it refused the file as ambiguous)."""
    truth = build_k2("""
        import numpy as np
        x = inp = keras.Input((8,))
        x = keras.layers.Dense(4, name="Conv")(x)
        x = keras.layers.BatchNormalization(name="Conv/BatchNorm")(x)
        m = keras.Model(inp, keras.layers.Dense(2, name="Conv/BatchNorm/out")(x))
        m.set_weights([np.arange(int(np.prod(w.shape)), dtype="float32").reshape(w.shape) + k
                       for k, w in enumerate(m.weights)])
        m.save(OUT + "/slash.h5")
        m.save_weights(OUT + "/slash_weights.h5")
        loaded = keras.models.load_model(OUT + "/slash.h5")  # Keras reads it back
        RESULT["table"] = table(loaded)
        RESULT["params"] = loaded.count_params()
        RESULT["weights"] = {l.name: [list(w.shape) for w in l.weights] for l in loaded.layers}
    """, tmp_path)
    for name in ("slash.h5", "slash_weights.h5"):
        arch = archdiff.load(tmp_path / name)
        assert [[l.index, l.name] for l in arch.layers] == [row[:2] for row in truth["table"]], name
        assert {l.name: [list(w.shape) for w in l.weights or ()] for l in arch.layers} == truth["weights"], name
        assert arch.param_counts().total == truth["params"], name
    assert [l.class_name for l in archdiff.load(tmp_path / "slash.h5").layers] == [r[2] for r in truth["table"]]
    report = transfer(tmp_path / "slash.h5", tmp_path / "slash.h5", tmp_path / "out.h5", progress=False)
    assert report.to_dict()  # written and verified: the 'Conv/BatchNorm' variables too
    import h5py
    import numpy as np

    with h5py.File(tmp_path / "slash.h5") as a, h5py.File(tmp_path / "out.h5") as b:
        key = "model_weights/Conv/BatchNorm/Conv/BatchNorm/gamma:0"
        assert np.array_equal(a[key][()], b[key][()])


def test_a_tf_keras_registered_class_shows_its_own_name(tmp_path):
    """tf-keras writes a registered serializable's class as 'package>Name' in an .h5 (InceptionResNetV2's
    'Custom>CustomScaleLayer') and as 'Name' in to_json(); model.layers shows the class 'Name' either way."""
    truth = build_k2("""
        @keras.utils.register_keras_serializable(package="Zoo")
        class Scale(keras.layers.Layer):
            def call(self, x):
                return x * 2.0

        inp = keras.Input((4,))
        m = keras.Model(inp, Scale(name="scale")(keras.layers.Dense(3)(inp)))
        m.save(OUT + "/custom.h5")
        open(OUT + "/custom.json", "w").write(m.to_json())
        import h5py, json
        RESULT["stored"] = [l["class_name"] for l in
                            json.loads(h5py.File(OUT + "/custom.h5").attrs["model_config"])["config"]["layers"]]
        RESULT["table"] = table(m)
    """, tmp_path)
    assert "Zoo>Scale" in truth["stored"]  # the case itself: the .h5 holds the registered name
    for name in ("custom.h5", "custom.json"):
        arch = archdiff.load(tmp_path / name)
        assert [[l.index, l.name, l.class_name] for l in arch.layers] == truth["table"], name
    from archdiff.diff import diff

    assert diff(archdiff.load(tmp_path / "custom.h5"), archdiff.load(tmp_path / "custom.json")).identical


def test_a_tf_keras_h5_with_a_registered_application_class_exports_for_keras3(tmp_path):
    """tf-keras' InceptionResNetV2 .h5 names its CustomScaleLayer 'Custom>CustomScaleLayer'; the export must map
    it to Keras 3's own application class, as it does 'CustomScaleLayer' from to_json() (Keras 3 could not load
    the export: "Unknown layer: 'Custom>CustomScaleLayer'")."""
    truth = build_k2("""
        import importlib
        scale_layer = importlib.import_module("tf_keras.src.applications.inception_resnet_v2").CustomScaleLayer
        a, b = keras.Input((4,)), keras.Input((4,))
        m = keras.Model([a, b], scale_layer(0.17, name="scaled")([keras.layers.Dense(4)(a), b]))
        m.save(OUT + "/irv2_block.h5")
        import h5py, json
        RESULT["stored"] = [l["class_name"] for l in
                            json.loads(h5py.File(OUT + "/irv2_block.h5").attrs["model_config"])["config"]["layers"]]
        RESULT["table"] = table(m)
        RESULT["params"] = m.count_params()
    """, tmp_path)
    assert "Custom>CustomScaleLayer" in truth["stored"]
    from archdiff.cli.main import main

    assert main(["export", str(tmp_path / "irv2_block.h5"), "-o", str(tmp_path / "k3.json")]) == 0
    import keras

    rebuilt = keras.models.model_from_json((tmp_path / "k3.json").read_text())
    assert [[i, l.name, type(l).__name__] for i, l in enumerate(rebuilt.layers)] == truth["table"]
    assert rebuilt.count_params() == truth["params"]
