"""keras-hub backbones, read without Keras: no figure Keras would contradict, constructor arguments shown and diffed.

The files and keras-hub's own answers (``model.layers``, ``count_params()``,
``get_config()``) come from ``fixtures/make_hub_fixtures.py``, which built each
backbone from its constructor with keras-hub 0.32 (``fixtures/keras_hub/truth.json``).
A keras-hub config holds constructor arguments, not layers, so without building
the model archdiff cannot know Keras' layer order or classes: it must say
unknown there, and state what the file does determine.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import archdiff
from archdiff.diff import diff

HUB = Path(__file__).resolve().parents[1] / "fixtures" / "keras_hub"
TRUTH = json.loads((HUB / "truth.json").read_text())["models"]
MODELS = sorted(TRUTH)
WITH_WEIGHTS = ("keras", "weights.h5")


def constructor_arguments(name: str) -> dict:
    """keras-hub's get_config(), the model's own name left out (it is reported as the name)."""
    config = dict(TRUTH[name]["config"])
    config.pop("name")
    return config


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("ext", WITH_WEIGHTS)
def test_no_index_or_class_keras_would_contradict(model, ext, cli):
    code, out, err = cli("layers", HUB / f"{model}.{ext}", "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["layers"]
    keras_layers = dict(TRUTH[model]["layers"])
    assert sorted(r["name"] for r in rows) == sorted(keras_layers)  # the names, from the weights, are all there
    for r in rows:
        assert r["index"] is None, r  # Keras' order is not in the file
        # a class is Keras' own, or marked as a guess from the group key (text: "?dense")
        assert r["class_name"] == keras_layers[r["name"]] or r["class_name"].startswith("?"), r


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("ext", WITH_WEIGHTS)
def test_the_total_is_keras_count_params_and_the_split_unknown(model, ext, cli):
    code, out, _ = cli("summary", HUB / f"{model}.{ext}", "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert data["total_params"] == TRUTH[model]["total_params"]
    # which layers are frozen is not recorded in a constructor config's weights: unknown, not a guess
    assert data["trainable_params"] is None and data["non_trainable_params"] is None
    assert data["layers_total"] == len(TRUTH[model]["layers"])


@pytest.mark.parametrize("model", MODELS)
def test_a_config_alone_lists_no_layers_and_gives_the_constructor(model, cli):
    code, out, _ = cli("layers", HUB / f"{model}.json", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["layers"] == []
    assert data["constructor"]["class_name"] == TRUTH[model]["class_name"]
    assert data["constructor"]["module"].startswith("keras_hub.src.models.")
    assert data["constructor"]["arguments"] == constructor_arguments(model)
    code, text, _ = cli("layers", HUB / f"{model}.json")
    assert "index" not in text.splitlines()[0], "no empty table"
    for key, value in constructor_arguments(model).items():
        if not isinstance(value, dict):
            assert f"  {key}: {json.dumps(value, separators=(',', ':'))}" in text.splitlines()
    assert "no layer is known" in text
    code, out, _ = cli("summary", HUB / f"{model}.json", "--format", "json")
    data = json.loads(out)
    assert data["total_params"] is None and data["layers_total"] is None  # unknown, not 0
    assert data["constructor"]["arguments"] == constructor_arguments(model)


def changed_arguments(a: str, b: str) -> dict:
    ca, cb = constructor_arguments(a), constructor_arguments(b)
    return {k: (ca.get(k), cb.get(k)) for k in sorted(set(ca) | set(cb)) if ca.get(k) != cb.get(k)}


@pytest.mark.parametrize("ext", ["json", "keras", "weights.h5"])
def test_a_diff_names_the_constructor_argument_that_changed(ext, cli):
    expected = changed_arguments("bert2", "bert3")
    assert list(expected) == ["num_layers"]  # the fixtures differ there only
    code, out, _ = cli("diff", HUB / f"bert2.{ext}", HUB / f"bert3.{ext}", "--format", "json", "--topology-only")
    data = json.loads(out)
    assert code == 1
    assert data["classification"] == "topology-changing"
    if ext == "weights.h5":  # a weights-only file records no config, so no constructor
        assert not [c for c in data["model_changes"] if c["kind"] == "constructor"]
    else:
        got = {c["path"].removeprefix("model.constructor."): (c["old"], c["new"])
               for c in data["model_changes"] if c["kind"] == "constructor"}
        assert got == expected
    if ext == "json":  # nothing lists the layers: unknown, not 0 -> 0
        assert data["a"]["layers"] is None and data["params"]["a"] is None
        assert data["summary"]["added"] == 0
    else:  # the added block, by name, from the weights
        layers2, layers3 = (dict(TRUTH[m]["layers"]) for m in ("bert2", "bert3"))
        assert [e["path"] for e in data["added"]] == sorted(set(layers3) - set(layers2))
        assert data["params"]["a"] == TRUTH["bert2"]["total_params"]
        assert data["params"]["b"] == TRUTH["bert3"]["total_params"]


def test_the_text_and_markdown_reports_name_the_argument(cli):
    code, text, _ = cli("diff", HUB / "bert2.json", HUB / "bert3.json")
    assert code == 1
    assert "  model    constructor num_layers: 2 -> 3" in text.splitlines()
    assert "params   unknown" in text and "0 -> 0" not in text
    code, md, _ = cli("diff", HUB / "bert2.json", HUB / "bert3.json", "--format", "markdown")
    assert "| model.constructor.num\\_layers | `2` | `3` | topology-changing |" in md


def test_one_model_against_itself_is_identical_in_every_format(cli):
    for a, b in (("json", "json"), ("keras", "keras"), ("keras", "json"), ("keras", "weights.h5")):
        code, out, err = cli("diff", HUB / f"gpt2.{a}", HUB / f"gpt2.{b}", "--format", "json")
        assert (code, json.loads(out)["classification"]) == (0, "identical"), (a, b, err)


def test_two_different_backbones_differ_in_class_and_arguments():
    d = diff(archdiff.load(HUB / "bert2.json"), archdiff.load(HUB / "gpt2.json"))
    assert d.classification == "topology-changing"
    got = {c.path.removeprefix("model.constructor.") for c in d.model_changes if c.kind == "constructor"}
    assert got == set(changed_arguments("bert2", "gpt2"))
    assert any(c.path == "model.class_name" for c in d.model_changes)


def test_textconv_shows_the_constructor_arguments(cli):
    code, out, _ = cli("textconv", HUB / "bert3.json")
    assert code == 0
    assert "constructor num_layers: 3" in out.splitlines()


def test_a_transfer_between_backbones_copies_the_shared_blocks_bitwise(tmp_path, cli):
    """bert2's weights into bert3: every layer bert2 has arrives bit for bit; transformer_layer_2 keeps bert3's."""
    out = tmp_path / "ported.weights.h5"
    code, _, err = cli("transfer", HUB / "bert2.weights.h5", HUB / "bert3.weights.h5", "-o", out, "--no-progress")
    assert code in (0, 1), err

    def datasets(path) -> dict:
        """Every variable by its top-level layer's real name (Keras records it in ``vars.attrs["name"]``;
        the group key is the class and order: ``layers/transformer_encoder_2``) and its path below it."""
        found = {}
        with h5py.File(path, "r") as f:
            for key, group in f["layers"].items():
                layer = group["vars"].attrs["name"]
                group.visititems(lambda name, obj: found.__setitem__(f"{layer}/{name}", obj[()])
                                 if isinstance(obj, h5py.Dataset) else None)
        return found

    source, target, ported = datasets(HUB / "bert2.weights.h5"), datasets(HUB / "bert3.weights.h5"), datasets(out)
    assert set(ported) == set(target)
    shared = [k for k in target if k in source]
    assert shared and any("transformer_layer_1" in k for k in shared)
    for key in shared:
        assert ported[key].dtype == source[key].dtype and np.array_equal(ported[key], source[key]), key
    for key in (k for k in target if "transformer_layer_2" in k):
        assert np.array_equal(ported[key], target[key]), key


# -- keras-hub presets (save_to_preset: config.json, metadata.json, model.weights.h5) -------------------
@pytest.mark.parametrize("model", ["bert2", "bert3"])
def test_a_preset_folder_reads_as_its_keras_file_does(model, cli):
    preset = HUB / f"{model}_preset"
    code, out, err = cli("summary", preset, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["total_params"] == TRUTH[model]["total_params"]
    assert data["constructor"]["arguments"] == constructor_arguments(model)
    code, out, _ = cli("layers", preset, "--format", "json")
    assert sorted(r["name"] for r in json.loads(out)["layers"]) == sorted(dict(TRUTH[model]["layers"]))
    code, out, err = cli("diff", preset, HUB / f"{model}.keras", "--format", "json")
    assert (code, json.loads(out)["classification"]) == (0, "identical"), err


def test_two_presets_diff_and_port_like_their_files(tmp_path, cli):
    code, out, _ = cli("diff", HUB / "bert2_preset", HUB / "bert3_preset", "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["a"]["path"] == str(HUB / "bert2_preset")
    assert {c["path"] for c in data["model_changes"] if c["kind"] == "constructor"} == {"model.constructor.num_layers"}
    assert [e["path"] for e in data["added"]] == ["transformer_layer_2"]
    out_path = tmp_path / "model.weights.h5"
    code, _, err = cli("transfer", HUB / "bert2_preset", HUB / "bert3_preset", "-o", out_path, "--no-progress")
    assert code == 0, err
    # the same bytes arrive as from the .weights.h5 files (checked against h5py above)
    ref = tmp_path / "ref.weights.h5"
    cli("transfer", HUB / "bert2.weights.h5", HUB / "bert3.weights.h5", "-o", ref, "--no-progress")
    with h5py.File(out_path, "r") as a, h5py.File(ref, "r") as b:
        names: list = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert names and all(np.array_equal(a[n][()], b[n][()]) for n in names)


def test_a_preset_checks_keras_count_and_refuses_a_task_json_without_a_backbone(tmp_path, cli):
    import shutil

    preset = tmp_path / "bert_preset"
    shutil.copytree(HUB / "bert2_preset", preset)
    meta = json.loads((preset / "metadata.json").read_text())
    assert meta["parameter_count"] == TRUTH["bert2"]["total_params"]  # keras-hub's own count
    meta["parameter_count"] += 1
    (preset / "metadata.json").write_text(json.dumps(meta))
    code, out, _ = cli("summary", preset, "--format", "json")
    notes = json.loads(out)["notes"]
    assert any(f"says {TRUTH['bert2']['total_params'] + 1:,} parameters" in n for n in notes)
    # A task.json is the task on this backbone: one that names no backbone is refused, not read as the backbone.
    (preset / "task.json").write_text("{}")
    code, out, err = cli("summary", preset, "--format", "json")
    assert code == 2 and out == "" and "task.json names no backbone class" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("layers", tmp_path)
    assert code == 2 and "directory" in err and len(err.strip().splitlines()) == 1
