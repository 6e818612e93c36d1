"""``archdiff layers MODEL --freeze-until NAME|INDEX``: the recipe, without TensorFlow.

What is frozen follows ``model.layers`` (Keras 3 operations take no index), a
layer inside a nested model freezes into it, the split after freezing adds
up, and ``-o`` writes a copy whose config carries exactly those flags and
nothing else changed. Keras itself runs the snippet and loads the copies in
``test_freeze_keras.py``.
"""
from __future__ import annotations

import json
import zipfile

import h5py
import numpy as np
import pytest
from support import FIXTURES
from test_diff_support import arch as arch_of
from test_diff_support import dense, input_layer, layer, model, tensor

from archdiff import load
from archdiff.errors import TopologyUnknownError, UsageError
from archdiff.read import from_config_document
from archdiff.views.freeze import plan_freeze, write_frozen

K2, K3 = FIXTURES / "keras2", FIXTURES / "keras3"


def with_operation() -> dict:
    """x -> d1 -> (d1 + 1: an operation) -> d2 -> d3: model.layers is [x, d1, d2, d3]."""
    add = layer("Add", "add", ["d1"])
    add["module"] = "keras.src.ops.numpy"
    del add["config"]["trainable"]
    return model([input_layer("x", [4]), dense("d1", 4, "x"), add, dense("d2", 4, "add"), dense("d3", 2, "d2")],
                 ["x"], ["d3"], name="ops")


def test_an_index_freezes_model_layers_before_it_and_operations_take_none(tmp_path):
    arch = arch_of(with_operation(), tmp_path)
    assert [(x.name, x.index) for x in arch.layers] == [("x", 0), ("d1", 1), ("add", None), ("d2", 2), ("d3", 3)]
    plan = plan_freeze(arch, "2")
    assert plan.first_trainable == "d2" and [s.to_dict() for s in plan.steps] == [
        {"model": "", "index": 2, "layers": 4, "first_trainable": "d2"}]
    assert [r.path for r in plan.frozen] == ["d1"] and [r.path for r in plan.trainable] == ["d2", "d3"]
    assert plan_freeze(arch, "d2").frozen == plan.frozen
    assert plan.total_params == 20 + 20 + 10 and plan.trainable_after == 30 and plan.non_trainable_after == 20
    with pytest.raises(UsageError, match="'add' is a Keras 3 operation"):
        plan_freeze(arch, "add")
    everything = plan_freeze(arch, "4")
    assert everything.first_trainable is None and everything.trainable == () and everything.trainable_after == 0
    assert "assert len(model.layers) == 4" in everything.snippet()
    with pytest.raises(UsageError, match="out of range: model.layers has indices 0..3"):
        plan_freeze(arch, "5")


def test_a_layer_inside_a_nested_model_freezes_into_it():
    arch = load(K3 / "nested.keras")
    for spec in ("base/conv2", "conv2"):  # a bare name unique in the model is found inside
        plan = plan_freeze(arch, spec)
        assert [(s.scope, s.index, s.first_trainable) for s in plan.steps] == [("", 1, "base"), ("base", 4, "conv2")]
        assert [r.path for r in plan.frozen] == ["base/conv1", "base/bn1"]
        assert [r.path for r in plan.trainable] == ["base/conv2", "head/head_dense", "head/head_logits", "predictions"]
        assert [r.index_text for r in plan.frozen] == ["1.1", "1.2"]
    # The file froze the whole base; the recipe starts from everything trainable, then freezes.
    assert plan.trainable_before == 217
    assert plan.trainable_after == 584 + 144 + 68 + 5
    assert plan.non_trainable_after == plan.total_params - plan.trainable_after
    code = plan.snippet("keras")
    assert "inner = model.get_layer('base')" in code and "for layer in inner.layers[:4]:" in code
    assert "assert inner.layers[4].name == 'conv2'" in code and code.startswith("import keras\n")
    assert "import tf_keras as keras" in plan.snippet("tf-keras")
    # Freezing a whole nested model freezes what it holds.
    plan = plan_freeze(arch, "head")
    assert {r.path for r in plan.frozen} == {"base/conv1", "base/bn1", "base/conv2"}
    assert {"base", "base/conv1", "base/relu1"} <= plan.frozen_paths


def test_names_that_are_not_layers_get_suggestions_and_ambiguous_names_are_refused():
    arch = load(K3 / "resnet_small.keras")
    with pytest.raises(UsageError, match="no layer has this name.*did you mean conv2_block1_1_conv"):
        plan_freeze(arch, "conv2_block1_1_cnv")
    def inner(name, source):
        doc = model([input_layer("x", [4]), dense("d", 4, "x")], ["x"], ["d"], name=name)
        return {"module": "keras", "class_name": "Functional", "registered_name": "Functional", "name": name,
                "config": {**doc["config"], "name": name}, "inbound_nodes": [{"args": [tensor(source)], "kwargs": {}}]}

    outer = model([input_layer("x", [4]), inner("a", "x"), inner("b", "a"), dense("out", 4, "b")], ["x"], ["out"],
                  name="outer")
    arch = from_config_document(outer, path="o.json", fmt="json")
    with pytest.raises(UsageError, match="several layers have this name: a/d, b/d"):
        plan_freeze(arch, "d")
    assert [(s.scope, s.index) for s in plan_freeze(arch, "b/d").steps] == [("", 2), ("b", 1)]


def test_weights_only_files_have_no_model_layers_to_freeze():
    with pytest.raises(TopologyUnknownError, match="holds no architecture"):
        plan_freeze(load(K3 / "functional.weights.h5"), "1")


def flags(document: dict, parent: str = "") -> dict:
    out = {}
    config = document.get("config", document)
    for entry in config["layers"]:
        name = entry.get("name", entry["config"].get("name"))
        path = f"{parent}/{name}" if parent else name
        if "trainable" in entry["config"]:
            out[path] = entry["config"]["trainable"]
        if isinstance(entry["config"].get("layers"), list):
            out.update(flags(entry["config"], path))
    return out


def test_the_keras_copy_carries_the_flags_and_every_other_member_unchanged(tmp_path):
    src = K3 / "nested.keras"
    before = src.read_bytes()
    out = tmp_path / "frozen.keras"
    arch = load(src)
    plan = plan_freeze(arch, "base/conv2")
    write_frozen(arch, plan, str(out))
    assert src.read_bytes() == before
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(out) as b:
        assert [i.filename for i in a.infolist()] == [i.filename for i in b.infolist()]
        for info in a.infolist():
            if info.filename != "config.json":
                assert a.read(info) == b.read(info.filename)
        got = flags(json.loads(b.read("config.json")))
        old = json.loads(a.read("config.json"))
        new = json.loads(b.read("config.json"))
    assert got == {"base": True, "base/conv1": False, "base/bn1": False, "base/relu1": False, "base/conv2": True,
                   "base/gap": True, "head": True, "head/head_dense": True, "head/head_dropout": True,
                   "head/head_logits": True, "predictions": True}
    # Only trainable flags changed.
    def strip(doc):
        if isinstance(doc, dict):
            return {k: strip(v) for k, v in doc.items() if k != "trainable"}
        if isinstance(doc, list):
            return [strip(v) for v in doc]
        return doc
    assert strip(old) == strip(new)
    # archdiff reads the copy back with those flags.
    again = load(out)
    assert {x.path for x in again.layers if not x.is_model and x.weights and again.effectively_trainable(x) is False} \
        == {"base/conv1", "base/bn1"}


def test_the_h5_copy_rewrites_model_config_only(tmp_path):
    src = K2 / "resnet_small.h5"
    out = tmp_path / "frozen.h5"
    arch = load(src)
    plan = plan_freeze(arch, "conv3_block1_1_conv")
    write_frozen(arch, plan, str(out))
    with h5py.File(src) as a, h5py.File(out) as b:
        assert type(a.attrs["model_config"]) is type(b.attrs["model_config"])
        config = json.loads(b.attrs["model_config"])
        names = []
        a.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        for name in names:
            np.testing.assert_array_equal(a[name][()], b[name][()])
    got = flags(config)
    frozen = {r.path for r in plan.frozen}
    assert {p for p, on in got.items() if not on} == frozen | {
        x.path for x in arch.layers if x.index is not None and x.index < 29 and not x.weights
        and x.class_name != "InputLayer"}
    assert load(out).by_path["conv3_block1_1_conv"].trainable is True
    assert load(out).by_path["conv1_conv"].trainable is False


def test_the_json_copy_and_its_suffix_rules(tmp_path, cli):
    src = K3 / "functional.json"
    arch = load(src)
    plan = plan_freeze(arch, "branch_b")
    out = tmp_path / "frozen.json"
    write_frozen(arch, plan, str(out))
    doc = json.loads(out.read_text())
    assert set(doc) == set(json.loads(src.read_text()))
    assert flags(doc)["shared_dense"] is False and flags(doc)["branch_b"] is True
    with pytest.raises(UsageError, match="does not end with .json"):
        write_frozen(arch, plan, str(tmp_path / "frozen.keras"))
    with pytest.raises(UsageError, match="is the input"):
        write_frozen(arch, plan, str(src))
    code, _, err = cli("layers", K3 / "functional.weights.h5", "--freeze-until", "1", "-o", tmp_path / "x.weights.h5")
    assert code == 2 and "holds no architecture" in err


def test_cli_formats_and_option_rules(cli, tmp_path):
    code, out, err = cli("layers", K3 / "nested.keras", "--freeze-until", "base/conv2", "--format", "json")
    data = json.loads(out)
    assert code == 0 and err == ""
    assert data["first_trainable"] == "base/conv2" and data["output"] is None
    assert [r["path"] for r in data["frozen"]] == ["base/conv1", "base/bn1"]
    assert data["frozen"][0]["indices"] == [1, 1]
    assert data["params"] == {"total": 1057, "trainable_before": 217, "trainable": 801, "non_trainable": 256}
    assert set(data["snippets"]) == {"keras", "tf-keras"}
    code, out, _ = cli("layers", K2 / "nested.h5", "--freeze-until", "2", "--format", "python")
    assert code == 0 and out.startswith("import tf_keras as keras")
    compile(out, "snippet", "exec")
    code, out, _ = cli("layers", K2 / "nested.h5", "--freeze-until", "2", "--format", "python", "--snippet", "keras")
    assert out.startswith("import keras\n")
    code, out, err = cli("layers", K3 / "nested.keras", "--freeze-until", "1", "-o", tmp_path / "f.keras")
    assert code == 0 and "freeze until base" in out and err.startswith("archdiff: wrote ")
    for extra in (["--snippet", "keras"], ["-o", str(tmp_path / "x.keras")], ["--format", "python"]):
        code, _, err = cli("layers", K3 / "nested.keras", *extra)
        assert code == 2 and "--freeze-until" in err
    code, _, err = cli("layers", K3 / "nested.keras", "--freeze-until", "1", "--grep", "conv")
    assert code == 2 and "prints its own list" in err


def test_the_h5_copy_puts_a_nested_models_weights_in_the_order_keras_loads_them(tmp_path):
    # Keras reads a layer's variables from a legacy .h5 as trainable_weights + non_trainable_weights, and for a
    # nested model that order follows its layers' flags: base was saved frozen (all in layer order); with
    # conv2 trainable it loads conv2's first (test_freeze_keras.py loads it in Keras 3 and tf-keras).
    for folder, tail in (("keras3", ""), ("keras2", ":0")):
        src = FIXTURES / folder / "nested.h5"
        arch = load(src)
        plan = plan_freeze(arch, "base/conv2")
        out = tmp_path / f"{folder}.h5"
        write_frozen(arch, plan, str(out))
        with h5py.File(out) as f:
            names = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights/base"].attrs["weight_names"]]
        assert names == [n + tail for n in ("conv2/kernel", "conv2/bias", "conv1/kernel", "conv1/bias", "bn1/gamma",
                                            "bn1/beta", "bn1/moving_mean", "bn1/moving_variance")]
