"""Shapes are compared exactly, never by element count: a (4, 8) kernel is not an (8, 4) one.

A review planted a bug in transfer's shape check (element counts compared
instead of shapes): a (4, 8) kernel was copied into an (8, 4) target and
reported as verified, because the SHA-256 check compares bytes and a
reshape keeps them. No test had two shapes of equal size. These pairs have
nothing else: same-named layers whose variables hold as many numbers in
another shape (Dense(8) on 4 inputs vs Dense(4) on 8 inputs, Conv2D 4 -> 8
channels vs 8 -> 4), built with real Keras 3 and tf-keras, and the same
layouts written with h5py (so the check also runs without TensorFlow, and
under ``make mutate``).

Transfer must refuse each such variable by its own shape (exit 2 and no
output; with ``--skip-mismatch --allow-low-coverage`` exit 0 and the target's values kept), and
diff must call the change weights-breaking.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from keras_build import build
from test_diff_support import arch, dense, input_layer, model

import archdiff
from archdiff.diff import DiffOptions, diff
from archdiff.transfer import TransferOptions, plan_transfer

#: (layer, source kernel shape, target kernel shape): as many numbers, permuted.
PERMUTED = [("fc", (4, 8), (8, 4)), ("conv", (3, 3, 4, 8), (3, 3, 8, 4))]


# -- files written with h5py in the layout tf-keras' save_weights writes ---------------------------
def keras2_weights(path: Path, layers: dict[str, dict[str, np.ndarray]]) -> Path:
    """A Keras 2 weights-only .h5: root ``layer_names``, per layer ``weight_names``, datasets under them."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.21.0"
        for name, variables in layers.items():
            g = f.create_group(name)
            g.attrs["weight_names"] = np.array([f"{name}/{v}:0".encode() for v in variables])
            for v, value in variables.items():
                g.create_dataset(f"{name}/{v}:0", data=value)
    return path


def values(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.fixture
def permuted_files(tmp_path):
    """Source and target weights: fc and conv permuted, side equal (so a transfer has something to copy)."""
    source = keras2_weights(tmp_path / "source.h5", {
        "fc": {"kernel": values((4, 8), 1)}, "conv": {"kernel": values((3, 3, 4, 8), 2)},
        "side": {"kernel": values((5, 3), 3), "bias": values((3,), 4)}})
    target = keras2_weights(tmp_path / "target.h5", {
        "fc": {"kernel": values((8, 4), 5)}, "conv": {"kernel": values((3, 3, 8, 4), 6)},
        "side": {"kernel": values((5, 3), 7), "bias": values((3,), 8)}})
    return source, target


def test_the_light_pair_holds_equal_sizes_in_other_shapes(permuted_files):
    source, target = (archdiff.load(p) for p in permuted_files)
    for name, a, b in PERMUTED:
        (wa,), (wb,) = source.layer(name).weights, target.layer(name).weights
        assert (tuple(wa.shape), tuple(wb.shape)) == (a, b)
        assert np.prod(a) == np.prod(b)


def test_plan_refuses_each_permuted_variable_by_its_shape(permuted_files):
    source, target = (archdiff.load(p) for p in permuted_files)
    refused = plan_transfer(source, target)
    assert refused.exit_code == 2
    assert {layer.target: layer.status for layer in refused.layers} == {"fc": "mismatch", "conv": "mismatch",
                                                                        "side": "copied"}
    assert any("(4, 8)" in p and "(8, 4)" in p for p in refused.problems), refused.problems
    plan = plan_transfer(source, target, TransferOptions(skip_mismatch=True))
    layers = {layer.target: layer for layer in plan.layers}
    assert len(layers) == 3
    for name, a, b in PERMUTED:
        assert layers[name].status == "skipped", name
        (var,) = layers[name].variables
        assert var.action == "skip" and not var.copies
        assert str(a) in var.reason and str(b) in var.reason, var.reason
    assert layers["side"].status == "copied"
    assert [v.action for v in layers["side"].variables] == ["copy", "copy"]


def test_cli_transfer_keeps_the_targets_values_where_shapes_differ(permuted_files, tmp_path, cli):
    source, target = permuted_files
    out = tmp_path / "out.h5"
    code, _, err = cli("transfer", source, target, "-o", out, "--no-progress")
    assert code == 2 and "shape" in err and not out.exists()
    # One layer of three corresponds: low coverage, so it must be asked for (exit 0 once it is: done as asked).
    code, stdout, err = cli("transfer", source, target, "-o", out, "--skip-mismatch", "--allow-low-coverage",
                            "--no-progress", "--format", "json")
    assert code == 0, err
    report = {layer["target"]: layer for layer in json.loads(stdout)["layers"]}
    assert {n: report[n]["status"] for n in report} == {"fc": "skipped", "conv": "skipped", "side": "copied"}
    with h5py.File(out, "r") as o, h5py.File(target, "r") as t, h5py.File(source, "r") as s:
        for name, _, _ in PERMUTED:
            key = f"{name}/{name}/kernel:0"
            assert np.array_equal(o[key][()], t[key][()]), name
            assert not np.array_equal(o[key][()].ravel(), s[key][()].ravel()), name
        assert np.array_equal(o["side/side/kernel:0"][()], s["side/side/kernel:0"][()])


def _dense_no_bias(name, units, source):
    entry = dense(name, units, source)
    entry["config"]["use_bias"] = False
    return entry


def test_diff_calls_an_equal_size_kernel_change_weights_breaking(tmp_path):
    a = arch(model([input_layer("x", [4]), _dense_no_bias("fc", 8, "x")], ["x"], ["fc"]), tmp_path, "a.json")
    b = arch(model([input_layer("x", [8]), _dense_no_bias("fc", 4, "x")], ["x"], ["fc"]), tmp_path, "b.json")
    d = diff(a, b)
    (fc,) = [m for m in d.matched if m.a == "fc"]
    (kernel,) = [c for c in fc.changes if c.kind == "weight"]
    assert (kernel.old["shape"], kernel.new["shape"], kernel.effect) == ([4, 8], [8, 4], "weights-breaking")
    assert "weights-breaking" in d.kinds


def test_diff_of_weights_only_files_with_permuted_kernels_is_weights_breaking(permuted_files, cli):
    # About shapes: the two files hold other random values too, which --topology-only leaves out.
    code, out, _ = cli("diff", *permuted_files, "--format", "json", "--topology-only")
    data = json.loads(out)
    assert code == 1 and data["classification"] == "weights-breaking"
    effects = {m["a"]: {c["effect"] for c in m["changes"]} for m in data["matched"]}
    assert effects == {"fc": {"weights-breaking"}, "conv": {"weights-breaking"}, "side": set()}


# -- the same with real Keras ----------------------------------------------------------------------------
BUILD = r'''
L = keras.layers


def model(n_fc, fc_units, c_in, c_out, bias):
    x1 = keras.Input((n_fc,), name="x1")
    x2 = keras.Input((5,), name="x2")
    img = keras.Input((6, 6, c_in), name="img")
    fc = L.Dense(fc_units, use_bias=bias, name="fc")(x1)
    side = L.Dense(3, name="side")(x2)
    conv = L.GlobalAveragePooling2D(name="pool")(L.Conv2D(c_out, 3, use_bias=bias, name="conv")(img))
    return keras.Model([x1, x2, img], [fc, side, conv], name="net")


K3 = keras.__version__.startswith("3")
for bias in (False, True):
    tag = "bias" if bias else "nobias"
    for role, args in (("source", (4, 8, 4, 8)), ("target", (8, 4, 8, 4))):
        m = model(*args, bias)
        if K3:
            m.save(os.path.join(OUT, f"{role}_{tag}.keras"))
            m.save_weights(os.path.join(OUT, f"{role}_{tag}.weights.h5"))
        else:
            m.save(os.path.join(OUT, f"{role}_{tag}.h5"))
        RESULT[f"{role}_{tag}"] = {l.name: [list(w.shape) for w in l.weights] for l in m.layers if l.weights}
RESULT["formats"] = [".keras", ".weights.h5"] if K3 else [".h5"]
'''


@pytest.fixture(scope="module", params=["k3", "k2"])
def keras_pairs(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"permuted_{request.param}")
    return folder, build(request.param, BUILD, folder)


def _cases(keras_pairs):
    folder, result = keras_pairs
    cases = [(folder / f"source_{tag}{fmt}", folder / f"target_{tag}{fmt}", tag)
             for fmt in result["formats"] for tag in ("nobias", "bias")]
    assert cases
    return cases


@pytest.mark.tensorflow
def test_keras_builds_the_permuted_shapes(keras_pairs):
    _, result = keras_pairs
    for tag in ("nobias", "bias"):
        assert result[f"source_{tag}"]["fc"][0] == [4, 8] and result[f"target_{tag}"]["fc"][0] == [8, 4]
        assert result[f"source_{tag}"]["conv"][0] == [3, 3, 4, 8] and result[f"target_{tag}"]["conv"][0] == \
            [3, 3, 8, 4]


@pytest.mark.tensorflow
def test_transfer_between_keras_models_refuses_permuted_kernels(keras_pairs, tmp_path, cli):
    for source, target, tag in _cases(keras_pairs):
        suffix = "".join(target.suffixes[-2:]) if target.name.endswith(".weights.h5") else target.suffix
        out = tmp_path / f"out_{tag}{suffix}"
        code, _, err = cli("transfer", source, target, "-o", out, "--no-progress")
        assert code == 2 and not out.exists(), (source.name, err)
        code, stdout, err = cli("transfer", source, target, "-o", out, "--skip-mismatch", "--allow-low-coverage",
                                "--no-progress", "--format", "json")
        assert code == 0, (source.name, err)
        layers = {layer["target"]: layer for layer in json.loads(stdout)["layers"]}
        assert layers["side"]["status"] == "copied", source.name
        for name, a, b in PERMUTED:
            assert layers[name]["status"] == "skipped", (source.name, name)
            kernel = next(v for v in layers[name]["variables"] if tuple(v["shape"]) == b)
            assert kernel["action"] == "skip" and tuple(kernel["source_shape"]) == a
            # The kernel is refused for its own shape, not only because a bias beside it differs.
            assert "shape" in kernel["reason"] and "does not fit" not in kernel["reason"], kernel["reason"]
        out.unlink()


@pytest.mark.tensorflow
def test_diff_between_keras_models_calls_permuted_kernels_weights_breaking(keras_pairs):
    for source, target, tag in _cases(keras_pairs):
        d = diff(archdiff.load(source), archdiff.load(target), DiffOptions())
        by_layer = {m.a: m for m in d.matched}
        for name, a, b in PERMUTED:
            kernels = [c for c in by_layer[name].changes if c.kind == "weight"
                       and c.old and tuple(c.old["shape"]) == a]
            assert len(kernels) == 1, (source.name, name, [c.to_dict() for c in by_layer[name].changes])
            assert tuple(kernels[0].new["shape"]) == b and kernels[0].effect == "weights-breaking"
        assert not [c for c in by_layer["side"].changes if c.kind == "weight"]
        assert "weights-breaking" in d.kinds
