"""keras-hub task presets (``task.save_to_preset``), with keras-hub as the oracle.

One keras-hub process builds a BERT text classifier, the same classifier on a
3-block BERT with 5 classes, and a GPT-2 causal LM (seeded weights), saves each
as a task preset and with Keras' own ``save_weights`` (one file holding the
whole task) and ``.keras``, and records ``model.layers`` and ``count_params()``.
archdiff reads a task preset as the task: its two weight files must come out,
dataset by dataset and value by value, as the one file Keras writes; a port
into a task preset must load in keras-hub with the right values.
"""
from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
from keras_build import build

pytestmark = pytest.mark.tensorflow

#: Each task of ``TASKS`` (name -> constructor) seeded and saved as a task preset, with Keras' ``save_weights``
#: and as ``.keras``; RESULT records keras-hub's ``task.layers``, its backbone's layers and ``count_params()``.
SAVE_TASKS = r'''
for name, make in TASKS.items():
    if CLEAR_SESSION:  # names as a fresh process building the config gets them
        keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    task = make()
    rng = np.random.default_rng(len(name))
    task.set_weights([rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in task.get_weights()])
    stem = os.path.join(OUT, name)
    task.save_to_preset(stem + "_preset")
    task.save_weights(stem + ".weights.h5")
    task.save(stem + ".keras")
    RESULT[name] = {"layers": [[layer.name, type(layer).__name__] for layer in task.layers],
                    "backbone": task.backbone.name,
                    "backbone_layers": [[layer.name, type(layer).__name__] for layer in task.backbone.layers],
                    "total": int(task.count_params()), "files": sorted(os.listdir(stem + "_preset"))}
'''

BUILD = r'''
import keras_hub
import numpy as np

M = keras_hub.models
def bert(layers):
    return M.BertBackbone(vocabulary_size=50, num_layers=layers, num_heads=2, hidden_dim=8, intermediate_dim=16,
                          max_sequence_length=8)
TASKS = {
    "cls": lambda: M.BertTextClassifier(backbone=bert(2), num_classes=3, preprocessor=None),
    "cls3": lambda: M.BertTextClassifier(backbone=bert(3), num_classes=5, preprocessor=None),
    "lm": lambda: M.GPT2CausalLM(backbone=M.GPT2Backbone(vocabulary_size=50, num_layers=2, num_heads=2,
                                                         hidden_dim=8, intermediate_dim=16, max_sequence_length=8),
                                 preprocessor=None),
}
CLEAR_SESSION = False  # built in one session: the second BERT's backbone is bert_backbone_1
''' + SAVE_TASKS + r'''
keras.utils.set_random_seed(0)
backbone = bert(2)
rng = np.random.default_rng(7)
backbone.set_weights([rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in backbone.get_weights()])
backbone.save_to_preset(os.path.join(OUT, "bert_preset"))
# A GPT-2 backbone (seeded) to port into a 3-block causal LM.
def gpt2(layers):
    return M.GPT2Backbone(vocabulary_size=50, num_layers=layers, num_heads=2, hidden_dim=8, intermediate_dim=16,
                          max_sequence_length=8)
small = gpt2(2)
small.set_weights([rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in small.get_weights()])
small.save_to_preset(os.path.join(OUT, "gpt2_preset"))
M.GPT2CausalLM(backbone=gpt2(3), preprocessor=None).save_to_preset(os.path.join(OUT, "lm3_preset"))
# The BERT with a larger vocabulary (60 ids, not 50), to port into through --adapt slice-pad.
M.BertBackbone(vocabulary_size=60, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
               max_sequence_length=8).save_to_preset(os.path.join(OUT, "bert60_preset"))
'''

#: keras-hub loads a port into the larger vocabulary and compares it with the source, variable by variable.
CHECK_VOCABULARY = r'''
import keras_hub
import numpy as np

source = keras_hub.models.Backbone.from_preset(os.path.join(OUT, "bert_preset"))
target = keras_hub.models.Backbone.from_preset(os.path.join(OUT, "bert60_preset"))
target.load_weights(os.path.join(OUT, "bert60_port.weights.h5"))
mine = {v.path: np.asarray(v) for v in source.weights}
RESULT["equal"] = sum(np.array_equal(np.asarray(v), mine[v.path]) for v in target.weights)
RESULT["variables"] = len(target.weights)
table = np.asarray(target.get_layer("token_embedding").embeddings)
RESULT["rows"] = list(table.shape)
RESULT["old_rows_equal"] = bool(np.array_equal(table[:50], mine["token_embedding/embeddings"]))
RESULT["new_rows_zero"] = bool(not table[50:].any())
'''

#: keras-hub loads archdiff's port (a task preset folder) and says which variables came from where.
CHECK = r'''
import keras_hub
import numpy as np

out = keras_hub.models.TextClassifier.from_preset(os.path.join(OUT, sys.argv[2]))
target = keras_hub.models.TextClassifier.from_preset(os.path.join(OUT, "cls3_preset"))
source_name = sys.argv[3]
if source_name.endswith("_preset") and os.path.exists(os.path.join(OUT, source_name, "task.json")):
    source = keras_hub.models.TextClassifier.from_preset(os.path.join(OUT, source_name)).backbone
else:
    source = keras_hub.models.Backbone.from_preset(os.path.join(OUT, source_name))
mine = {v.path: np.asarray(v) for v in source.weights}
inside = {id(v) for v in out.backbone.weights}
RESULT["from_source"] = RESULT["kept"] = RESULT["wrong"] = 0
for v, t in zip(out.weights, target.weights):
    value = np.asarray(v)
    if id(v) in inside and v.path in mine and mine[v.path].shape == value.shape:
        RESULT["from_source" if np.array_equal(value, mine[v.path]) else "wrong"] += 1
    else:
        RESULT["kept" if np.array_equal(value, np.asarray(t)) else "wrong"] += 1
'''

TASKS = ("cls", "cls3", "lm")


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras_hub_tasks")
    truth = build("k3", BUILD, folder)
    assert set(truth) == set(TASKS)
    return folder, truth


def _datasets(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None)
    return out


def _digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("task", TASKS)
def test_the_two_weight_files_are_the_one_file_keras_writes(hub, task):
    from archdiff.store.preset import TaskPresetStore

    folder, truth = hub
    keras_file = _datasets(folder / f"{task}.weights.h5")
    with TaskPresetStore(folder / f"{task}_preset") as store:
        listed = {v.location.strip("/"): v for v in store.variables()}
        # Every store lists the layers' variables; the optimizer's state (Keras saves it too) is read by location.
        assert set(listed) == {k for k in keras_file if not k.startswith("optimizer/")}
        for location, value in keras_file.items():
            if location in listed:
                assert listed[location].shape == value.shape
            elif not store.has(location):  # keras-hub keeps no optimizer state for a task without task weights
                assert task == "lm" and location.startswith("optimizer/"), location
                continue
            assert np.array_equal(store.read(location), value), location
    # The folder really holds two weight files where the task has a head of its own (the LM ties its head).
    assert ("task.weights.h5" in truth[task]["files"]) == (task != "lm")


@pytest.mark.parametrize("task", TASKS)
def test_a_task_preset_is_identical_to_keras_own_files_of_the_task(hub, task, cli):
    folder, truth = hub
    for other in (f"{task}.keras", f"{task}.weights.h5"):
        code, out, err = cli("diff", folder / other, folder / f"{task}_preset", "--format", "json")
        assert code == 0, out + err
        report = json.loads(out)
        assert report["classification"] == "identical"
        assert report["values"]["summary"]["variables_equal"] == len(_datasets(folder / f"{task}.weights.h5")) - 2
    code, out, err = cli("summary", folder / f"{task}_preset", "--format", "json")
    assert code == 0, err
    assert json.loads(out)["total_params"] == truth[task]["total"]


@pytest.mark.parametrize("task", TASKS)
def test_build_gives_keras_hubs_task_layers(hub, task, cli):
    folder, truth = hub
    code, out, err = cli("layers", "--build", folder / f"{task}_preset", "--format", "json")
    assert code == 0, err
    table = json.loads(out)["layers"]
    rows = [r for r in table if r["depth"] == 0]
    assert [[r["name"], r["class_name"]] for r in rows] == truth[task]["layers"]
    assert [r["index"] for r in rows] == list(range(len(rows)))
    # The backbone is expanded one level down, in Keras' order of task.backbone.layers.
    backbone = next(r["name"] for r in rows if [r["name"], r["class_name"]] in truth[task]["layers"]
                    and r["class_name"].endswith("Backbone"))
    inner = [r for r in table if r["depth"] == 1 and r["path"].startswith(backbone + "/")]
    assert [[r["name"], r["class_name"]] for r in inner] == truth[task]["backbone_layers"]
    # A layer in two places (the LM's tied token embedding) is counted once, as count_params counts it.
    code, out, err = cli("summary", "--build", folder / f"{task}_preset", "--format", "json")
    assert code == 0 and json.loads(out)["total_params"] == truth[task]["total"], err
    code, out, err = cli("diff", "--build", folder / f"{task}.keras", folder / f"{task}_preset", "--format", "json")
    assert code == 0 and json.loads(out)["classification"] == "identical", out + err


def test_a_diff_of_two_tasks_names_the_backbone_and_head_arguments(hub, cli):
    folder, _ = hub
    code, out, _ = cli("diff", folder / "cls_preset", folder / "cls3_preset", "--format", "json")
    assert code == 1
    report = json.loads(out)
    changes = {c["path"]: (c["old"], c["new"]) for c in report["model_changes"]
               if c["kind"] == "constructor"}
    pairs = {p["a"]: p for p in report["matched"]}
    # The renamed backbone pairs by its contents, and its layers by name inside it.
    assert pairs["bert_backbone"]["b"] == "bert_backbone_1" and pairs["bert_backbone"]["how"] == "contents"
    assert pairs["bert_backbone/transformer_layer_1"]["how"] == "parent"
    assert not report["removed"] and [x["path"] for x in report["added"]] == ["bert_backbone_1/transformer_layer_2"]
    # Built in one process, the second backbone got Keras' next auto name: a true change too.
    assert changes == {"model.constructor.backbone.config.num_layers": (2, 3),
                       "model.constructor.backbone.config.name": ("bert_backbone", "bert_backbone_1"),
                       "model.constructor.num_classes": (3, 5)}


@pytest.mark.parametrize("source", ["cls_preset", "bert_preset"])
def test_keras_hub_loads_a_port_into_a_task_preset(hub, source, cli, tmp_path):
    folder, _ = hub
    target = folder / "cls3_preset"
    before = _digest(target)
    out = folder / f"port_from_{source}"
    # The second backbone built in one process is 'bert_backbone_1': --match auto pairs a task's backbone with it
    # by its layers (a nested model renamed in place), and finds a flat backbone nested there.
    code, text, err = cli("transfer", folder / source, target, "-o", out, "--match", "auto", "--skip-mismatch")
    assert code == 0, text + err
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in target.iterdir())
    assert _digest(target) == before  # the target is never changed
    found = build("k3", CHECK.replace("sys.argv[2]", repr(out.name)).replace("sys.argv[3]", repr(source)), folder)
    assert found["wrong"] == 0
    # Two blocks, the embeddings and the pooler come from the source; the third block and the head are kept.
    assert found["from_source"] == 39 and found["kept"] == 16 + 2


def test_a_port_into_a_task_preset_refuses_an_existing_output(hub, cli, tmp_path):
    folder, _ = hub
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, text, err = cli("transfer", folder / "cls_preset", folder / "cls3_preset", "-o", out, "--skip-mismatch",
                          "--map", "bert_backbone=bert_backbone_1")
    assert code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_built_port_between_tasks_writes_what_the_light_one_writes(hub, cli):
    folder, _ = hub
    outs = []
    for build_flag in ([], ["--build"]):
        out = folder / f"port_tasks{'_built' if build_flag else ''}"
        code, text, err = cli("transfer", *build_flag, folder / "cls_preset", folder / "cls3_preset", "-o", out,
                              "--map", "bert_backbone=bert_backbone_1", "--skip-mismatch")
        assert code == 0, text + err
        outs.append(out)
    for name in ("model.weights.h5", "task.weights.h5"):
        light, built = _datasets(outs[0] / name), _datasets(outs[1] / name)
        assert set(light) == set(built) and all(np.array_equal(light[k], built[k]) for k in light)


def _validate_port(folder, out, *more):
    from test_validate_backends import archdiff  # a fresh process: Keras picks its backend once

    return archdiff("validate", folder / "cls3_preset", "--weights", out, "--source", folder / "bert_preset",
                    "--match", "auto", "--backend", "jax", "--budget", "quick", *more)


@pytest.mark.jax
def test_validate_proves_a_backbone_ported_into_a_task_and_catches_two_swapped_variables(hub, cli):
    import shutil

    folder, _ = hub
    out = folder / "port_for_validate"
    code, text, err = cli("transfer", folder / "bert_preset", folder / "cls3_preset", "-o", out, "--match", "auto",
                          "--skip-mismatch")
    assert code == 0, text + err
    code, text, err = _validate_port(folder, out)
    # Every check runs: the outputs are compared inside the task's nested backbone, built as archdiff built the task.
    assert code == 0, text + err
    assert "[PASS   ] 1. rebuild" in text
    # The backbone's 39 variables (two blocks, embeddings, pooler) arrived bit for bit, read back through Keras.
    assert "[PASS   ] 2. weights arrived  39 variables in 7 layers equal the source's" in text
    assert "[PASS   ] 3. outputs" in text and "inside the nested 'bert_backbone_1'" in text
    assert "[PASS   ] 4. fine-tune" in text
    # The same port with a block's query and value kernels swapped (same shape) fails. (Query and key kernels
    # swapped would fail arrival only: at these small weights keras-hub's own outputs move by 3e-8.)
    bad = folder / "port_swapped"
    shutil.copytree(out, bad)
    block = "layers/transformer_encoder/_self_attention_layer"
    with h5py.File(bad / "model.weights.h5", "r+") as f:
        q, k = f[f"{block}/query_dense/vars/0"], f[f"{block}/value_dense/vars/0"]
        assert q.shape == k.shape and not np.array_equal(q[()], k[()])  # a swap that changes something
        q_value = q[()]
        q[...] = k[()]
        k[...] = q_value
    code, text, err = _validate_port(folder, bad, "--no-finetune")
    assert code == 1, text + err
    assert "[FAIL   ] 2. weights arrived" in text and "[FAIL   ] 3. outputs" in text


@pytest.mark.jax
def test_validate_fine_tunes_a_causal_lm_port_on_a_next_token_task(hub, cli):
    folder, _ = hub
    out = folder / "lm_port"
    code, text, err = cli("transfer", folder / "gpt2_preset", folder / "lm3_preset", "-o", out, "--match", "auto")
    assert code == 0, text + err
    from test_validate_backends import archdiff

    code, text, err = archdiff("validate", folder / "lm3_preset", "--weights", out, "--source", folder / "gpt2_preset",
                               "--match", "auto", "--backend", "jax", "--budget", "quick", "--format", "json")
    assert code == 0, text + err
    report = json.loads(text)
    jsonschema = pytest.importorskip("jsonschema")
    from test_validate_backends import ROOT

    jsonschema.validate(report, json.loads((ROOT / "archdiff" / "schemas" / "validate.schema.json").read_text()))
    assert report["checks"] == {"rebuild": "pass", "weights_arrived": "pass", "outputs": "pass", "finetune": "pass"}
    data = report["finetune"]["data"]
    assert data["kind"] == "tokens" and data["vocabulary"] == 50 and data["token_input"] == "token_ids"
    stage = report["finetune"]["stages"][0]
    # The transferred backbone (embeddings, two blocks, final norm) is frozen; the new third block trains.
    assert stage["trainable_layers"] == [p for p in stage["trainable_layers"] if p.endswith("transformer_layer_2")]
    assert stage["trainable_layers"] and stage["loss_falling"] and not stage["frozen_changed"]


def test_a_larger_vocabulary_takes_the_port_through_slice_pad_and_keras_hub_loads_it(hub, cli):
    folder, _ = hub
    out = folder / "bert60_port.weights.h5"
    code, text, err = cli("transfer", folder / "bert_preset", folder / "bert60_preset", "-o", out)
    assert code == 2 and "token_embedding" in err  # refused without the adapter: the table's shapes differ
    code, text, err = cli("transfer", folder / "bert_preset", folder / "bert60_preset", "-o", out,
                          "--adapt", "slice-pad")
    assert code == 0, text + err
    assert "slice-pad: axis 0: 50 -> 60, [50:60] set to 0" in text
    found = build("k3", CHECK_VOCABULARY, folder)
    # Every variable but the token table equals the source's; the table keeps the 50 old ids, the 10 new are 0.
    assert found["rows"] == [60, 8] and found["old_rows_equal"] and found["new_rows_zero"]
    assert found["equal"] == found["variables"] - 1


@pytest.mark.parametrize("member", ["task.json", "task.weights.h5", "model.weights.h5"])
@pytest.mark.parametrize("kind", ["fifo", "device link", "folder"])
def test_a_task_preset_member_that_is_not_a_regular_file_is_refused_not_skipped(hub, cli, tmp_path, member, kind):
    import os
    import shutil

    folder, _ = hub
    preset = tmp_path / "preset"
    shutil.copytree(folder / "cls_preset", preset)
    (preset / member).unlink()
    if kind == "fifo":
        os.mkfifo(preset / member)
    elif kind == "device link":
        (preset / member).symlink_to("/dev/zero")
    else:
        (preset / member).mkdir()
    code, out, err = cli("layers", preset)
    # Read as absent, the task (or its head, or its backbone) would silently drop out of every answer.
    assert code == 2 and out == "" and f"'{member}' in the preset is not a regular file" in err
    assert len(err.strip().splitlines()) == 1
