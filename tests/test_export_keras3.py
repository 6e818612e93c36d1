"""``archdiff export`` of Keras 2 (tf-keras) files into Keras 3 configs, checked against both Kerases.

The oracle: tf-keras builds each model (``keras2_models`` below, run in its own
process so the two Kerases never share one) and records what tf-keras says about
it: every layer's path, class and trainable flag in ``model.layers`` order, every
weight's shape, ``count_params()`` and the trainable split. archdiff exports the
tf-keras file (.h5, .json, to_yaml-style .yaml, .keras) to JSON and YAML, Keras 3
loads the export (``keras.models.model_from_json`` / ``archdiff.model_from_yaml``)
and must say the same, after the documented rewrites: ``/`` in names becomes
``_``, and TFOpLambda layers become Keras 3 operations (not in ``model.layers``).

The light tests (no TensorFlow) check the same exports against the answers
tf-keras recorded for the shipped fixtures (``fixtures/expected``), the source
dialect against the file's own config, and every refusal.

Run ``ARCHDIFF_ALL_APPLICATIONS=1 pytest tests/test_export_keras3.py -k applications``
for every model of ``tf_keras.applications`` instead of one per family.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import yaml
from support import FIXTURES, expected_for

import archdiff
from archdiff.errors import NotConvertibleError
from archdiff.views import upgrade_config
from archdiff.views.upgrade import APPLICATION_LAYERS, KERAS2_ONLY_LAYERS, KERAS3_LAYERS

K2 = FIXTURES / "keras2"
K2_MODELS = [K2 / n for n in (
    "sequential.h5", "sequential.json", "sequential.yaml", "functional.h5", "functional.json", "functional.yaml",
    "functional.pyyaml.yaml", "functional.keras", "nested.h5", "nested.json", "nested.yaml", "nested.keras",
    "resnet_small.h5", "resnet_small.json", "resnet_small.yaml")]

#: One model per family of tf_keras.applications (the others differ in depth and width only).
APPLICATIONS = ["ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionResNetV2",
                "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Small", "RegNetX002", "RegNetY002",
                "ResNet50", "ResNet50V2", "ResNetRS50", "VGG16", "Xception"]
#: Inputs as small as each application accepts.
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}
#: Applications written in more formats than .json (a full-model .h5, a to_yaml-style .yaml). Not a
#: MobileNetV3 .h5: its layers 'Conv' and 'Conv/BatchNorm' share an HDF5 group, which archdiff's reader refuses.
APPLICATION_FORMATS = {"MobileNetV3Small": (".json", ".yaml"), "RegNetY002": (".h5", ".yaml"),
                       "EfficientNetB0": (".h5",)}


def _walk_document(obj, visit):
    if isinstance(obj, dict):
        visit(obj)
        for value in obj.values():
            _walk_document(value, visit)
    elif isinstance(obj, list):
        for value in obj:
            _walk_document(value, visit)


def _export(cli, src, out, *extra):
    code, _, err = cli("export", src, "-o", out, *extra)
    assert code == 0, err
    return err


# -- light: the shipped Keras 2 fixtures ------------------------------------------------------
@pytest.mark.parametrize("src", K2_MODELS, ids=lambda p: p.name)
def test_fixture_export_is_keras3_and_keeps_what_tf_keras_recorded(cli, tmp_path, src):
    out = tmp_path / "export.json"
    notes = _export(cli, src, out)
    assert "note: rewrote the Keras 2 config for Keras 3" in notes
    document = json.loads(out.read_text())
    assert document["module"] == "keras.src.models.functional" or document["class_name"] == "Sequential"
    assert document["keras_version"].startswith("3.")
    problems = []

    def visit(d):
        if "batch_input_shape" in d:
            problems.append(f"batch_input_shape in {d.get('name')}")
        if d.get("class_name") == "BatchNormalization" and isinstance(d.get("config", {}).get("axis"), list):
            problems.append("BatchNormalization axis list")
        if "inbound_nodes" in d and "module" not in d:
            problems.append(f"no module on {d.get('name')}")

    _walk_document(document, visit)
    assert problems == []
    # What tf-keras itself recorded about the source file, read back from the export without Keras.
    expected = expected_for(src)
    arch = archdiff.load(out)
    assert [(l["path"], l["class_name"]) for l in expected["layers"]] == [(l.path, l.class_name) for l in arch.layers]
    counts = arch.param_counts()
    assert (counts.total, counts.trainable, counts.non_trainable) == (
        expected["total_params"], expected["trainable_params"], expected["non_trainable_params"])


@pytest.mark.parametrize("src", [K2 / "nested.h5", K2 / "functional.json", K2 / "resnet_small.yaml"],
                         ids=lambda p: p.name)
def test_the_diff_sees_no_change_between_a_file_and_its_keras3_export(cli, tmp_path, src):
    """The rewrite changes serialization only: archdiff's own diff (noise ignored) finds the two identical."""
    out = tmp_path / "k3.json"
    _export(cli, src, out)
    code, text, _ = cli("diff", src, out)
    assert code == 0 and text.startswith("archdiff: identical"), text


def _source_config(src: Path) -> dict:
    """The file's own config, read without archdiff."""
    if src.suffix == ".h5":
        with h5py.File(src, "r") as f:
            return json.loads(f.attrs["model_config"])
    if src.suffix == ".keras":
        import zipfile

        with zipfile.ZipFile(src) as z:
            return json.loads(z.read("config.json"))
    if src.name.endswith(".pyyaml.yaml"):
        return yaml.load(src.read_text(), Loader=yaml.FullLoader)  # the trusted fixture, tuples and all
    text = src.read_text()
    return json.loads(text) if src.suffix == ".json" else yaml.safe_load(text)


def _lists(obj):
    """Tuples as lists, as JSON has them."""
    if isinstance(obj, (list, tuple)):
        return [_lists(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _lists(v) for k, v in obj.items()}
    return obj


@pytest.mark.parametrize("src", K2_MODELS, ids=lambda p: p.name)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_source_dialect_reproduces_the_files_own_config(cli, tmp_path, src, fmt):
    out = tmp_path / f"export.{fmt}"
    notes = _export(cli, src, out, "--dialect", "source")
    assert notes == ""
    written = json.loads(out.read_text()) if fmt == "json" else yaml.safe_load(out.read_text())
    original = _lists(_source_config(src))
    for key in ("class_name", "config"):
        assert written[key] == original[key]


def test_keras3_files_export_unchanged_except_a_missing_top_level_module(cli, tmp_path):
    for name in ("functional.keras", "nested.json"):
        a, b = tmp_path / "a.json", tmp_path / "b.json"
        assert _export(cli, FIXTURES / "keras3" / name, a) == ""
        _export(cli, FIXTURES / "keras3" / name, b, "--dialect", "source")
        assert a.read_text() == b.read_text()
    out = tmp_path / "h5.json"
    notes = _export(cli, FIXTURES / "keras3" / "functional.h5", out)
    assert "added Keras 3's module 'keras.src.models.functional'" in notes
    with h5py.File(FIXTURES / "keras3" / "functional.h5", "r") as f:
        original = json.loads(f.attrs["model_config"])
    written = json.loads(out.read_text())
    assert written["config"] == original["config"] and written["module"] == "keras.src.models.functional"


# -- light: rewrites and refusals on hand-made Keras 2 configs -----------------------------------
def _input(name, shape):
    return {"class_name": "InputLayer", "config": {"batch_input_shape": [None, *shape], "dtype": "float32",
                                                    "sparse": False, "ragged": False, "name": name},
            "name": name, "inbound_nodes": []}


def _layer(class_name, name, inbound, **config):
    return {"class_name": class_name, "config": {"name": name, "trainable": True, "dtype": "float32", **config},
            "name": name, "inbound_nodes": [[[ref, 0, 0, {}] for ref in inbound]] if inbound else []}


def _functional(layers, inputs, outputs, name="m"):
    return {"class_name": "Functional", "config": {
        "name": name, "trainable": True, "layers": layers,
        "input_layers": [[n, 0, 0] for n in inputs], "output_layers": [[n, 0, 0] for n in outputs]}}


def test_slash_names_are_renamed_everywhere_they_are_referenced():
    model = _functional([_input("in", [4]), _layer("Dense", "block/dense", ["in"], units=2),
                         _layer("Activation", "block/relu", ["block/dense"], activation="relu")],
                        ["in"], ["block/relu"])
    up = upgrade_config(model)
    layers = up.document["config"]["layers"]
    assert [l["name"] for l in layers] == ["in", "block_dense", "block_relu"]
    assert [l["config"]["name"] for l in layers] == ["in", "block_dense", "block_relu"]
    assert layers[2]["inbound_nodes"][0][0][0] == "block_dense"  # shapes unknown here: Keras 2's list form
    assert up.document["config"]["output_layers"] == ["block_relu", 0, 0]
    assert up.renames == (("block/dense", "block_dense"), ("block/relu", "block_relu"))
    assert any("2 layer name(s) with '/' renamed" in n for n in up.notes)


def test_a_rename_that_collides_is_refused_naming_both(cli, tmp_path):
    model = _functional([_input("in", [4]), _layer("Dense", "a/b", ["in"], units=2),
                         _layer("Dense", "a_b", ["a/b"], units=2)], ["in"], ["a_b"])
    src = tmp_path / "collide.json"
    src.write_text(json.dumps({**model, "keras_version": "2.21.0", "backend": "tensorflow"}))
    out = tmp_path / "out.json"
    code, stdout, err = cli("export", src, "-o", out)
    assert code == 2 and stdout == "" and not out.exists()
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "'a/b' would be renamed 'a_b'" in err and "already has a layer 'a_b'" in err
    assert cli("export", src, "-o", out, "--dialect", "source")[0] == 0


def test_everything_without_a_keras3_equivalent_is_refused_in_one_error(cli, tmp_path):
    op = {"class_name": "TFOpLambda", "config": {"name": "tf.math.log", "trainable": True, "dtype": "float32",
                                                 "function": "math.log"},
          "name": "tf.math.log", "inbound_nodes": [["d", 0, 0, {"name": None}]]}
    model = _functional([_input("in", [4]), _layer("Dense", "d", ["in"], units=2), op,
                         _layer("ThresholdedReLU", "thr", ["tf.math.log"], theta=1.0),
                         _layer("Dense", "hs", ["thr"], units=2, activation="hard_sigmoid"),
                         _layer("DepthwiseConv2D", "dw", ["hs"], kernel_size=[1, 1], groups=2)],
                        ["in"], ["dw"])
    with pytest.raises(NotConvertibleError) as caught:
        upgrade_config(model)
    message = str(caught.value)
    assert "no exact Keras 3 equivalent for 4 layer(s)" in message
    for name in ("'tf.math.log' (TFOpLambda of tf.math.log", "'thr' (ThresholdedReLU", "'hs' (activation 'hard_sigmoid'",
                 "'dw' (DepthwiseConv2D groups=2"):
        assert name in message
    src = tmp_path / "m.json"
    src.write_text(json.dumps({**model, "keras_version": "2.21.0"}))
    code, _, err = cli("export", src, "-o", tmp_path / "o.json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--dialect source" in err


def test_sequential_input_on_the_first_layer_becomes_an_input_layer():
    model = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "trainable": True, "batch_input_shape": [None, 3],
                                           "dtype": "float32", "units": 2}},
        {"class_name": "Dense", "config": {"name": "e", "trainable": True, "dtype": "float32", "units": 1}}]}}
    layers = upgrade_config(model).document["config"]["layers"]
    assert [(l["class_name"], l["config"]["name"]) for l in layers] == [("InputLayer", "d_input"), ("Dense", "d"),
                                                                         ("Dense", "e")]
    assert layers[0]["config"]["batch_shape"] == [None, 3] and "batch_input_shape" not in layers[1]["config"]


def test_lambda_code_is_moved_never_loaded():
    lam = _layer("Lambda", "lam", ["in"], function=["4wEAAAAAAAAA", None, None], function_type="lambda",
                 module="__main__", output_shape=None, output_shape_type="raw", output_shape_module=None, arguments={})
    up = upgrade_config(_functional([_input("in", [4]), lam], ["in"], ["lam"]))
    config = up.document["config"]["layers"][1]["config"]
    assert config["function"] == {"class_name": "__lambda__",
                                  "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None}}
    assert not set(config) & {"function_type", "module", "output_shape_type", "output_shape_module"}
    assert any("safe_mode=False" in n for n in up.notes)


def test_export_of_keras2_files_stays_light(tmp_path):
    code = f"""
import sys
from archdiff.cli.main import main
for src in ({str(K2 / "nested.h5")!r}, {str(K2 / "functional.yaml")!r}):
    for out in ("m.json", "m.yaml"):
        assert main(["export", src, "-o", {str(tmp_path)!r} + "/" + out]) == 0
print("HEAVY:" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras"))))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "HEAVY:"


# -- tf-keras: the models, built in their own process -------------------------------------------
def keras2_models(keras):
    """Generated tf-keras models: name -> model (besides the applications)."""
    import numpy as np

    layers = keras.layers
    out = {}
    out["sequential_input_shape"] = keras.Sequential([
        layers.Dense(16, input_shape=(8,), name="first"), layers.BatchNormalization(), layers.Dropout(0.1),
        layers.Dense(4, activation="softmax")], name="seq_in_first_layer")
    out["sequential_rnn"] = keras.Sequential([
        keras.Input((12,), dtype="int32"), layers.Embedding(50, 8), layers.Conv1D(8, 3, padding="same"),
        layers.Bidirectional(layers.LSTM(6, return_sequences=True)), layers.GRU(5, return_sequences=True),
        layers.TimeDistributed(layers.Dense(3)), layers.SimpleRNN(4), layers.LayerNormalization(),
        layers.Dense(2)], name="seq_rnn")
    a, b = keras.Input((6,), name="a"), keras.Input((4,), name="b")
    shared = layers.Dense(5, name="shared")
    ya, yb = shared(layers.Dense(4, name="pre")(a)), shared(b)
    merged = layers.Concatenate(name="cat")([ya, yb])
    attn = layers.MultiHeadAttention(2, 3, name="mha")(layers.Reshape((2, 5))(merged), layers.Reshape((1, 5))(ya + yb))
    out["functional_multi_io"] = keras.Model(
        [a, b], [layers.Dense(1, name="out_a")(merged), layers.Flatten(name="out_b")(attn),
                 layers.Dense(2, dtype=keras.mixed_precision.Policy("mixed_float16"), name="out_mixed")(yb)],
        name="multi_io")
    inner_in = keras.Input((8,), name="inner_in")
    inner = keras.Model(inner_in, layers.Dense(3, name="inner_dense")(layers.Dense(8, name="inner_pre")(inner_in)),
                        name="inner")
    middle_in = keras.Input((8,), name="middle_in")
    middle = keras.Model(middle_in, inner(layers.BatchNormalization(name="middle_bn")(middle_in)), name="middle")
    head = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="head_dense")], name="head")
    x1, x2 = keras.Input((8,), name="x1"), keras.Input((8,), name="x2")
    m1, m2 = middle(x1), middle(x2)  # a nested model called twice
    frozen = keras.Sequential([layers.Dense(3, input_shape=(3,), name="frozen_dense", trainable=False)], name="frozen")
    out["nested_shared_models"] = keras.Model(
        [x1, x2], [head(m1), head(m2), frozen(layers.Add(name="sum")([m1, m2])), m2], name="nested_models")
    x, y = keras.Input((4,), name="x"), keras.Input((4,), name="y")
    out["operators"] = keras.Model([x, y], [(x + y) * 0.5, x - y, x / 2.0, 3.0 * y], name="operators")
    z = keras.Input((4,), name="z")
    out["lambda"] = keras.Model(z, layers.Lambda(lambda t: t * 2.0, name="double")(z), name="with_lambda")
    del np
    return out


def refused_models(keras):
    """tf-keras models whose export must be refused: name -> (model, text the error must hold)."""
    import tensorflow as tf

    layers = keras.layers
    x = keras.Input((4,), name="x")
    out = {
        "slicing": (keras.Model(x, layers.Dense(2)(x[:, 1:])), "SlicingOpLambda"),
        "tf_function": (keras.Model(x, tf.math.log(x)), "TFOpLambda of tf.math.log"),
        "thresholded_relu": (keras.Model(x, layers.ThresholdedReLU(0.5, name="thr")(x)), "'thr' (ThresholdedReLU"),
        "conv_lstm_default": (keras.Sequential([keras.Input((2, 4, 4, 1)), layers.ConvLSTM2D(2, 3, name="cl")]),
                              "'cl' (recurrent_activation 'hard_sigmoid'"),
    }
    return out


def describe(model, rename=lambda n: n):
    """What Keras (either) says about a model: layers in order, weights, totals; TFOpLambda/operations apart."""
    import numpy as np

    rows, ops = [], []

    def walk(m, prefix):
        for layer in m.layers:
            cls = type(layer).__name__
            path = prefix + rename(layer.name)
            if cls in ("TFOpLambda",):
                ops.append(path)
                continue
            is_model = cls in ("Functional", "Sequential")
            rows.append([path, cls, bool(layer.trainable),
                         [] if is_model else [list(map(int, w.shape)) for w in layer.weights]])
            if is_model:
                walk(layer, path + "/")
        for op in getattr(m, "operations", []):
            if not hasattr(op, "weights") or type(op).__module__.startswith("keras.src.ops"):
                ops.append(prefix + op.name)

    walk(model, "")
    size = lambda ws: int(sum(np.prod(w.shape) for w in ws))
    return {"layers": rows, "ops": sorted(ops), "count_params": int(model.count_params()),
            "trainable": size(model.trainable_weights), "non_trainable": size(model.non_trainable_weights)}


def _build_keras2(out_dir: Path, applications: list[str]) -> None:
    """The tf-keras side (run as ``python tests/test_export_keras3.py OUT APP...``): files and descriptions."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tf_keras as keras

    manifest = {}
    started = time.perf_counter()

    def record(name, model, formats):
        files = {}
        if ".h5" in formats:
            model.save(out_dir / f"{name}.h5")
            files[".h5"] = f"{name}.h5"
        if ".keras" in formats:
            model.save(out_dir / f"{name}.keras")
            files[".keras"] = f"{name}.keras"
        text = model.to_json()
        if ".json" in formats:
            (out_dir / f"{name}.json").write_text(text)
            files[".json"] = f"{name}.json"
        if ".yaml" in formats:  # exactly what Keras 2.x to_yaml() wrote
            (out_dir / f"{name}.yaml").write_text(yaml.dump(json.loads(text)))
            files[".yaml"] = f"{name}.yaml"
        # The documented rename applied name by name ('/' would be read as a path separator later).
        manifest[name] = {"files": files, "keras2": describe(model, rename=lambda n: n.replace("/", "_")),
                          "slash_names": sum("/" in layer.name for layer in model.layers)}

    for name, model in keras2_models(keras).items():
        record(name, model, (".h5", ".json", ".yaml", ".keras"))
    rng = np.random.default_rng(0)
    ops_in = [rng.normal(size=(3, 4)).astype("float32") for _ in range(2)]
    manifest["operators"]["inputs"] = [a.tolist() for a in ops_in]
    manifest["operators"]["outputs"] = [o.tolist() for o in keras2_models(keras)["operators"].predict(ops_in, verbose=0)]
    for name, (model, text) in refused_models(keras).items():
        model.save(out_dir / f"refused_{name}.h5")
        manifest[f"refused_{name}"] = {"files": {".h5": f"refused_{name}.h5"}, "refusal": text}
    build_seconds = {}
    for app in applications:
        t = time.perf_counter()
        keras.backend.clear_session()
        size = MIN_SIZE.get(app, 32)
        model = getattr(keras.applications, app)(weights=None, input_shape=(size, size, 3))
        record(f"app_{app}", model, APPLICATION_FORMATS.get(app, (".json",)))
        build_seconds[app] = round(time.perf_counter() - t, 2)
    manifest["_timing"] = {"total_s": round(time.perf_counter() - started, 1), "applications_s": build_seconds}
    (out_dir / "manifest.json").write_text(json.dumps(manifest))


def _applications() -> list[str]:
    if os.environ.get("ARCHDIFF_ALL_APPLICATIONS"):
        # Every application tf-keras ships (names read from the package's own folder, no TensorFlow here).
        import importlib.util

        spec = importlib.util.find_spec("tf_keras")
        if spec is None:
            return APPLICATIONS
        text = (Path(spec.origin).parent / "applications" / "__init__.py").read_text()
        import re

        return sorted(set(re.findall(r"import ([A-Z]\w*)$", text, re.MULTILINE))) or APPLICATIONS
    return APPLICATIONS


@pytest.fixture(scope="module")
def keras2_built(tmp_path_factory):
    reuse = os.environ.get("ARCHDIFF_KERAS2_MODELS")  # a folder built by `python tests/test_export_keras3.py DIR`
    if reuse:
        return Path(reuse), json.loads((Path(reuse) / "manifest.json").read_text())
    out = tmp_path_factory.mktemp("keras2_models")
    started = time.perf_counter()
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, __file__, str(out), *_applications()], capture_output=True, text=True,
                          timeout=1800, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": path})
    assert done.returncode == 0, done.stderr[-4000:]
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["_timing"]["process_s"] = round(time.perf_counter() - started, 1)
    print("tf-keras side:", json.dumps(manifest["_timing"]))
    return out, manifest


def _compare(name, model3, keras2):
    """Keras 3's description of the export against tf-keras' (names already renamed '/' -> '_')."""
    got = describe(model3)
    assert [r[:2] for r in got["layers"]] == [r[:2] for r in keras2["layers"]], name
    assert got["layers"] == keras2["layers"], name
    assert (got["count_params"], got["trainable"], got["non_trainable"]) == (
        keras2["count_params"], keras2["trainable"], keras2["non_trainable"]), name
    assert got["ops"] == keras2["ops"], name  # each TFOpLambda layer is a Keras 3 operation of the same name


GENERATED = ["sequential_input_shape", "sequential_rnn", "functional_multi_io", "nested_shared_models", "operators"]


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", GENERATED)
@pytest.mark.parametrize("fmt", [".h5", ".json", ".yaml", ".keras"])
def test_generated_models_load_in_keras3_as_tf_keras_built_them(keras2_built, tmp_path, cli, name, fmt):
    import keras

    folder, manifest = keras2_built
    src = folder / manifest[name]["files"][fmt]
    out = tmp_path / "k3.json"
    _export(cli, src, out)
    keras.backend.clear_session()
    _compare(f"{name}{fmt}", keras.models.model_from_json(out.read_text()), manifest[name]["keras2"])
    yaml_out = tmp_path / "k3.yaml"
    _export(cli, src, yaml_out)
    assert "!!python" not in yaml_out.read_text()
    keras.backend.clear_session()
    _compare(f"{name}{fmt} yaml", archdiff.model_from_yaml(yaml_out), manifest[name]["keras2"])


@pytest.mark.tensorflow
@pytest.mark.parametrize("name", GENERATED)
def test_tf_keras_to_yaml_text_loads_with_model_from_yaml(keras2_built, name):
    """archdiff.model_from_yaml on Keras 2's own to_yaml text, as a string and as a file."""
    import keras

    folder, manifest = keras2_built
    path = folder / manifest[name]["files"][".yaml"]
    for given in (path, path.read_text()):
        keras.backend.clear_session()
        _compare(name, archdiff.model_from_yaml(given), manifest[name]["keras2"])


@pytest.mark.tensorflow
def test_operators_compute_what_tf_keras_computed(keras2_built, tmp_path, cli):
    import keras
    import numpy as np

    folder, manifest = keras2_built
    out = tmp_path / "ops.json"
    notes = _export(cli, folder / manifest["operators"]["files"][".h5"], out)
    assert "written as the Keras 3 operation" in notes
    model = keras.models.model_from_json(out.read_text())
    inputs = [np.array(a, dtype="float32") for a in manifest["operators"]["inputs"]]
    for got, want in zip(model.predict(inputs, verbose=0), manifest["operators"]["outputs"]):
        np.testing.assert_array_equal(got, np.array(want, dtype="float32"))


@pytest.mark.tensorflow
def test_lambda_stays_behind_keras_safe_mode(keras2_built, tmp_path, cli):
    import keras
    import numpy as np

    folder, manifest = keras2_built
    out = tmp_path / "lambda.yaml"
    _export(cli, folder / manifest["lambda"]["files"][".h5"], out)
    with pytest.raises(Exception, match="safe_mode"):
        archdiff.model_from_yaml(out)
    with pytest.raises(Exception, match="safe_mode"):
        keras.models.model_from_json(json.dumps(yaml.safe_load(out.read_text())))
    # The user's explicit opt-in (their own file): the moved code is the tf-keras lambda.
    model = archdiff.model_from_yaml(out, safe_mode=False)
    np.testing.assert_array_equal(model.predict(np.ones((1, 4), "float32"), verbose=0), np.full((1, 4), 2.0))


@pytest.mark.tensorflow
def test_refusals_name_the_layers(keras2_built, tmp_path, cli):
    folder, manifest = keras2_built
    for name, entry in manifest.items():
        if not name.startswith("refused_"):
            continue
        out = tmp_path / f"{name}.json"
        code, _, err = cli("export", folder / entry["files"][".h5"], "-o", out)
        assert code == 2 and not out.exists(), name
        assert len(err.strip().splitlines()) == 1 and entry["refusal"] in err, (name, err)


@pytest.mark.tensorflow
@pytest.mark.parametrize("src", K2_MODELS, ids=lambda p: p.name)
def test_fixtures_load_in_keras3_as_tf_keras_recorded(tmp_path, cli, src):
    """The export through model_from_json, and a to_yaml file straight through archdiff.model_from_yaml."""
    import keras
    import numpy as np

    out = tmp_path / "k3.json"
    _export(cli, src, out)
    models = {"model_from_json": keras.models.model_from_json(out.read_text())}
    if src.suffix == ".yaml":
        models["model_from_yaml"] = archdiff.model_from_yaml(src)
    expected = expected_for(src)
    size = lambda ws: int(sum(np.prod(w.shape) for w in ws))  # noqa: E731
    for how, model in models.items():
        rows = []

        def walk(m, prefix):
            for layer in m.layers:
                rows.append((prefix + layer.name, type(layer).__name__))  # noqa: B023
                if type(layer).__name__ in ("Functional", "Sequential"):
                    walk(layer, prefix + layer.name + "/")

        walk(model, "")
        assert rows == [(l["path"], l["class_name"]) for l in expected["layers"]], how
        assert (model.count_params(), size(model.trainable_weights), size(model.non_trainable_weights)) == (
            expected["total_params"], expected["trainable_params"], expected["non_trainable_params"]), how


@pytest.mark.tensorflow
def test_applications_convert_and_load_in_keras3(keras2_built, tmp_path, cli, request):
    """Every application built (one per family unless ARCHDIFF_ALL_APPLICATIONS): export, load, compare."""
    import keras

    folder, manifest = keras2_built
    apps = [n for n in manifest if n.startswith("app_")]
    if not os.environ.get("ARCHDIFF_KERAS2_MODELS"):
        assert apps == [f"app_{a}" for a in _applications()]
    started, failures, renamed = time.perf_counter(), [], {}
    # Keras 3 walks a model's graph recursively (ops/function.py _build_map_helper): ResNetRS270 and deeper
    # (1474+ layers) exceed Python's default limit of 1000 frames in Keras itself, whatever the config.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    request.addfinalizer(lambda: sys.setrecursionlimit(limit))
    for name in apps:
        entry = manifest[name]
        for fmt, file in entry["files"].items():
            target = "yaml" if fmt == ".yaml" else "json"
            out = tmp_path / f"{name}{fmt}.{target}"
            code, _, err = cli("export", folder / file, "-o", out)
            if code != 0:
                failures.append(f"{name}{fmt}: {err.strip()}")
                continue
            if entry["slash_names"]:
                renamed[name] = entry["slash_names"]
                assert f"{entry['slash_names']} layer name(s) with '/' renamed with '_'" in err, err
            keras.backend.clear_session()
            try:
                model = keras.models.model_from_json(out.read_text()) if target == "json" else \
                    archdiff.model_from_yaml(out)
                _compare(name, model, entry["keras2"])
            except Exception as exc:  # noqa: BLE001 - every model is tried; the list says which failed and why
                failures.append(f"{name}{fmt}: {type(exc).__name__}: {str(exc)[:300]}")
    print(f"keras 3 side: {len(apps)} applications in {time.perf_counter() - started:.1f} s; renamed: {renamed}")
    assert failures == []


# -- Keras 3 itself: the tables archdiff keeps without importing it ----------------------------------
@pytest.mark.tensorflow
def test_class_tables_match_the_installed_kerases():
    import inspect

    import keras

    k3 = {n for n in dir(keras.layers) if inspect.isclass(getattr(keras.layers, n))
          and issubclass(getattr(keras.layers, n), keras.layers.Layer)}
    assert KERAS3_LAYERS == k3
    assert not set(KERAS2_ONLY_LAYERS) & k3
    for class_name, (module, keys) in APPLICATION_LAYERS.items():
        import importlib

        cls = getattr(importlib.import_module(module), class_name)
        params = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"}
        assert params == keys, class_name


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    _build_keras2(Path(sys.argv[1]), sys.argv[2:])
