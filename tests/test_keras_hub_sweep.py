"""Held back from the oracle's six: fifteen more keras-hub backbones read with ``--build``, against keras-hub.

One keras-hub process builds each backbone at a tiny size from its constructor (seeded), saves it as
``.keras`` and records what keras-hub says: ``model.layers`` (names, classes), every variable's path and
shape, ``count_params()``. Each build starts from a cleared Keras session, so that auto-generated names
(``input_layer``) are what a fresh process loading the file gets, which is what ``--build`` builds. archdiff
must give the same table, indices, variables and totals, and locate every variable in the file.
"""
from __future__ import annotations

import json

import pytest
from keras_build import build

pytestmark = pytest.mark.tensorflow

BUILD = r'''
import keras_hub

M = keras_hub.models
dec = dict(vocabulary_size=50, num_layers=2, hidden_dim=8, intermediate_dim=16)
gqa = dict(num_query_heads=2, num_key_value_heads=1, **dec)
CASES = {
    "gemma": (M.GemmaBackbone, dict(head_dim=4, **gqa)),
    "mistral": (M.MistralBackbone, gqa),
    "qwen": (M.QwenBackbone, gqa),
    "phi3": (M.Phi3Backbone, gqa),
    "falcon": (M.FalconBackbone, dict(num_attention_heads=2, **dec)),
    "opt": (M.OPTBackbone, dict(num_heads=2, max_sequence_length=8, **dec)),
    "bloom": (M.BloomBackbone, dict(num_heads=2, **dec)),
    "gpt_neox": (M.GPTNeoXBackbone, dict(num_heads=2, max_sequence_length=8, **dec)),
    "distil_bert": (M.DistilBertBackbone, dict(num_heads=2, max_sequence_length=8, **dec)),
    "roberta": (M.RobertaBackbone, dict(num_heads=2, max_sequence_length=8, **dec)),
    "albert": (M.AlbertBackbone, dict(num_heads=2, embedding_dim=8, max_sequence_length=8, **dec)),
    "electra": (M.ElectraBackbone, dict(vocab_size=50, num_layers=2, num_heads=2, embedding_dim=8, hidden_dim=8,
                                       intermediate_dim=16, max_sequence_length=8)),
    "deberta_v3": (M.DebertaV3Backbone, dict(num_heads=2, max_sequence_length=8, bucket_size=4, **dec)),
    "densenet": (M.DenseNetBackbone, dict(stackwise_num_repeats=[1, 1], image_shape=(16, 16, 3),
                                          compression_ratio=0.5, growth_rate=4)),
    "vgg": (M.VGGBackbone, dict(stackwise_num_repeats=[1, 1], stackwise_num_filters=[4, 8], image_shape=(16, 16, 3))),
}
for name, (cls, kwargs) in CASES.items():
    keras.backend.clear_session()  # names as a fresh process that loads the file gets them
    keras.utils.set_random_seed(0)
    model = cls(**kwargs)
    model.save(os.path.join(OUT, name + ".keras"))
    RESULT[name] = {
        "layers": [[layer.name, type(layer).__name__] for layer in model.layers],
        "variables": [[layer.name, [[v.path, list(v.shape)] for v in layer.weights]] for layer in model.layers],
        "total": int(model.count_params()),
    }
'''

MODELS = ("gemma", "mistral", "qwen", "phi3", "falcon", "opt", "bloom", "gpt_neox", "distil_bert", "roberta",
          "albert", "electra", "deberta_v3", "densenet", "vgg")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_hub_sweep")
    truth = build("k3", BUILD, folder)
    assert set(truth) == set(MODELS)
    return folder, truth


@pytest.mark.parametrize("model", MODELS)
def test_build_agrees_with_keras_hub(sweep, model, cli):
    folder, truth = sweep
    code, out, err = cli("layers", folder / f"{model}.keras", "--build", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["layers"]
    assert [[r["name"], r["class_name"]] for r in rows] == truth[model]["layers"]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    assert {r["name"]: [[f"{r['name']}/{w['name']}", w["shape"]] for w in r["weights"]] for r in rows} == \
        dict((name, vs) for name, vs in truth[model]["variables"])
    code, out, _ = cli("summary", folder / f"{model}.keras", "--build", "--format", "json")
    data = json.loads(out)
    assert data["total_params"] == truth[model]["total"]
    assert not [n for n in data["notes"] if "no dataset" in n or "belong to no variable" in n], data["notes"]
    # Without --build, no index and no class Keras would contradict.
    code, out, _ = cli("layers", folder / f"{model}.keras", "--format", "json")
    classes = dict(truth[model]["layers"])
    light = json.loads(out)["layers"]
    assert all(r["index"] is None for r in light)
    assert all(r["class_name"].startswith("?") or r["class_name"] == classes.get(r["name"]) for r in light)
