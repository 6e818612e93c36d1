"""Layer matching: names first, renames only on evidence, near-linear on long models."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import FIXTURES, hang_guard
from test_diff_support import arch, dense, input_layer, layer, mlp, model

from archdiff.diff.matching import Matching, Pair, match_layers
from archdiff.model import Architecture, Layer, Source, WeightSpec
from archdiff.read import from_config_document, load


def cfg(doc: dict, name: str = "m.json") -> Architecture:
    """An Architecture straight from a config document (no file, no weights)."""
    return from_config_document(doc, path=name, fmt="json")


def check_evidence(m: Matching) -> None:
    for p in m.pairs:
        if p.how == "name":
            assert p.a == p.b and p.evidence == ()
        else:
            assert p.a != p.b
            assert p.evidence, f"rename {p.a} -> {p.b} carries no evidence"


def test_interface_types():
    m = match_layers(cfg(mlp([4, 3])), cfg(mlp([4, 3])))
    assert isinstance(m, Matching) and all(isinstance(p, Pair) for p in m.pairs)
    assert [(p.a, p.b, p.how) for p in m.pairs] == [("input_layer", "input_layer", "name"),
                                                    ("dense", "dense", "name"), ("dense_1", "dense_1", "name")]
    assert m.only_a == () and m.only_b == () and m.renames() == {}


def test_shifted_auto_names_are_renames():
    a = cfg(mlp([64, 32, 10]))
    b = cfg(mlp([128, 64, 32, 10]))  # a Dense inserted first: every later auto name shifts by one
    m = match_layers(a, b)
    assert m.renames() == {"dense": "dense_1", "dense_1": "dense_2", "dense_2": "dense_3"}
    assert m.only_a == ()
    assert m.only_b == ("dense",)
    check_evidence(m)
    assert any("auto names" in e for e in m.by_a["dense_1"].evidence)


def test_no_renames_option_pairs_by_name_only():
    a = cfg(mlp([64, 32, 10]))
    b = cfg(mlp([128, 64, 32, 10]))
    m = match_layers(a, b, detect_renames=False)
    assert all(p.how == "name" for p in m.pairs)
    assert m.only_b == ("dense_3",)


def test_deliberate_rename_found_through_neighbours():
    names_a = ["stem", "features", "head"]
    names_b = ["stem", "embedding", "head"]
    m = match_layers(cfg(mlp([8, 8, 2], names=names_a)), cfg(mlp([8, 8, 2], names=names_b)))
    assert m.renames() == {"features": "embedding"}
    pair = m.by_a["features"]
    assert pair.how == "neighbours"
    assert any("matched layer" in e for e in pair.evidence)
    assert any("same class (Dense) and config" in e for e in pair.evidence)


def test_replaced_layer_with_a_new_name_and_config_is_remove_plus_add():
    m = match_layers(cfg(mlp([8, 8, 2], names=["stem", "features", "head"])),
                     cfg(mlp([8, 32, 2], names=["stem", "wide", "head"])))
    assert m.renames() == {}
    assert m.only_a == ("features",) and m.only_b == ("wide",)


def test_auto_name_drift_with_a_changed_config():
    # A layer inserted early *and* the layer after it widened: still the same layer, renamed.
    a = cfg(mlp([64, 32, 10]))
    b = cfg(mlp([128, 64, 48, 10]))
    m = match_layers(a, b)
    assert m.renames() == {"dense": "dense_1", "dense_1": "dense_2", "dense_2": "dense_3"}
    check_evidence(m)
    assert any("config differs" in e for e in m.by_a["dense_1"].evidence)


def test_moved_layer_with_explicit_names_is_not_a_rename():
    def chain(order):
        layers = [input_layer("x", [8])]
        prev = "x"
        for n in order:
            layers.append(layer("Dropout", n, [prev], rate=0.5, seed=None, noise_shape=None) if n.startswith("drop")
                          else dense(n, 8, prev))
            prev = n
        return model(layers, ["x"], [prev])

    m = match_layers(cfg(chain(["drop_early", "a", "b", "c"])), cfg(chain(["a", "b", "c", "drop_late"])))
    assert "drop_early" in m.only_a and "drop_late" in m.only_b


def test_removed_layer_in_a_run_of_identical_layers():
    names = [f"block{i}" for i in range(10)]
    a = cfg(mlp([8] * 10, names=names))
    b = cfg(mlp([8] * 9, names=names[:4] + names[5:]))
    m = match_layers(a, b)
    assert m.only_a == ("block4",) and m.only_b == () and m.renames() == {}


def test_renamed_nested_model_children_pair_by_parent():
    inner = model([input_layer("in", [4]), dense("d1", 4, "in"), dense("d2", 2, "d1")], ["in"], ["d2"], "inner")

    def outer(inner_name):
        nested = {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
                  "name": inner_name, "config": {**inner["config"], "name": inner_name},
                  "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                               "config": {"shape": [None, 4], "dtype": "float32",
                                                          "keras_history": ["x", 0, 0]}}], "kwargs": {}}]}
        return model([input_layer("x", [4]), nested, dense("out", 1, inner_name)], ["x"], ["out"], "outer")

    m = match_layers(cfg(outer("inner")), cfg(outer("backbone")))
    assert m.a_to_b["inner"] == "backbone"
    assert m.by_a["inner/d1"].b == "backbone/d1" and m.by_a["inner/d1"].how == "parent"
    assert m.renames()["inner/d2"] == "backbone/d2"
    check_evidence(m)


def _weights_only(layers: list[tuple[str, list[tuple]]], name="w.h5") -> Architecture:
    out = []
    for i, (lname, shapes) in enumerate(layers):
        out.append(Layer(name=lname, path=lname, class_name="?", index=i, depth=0,
                         weights=tuple(WeightSpec(str(k), s, "float32") for k, s in enumerate(shapes))))
    return Architecture(name=name, class_name=None, layers=tuple(out), source=Source(name, "h5-weights"),
                        has_topology=False, has_weights=True)


def test_weights_only_inputs_match_by_name_and_weight_shapes():
    a = _weights_only([("dense", [(4, 8), (8,)]), ("dense_1", [(8, 2), (2,)])])
    b = _weights_only([("dense", [(4, 16), (16,)]), ("dense_1", [(16, 8), (8,)]), ("dense_2", [(8, 2), (2,)])])
    m = match_layers(a, b)
    # dense_1 (8, 2) is B's dense_2 now: same weight shapes at the same place in the order.
    assert m.renames() == {"dense_1": "dense_2"}
    assert m.by_a["dense_1"].how == "order"
    check_evidence(m)


def test_weights_only_fixtures_match_by_name():
    a = load(FIXTURES / "keras3" / "functional.weights.h5")
    b = load(FIXTURES / "keras2" / "functional_weights.h5")
    m = match_layers(a, b)
    assert {p.a for p in m.pairs} == {layer.path for layer in a.layers}
    assert all(p.how == "name" for p in m.pairs) and not m.only_a and not m.only_b


@pytest.mark.parametrize("name", ["sequential", "functional", "nested", "resnet_small"])
def test_keras2_and_keras3_files_of_one_model_match_by_name(name):
    a = load(FIXTURES / "keras2" / f"{name}.h5")
    b = load(FIXTURES / "keras3" / f"{name}.keras")
    m = match_layers(a, b)
    assert all(p.how == "name" for p in m.pairs)
    assert not m.only_a and not m.only_b


def test_long_chain_with_insertion_is_matched():
    n = 3000
    units = [8 + (i % 7) for i in range(n)]
    a = cfg(mlp(units))
    b = cfg(mlp(units[:10] + [99] + units[10:]))
    # How fast is bench/bench_robust.py's row; a quadratic alignment would take minutes, an endless one hang.
    with hang_guard(600, "matching a 3,000-layer chain"):
        m = match_layers(a, b)
    assert m.only_a == () and len(m.only_b) == 1
    expected = {f"dense_{i}" if i else "dense": f"dense_{i + 1}" for i in range(10, n)}
    assert m.renames() == expected
    check_evidence(m)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(units=st.lists(st.integers(1, 4), min_size=1, max_size=12), at=st.integers(0, 12),
       new=st.integers(1, 6))
def test_one_inserted_dense_is_one_added_layer(units, at, new):
    at = min(at, len(units))
    a = cfg(mlp(units))
    b = cfg(mlp(units[:at] + [new] + units[at:]))
    m = match_layers(a, b)
    assert len(m.only_b) == 1 and m.only_a == ()
    check_evidence(m)
    for p in m.pairs:
        assert a.by_path[p.a].class_name == b.by_path[p.b].class_name


def test_arch_helper_loads_with_weights(tmp_path):
    x = arch(mlp([4, 2]), tmp_path)
    assert x.layer("dense").weights and x.layer("dense").weights[0].shape == (16, 4)


def _nested_weights_only(models: dict[str, list[str]], name="w.weights.h5") -> Architecture:
    """A weights-only file (no topology) with nested models holding Dense-shaped layers of the given names."""
    out = []
    for mname, inner in models.items():
        out.append(Layer(name=mname, path=mname, class_name="?functional", index=None, depth=0, weights=(),
                         is_model=True))
        for lname in inner:
            out.append(Layer(name=lname, path=f"{mname}/{lname}", class_name="?dense", index=None, depth=1,
                             parent=mname, weights=(WeightSpec("0", (4, 4), "float32"),
                                                    WeightSpec("1", (4,), "float32"))))
    return Architecture(name=name, class_name=None, layers=tuple(out), source=Source(name, "weights.h5"),
                        has_topology=False, has_weights=True)


def test_a_nested_model_renamed_in_place_pairs_by_its_contents_and_an_unrelated_one_does_not():
    a = _nested_weights_only({"bert_backbone": ["emb", "block_0", "block_1", "pool"], "tower": ["t1", "t2"]})
    b = _nested_weights_only({"bert_backbone_1": ["emb", "block_0", "block_1", "block_2", "pool"],
                              "head": ["h1", "h2"]})
    m = match_layers(a, b)
    assert m.by_a["bert_backbone"].b == "bert_backbone_1" and m.by_a["bert_backbone"].how == "contents"
    assert {p.a: p.b for p in m.pairs if p.how == "parent"} == {
        f"bert_backbone/{n}": f"bert_backbone_1/{n}" for n in ("emb", "block_0", "block_1", "pool")}
    assert set(m.only_b) == {"head", "head/h1", "head/h2", "bert_backbone_1/block_2"}
    assert "tower" in m.only_a  # no layer in common: never paired by position or size
    check_evidence(m)
    # Without rename detection, nothing is paired by contents.
    assert "bert_backbone" not in match_layers(a, b, detect_renames=False).a_to_b


def test_a_nested_model_sharing_as_much_with_two_others_is_left_unpaired():
    a = _nested_weights_only({"base": ["l1", "l2"]})
    b = _nested_weights_only({"base_1": ["l1", "l2"], "base_2": ["l1", "l2"]})
    assert "base" not in match_layers(a, b).a_to_b
