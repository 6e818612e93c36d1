"""Weight values in the diff, on copies of Keras-written fixtures edited with h5py (no TensorFlow).

The fixtures are written by real Keras 3 and tf-keras (fixtures/make_fixtures.py); each
test copies one, changes chosen datasets with h5py, and checks that ``diff`` reports
exactly those variables, with figures equal to numpy's on the arrays h5py reads back
(never archdiff's own output). ``tests/test_diff_values_keras.py`` does the same with
models trained and saved by Keras itself.
"""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from support import FIXTURES

import archdiff
from archdiff.diff import DiffOptions, diff, validate_diff
from archdiff.diff.policy import check, parse_policy
from archdiff.diff.values import compare_weights, figures_of

K3_WEIGHTS = FIXTURES / "keras3" / "nested.weights.h5"
K2_H5 = FIXTURES / "keras2" / "nested.h5"
K3_KERAS = FIXTURES / "keras3" / "nested.keras"


def numpy_figures(a: np.ndarray, b: np.ndarray) -> dict:
    """The figures as the docs define them, straight from numpy (finite values only; none here are not)."""
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    d = b - a
    return {"max_abs_diff": float(np.max(np.abs(d))),
            "relative_change": float(np.linalg.norm(d) / np.linalg.norm(a)) if np.linalg.norm(a) else None,
            "cosine": float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
            if np.linalg.norm(a) and np.linalg.norm(b) else None,
            "fraction_changed": float(np.count_nonzero(a != b) / a.size)}


def assert_figures(got: dict, a: np.ndarray, b: np.ndarray) -> None:
    want = numpy_figures(a, b)
    for key, value in want.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def edit(src, dst, changes: dict) -> dict:
    """Copy ``src`` to ``dst`` and apply ``{dataset: function(array) -> array}``; A's and B's arrays by dataset."""
    shutil.copy(src, dst)
    arrays = {}
    with h5py.File(dst, "r+") as f:
        for location, change in changes.items():
            before = f[location][()]
            after = np.asarray(change(before.copy()), dtype=before.dtype)
            f[location][...] = after
            arrays[location] = (before, after)
    return arrays


def test_one_kernel_times_two_is_not_identical(tmp_path):
    """The issue's first complaint: a kernel multiplied by two was 'identical', exit 0."""
    kernel = "layers/functional/layers/conv2d/vars/0"
    arrays = edit(K3_WEIGHTS, tmp_path / "b.weights.h5", {kernel: lambda x: x * 2})
    d = diff(archdiff.load(K3_WEIGHTS), archdiff.load(tmp_path / "b.weights.h5"))
    assert d.classification == "values-changed" and d.kinds == ("values-changed",) and d.exit_code == 1
    assert d.values is not None
    assert [lv.b for lv in d.values.changed] == ["base/conv1"]
    (lv,) = d.values.changed
    (var,) = lv.changed
    assert var.location_b == "/" + kernel
    a, b = arrays[kernel]
    assert_figures(var.figures.to_dict(), a, b)
    assert var.figures.relative_change == pytest.approx(1.0)  # 2x - x over x
    assert var.figures.cosine == pytest.approx(1.0)
    # Its bias and every other layer's variables are named bitwise equal.
    assert [v.status for v in lv.variables] == ["changed", "equal"]
    assert all(v.status == "equal" for other in d.values.layers if other.b != "base/conv1" for v in other.variables)
    # The change is the layer's, of the new kind, kept apart from shape changes.
    (m,) = d.changed
    assert [(c.kind, c.path, c.effect) for c in m.changes] == [("values", f"values.{var.name}", "values-changed")]
    validate_diff(d)  # written in the vocabulary, classified as its changes say
    # --ignore hides value changes like any other path.
    hidden = diff(archdiff.load(K3_WEIGHTS), archdiff.load(tmp_path / "b.weights.h5"),
                  DiffOptions(ignore=("values.*",)))
    assert hidden.identical and hidden.ignored == 1


def test_every_variable_is_reported_with_numpys_figures(tmp_path):
    rng = np.random.default_rng(0)
    changes = {
        "layers/functional/layers/conv2d/vars/1": lambda x: x + 0.25,
        "layers/functional/layers/batch_normalization/vars/0": lambda x: x * rng.uniform(0.5, 1.5, x.shape),
        "layers/sequential/layers/dense/vars/0": lambda x: np.where(np.arange(x.size).reshape(x.shape) % 3 == 0,
                                                                     x - 1.0, x),
    }
    arrays = edit(K3_WEIGHTS, tmp_path / "b.weights.h5", changes)
    c = compare_weights(K3_WEIGHTS, tmp_path / "b.weights.h5")
    got = {v.location_b.lstrip("/"): v for lv in c.layers for v in lv.changed}
    assert set(got) == set(changes)
    for location, (a, b) in arrays.items():
        assert_figures(got[location].figures.to_dict(), a, b)
    # Per layer, the largest figure of its variables; layers most changed first.
    rel = [lv.relative_change for lv in c.changed]
    assert rel == sorted(rel, reverse=True)
    assert c.summary()["variables_changed"] == 3


def test_blocks_give_the_figures_of_the_whole(tmp_path, monkeypatch):
    """A variable read in blocks (a large tensor) gives the same figures as one read whole."""
    from archdiff.diff.values import compare as compare_module

    kernel = "layers/functional/layers/conv2d_1/vars/0"
    rng = np.random.default_rng(1)
    arrays = edit(K3_WEIGHTS, tmp_path / "b.weights.h5", {kernel: lambda x: x + rng.normal(0, 0.01, x.shape)})
    monkeypatch.setattr(compare_module, "BLOCK_BYTES", 64)  # a few elements per block
    (var,) = [v for lv in compare_weights(K3_WEIGHTS, tmp_path / "b.weights.h5").changed for v in lv.changed]
    assert_figures(var.figures.to_dict(), *arrays[kernel])
    # Equal mode stops at the first differing block and computes nothing.
    (var,) = [v for lv in compare_weights(K3_WEIGHTS, tmp_path / "b.weights.h5", mode="equal").changed
              for v in lv.changed]
    assert var.status == "changed" and var.figures is None


def test_keras2_h5_against_its_keras3_port_pairs_variable_by_variable(tmp_path):
    """tf-keras' .h5 (named variables) and a Keras 3 .weights.h5 (numbered ones) hold the same values."""
    same = compare_weights(K2_H5, K3_WEIGHTS)
    assert same.summary()["variables_changed"] == 0
    assert same.summary()["variables_equal"] == sum(len(lv.variables) for lv in same.layers) > 0
    kernel_k3 = "layers/sequential/layers/dense_1/vars/0"
    arrays = edit(K3_WEIGHTS, tmp_path / "b.weights.h5", {kernel_k3: lambda x: -x})
    c = compare_weights(K2_H5, tmp_path / "b.weights.h5")
    with h5py.File(K2_H5) as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["model_weights"].attrs["layer_names"]]
    assert "head" in names
    (lv,) = c.changed
    (var,) = lv.changed
    assert var.paired_by == "position" and var.location_a.startswith("/model_weights/head/")
    a, b = arrays[kernel_k3]
    with h5py.File(K2_H5) as f:
        assert np.array_equal(f[var.location_a][()], a)  # A's dataset in the Keras 2 file is that array
    assert_figures(var.figures.to_dict(), a, b)
    assert var.figures.cosine == pytest.approx(-1.0)


def test_nonfinite_and_suspicious_values_are_flagged(tmp_path):
    bias = "layers/dense/vars/1"
    kernel = "layers/dense/vars/0"
    bn_gamma = "layers/functional/layers/batch_normalization/vars/0"
    conv = "layers/functional/layers/conv2d/vars/0"
    edit(K3_WEIGHTS, tmp_path / "b.weights.h5", {
        kernel: lambda x: np.where(np.arange(x.size).reshape(x.shape) == 0, np.nan, x),
        bias: lambda x: x + np.inf,
        bn_gamma: lambda x: np.full_like(x, 0.5),
        conv: lambda x: np.zeros_like(x),
    })
    c = compare_weights(K3_WEIGHTS, tmp_path / "b.weights.h5")
    by = {v.location_b.lstrip("/"): v.figures for lv in c.layers for v in lv.changed}
    assert (by[kernel].nan_introduced, by[kernel].inf_introduced) == (1, 0)
    with h5py.File(K3_WEIGHTS) as f:
        assert by[bias].inf_introduced == f[bias].size
        gamma = f[bn_gamma][()]
    assert by[conv].suspicious == ("all-zeros",)
    assert by[bn_gamma].suspicious == (("constant",) if np.ptp(gamma) > 0 else ())
    assert {lv.b for lv in c.nonfinite} == {"predictions"}


def test_huge_magnitudes_are_suspicious(tmp_path):
    conv = "layers/functional/layers/conv2d/vars/0"
    edit(K3_WEIGHTS, tmp_path / "b.weights.h5", {conv: lambda x: x * 1e36})
    (var,) = [v for lv in compare_weights(K3_WEIGHTS, tmp_path / "b.weights.h5").changed for v in lv.changed]
    assert "huge" in var.figures.suspicious


def test_figures_of_unknowns():
    zeros = np.zeros(4)
    f = figures_of(zeros, np.ones(4))
    assert f.relative_change is None and f.cosine is None and f.fraction_changed == 1.0
    assert f.to_dict()["relative_change"] is None
    f = figures_of(np.array([1.0, np.nan]), np.array([1.0, np.nan]))
    assert f.elements_changed == 0 and f.nan_introduced == 0


def _policy(text: str):
    import yaml

    return parse_policy(yaml.safe_load(text), source="policy.yaml")


def test_the_gate_fails_on_a_moved_frozen_layer_and_on_nan(tmp_path):
    edit(K3_WEIGHTS, tmp_path / "b.weights.h5", {
        "layers/functional/layers/conv2d/vars/1": lambda x: x + 1e-6,
        "layers/dense/vars/0": lambda x: np.where(np.arange(x.size).reshape(x.shape) == 1, np.nan, x),
        "layers/sequential/layers/dense/vars/0": lambda x: x * 1.5,
    })
    d = diff(archdiff.load(K3_WEIGHTS), archdiff.load(tmp_path / "b.weights.h5"))
    result = check(d, _policy("frozen: [base/conv1, base/conv2]\n"))
    rules = {r.rule: r for r in result.rules}
    assert not rules["frozen"].passed
    (violation,) = rules["frozen"].violations  # base/conv2 kept its values bit for bit
    assert "'base/conv1'" in violation and "values" in violation and "max |Δ|" in violation
    assert not rules["allow_nonfinite"].passed
    (violation,) = rules["allow_nonfinite"].violations
    assert violation.startswith("'predictions' ") and "1 NaN" in violation
    assert check(d, _policy("allow_nonfinite: true\n")).passed
    # Limits per layer pattern: the first that matches decides, and a failure names layer, variable, figure.
    result = check(d, _policy("allow_nonfinite: true\nmax_relative_change:\n  'base/*': 1%\n  '*': 0%\n"))
    (rule,) = [r for r in result.rules if r.rule == "max_relative_change"]
    # base/conv1's bias moved by 1e-6 (within 1%); predictions' kernel only gained a NaN (over its finite
    # elements nothing moved: within 0%); head_dense's kernel grew by half: 50%, over 0%.
    assert rule.passed is False
    (violation,) = rule.violations
    assert violation.startswith("'head/head_dense' ") and "relative change 50%, over 0% (max_relative_change '*')" \
        in violation
    result = check(d, _policy("allow_nonfinite: true\nmax_relative_change: 60%\n"))
    (rule,) = [r for r in result.rules if r.rule == "max_relative_change"]
    assert rule.passed and not rule.violations


def test_topology_only_and_equal_mode(tmp_path, cli):
    edit(K3_WEIGHTS, tmp_path / "b.weights.h5", {"layers/dense/vars/0": lambda x: x * 3})
    d = diff(archdiff.load(K3_WEIGHTS), archdiff.load(tmp_path / "b.weights.h5"), DiffOptions(values="off"))
    assert d.identical and d.values is None
    code, out, _ = cli("diff", K3_WEIGHTS, tmp_path / "b.weights.h5", "--topology-only")
    assert code == 0 and "identical" in out.splitlines()[0]
    code, out, _ = cli("diff", K3_WEIGHTS, tmp_path / "b.weights.h5", "--values", "equal", "--format", "json")
    data = json.loads(out)
    assert code == 1 and data["classification"] == "values-changed" and data["values"]["mode"] == "equal"
    (layer,) = [lv for lv in data["values"]["layers"] if lv["status"] == "changed"]
    assert layer["b"] == "predictions" and layer["relative_change"] is None
    code, _, _ = cli("diff", K3_WEIGHTS, tmp_path / "b.weights.h5", "--fail-on", "weights-breaking")
    assert code == 0  # new values are not a breaking change
    code, _, _ = cli("diff", K3_WEIGHTS, tmp_path / "b.weights.h5", "--fail-on", "values-changed")
    assert code == 1


def test_reports_carry_the_figures(tmp_path, cli):
    import jsonschema
    from support import ROOT

    arrays = edit(K3_WEIGHTS, tmp_path / "b.weights.h5", {"layers/dense/vars/0": lambda x: x + 0.5,
                                                          "layers/functional/layers/conv2d/vars/0": lambda x: x * 1.01})
    code, out, _ = cli("diff", K3_WEIGHTS, tmp_path / "b.weights.h5", "--format", "json")
    data = json.loads(out)
    schema = json.loads((ROOT / "archdiff" / "schemas" / "diff.schema.json").read_text())
    jsonschema.validate(data, schema)
    # Most changed first: +0.5 on a small kernel is more than 1% on the conv kernel.
    assert data["values"]["changed"] == ["predictions", "base/conv1"]
    (var,) = [v for lv in data["values"]["layers"] if lv["b"] == "predictions" for v in lv["variables"]
              if v["status"] == "changed"]
    assert_figures(var, *arrays["layers/dense/vars/0"])
    code, text, _ = cli("diff", K3_WEIGHTS, tmp_path / "b.weights.h5")
    lines = text.splitlines()
    start = lines.index("  weights changed, most changed first (relative change ||B-A||/||A||):")
    assert lines[start + 1].startswith("  ~ predictions ") and "relative" in lines[start + 1]
    assert any(line.startswith("  ~ base/conv1 ") for line in lines[start + 2:start + 6])
    assert any("layers with bitwise-equal weights" in line for line in lines)
    code, md, _ = cli("diff", K3_WEIGHTS, tmp_path / "b.weights.h5", "--format", "markdown")
    assert "**Weights:** 2 of 6 layers changed by value" in md and "| `predictions` |" in md


def test_textconv_digests_are_equal_across_formats_and_move_with_values(tmp_path, cli):
    def values_lines(path):
        code, out, _ = cli("textconv", path)
        assert code == 0
        layer, found = None, {}
        for line in out.splitlines():
            if line.startswith("layer "):
                layer = line.split()[1]
            elif line.startswith("  values: sha256:"):
                found[layer] = line.split(":", 2)[2]
        return found

    k2, k3 = values_lines(K2_H5), values_lines(K3_KERAS)
    assert k2 == k3 and len(k3) == 6  # the same values, saved by tf-keras and by Keras 3
    edit(K2_H5, tmp_path / "b.h5", {"model_weights/head/head_dense/bias:0": lambda x: x + 1})
    changed = values_lines(tmp_path / "b.h5")
    assert {p for p in k2 if k2[p] != changed[p]} == {"head/head_dense"}
    code, out, _ = cli("textconv", K2_H5, "--no-values")
    assert "values:" not in out


def test_the_html_page_colours_layers_by_relative_change(tmp_path):
    from archdiff.diff.render.html import VALUE_BUCKETS, diff_data, render_diff_html, value_bucket

    arrays = edit(K3_WEIGHTS, tmp_path / "b.weights.h5",
                  {"layers/dense/vars/0": lambda x: x * 1.5,
                   "layers/functional/layers/conv2d/vars/0": lambda x: x * 1.002})
    a, b = archdiff.load(K3_WEIGHTS), archdiff.load(tmp_path / "b.weights.h5")
    d = diff(a, b)
    data = diff_data(d, a, b)
    buckets = {item["b"]: item.get("v") for item in data["items"] if item.get("b")}
    # 50% (numpy's norm ratio of 0.5 x) is in the 10%-100% bucket, 0.2% in 0.1%-1%; equal layers get none.
    ratio = {loc: np.linalg.norm(y.astype(np.float64) - x) / np.linalg.norm(x) for loc, (x, y) in arrays.items()}
    assert buckets["predictions"] == sum(ratio["layers/dense/vars/0"] >= bound for bound in VALUE_BUCKETS) == 3
    assert buckets["base/conv1"] == sum(ratio["layers/functional/layers/conv2d/vars/0"] >= bound
                                        for bound in VALUE_BUCKETS) == 1
    assert buckets["base/conv2"] is None and value_bucket(None) == len(VALUE_BUCKETS)
    # Every variable's figures reach the side panel through the embedded report.
    (layer,) = [lv for lv in data["report"]["values"]["layers"] if lv["b"] == "predictions"]
    assert [v["status"] for v in layer["variables"]] == ["changed", "equal"]
    page = render_diff_html(d, a, b)
    assert "Weight values" in page and "Weights changed (relative change" in page  # panel and legend code


def test_a_keras2_weights_only_group_pairs_with_the_nested_model_it_holds(tmp_path):
    """``save_weights`` in tf-keras keeps the nested model 'base' as one group of variables named by inner layer."""
    k2_weights = FIXTURES / "keras2" / "nested_weights.h5"
    arrays = edit(k2_weights, tmp_path / "b_weights.h5", {"base/conv2/kernel:0": lambda x: x * 0.5})
    for other in (K2_H5, K3_WEIGHTS):
        c = compare_weights(other, tmp_path / "b_weights.h5")
        (lv,) = c.changed
        assert (lv.a, lv.b) == ("base", "base")
        (var,) = lv.changed
        assert var.name == "conv2/kernel" and var.location_b == "/base/conv2/kernel:0"
        assert_figures(var.figures.to_dict(), *arrays["base/conv2/kernel:0"])
        assert c.summary()["variables_equal"] == 13 and not c.not_compared
