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
from archdiff.diff import DiffOptions, diff
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


def build_k3(code: str, folder) -> dict:
    return build("k3", TABLE + textwrap.dedent(code), folder)


#: A Keras 3 model whose weightless auto-named layers sort otherwise in HDF5 key order than in model.layers
#: (MobileNet's dropout / reshape_2 at its end): the shape of the zoo's disagreement, small.
K3_AUTO_NAMES = """
    x = inp = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(2, 1)(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.ZeroPadding2D(1, name="pad")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.1)(x)
    x = keras.layers.Reshape((6, 12), name="to_matrix")(x)
    x = keras.layers.Reshape((72,))(x)
    x = keras.layers.Dropout(0.1)(x)
    out = keras.layers.Dense(3)(keras.layers.ReLU()(x))
    m = keras.Model(inp, out)
    m.save(OUT + "/m.keras")
    m.save_weights(OUT + "/m.weights.h5")
    RESULT["table"] = table(m)
"""


def test_a_keras3_model_and_its_own_weights_file_are_identical(tmp_path):
    """The zoo found 12 models whose .keras and .weights.h5 were reported topology-changing with made-up
    renames: the order step aligned auto-named layers by the weights file's order, which is HDF5 key order,
    not model.layers. Keras loads each file's weights into the other's model, so they are the same model."""
    truth = build_k3(K3_AUTO_NAMES, tmp_path)
    names = [row[1] for row in truth["table"]]
    assert sorted(names) != names  # the case: Keras' order is not the key order
    keras_file, weights_file = archdiff.load(tmp_path / "m.keras"), archdiff.load(tmp_path / "m.weights.h5")
    assert sorted(l.name for l in weights_file.layers) == sorted(names)  # the file names every layer
    for a, b in ((keras_file, weights_file), (weights_file, keras_file)):
        result = diff(a, b)
        assert result.classification == "identical", result.to_dict()
        assert not result.renamed and not result.added and not result.removed


def test_a_keras3_weights_file_without_names_pairs_by_keras_key(tmp_path):
    """A Keras 3 weights file that does not record layer names (older writers; here the names stripped with
    h5py) knows a layer only by Keras' key, class + order: archdiff pairs it with the layer of that key, as
    Keras' load_weights does, without calling it a rename; and the layer table says the names are keys."""
    import h5py

    truth = build_k3(K3_AUTO_NAMES + """
    import numpy as np
    RESULT["keys"] = {}
    counts = {}
    for layer in m.layers:
        stem = keras.src.utils.naming.to_snake_case(type(layer).__name__)
        counts[stem] = counts.get(stem, -1) + 1
        RESULT["keys"][stem if counts[stem] == 0 else f"{stem}_{counts[stem]}"] = layer.name
    """, tmp_path)
    with h5py.File(tmp_path / "m.weights.h5", "r+") as f:
        stripped = 0
        for key in f["layers"]:
            vars_group = f["layers"][key].get("vars")
            if vars_group is not None and not len(vars_group) and "name" in vars_group.attrs:
                del vars_group.attrs["name"]
                stripped += 1
    assert stripped >= 6  # every weightless layer lost its name
    arch = archdiff.load(tmp_path / "m.weights.h5")
    keyed = {l.name for l in arch.layers if l.key_only}
    assert keyed and keyed <= set(truth["keys"])  # Keras' own keys, computed by Keras' naming above
    assert any("Keras' key" in n for n in arch.notes)
    result = diff(archdiff.load(tmp_path / "m.keras"), arch)
    assert result.classification == "identical", result.to_dict()
    pairs = {p.b: (p.a, p.how) for p in result.matching.pairs if p.b in keyed}
    # each key with the layer Keras saved under it; a key that is not the name is paired by key, no rename
    assert pairs == {k: (truth["keys"][k], "name" if truth["keys"][k] == k else "key") for k in keyed}
    assert {"pad", "to_matrix"} <= {a for a, how in pairs.values() if how == "key"}
    assert not result.renamed


NESTED_K2 = """
    import numpy as np
    def stem(units):
        i = keras.Input((6,))
        h = keras.layers.Dense(units, name="stem_dense")(i)
        h = keras.layers.LayerNormalization(name="stem_norm")(h)
        return keras.Model(i, keras.layers.Activation("relu", name="stem_relu")(h), name="stem")
    def model(units):
        inp = keras.Input((6,))
        return keras.Model(inp, keras.layers.Dense(2, name="head")(stem(units)(inp)), name="outer")
    a, b = model(5), model(7)
    a.save(OUT + "/a.h5")
    a.save_weights(OUT + "/a_weights.h5")
    b.save_weights(OUT + "/b_weights.h5")
    RESULT["group"] = [w.name for w in a.get_layer("stem").weights]
"""


def test_a_tf_keras_nested_model_and_its_weights_file_are_identical(tmp_path):
    """tf-keras' save_weights keeps a nested model's variables in one group named after it (ConvNeXt's stem):
    diff reported the nested model's layers as removed. They are compared through the group instead, so a
    model and its own weights file are identical, and a changed inner layer is still found."""
    truth = build_k2(NESTED_K2, tmp_path)
    assert all("/" in name for name in truth["group"])  # the case: variables named by their inner layer
    full, own, other = (archdiff.load(tmp_path / n) for n in ("a.h5", "a_weights.h5", "b_weights.h5"))
    for x, y in ((full, own), (own, full)):
        result = diff(x, y)
        assert result.classification == "identical", result.to_dict()
        assert not result.removed and not result.added
        assert any("as one group" in n for n in result.notes)
    result = diff(full, other, DiffOptions(values="off"))
    changed = {(d.a, c.path, c.effect) for d in result.matched for c in d.changes}
    # every variable of the stem's inner layers (TensorFlow's ':0' aside) and the head's kernel (7 -> 5 inputs)
    want = {("stem", f"weights.{name.rpartition(':')[0]}", "weights-breaking") for name in truth["group"]}
    assert changed == want | {("head", "weights.kernel", "weights-breaking")}, changed
    assert "weights-breaking" in result.kinds, result.to_dict()


def test_tf_keras_unary_functions_export_as_keras3_operations_that_compute_the_same(tmp_path):
    """tf-keras writes tf.math.tanh(x) & co. on Keras tensors as TFOpLambda layers; the generated models found
    that export refused them ("no exact Keras 3 operation is mapped"). They are written as the Keras 3
    operations, and Keras 3's model computes what tf-keras' computes."""
    import json

    import keras
    import numpy as np

    from archdiff.cli.main import main
    from archdiff.views.upgrade_rules import UNARY_OPERATORS

    truth = build_k2("""
        import numpy as np
        import tensorflow as tf
        inp = keras.Input((5,))
        branches = [tf.math.tanh(inp), tf.nn.tanh(inp), tf.math.abs(inp), tf.math.square(inp),
                    tf.math.sigmoid(inp), tf.nn.sigmoid(inp), tf.nn.relu(inp)]
        m = keras.Model(inp, keras.layers.Concatenate()(branches))
        m.save(OUT + "/ops.h5")
        x = np.linspace(-3, 3, 20, dtype="float32").reshape(4, 5)
        RESULT["functions"] = sorted(l.get_config()["function"] for l in m.layers
                                     if type(l).__name__ == "TFOpLambda")
        RESULT["y"] = m.predict(x, verbose=0).tolist()
    """, tmp_path)
    assert sorted(set(truth["functions"])) == sorted(UNARY_OPERATORS)  # every mapped function built and checked
    out = tmp_path / "ops.json"
    assert main(["export", str(tmp_path / "ops.h5"), "-o", str(out)]) == 0
    model = keras.models.model_from_json(out.read_text())
    assert not [layer for layer in model.layers if type(layer).__name__ == "TFOpLambda"]
    assert len([op for op in model.operations if not isinstance(op, keras.layers.Layer)]) == 7
    x = np.linspace(-3, 3, 20, dtype="float32").reshape(4, 5)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(truth["y"]), rtol=1e-6, atol=1e-6)
    assert json.loads(out.read_text())["class_name"] == "Functional"


def test_a_layer_called_on_its_own_output_exports_with_known_shapes(tmp_path):
    """A shared layer called on its own output (d(d(x))): the shape lookup judged the layer's calls together
    and took the second for a cycle, so an operation after it could not be exported. Each call is now judged on
    its own inputs: the export has no call in Keras 2's list form and loads in Keras 3 with tf-keras' outputs."""
    import keras
    import numpy as np

    from archdiff.cli.main import main

    truth = build_k2("""
        import numpy as np
        inp = keras.Input((4,))
        d = keras.layers.Dense(4, name="shared")
        y = d(d(inp)) + inp
        m = keras.Model(inp, y)
        m.set_weights([np.arange(16, dtype="float32").reshape(4, 4) / 10, np.ones(4, "float32")])
        m.save(OUT + "/twice.h5")
        RESULT["y"] = m.predict(np.eye(4, dtype="float32"), verbose=0).tolist()
    """, tmp_path)
    out = tmp_path / "twice.json"
    assert main(["export", str(tmp_path / "twice.h5"), "-o", str(out)]) == 0
    text = out.read_text()
    model = keras.models.model_from_json(text)
    model.load_weights(tmp_path / "twice.h5")
    np.testing.assert_allclose(np.asarray(model(np.eye(4, dtype="float32"))), np.asarray(truth["y"]), rtol=1e-6)
    import json

    calls = [n for layer in json.loads(text)["config"]["layers"] for n in layer.get("inbound_nodes", [])]
    assert calls and all(isinstance(n, dict) for n in calls), calls  # every call in Keras 3's form
