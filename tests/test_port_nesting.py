"""Nested <-> flat: the matcher finds a model's layers under a prefix in the other, both ways, with evidence.

The models are plain Keras 3 configs (no Keras needed): a small base, the same
base nested in a new model as the Keras transfer-learning guide does
(``inputs -> base -> pooling -> Dense``), under its own name, under another
name, and two levels deep. The diff reports "nested as ..." with the inner
diff; ``--map`` rules work in ``diff`` as in ``transfer``. Transfer through a
nesting is tested against Keras in ``test_port_keras.py``.
"""
from __future__ import annotations

import copy
import json

import pytest
from test_diff_support import dense, input_layer, layer, model, tensor

from archdiff.diff import DiffOptions, diff
from archdiff.diff.matching import find_nestings, match_layers, parse_map_rule
from archdiff.diff.render import render
from archdiff.read import from_config_document


def cfg(doc: dict, name: str = "m.json"):
    return from_config_document(doc, path=name, fmt="json")


def conv(name: str, filters: int, source: str) -> dict:
    return layer("Conv2D", name, [source], filters=filters, kernel_size=[3, 3], strides=[1, 1], padding="valid",
                 activation="linear", use_bias=True)


def base(name: str = "xception", prefix: str = "block", changed: dict | None = None) -> dict:
    """Input -> 4 convolutions -> a Dense head, named like Keras applications."""
    changed = changed or {}
    layers = [input_layer("input_layer", [32, 32, 3])]
    prev = "input_layer"
    for i, filters in enumerate((8, 16, 16, 32), 1):
        lname = f"{prefix}{i}_conv1"
        layers.append(conv(lname, changed.get(lname, filters), prev))
        prev = lname
    return model(layers, ["input_layer"], [prev], name=name)


def nested_entry(inner: dict, name: str, source: str) -> dict:
    return {"module": "keras", "class_name": "Functional", "registered_name": "Functional", "name": name,
            "config": {**inner["config"], "name": name},
            "inbound_nodes": [{"args": [tensor(source)], "kwargs": {"training": False}}]}


def guide(inner: dict, name: str = "xception", head: str = "dense") -> dict:
    """The transfer-learning guide's model: inputs -> base(training=False) -> GAP -> Dropout -> Dense(1)."""
    layers = [input_layer("input_layer_2", [32, 32, 3]), nested_entry(inner, name, "input_layer_2"),
              layer("GlobalAveragePooling2D", "global_average_pooling2d", [name], data_format="channels_last",
                    keepdims=False),
              layer("Dropout", "dropout", ["global_average_pooling2d"], rate=0.2, seed=None, noise_shape=None),
              dense(head, 1, "dropout")]
    return model(layers, ["input_layer_2"], [head], name="functional")


def test_flat_base_is_found_nested_in_the_guides_model():
    flat, nested = cfg(base()), cfg(guide(base()))
    m = match_layers(flat, nested)
    (n,) = m.nestings
    assert (n.a, n.b, n.matched, n.a_layers, n.b_layers) == ("", "xception", 4, 4, 4)
    assert n.rule == "re:^=xception/"
    assert any("A's model name ('xception')" in e for e in n.evidence)
    for i in range(1, 5):
        pair = m.by_a[f"block{i}_conv1"]
        assert (pair.b, pair.how) == (f"xception/block{i}_conv1", "nesting") and pair.evidence
    assert m.only_a == ()
    # The wrapper's own layers are B's only.
    assert set(m.only_b) == {"input_layer_2", "xception", "global_average_pooling2d", "dropout", "dense"}


def test_the_diff_reports_nested_as_and_the_inner_diff_only():
    changed = base(changed={"block3_conv1": 24})
    d = diff(cfg(base()), cfg(guide(changed)))
    assert [n.b for n in d.matching.nestings] == ["xception"]
    assert {e.path for e in d.removed} == set()
    assert {e.path for e in d.added} == {"input_layer_2", "xception", "global_average_pooling2d", "dropout",
                                         "dense"}
    # Nested pairs with their own names are not renames; the one changed layer is the inner diff.
    assert [m.b for m in d.changed] == ["xception/block3_conv1"]
    assert all(not m.renamed for m in d.matched if m.how == "nesting")
    text = render(d, "text")
    assert "nested   A is nested in B as 'xception'" in text
    assert "+ xception (Functional)" in text and "(holds A's layers: nested)" in text
    assert "~ xception/block3_conv1 (Conv2D)" in text and "filters: 16 -> 24" in text
    assert "unchanged layers" in text
    md = render(d, "markdown")
    assert "**Nested:** A is nested in B as 'xception'" in md
    data = json.loads(render(d, "json"))
    assert data["nesting"][0]["b"] == "xception" and data["nesting"][0]["rule"] == "re:^=xception/"


def test_nested_into_flat_the_other_way_round():
    d = diff(cfg(guide(base())), cfg(base()))
    (n,) = d.matching.nestings
    assert (n.a, n.b) == ("xception", "")
    assert n.describe() == "A's nested model 'xception' is B itself (not nested)"
    assert n.rule == "re:^xception/="
    assert {m.a for m in d.matched if m.how == "nesting"} == {f"xception/block{i}_conv1" for i in range(1, 5)} | {
        "xception/input_layer"}
    assert d.added == ()


def test_nested_under_another_name_and_two_levels_deep():
    flat = cfg(base())
    other = cfg(guide(base(), name="backbone"))
    (n,) = match_layers(flat, other).nestings
    assert n.b == "backbone"
    assert any("under another name" in e and "'xception'" in e and "'backbone'" in e for e in n.evidence)
    # outer(inputs -> wrapper(inputs -> xception -> ...) -> Dense): the base sits at wrapper/xception.
    wrapper = guide(base())
    deep_doc = model([input_layer("image", [32, 32, 3]), nested_entry(wrapper, "wrapper", "image"),
                      dense("logits", 2, "wrapper")], ["image"], ["logits"], name="outer")
    deep = cfg(deep_doc)
    m = match_layers(flat, deep)
    assert [(n.a, n.b) for n in m.nestings] == [("", "wrapper/xception")]
    assert any("2 levels deep" in e for e in m.nestings[0].evidence)
    assert m.by_a["block1_conv1"].b == "wrapper/xception/block1_conv1"
    # The guide's model wrapped once more: the outermost explanation is the one reported, and every
    # layer that keeps its name under the new prefix is its pair (auto-named inputs included).
    m = match_layers(cfg(guide(base())), deep)
    assert [(n.a, n.b) for n in m.nestings] == [("", "wrapper")]
    assert m.by_a["xception/block2_conv1"].b == "wrapper/xception/block2_conv1"
    assert {p.how for p in m.pairs} == {"nesting"}


def test_no_nesting_is_claimed_without_the_evidence():
    # Same model on both sides: nothing moves.
    assert find_nestings(cfg(guide(base())), cfg(guide(base()))) == ()
    # Different layer names: nothing in common.
    assert find_nestings(cfg(base()), cfg(guide(base(prefix="stage")))) == ()
    # One shared name is not a nesting.
    one = model([input_layer("input_layer", [32, 32, 3]), conv("block1_conv1", 8, "input_layer"),
                 conv("other", 8, "block1_conv1")], ["input_layer"], ["other"], name="m")
    assert find_nestings(cfg(one), cfg(guide(base()))) == ()
    # The same names in another class are not the same layers.
    doc = copy.deepcopy(guide(base()))
    for entry in doc["config"]["layers"][1]["config"]["layers"][1:]:
        entry["class_name"] = "DepthwiseConv2D"
    assert find_nestings(cfg(base()), cfg(doc)) == ()


def test_a_top_level_layer_of_the_same_name_stays_at_the_top():
    """A flat base with a head 'predictions' into a nested base without it and a new top-level 'predictions'."""
    flat_doc = base()
    flat_doc["config"]["layers"].append(dense("predictions", 10, "block4_conv1"))
    flat_doc["config"]["output_layers"] = ["predictions", 0, 0]
    m = match_layers(cfg(flat_doc), cfg(guide(base(), head="predictions")))
    assert m.by_a["predictions"].b == "predictions" and m.by_a["predictions"].how == "name"
    assert m.by_a["block4_conv1"].b == "xception/block4_conv1"


def test_map_rules_work_in_diff():
    a, b = cfg(base()), cfg(guide(base()))
    options = DiffOptions(maps=(parse_map_rule("re:^=xception/"),), detect_renames=False)
    d = diff(a, b, options)
    pairs = {m.a: (m.b, m.how) for m in d.matched}
    assert pairs["block1_conv1"] == ("xception/block1_conv1", "regex")
    assert d.matched[1].evidence == ("--map 're:^=xception/'",)
    assert d.to_dict()["options"]["maps"] == [{"rule": "re:^=xception/", "origin": "--map"}]
    # Exact rules rename a nested model and what it holds.
    d = diff(cfg(guide(base())), cfg(guide(base(), name="backbone")),
             DiffOptions(maps=(parse_map_rule("xception=backbone"),)))
    pairs = {m.a: (m.b, m.how) for m in d.matched}
    assert pairs["xception"] == ("backbone", "map")
    assert pairs["xception/block2_conv1"] == ("backbone/block2_conv1", "map")
    assert not d.added and not d.removed


def test_diff_cli_takes_map_and_map_file(tmp_path, cli):
    a = tmp_path / "flat.json"
    b = tmp_path / "nested.json"
    a.write_text(json.dumps(base()))
    b.write_text(json.dumps(guide(base())))
    code, out, err = cli("diff", a, b, "--no-renames", "--map", "re:^=xception/", "--format", "json")
    data = json.loads(out)
    assert code == 1 and err == ""
    assert {(m["a"], m["b"], m["how"]) for m in data["matched"]} >= {
        ("block1_conv1", "xception/block1_conv1", "regex")}
    (tmp_path / "rules.txt").write_text("re:^=xception/\n")
    code, out2, _ = cli("diff", a, b, "--no-renames", "--map-file", tmp_path / "rules.txt", "--format", "json")
    assert [(m["a"], m["b"]) for m in json.loads(out2)["matched"]] == [(m["a"], m["b"]) for m in data["matched"]]
    assert json.loads(out2)["matched"][0]["evidence"] == ["rules.txt:1 're:^=xception/'"]
    code, _, err = cli("diff", a, b, "--map", "nonsense")
    assert code == 2 and "is not OLD=NEW" in err


@pytest.mark.parametrize("swap", [False, True])
def test_nesting_json_follows_the_schema(swap):
    import jsonschema
    from support import ROOT

    schema = json.loads((ROOT / "archdiff" / "schemas" / "diff.schema.json").read_text())
    a, b = cfg(base()), cfg(guide(base()))
    d = diff(b, a) if swap else diff(a, b)
    jsonschema.validate(json.loads(render(d, "json")), schema)
