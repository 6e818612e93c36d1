"""keras-hub as the oracle: backbones built from their constructors, read by archdiff without Keras.

One keras-hub process (tests/keras_build.py) builds small BERT, GPT-2, Llama,
ViT and ResNet backbones with seeded weights, saves each as ``.keras``,
``.weights.h5``, ``to_json()`` and a preset folder (``save_to_preset``), and
records keras-hub's own answers: ``model.layers`` (name, class),
``count_params()`` and ``get_config()``. archdiff must agree where the file
can tell, and say unknown where it cannot (a constructor config records no
layer order). A second process loads archdiff's ported weights with keras-hub
itself. With ``--build`` (archdiff building the model from its config, in its
own process), everything keras-hub says must come back: ``model.layers`` in
order with their classes, every variable's path and shape, the trainable
split, and the weights located in the files (every value equal across
formats). keras-hub is installed by ``make install`` (requirements/keras-hub.txt).
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from keras_build import build

pytestmark = pytest.mark.tensorflow

BUILD = r'''
import keras_hub
import numpy as np

M = keras_hub.models
MODELS = {
    "bert": (M.BertBackbone, dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
                                  max_sequence_length=8)),
    "bert3": (M.BertBackbone, dict(vocabulary_size=50, num_layers=3, num_heads=2, hidden_dim=8, intermediate_dim=16,
                                   max_sequence_length=8)),
    "gpt2": (M.GPT2Backbone, dict(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
                                  max_sequence_length=8)),
    "llama": (M.LlamaBackbone, dict(vocabulary_size=50, num_layers=2, num_query_heads=2, num_key_value_heads=1,
                                    hidden_dim=8, intermediate_dim=16)),
    "vit": (M.ViTBackbone, dict(image_shape=(8, 8, 3), patch_size=4, num_layers=2, num_heads=2, hidden_dim=8,
                                mlp_dim=16)),
    "resnet": (M.ResNetBackbone, dict(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                                      stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
                                      stackwise_num_strides=[1, 2], block_type="basic_block",
                                      image_shape=(16, 16, 3))),
}
for name, (cls, kwargs) in MODELS.items():
    keras.utils.set_random_seed(0)
    model = cls(**kwargs)
    rng = np.random.default_rng(len(name))
    model.set_weights([rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    stem = os.path.join(OUT, name)
    model.save(stem + ".keras")
    model.save_weights(stem + ".weights.h5")
    open(stem + ".json", "w").write(model.to_json())
    model.save_to_preset(stem + "_preset")
    # Shards as small as the largest variable allows: model.weights.json and several shards.
    largest = max(int(np.prod(w.shape)) * 4 for w in model.weights)
    model.save_to_preset(stem + "_sharded", max_shard_size=largest * 1.05 / 1024 ** 3)
    RESULT[name] = {
        "layers": [[layer.name, type(layer).__name__] for layer in model.layers],
        "variables": [[layer.name, [[v.path, list(v.shape), bool(v.trainable)] for v in layer.weights]]
                      for layer in model.layers],
        "trainable": int(sum(np.prod(v.shape, dtype=int) for v in model.trainable_weights)),
        "total": int(model.count_params()),
        "config": json.loads(json.dumps(model.get_config(), default=list)),
    }
RESULT["__version__"] = keras_hub.__version__
RESULT["sharded"] = {name: sorted(os.listdir(os.path.join(OUT, name + "_sharded"))) for name in MODELS}
'''

#: keras-hub loads archdiff's port of bert into bert3 and says which variables equal the source's.
CHECK_PORT = r'''
import keras_hub
import numpy as np

source = keras_hub.models.Backbone.from_preset(os.path.join(OUT, "bert_preset"))
target = keras_hub.models.Backbone.from_preset(os.path.join(OUT, "bert3_preset"))
before = {layer.name: [np.asarray(w) for w in layer.weights] for layer in target.layers}
target.load_weights(os.path.join(OUT, "ported.weights.h5"))
mine = {layer.name: layer for layer in source.layers}
RESULT["equal_to_source"] = sorted(
    f"{layer.name}:{i}" for layer in target.layers if layer.name in mine
    for i, (a, b) in enumerate(zip(layer.weights, mine[layer.name].weights))
    if np.array_equal(np.asarray(a), np.asarray(b)))
RESULT["variables_in_shared_layers"] = sum(len(layer.weights) for layer in target.layers if layer.name in mine)
new = [layer for layer in target.layers if layer.name not in mine]
RESULT["new_layers"] = [layer.name for layer in new]
RESULT["new_variables"] = sum(len(layer.weights) for layer in new)
RESULT["new_kept"] = sum(np.array_equal(np.asarray(w), old) for layer in new
                         for w, old in zip(layer.weights, before[layer.name]))
'''

MODELS = ("bert", "bert3", "gpt2", "llama", "vit", "resnet")
WITH_WEIGHTS = ("keras", "weights.h5", "preset", "sharded")


def path_of(folder, model: str, fmt: str):
    return folder / (f"{model}_{fmt}" if fmt in ("preset", "sharded") else f"{model}.{fmt}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_hub")
    truth = build("k3", BUILD, folder)
    assert set(truth) - {"__version__", "sharded"} == set(MODELS)
    return folder, truth


@pytest.mark.parametrize("fmt", WITH_WEIGHTS)
@pytest.mark.parametrize("model", MODELS)
def test_the_layers_and_totals_agree_with_keras_hub(hub, model, fmt, cli):
    folder, truth = hub
    code, out, err = cli("layers", path_of(folder, model, fmt), "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["layers"]
    keras_layers = dict(truth[model]["layers"])
    assert sorted(r["name"] for r in rows) == sorted(keras_layers)
    assert all(r["index"] is None for r in rows), "a constructor config records no layer order"
    assert all(r["class_name"] == keras_layers[r["name"]] or r["class_name"].startswith("?") for r in rows)
    code, out, _ = cli("summary", path_of(folder, model, fmt), "--format", "json")
    data = json.loads(out)
    assert data["total_params"] == truth[model]["total"]
    assert data["layers_total"] == len(truth[model]["layers"])
    assert data["trainable_params"] is None  # which layers were frozen is not in these files


@pytest.mark.parametrize("fmt", ["keras", "json", "preset"])
@pytest.mark.parametrize("model", MODELS)
def test_the_constructor_arguments_are_keras_hubs_get_config(hub, model, fmt, cli):
    folder, truth = hub
    code, out, _ = cli("summary", path_of(folder, model, fmt), "--format", "json")
    expected = {k: v for k, v in truth[model]["config"].items() if k != "name"}
    assert json.loads(out)["constructor"]["arguments"] == expected


@pytest.mark.parametrize("model", MODELS)
def test_every_format_of_one_backbone_is_identical(hub, model, cli):
    folder, truth = hub
    first = path_of(folder, model, "keras")
    assert "model.weights.json" in truth["sharded"][model]  # keras-hub did shard it
    assert len([f for f in truth["sharded"][model] if f.endswith(".weights.h5")]) > 1
    for fmt in ("weights.h5", "preset", "sharded", "json"):
        code, out, err = cli("diff", first, path_of(folder, model, fmt), "--format", "json")
        assert (code, json.loads(out)["classification"]) == (0, "identical"), (fmt, err, out[:2000])


def test_a_deeper_bert_is_named_by_its_argument_and_its_new_block(hub, cli):
    folder, truth = hub
    expected_args = {k for k in truth["bert3"]["config"]
                     if k != "name" and truth["bert"]["config"].get(k) != truth["bert3"]["config"][k]}
    code, out, _ = cli("diff", path_of(folder, "bert", "preset"), path_of(folder, "bert3", "preset"), "--format",
                       "json")
    data = json.loads(out)
    assert code == 1 and data["classification"] == "topology-changing"
    assert {c["path"].removeprefix("model.constructor.") for c in data["model_changes"]
            if c["kind"] == "constructor"} == expected_args == {"num_layers"}
    added = set(dict(truth["bert3"]["layers"])) - set(dict(truth["bert"]["layers"]))
    assert {e["path"] for e in data["added"]} == added and not data["removed"]


def test_keras_hub_loads_the_port_with_the_shared_blocks_equal_to_the_source(hub, cli):
    folder, truth = hub
    out = folder / "ported.weights.h5"
    code, _, err = cli("transfer", path_of(folder, "bert", "preset"), path_of(folder, "bert3", "preset"), "-o", out,
                       "--no-progress")
    assert code == 0, err
    with h5py.File(out, "r") as f:  # the output is a Keras 3 weights file, as a preset holds it
        assert "layers" in f and not np.isnan(f["layers/dense/vars/0"][()]).any()
    said = build("k3", CHECK_PORT, folder)
    assert len(said["equal_to_source"]) == said["variables_in_shared_layers"] > 0
    assert said["new_layers"] == ["transformer_layer_2"]
    assert said["new_kept"] == said["new_variables"] > 0  # the new block keeps the target's own values


# -- --build: archdiff lets Keras build the model, and reads what keras-hub says -------------------------------
@pytest.mark.parametrize("fmt", ["keras", "json", "preset", "sharded"])
@pytest.mark.parametrize("model", MODELS)
def test_build_gives_keras_hubs_layers_variables_and_totals(hub, model, fmt, cli):
    folder, truth = hub
    code, out, err = cli("layers", path_of(folder, model, fmt), "--build", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["layers"]
    assert [[r["name"], r["class_name"]] for r in rows] == truth[model]["layers"]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    variables = {name: [[f"{name}/{w['name']}", w["shape"], w["trainable"]] for w in r["weights"]]
                 for r in rows for name in [r["name"]]}
    assert variables == dict((name, vs) for name, vs in truth[model]["variables"])
    code, out, _ = cli("summary", path_of(folder, model, fmt), "--build", "--format", "json")
    data = json.loads(out)
    assert (data["total_params"], data["trainable_params"], data["layers_total"]) == (
        truth[model]["total"], truth[model]["trainable"], len(truth[model]["layers"]))
    assert data["constructor"]["built"]["keras_hub_version"] == truth["__version__"]
    if fmt != "json":  # every variable found in the file, and every dataset claimed by a variable
        assert not [n for n in data["notes"] if "no dataset" in n or "belong to no variable" in n], data["notes"]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("other", ["preset", "sharded"])
def test_build_locates_every_variable_in_the_file(hub, model, other, cli):
    """A diff of the .keras and the preset (the same weights) compares every variable by value, bitwise equal."""
    folder, truth = hub
    code, out, err = cli("diff", path_of(folder, model, "keras"), path_of(folder, model, other), "--build",
                         "--format", "json")
    data = json.loads(out)
    assert (code, data["classification"]) == (0, "identical"), (err, out[:2000])
    counted = sum(len(vs) for _, vs in truth[model]["variables"])
    summary = data["values"]["summary"]
    assert summary["variables"] == summary["variables_equal"] == counted > 0


def test_build_names_a_deeper_bert_by_its_new_block_and_the_argument_is_cosmetic(hub, cli):
    folder, truth = hub
    code, out, _ = cli("diff", path_of(folder, "bert", "keras"), path_of(folder, "bert3", "preset"), "--build",
                       "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["classification"] == "topology-changing"
    constructor = [c for c in data["model_changes"] if c["kind"] == "constructor"]
    assert [(c["path"], c["effect"]) for c in constructor] == [("model.constructor.num_layers", "cosmetic")]
    added = set(dict(truth["bert3"]["layers"])) - set(dict(truth["bert"]["layers"]))
    assert {e["path"] for e in data["added"]} == added == {"transformer_layer_2"} and not data["removed"]


@pytest.mark.parametrize("model", MODELS)
def test_build_freezes_up_to_keras_hubs_own_index(hub, model, cli):
    folder, truth = hub
    names = [name for name, _ in truth[model]["layers"]]
    until = names[len(names) // 2]
    code, _, err = cli("layers", path_of(folder, model, "preset"), "--freeze-until", until)
    assert code == 2 and "add --build" in err  # without building, model.layers' order is unknown
    code, out, err = cli("layers", path_of(folder, model, "preset"), "--build", "--freeze-until", until)
    assert code == 0, err
    index = names.index(until)
    assert f"for layer in model.layers[:{index}]:" in out and f"assert model.layers[{index}].name == {until!r}" in out


# -- validate: keras-hub rebuilds the port, and every check runs ---------------------------------------------
def _validate(*args):
    from test_validate_backends import archdiff

    code, out, err = archdiff("validate", *args, "--backend", "jax", "--budget", "quick", "--format", "json")
    return code, (json.loads(out) if out.strip().startswith("{") else None), err


@pytest.mark.jax
def test_validate_proves_a_keras_hub_port_with_every_check(hub, cli):
    folder, truth = hub
    ported = folder / "validated.weights.h5"
    code, _, err = cli("transfer", path_of(folder, "bert", "keras"), path_of(folder, "bert3", "weights.h5"),
                       "-o", ported, "--no-progress")
    assert code == 0, err
    code, report, err = _validate(path_of(folder, "bert3", "keras"), "--weights", ported,
                                  "--source", path_of(folder, "bert", "keras"))
    assert code == 0 and report is not None, err[-3000:]
    assert set(report["checks"].values()) == {"pass"} and len(report["checks"]) == 4, report["checks"]
    shared = sum(len(vs) for name, vs in truth["bert"]["variables"] if name in dict(truth["bert3"]["layers"]))
    assert f"{shared} variables" in report["weights_arrived"]["reason"]
    outputs = report["outputs"]["outputs"]
    assert outputs and all(o["max_abs_diff"] == 0 for o in outputs)
    # The new block trains; its attention key bias cannot (the softmax ignores it), which is measured, not a failure.
    (stage,) = report["finetune"]["stages"]
    assert not stage["trainable_unchanged"]
    assert all(name.endswith("key/bias") for name in stage["loss_independent"])

    # Two same-shaped variables of a transferred block swapped: query and value (at these small seeded weights
    # the attention is nearly uniform, so a query/key swap moves the outputs by ~1e-7 only; arrival sees either).
    with h5py.File(ported, "r+") as f:
        block = f["layers/transformer_encoder/_self_attention_layer"]
        query, value = block["query_dense/vars/0"][()], block["value_dense/vars/0"][()]
        block["query_dense/vars/0"][...], block["value_dense/vars/0"][...] = value, query
    code, report, err = _validate(path_of(folder, "bert3", "keras"), "--weights", ported,
                                  "--source", path_of(folder, "bert", "keras"), "--no-finetune")
    assert code == 1 and report is not None, err[-3000:]
    assert report["checks"]["weights_arrived"] == report["checks"]["outputs"] == "fail", report["checks"]
    assert "transformer_layer_0" in json.dumps(report["weights_arrived"])


def test_transfer_with_build_pairs_by_keras_names_and_writes_the_same_port(hub, cli, tmp_path):
    """--build pairs the variables by their Keras names (located in the files by Keras' saving code); the port
    it writes equals, dataset for dataset, the one made by the files' own names. Into a weights-only target
    (nothing to build), both sides are read unbuilt, and that is said."""
    import zipfile

    folder, _ = hub
    plain, built = tmp_path / "plain.keras", tmp_path / "built.keras"
    for out, extra in ((plain, ()), (built, ("--build",))):
        code, report, err = cli("transfer", path_of(folder, "bert", "keras"), path_of(folder, "bert3", "keras"),
                                "-o", out, "--no-progress", "--format", "json", *extra)
        assert code == 0, err
    names = {v["target"] for layer in json.loads(report)["layers"] for v in layer["variables"]}
    assert "self_attention_layer/query/kernel" in names  # Keras' own variable names, not the file's paths

    def datasets(path):
        inner = tmp_path / (path.stem + ".weights.h5")
        with zipfile.ZipFile(path) as z:
            inner.write_bytes(z.read("model.weights.h5"))
        found = {}
        with h5py.File(inner, "r") as f:
            f.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return found

    a, b = datasets(plain), datasets(built)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)

    code, out, err = cli("transfer", path_of(folder, "bert", "keras"), path_of(folder, "bert3", "weights.h5"),
                         "-o", tmp_path / "mixed.weights.h5", "--no-progress", "--build")
    assert code == 0, err
    assert "--build: the other input holds no config to build" in out


@pytest.mark.parametrize("model", MODELS)
def test_build_against_a_weights_only_file_still_finds_them_identical(hub, model, cli):
    """A built model names its variables as Keras does, a weights-only file by their paths in it: paired
    blindly they looked weights-breaking. With nothing to build on one side, both are read unbuilt, and said so."""
    folder, _ = hub
    code, out, err = cli("diff", path_of(folder, model, "keras"), path_of(folder, model, "weights.h5"), "--build",
                         "--format", "json")
    data = json.loads(out)
    assert (code, data["classification"]) == (0, "identical"), (err, out[:2000])
    assert any("--build: the other input holds no config to build" in n for n in data["notes"])
