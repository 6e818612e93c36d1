"""Held back from the task tests' three: seven more keras-hub tasks, each saved as a task preset, against keras-hub.

One keras-hub process builds each task at a tiny size on a tiny backbone (seeded; causal LMs whose head is
tied to the token embedding, text classifiers with heads of their own, image classifiers), saves it with
``save_to_preset``, Keras' ``save_weights`` and ``.keras``, and records ``task.layers``,
``task.backbone.layers`` and ``count_params()``. Each build starts from a cleared Keras session, so that
auto-generated names are what a fresh process building the config gets (``--build`` builds in one). archdiff
must read each preset as keras-hub's own one-file layout, find it identical to the task's ``.keras``, and
with ``--build`` give keras-hub's layers on both levels and its totals.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from keras_build import build
from test_keras_hub_task import SAVE_TASKS, _datasets

pytestmark = pytest.mark.tensorflow

BUILD = r'''
import keras_hub
import numpy as np

M = keras_hub.models
dec = dict(vocabulary_size=50, num_layers=2, hidden_dim=8, intermediate_dim=16)
gqa = dict(num_query_heads=2, num_key_value_heads=1, **dec)
enc = dict(num_heads=2, max_sequence_length=8, **dec)
TASKS = {
    "gemma_lm": lambda: M.GemmaCausalLM(backbone=M.GemmaBackbone(head_dim=4, **gqa), preprocessor=None),
    "mistral_lm": lambda: M.MistralCausalLM(backbone=M.MistralBackbone(**gqa), preprocessor=None),
    "opt_lm": lambda: M.OPTCausalLM(backbone=M.OPTBackbone(**enc), preprocessor=None),
    "distil_bert_cls": lambda: M.DistilBertTextClassifier(backbone=M.DistilBertBackbone(**enc), num_classes=4,
                                                          preprocessor=None),
    "roberta_cls": lambda: M.RobertaTextClassifier(backbone=M.RobertaBackbone(**enc), num_classes=2,
                                                   preprocessor=None),
    "resnet_img": lambda: M.ResNetImageClassifier(
        backbone=M.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                                  stackwise_num_filters=[64, 64], stackwise_num_blocks=[1, 1],
                                  stackwise_num_strides=[1, 2], block_type="basic_block", image_shape=(16, 16, 3)),
        num_classes=3, preprocessor=None),
    "vit_img": lambda: M.ViTImageClassifier(
        backbone=M.ViTBackbone(image_shape=(8, 8, 3), patch_size=4, num_layers=2, num_heads=2, hidden_dim=8,
                               mlp_dim=16), num_classes=3, preprocessor=None),
}
CLEAR_SESSION = True
''' + SAVE_TASKS

TASKS = ("gemma_lm", "mistral_lm", "opt_lm", "distil_bert_cls", "roberta_cls", "resnet_img", "vit_img")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_hub_task_sweep")
    truth = build("k3", BUILD, folder)
    assert set(truth) == set(TASKS)
    return folder, truth


def _layer_datasets(path) -> dict:
    """Every dataset of a Keras weights file but the optimizer's (which no store lists as a layer's)."""
    return {k: v for k, v in _datasets(path).items() if not k.startswith("optimizer/")}


@pytest.mark.parametrize("task", TASKS)
def test_a_held_back_task_preset_reads_as_keras_hubs_own_files(sweep, task, cli):
    from archdiff.store.preset import TaskPresetStore

    folder, truth = sweep
    keras_file = _layer_datasets(folder / f"{task}.weights.h5")
    with TaskPresetStore(folder / f"{task}_preset") as store:
        listed = {v.location.strip("/") for v in store.variables()}
        assert listed == set(keras_file)
        assert all(np.array_equal(store.read(k), v) for k, v in keras_file.items())
    code, out, err = cli("diff", folder / f"{task}.keras", folder / f"{task}_preset", "--format", "json")
    assert code == 0 and json.loads(out)["classification"] == "identical", out + err
    code, out, err = cli("summary", folder / f"{task}_preset", "--format", "json")
    assert code == 0 and json.loads(out)["total_params"] == truth[task]["total"], err


@pytest.mark.parametrize("task", TASKS)
def test_a_held_back_task_built_gives_keras_hubs_layers_on_both_levels_and_its_total(sweep, task, cli):
    folder, truth = sweep
    code, out, err = cli("layers", "--build", folder / f"{task}_preset", "--format", "json")
    assert code == 0, err
    table = json.loads(out)["layers"]
    assert [[r["name"], r["class_name"]] for r in table if r["depth"] == 0] == truth[task]["layers"]
    inner = [[r["name"], r["class_name"]] for r in table
             if r["depth"] == 1 and r["path"].startswith(truth[task]["backbone"] + "/")]
    assert inner == truth[task]["backbone_layers"]
    code, out, err = cli("summary", "--build", folder / f"{task}_preset", "--format", "json")
    assert code == 0 and json.loads(out)["total_params"] == truth[task]["total"], err
    code, out, err = cli("diff", "--build", folder / f"{task}.keras", folder / f"{task}_preset", "--format", "json")
    assert code == 0 and json.loads(out)["classification"] == "identical", out + err
