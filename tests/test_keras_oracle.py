"""archdiff's layer table and totals against Keras itself, on keras.applications models.

Each model is built with Keras 3 (weights=None, seeded), saved, then read back
by archdiff without Keras; the index -> name -> class table must equal
enumerating ``model.layers`` and the totals ``count_params()`` and the
trainable split. Keras 2 files are checked against tf-keras in a subprocess.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from support import run_cli

import archdiff

pytestmark = pytest.mark.tensorflow


def keras_rows(model, prefix="", depth=0):
    rows = []
    for index, layer in enumerate(model.layers):
        path = prefix + layer.name
        rows.append((index, path, depth, type(layer).__name__))
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Sequential"):
            rows.extend(keras_rows(layer, path + "/", depth + 1))
    return rows


def totals(model):
    import numpy as np

    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return model.count_params(), trainable, non_trainable


def guide_model():
    """The transfer-learning guide's model: a frozen Xception base nested in a new head."""
    import keras

    base = keras.applications.Xception(weights=None, input_shape=(150, 150, 3), include_top=False)
    base.trainable = False
    inputs = keras.Input(shape=(150, 150, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(1)(x)
    return keras.Model(inputs, outputs)


BUILDERS = {
    "resnet50": lambda k: k.applications.ResNet50(weights=None),
    "resnet50_notop": lambda k: k.applications.ResNet50(weights=None, include_top=False),
    "mobilenetv2": lambda k: k.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3)),
    "xception_guide": lambda k: guide_model(),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import keras

    out = {}
    folder = tmp_path_factory.mktemp("apps")
    for name, build in BUILDERS.items():
        keras.utils.set_random_seed(0)
        model = build(keras)
        files = {fmt: folder / f"{name}{fmt}" for fmt in (".keras", ".h5", ".json")}
        model.save(files[".keras"])
        model.save(files[".h5"])
        files[".json"].write_text(model.to_json())
        out[name] = (keras_rows(model), totals(model), files, model)
    return out


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.parametrize("fmt", [".keras", ".h5", ".json"])
def test_layer_table_equals_model_layers(built, name, fmt):
    rows, (total, trainable, non_trainable), files, _ = built[name]
    arch = archdiff.load(files[fmt])
    assert rows and [(l.index, l.path, l.depth, l.class_name) for l in arch.layers] == rows
    counts = arch.param_counts()
    assert counts is not None
    assert (counts.total, counts.trainable, counts.non_trainable) == (total, trainable, non_trainable)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_output_shapes_and_params_per_layer(built, name):
    _, _, files, model = built[name]
    arch = archdiff.load(files[".keras"])
    live = {}

    def walk(m, prefix=""):
        for layer in m.layers:
            live[prefix + layer.name] = layer
            if type(layer).__name__ in ("Functional", "Sequential"):
                walk(layer, prefix + layer.name + "/")

    walk(model)
    assert arch.layers and live
    for layer in arch.layers:
        k = live[layer.path]
        assert arch.params(layer) == k.count_params(), layer.path
        if layer.depth == 0 and not layer.is_model:
            assert layer.output_shape == tuple(k.output.shape), layer.path


def test_freeze_index_from_the_cli(built):
    """The everyday use: which index do I freeze up to, to train from conv5_block1_1_conv on?"""
    rows, _, files, model = built["resnet50"]
    result = run_cli("layers", files[".keras"], "--grep", "^conv5_block1_1_conv$", "--format", "json")
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)["layers"]
    assert model.layers[row["index"]].name == "conv5_block1_1_conv"


def test_json_export_round_trips_through_model_from_json(built, tmp_path):
    import keras

    _, (total, _, _), files, model = built["resnet50_notop"]
    out = tmp_path / "export.json"
    result = run_cli("export", files[".keras"], "-o", out)
    assert result.returncode == 0, result.stderr
    rebuilt = keras.models.model_from_json(out.read_text())
    assert [l.name for l in rebuilt.layers] == [l.name for l in model.layers]
    assert rebuilt.count_params() == total


def test_yaml_export_round_trips_through_archdiff_model_from_yaml(built, tmp_path):
    _, (total, _, _), files, model = built["xception_guide"]
    out = tmp_path / "export.yaml"
    result = run_cli("export", files[".h5"], "-o", out)
    assert result.returncode == 0, result.stderr
    assert "!!python" not in out.read_text()
    rebuilt = archdiff.model_from_yaml(out)
    assert [l.name for l in rebuilt.layers] == [l.name for l in model.layers]
    assert rebuilt.count_params() == total


def test_factory_reader_matches_keras():
    import keras

    keras.backend.clear_session()  # the same auto names in both builds
    arch = archdiff.load("keras.applications:MobileNetV2", factory_kwargs={"input_shape": [96, 96, 3]})
    keras.backend.clear_session()
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    assert [(l.index, l.path, l.class_name) for l in arch.layers] == \
           [(i, l.name, type(l).__name__) for i, l in enumerate(model.layers)]
    assert arch.param_counts().total == model.count_params()


def test_keras2_resnet_h5_matches_tf_keras(tmp_path):
    """A tf-keras ResNet50 .h5 (Keras 2 dialect), checked against tf-keras in its own process."""
    path = tmp_path / "resnet50_k2.h5"
    code = textwrap.dedent(f"""
        import json, numpy as np, tf_keras as keras
        keras.utils.set_random_seed(0)
        m = keras.applications.ResNet50(weights=None, include_top=False)
        m.save({str(path)!r})
        print(json.dumps({{"names": [l.name for l in m.layers], "classes": [type(l).__name__ for l in m.layers],
                           "total": m.count_params(),
                           "trainable": int(sum(np.prod(w.shape) for w in m.trainable_weights))}}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    truth = json.loads(done.stdout.strip().splitlines()[-1])
    arch = archdiff.load(path)
    assert arch.source.dialect == "keras2"
    assert truth["names"] and [l.name for l in arch.layers] == truth["names"]
    assert [l.class_name for l in arch.layers] == truth["classes"]
    assert arch.param_counts().total == truth["total"]
    assert arch.param_counts().trainable == truth["trainable"]
