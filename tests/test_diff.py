"""archdiff diff: noise ignored across formats and Keras versions, changes found and classified."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from support import FIXTURES, run_cli
from test_diff_support import arch, dense, input_layer, layer, mlp, model

from archdiff.diff import KINDS, ArchDiff, DiffOptions, diff, fails, ignore_matches
from archdiff.errors import UsageError
from archdiff.read import from_config_document, load

MODELS = ("sequential", "functional", "nested", "resnet_small")
CONFIG_SUFFIXES = (".keras", ".h5", ".json", ".config.json", ".yaml", ".pyyaml.yaml")


def same_model_files():
    for name in MODELS:
        reference = FIXTURES / "keras3" / f"{name}.keras"
        for folder in ("keras2", "keras3"):
            for suffix in CONFIG_SUFFIXES:
                other = FIXTURES / folder / f"{name}{suffix}"
                if other.exists() and other != reference:
                    yield pytest.param(reference, other, id=f"{name}-keras3.keras-vs-{folder}{suffix}")


@pytest.mark.parametrize("a, b", list(same_model_files()))
def test_same_model_in_any_format_and_keras_version_is_identical(a, b):
    d = diff(load(a), load(b))
    assert d.classification == "identical", _explain(d)
    assert d.kinds == () and d.exit_code == 0
    assert not d.added and not d.removed and not d.edges_added and not d.edges_removed
    assert all(p.how == "name" for p in d.matching.pairs)
    # And the other way round.
    assert diff(load(b), load(a)).identical


def _explain(d: ArchDiff) -> str:
    return json.dumps({"kinds": d.kinds, "changed": [m.to_dict() for m in d.changed],
                       "io": [c.to_dict() for c in d.io_changes], "model": [c.to_dict() for c in d.model_changes],
                       "added": [e.path for e in d.added], "removed": [e.path for e in d.removed]},
                      indent=1, default=str)


def test_strict_shows_dialect_noise_as_cosmetic():
    a = load(FIXTURES / "keras2" / "functional.h5")
    b = load(FIXTURES / "keras3" / "functional.keras")
    loose = diff(a, b)
    assert loose.identical and loose.noise_hidden > 0
    strict = diff(a, b, DiffOptions(strict=True))
    assert strict.classification == "cosmetic"
    paths = {c.path for m in strict.changed for c in m.changes}
    assert "dtype" in paths and "batch_input_shape" in paths and "kernel_initializer.config.input_axes" in paths
    assert all(c.effect == "cosmetic" for m in strict.changed for c in m.changes)


# -- kinds of change ---------------------------------------------------------------------
def test_units_change_is_weights_breaking(tmp_path):
    d = diff(arch(mlp([8, 4]), tmp_path, "a.json"), arch(mlp([8, 5]), tmp_path, "b.json"))
    layer_diff = {m.b: m for m in d.matched}["dense_1"]
    changes = {c.path: c for c in layer_diff.changes}
    assert changes["units"].old == 4 and changes["units"].new == 5
    assert changes["weights.kernel"].effect == "weights-breaking"
    assert changes["weights.kernel"].old["shape"] == [8, 4] and changes["weights.kernel"].new["shape"] == [8, 5]
    assert "weights-breaking" in d.kinds and "interface-changing" in d.kinds  # the output is now 5 wide
    assert d.classification == "interface-changing"
    assert d.params_delta == 9


def test_activation_change_is_weights_compatible(tmp_path):
    doc = mlp([8, 4])
    other = copy.deepcopy(doc)
    other["config"]["layers"][1]["config"]["activation"] = "tanh"
    d = diff(arch(doc, tmp_path, "a.json"), arch(other, tmp_path, "b.json"))
    assert d.kinds == ("weights-compatible",) and d.classification == "weights-compatible"
    (m,) = d.changed
    assert [(c.kind, c.path, c.old, c.new) for c in m.changes] == [("config", "activation", "relu", "tanh")]
    assert d.exit_code == 1


def test_trainable_change(tmp_path):
    doc = mlp([8, 4])
    other = copy.deepcopy(doc)
    other["config"]["layers"][1]["config"]["trainable"] = False
    d = diff(arch(doc, tmp_path, "a.json"), arch(other, tmp_path, "b.json"))
    (m,) = d.changed
    assert [(c.kind, c.old, c.new) for c in m.changes] == [("trainable", True, False)]
    assert d.classification == "weights-compatible"


def test_input_shape_change_is_interface_changing(tmp_path):
    d = diff(arch(mlp([8], input_dim=16), tmp_path, "a.json"), arch(mlp([8], input_dim=32), tmp_path, "b.json"))
    assert "interface-changing" in d.kinds
    assert any(c.side == "input" and c.what == "shape" and c.old == [None, 16] and c.new == [None, 32]
               for c in d.io_changes)


def test_added_layer_is_topology_changing_and_says_where(tmp_path):
    names = ["stem", "head"]
    a = arch(mlp([8, 2], names=names), tmp_path, "a.json")
    b = arch(mlp([8, 8, 2], names=["stem", "extra", "head"]), tmp_path, "b.json")
    d = diff(a, b)
    assert d.classification == "topology-changing"
    assert "weights-compatible" in d.kinds  # every matched layer keeps its weight shapes
    (entry,) = d.added
    assert entry.path == "extra" and entry.inputs == ("stem",) and entry.outputs == ("head",)
    assert entry.params == 8 * 8 + 8
    head = {m.b: m for m in d.matched}["head"]
    assert any(c.kind == "inputs" and c.old == ["stem"] and c.new == ["extra"] for c in head.changes)
    assert {(e.source, e.target) for e in d.edges_added} == {("stem", "extra"), ("extra", "head")}
    assert {(e.source, e.target) for e in d.edges_removed} == {("stem", "head")}


def test_removed_layer(tmp_path):
    d = diff(arch(mlp([8, 8, 2], names=["stem", "extra", "head"]), tmp_path, "a.json"),
             arch(mlp([8, 2], names=["stem", "head"]), tmp_path, "b.json"))
    assert [e.path for e in d.removed] == ["extra"] and not d.added


def test_rename_alone_is_cosmetic(tmp_path):
    d = diff(arch(mlp([8, 8, 2], names=["stem", "features", "head"]), tmp_path, "a.json"),
             arch(mlp([8, 8, 2], names=["stem", "embedding", "head"]), tmp_path, "b.json"))
    assert d.classification == "cosmetic" and d.kinds == ("cosmetic",)
    (m,) = d.renamed
    assert (m.a, m.b) == ("features", "embedding") and m.evidence
    assert [c.kind for c in m.changes] == ["renamed"]


def test_shifted_auto_names_diff_as_renames(tmp_path):
    d = diff(arch(mlp([64, 32, 10]), tmp_path, "a.json"), arch(mlp([128, 64, 32, 10]), tmp_path, "b.json"))
    assert [(m.a, m.b) for m in d.renamed] == [("dense", "dense_1"), ("dense_1", "dense_2"), ("dense_2", "dense_3")]
    assert [e.path for e in d.added] == ["dense"] and not d.removed


def test_dtype_policy_object_equals_dtype_string_but_a_real_dtype_change_shows(tmp_path):
    doc = mlp([4])
    k2 = copy.deepcopy(doc)
    k2["config"]["layers"][1]["config"]["dtype"] = "float32"
    assert diff(arch(doc, tmp_path, "a.json"), arch(k2, tmp_path, "b.json")).identical
    half = copy.deepcopy(doc)
    half["config"]["layers"][1]["config"]["dtype"]["config"]["name"] = "mixed_float16"
    d = diff(arch(doc, tmp_path, "a.json"), arch(half, tmp_path, "c.json"))
    (m,) = d.changed
    assert [(c.path, c.old, c.new) for c in m.changes] == [("dtype", "float32", "mixed_float16")]


def test_keys_written_with_default_values_are_noise(tmp_path):
    doc = mlp([4])
    newer = copy.deepcopy(doc)
    cfg = newer["config"]["layers"][1]["config"]
    cfg["quantization_config"] = None
    cfg["kernel_initializer"]["config"].update({"input_axes": None, "output_axes": None})
    cfg["kernel_initializer"]["module"] = "keras.src.initializers"
    newer["config"]["layers"][1]["build_config"] = {"input_shape": [None, 16]}
    newer["config"]["layers"][1]["config"]["dtype"]["shared_object_id"] = 1234
    d = diff(arch(doc, tmp_path, "a.json"), arch(newer, tmp_path, "b.json"))
    assert d.identical and d.noise_hidden == 1
    # A non-default value of such a key is a change.
    cfg["quantization_config"] = {"mode": "int8"}
    d = diff(arch(doc, tmp_path, "a.json"), arch(newer, tmp_path, "c.json"))
    assert [c.path for m in d.changed for c in m.changes] == ["quantization_config"]


def test_keras2_batchnorm_axis_list_equals_keras3_axis():
    a = load(FIXTURES / "keras2" / "resnet_small.h5")
    b = load(FIXTURES / "keras3" / "resnet_small.keras")
    assert a.layer("conv1_bn").config["axis"] != b.layer("conv1_bn").config["axis"]
    assert diff(a, b).identical


def test_nested_models_called_in_keras2_and_keras3_are_identical():
    # tf-keras numbers a nested model's first call 1, Keras 3 numbers it 0 (the reader evens that out).
    a = load(FIXTURES / "keras2" / "nested.h5")
    b = load(FIXTURES / "keras3" / "nested.keras")
    d = diff(a, b)
    assert d.identical and not d.edges_added and not any(c.kind == "inputs" for m in d.matched for c in m.changes)


def test_short_lists_change_as_a_whole(tmp_path):
    def conv(kernel):
        layers = [input_layer("x", [8, 8, 3]),
                  layer("Conv2D", "c", ["x"], filters=4, kernel_size=kernel, strides=[1, 1], padding="valid",
                        data_format="channels_last", dilation_rate=[1, 1], groups=1, activation="linear",
                        use_bias=True)]
        return model(layers, ["x"], ["c"])

    d = diff(arch(conv([3, 3]), tmp_path, "a.json"), arch(conv([5, 5]), tmp_path, "b.json"))
    changes = {c.path: c for c in d.changed[0].changes}
    assert changes["kernel_size"].old == [3, 3] and changes["kernel_size"].new == [5, 5]


# -- --ignore -------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", ["activation", "dense_1:activation", "root['activation']", "activ*"])
def test_ignore_hides_a_change(tmp_path, pattern):
    doc = mlp([8, 4])
    other = copy.deepcopy(doc)
    other["config"]["layers"][2]["config"]["activation"] = "tanh"
    a, b = arch(doc, tmp_path, "a.json"), arch(other, tmp_path, "b.json")
    d = diff(a, b, DiffOptions(ignore=(pattern,)))
    assert d.identical and d.ignored == 1


def test_ignore_other_layer_or_path_does_not_hide(tmp_path):
    doc = mlp([8, 4])
    other = copy.deepcopy(doc)
    other["config"]["layers"][2]["config"]["activation"] = "tanh"
    a, b = arch(doc, tmp_path, "a.json"), arch(other, tmp_path, "b.json")
    for pattern in ("dense:activation", "units", "kernel_initializer"):
        assert not diff(a, b, DiffOptions(ignore=(pattern,))).identical


def test_ignore_matching_rules():
    assert ignore_matches(["seed"], ["d"], "kernel_initializer.config.seed")
    assert ignore_matches(["kernel_initializer"], ["d"], "kernel_initializer.config.seed")
    assert ignore_matches(["kernel_initializer.config"], ["d"], "kernel_initializer.config.seed")
    assert ignore_matches(["root['kernel_initializer']['config']"], ["d"], "kernel_initializer.config.seed")
    assert ignore_matches(["batch_shape"], ["x"], "batch_shape[1]")
    assert ignore_matches(["weights.*"], ["d"], "weights.kernel")
    assert ignore_matches(["conv*:trainable"], ["conv1"], "trainable")
    assert not ignore_matches(["conv*:trainable"], ["dense"], "trainable")
    assert not ignore_matches(["kernel_initializer.config"], ["d"], "bias_initializer.config.seed")


# -- options and exit codes ---------------------------------------------------------------
def test_fail_on_semantics():
    assert fails(("cosmetic",), ("any",))
    assert not fails((), ("any",))
    assert not fails(("topology-changing", "weights-compatible"), ("weights-breaking",))
    assert fails(("topology-changing", "weights-breaking"), ("weights-breaking",))
    assert fails(("interface-changing",), ("weights-breaking", "interface-changing"))
    assert not fails(KINDS, ("none",))


def test_cli_fail_on_choices_match_the_engine():
    from archdiff.cli.diff import FAIL_ON_CHOICES
    from archdiff.diff import FAIL_ON_SPECIAL

    assert FAIL_ON_CHOICES == (*FAIL_ON_SPECIAL, *KINDS)


def test_building_the_parser_does_not_import_the_diff_engine():
    import subprocess
    import sys

    code = "import sys, archdiff.cli as c; c.build_parser(); print('archdiff.diff' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_bad_fail_on_is_a_usage_error():
    with pytest.raises(UsageError, match="not a kind"):
        DiffOptions(fail_on=("breaking",))


def test_weights_only_and_full_model_compare_by_weights_with_a_note():
    a = load(FIXTURES / "keras3" / "functional.keras")
    b = load(FIXTURES / "keras2" / "functional_weights.h5")
    d = diff(a, b)
    assert not d.compared_topology
    assert d.identical
    assert any("weights-only" in n and "no topology" in n for n in d.notes)


def test_subclassed_model_is_reported_not_refused():
    sub = from_config_document({"class_name": "MyModel", "config": {"name": "mine", "units": 3}},
                               path="sub.json", fmt="json")
    d = diff(sub, sub)
    assert d.identical and not d.compared_topology
    assert any("subclassed model ('MyModel')" in n for n in d.notes)
    d = diff(load(FIXTURES / "keras3" / "subclassed.weights.h5"), load(FIXTURES / "keras2" / "subclassed_weights.h5"))
    assert d.identical


def test_diff_to_dict_is_plain_json(tmp_path):
    d = diff(arch(mlp([8, 4]), tmp_path, "a.json"), arch(mlp([8, 5, 2]), tmp_path, "b.json"))
    data = json.loads(json.dumps(d.to_dict()))
    assert data["schema_version"] == 1 and data["exit_code"] == 1
    assert data["classification"] == d.classification
    assert {m["how"] for m in data["matched"]} <= {"name", "parent", "signature", "neighbours", "order"}


def test_cli_exit_codes(tmp_path, cli):
    a = Path(tmp_path / "a.json")
    a.write_text(json.dumps(mlp([8, 4])))
    other = mlp([8, 4])
    other["config"]["layers"][2]["config"]["activation"] = "tanh"
    b = tmp_path / "b.json"
    b.write_text(json.dumps(other))
    wide = tmp_path / "wide.json"
    wide.write_text(json.dumps(mlp([8, 6])))
    assert cli("diff", a, a)[0] == 0
    assert cli("diff", a, b)[0] == 1
    assert cli("diff", a, b, "--fail-on", "weights-breaking")[0] == 0
    assert cli("diff", a, wide, "--fail-on", "weights-breaking")[0] == 1
    assert cli("diff", a, wide, "--fail-on", "cosmetic,weights-breaking")[0] == 1
    assert cli("diff", a, b, "--fail-on", "none")[0] == 0
    assert cli("diff", a, b, "--ignore", "activation")[0] == 0
    code, out, err = cli("diff", a, b, "--fail-on", "breaking")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "not a kind" in err
    code, out, err = cli("diff", a, tmp_path / "missing.json")
    assert code == 2 and "no such file" in err and len(err.strip().splitlines()) == 1


def test_cli_writes_output_file_and_refuses_an_input(tmp_path, cli):
    a = tmp_path / "a.json"
    a.write_text(json.dumps(mlp([8, 4])))
    out = tmp_path / "report.md"
    code, stdout, _ = cli("diff", a, a, "--format", "markdown", "-o", out)
    assert code == 0 and stdout == "" and out.read_text().startswith("### ")
    code, _, err = cli("diff", a, a, "-o", a)
    assert code == 2 and "is the input" in err
    assert json.loads(a.read_text())["class_name"] == "Functional"


def test_light_commands_do_not_import_tensorflow(tmp_path):
    a = FIXTURES / "keras3" / "resnet_small.keras"
    b = FIXTURES / "keras2" / "resnet_small.h5"
    probe = ("import sys, runpy; sys.argv=['archdiff','diff',%r,%r,'--format','json'];"
             "import archdiff.cli as c; code=c.main(sys.argv[1:]);"
             "bad=[m for m in ('tensorflow','keras','tf_keras') if m in sys.modules];"
             "print('IMPORTED', bad, file=sys.stderr); sys.exit(code)") % (str(a), str(b))
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "IMPORTED []" in proc.stderr


def test_run_cli_fresh_process_json():
    proc = run_cli("diff", FIXTURES / "keras2" / "nested.h5", FIXTURES / "keras3" / "nested.keras",
                   "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["classification"] == "identical"


def test_dense_helper_shapes(tmp_path):
    x = arch(model([input_layer("x", [3]), dense("d", 2, "x")], ["x"], ["d"]), tmp_path)
    assert [w.shape for w in x.layer("d").weights] == [(3, 2), (2,)]
