"""keras-hub as the oracle: backbones built from their constructors, read by archdiff without Keras.

One keras-hub process (tests/keras_build.py) builds small BERT, GPT-2, Llama,
ViT and ResNet backbones with seeded weights, saves each as ``.keras``,
``.weights.h5``, ``to_json()`` and a preset folder (``save_to_preset``), and
records keras-hub's own answers: ``model.layers`` (name, class),
``count_params()`` and ``get_config()``. archdiff must agree where the file
can tell, and say unknown where it cannot (a constructor config records no
layer order). A second process loads archdiff's ported weights with keras-hub
itself. keras-hub is installed by ``make install`` (requirements/keras-hub.txt).
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
    RESULT[name] = {
        "layers": [[layer.name, type(layer).__name__] for layer in model.layers],
        "total": int(model.count_params()),
        "config": json.loads(json.dumps(model.get_config(), default=list)),
    }
RESULT["__version__"] = keras_hub.__version__
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
WITH_WEIGHTS = ("keras", "weights.h5", "preset")


def path_of(folder, model: str, fmt: str):
    return folder / (f"{model}_preset" if fmt == "preset" else f"{model}.{fmt}")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_hub")
    truth = build("k3", BUILD, folder)
    assert set(truth) - {"__version__"} == set(MODELS)
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
    folder, _ = hub
    first = path_of(folder, model, "keras")
    for fmt in ("weights.h5", "preset", "json"):
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
