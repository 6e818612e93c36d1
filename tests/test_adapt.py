"""``transfer --adapt``: each shape adapter's output against a numpy reference written here, independently.

Sources and targets are Keras 2 style weights files written with h5py (layer
groups, ``weight_names``), so nothing here needs TensorFlow. Each reference is
computed element by element from the adapter's definition (timm's
``adapt_input_conv`` for the input channels), never with archdiff's own code.
Without ``--adapt`` every mismatch stays refused, and shapes are compared
exactly: a (4, 8) kernel never goes into an (8, 4) one.
"""
from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
from test_transfer import read_layer, rng_arrays, write_legacy

from archdiff.errors import UsageError
from archdiff.transfer import TransferOptions, apply_transfer, dry_run, plan_transfer
from archdiff.transfer.render import render


def conv_pair(tmp_path, src_in: int, tgt_in: int, *, extra_target: dict | None = None):
    """A source and a target whose first convolution differs in its input channels only."""
    k, b, k2, b2 = rng_arrays(11, (3, 3, src_in, 4), (4,), (3, 3, 4, 6), (6,))
    source = write_legacy(tmp_path / "s.h5", {"stem_conv": {"kernel": k, "bias": b},
                                               "next_conv": {"kernel": k2, "bias": b2}})
    target = write_legacy(tmp_path / "t.h5", {"stem_conv": {"kernel": np.zeros((3, 3, tgt_in, 4), "f4"),
                                                            "bias": np.zeros(4, "f4")},
                                              "next_conv": {"kernel": np.zeros((3, 3, 4, 6), "f4"),
                                                            "bias": np.zeros(6, "f4")},
                                              **(extra_target or {})})
    return source, target, k, b


def test_without_adapt_a_channel_change_is_a_mismatch(tmp_path):
    source, target, _, _ = conv_pair(tmp_path, 3, 1)
    plan = plan_transfer(source, target)
    assert plan.exit_code == 2 and "shape (3, 3, 3, 4) in the source, (3, 3, 1, 4) in the target" in plan.problems[0]


def test_input_channels_into_one_channel_is_the_sum(tmp_path):
    source, target, k, b = conv_pair(tmp_path, 3, 1)
    plan = plan_transfer(source, target, TransferOptions(adapt=("input-channels",)))
    assert plan.exit_code == 0, plan.problems
    layer = next(x for x in plan.layers if x.target == "stem_conv")
    assert layer.status == "adapted"
    kernel = next(v for v in layer.variables if v.target == "kernel")
    assert kernel.action == "adapt" and kernel.adapter == "input-channels" and "summed" in kernel.reason
    bias = next(v for v in layer.variables if v.target == "bias")
    assert bias.action == "copy" and bias.adapter is None
    out = tmp_path / "o.h5"
    apply_transfer(plan, out, progress=False)
    expected = np.zeros((3, 3, 1, 4), "f4")
    for i in range(3):
        for j in range(3):
            for o in range(4):
                expected[i, j, 0, o] = float(k[i, j, 0, o]) + float(k[i, j, 1, o]) + float(k[i, j, 2, o])
    got = read_layer(out, "stem_conv")
    np.testing.assert_allclose(got[0], expected, rtol=1e-6)
    np.testing.assert_array_equal(got[1], b)


@pytest.mark.parametrize("channels", [2, 4, 5, 7])
def test_input_channels_from_rgb_repeat_and_rescale(tmp_path, channels):
    source, target, k, _ = conv_pair(tmp_path, 3, channels)
    plan = plan_transfer(source, target, TransferOptions(adapt=("input-channels",)))
    out = tmp_path / "o.h5"
    apply_transfer(plan, out, progress=False)
    expected = np.empty((3, 3, channels, 4), "f4")
    for c in range(channels):
        expected[:, :, c, :] = k[:, :, c % 3, :] * (3.0 / channels)
    np.testing.assert_allclose(read_layer(out, "stem_conv")[0], expected, rtol=1e-6)
    assert f"repeated {math.ceil(channels / 3)}x" in plan.layers[0].variables[0].reason


def test_input_channels_of_a_space_to_depth_stem_sum_each_group_of_three(tmp_path):
    source, target, k, _ = conv_pair(tmp_path, 12, 4)
    plan = plan_transfer(source, target, TransferOptions(adapt=("input-channels",)))
    out = tmp_path / "o.h5"
    apply_transfer(plan, out, progress=False)
    expected = np.stack([k[:, :, 3 * g] + k[:, :, 3 * g + 1] + k[:, :, 3 * g + 2] for g in range(4)], axis=2)
    np.testing.assert_allclose(read_layer(out, "stem_conv")[0], expected, rtol=1e-6)


def test_input_channels_adapts_the_first_convolution_only_and_refuses_what_timm_does_not(tmp_path):
    # 4 -> 2 channels is not RGB into N: refused, with the reason.
    source, target, _, _ = conv_pair(tmp_path, 4, 2)
    plan = plan_transfer(source, target, TransferOptions(adapt=("input-channels",)))
    assert plan.exit_code == 2 and "input channels 4 -> 2" in plan.problems[0]
    # A later convolution whose input channels changed is not the input's: left a mismatch.
    k, b, k2, b2 = rng_arrays(3, (3, 3, 3, 4), (4,), (3, 3, 3, 6), (6,))
    source = write_legacy(tmp_path / "s2.h5", {"stem_conv": {"kernel": k, "bias": b},
                                                "next_conv": {"kernel": k2, "bias": b2}})
    target = write_legacy(tmp_path / "t2.h5", {"stem_conv": {"kernel": k, "bias": b},
                                               "next_conv": {"kernel": np.zeros((3, 3, 1, 6), "f4"),
                                                             "bias": b2}})
    plan = plan_transfer(source, target, TransferOptions(adapt=("input-channels",)))
    assert plan.exit_code == 2
    assert "next_conv" in plan.problems[0] and "only the first convolution's kernel" in plan.problems[0]


def dense_pair(tmp_path, src_units: int, tgt_units: int, *, bn: bool = False):
    k, b = rng_arrays(5, (8, src_units), (src_units,))
    layers_s = {"fc": {"kernel": k, "bias": b}}
    layers_t = {"fc": {"kernel": np.full((8, tgt_units), 9.0, "f4"), "bias": np.full(tgt_units, 9.0, "f4")}}
    stats = None
    if bn:
        stats = rng_arrays(6, (src_units,), (src_units,), (src_units,), (src_units,))
        stats[3] = np.abs(stats[3]) + 0.5
        names = ("gamma", "beta", "moving_mean", "moving_variance")
        layers_s["bn"] = dict(zip(names, stats))
        layers_t["bn"] = {n: np.full(tgt_units, 9.0, "f4") for n in names}
    return write_legacy(tmp_path / "s.h5", layers_s), write_legacy(tmp_path / "t.h5", layers_t), k, b, stats


def test_slice_pad_cuts_a_head_that_shrank(tmp_path):
    source, target, k, b, _ = dense_pair(tmp_path, 10, 3)
    assert plan_transfer(source, target).exit_code == 2
    plan = plan_transfer(source, target, TransferOptions(adapt=("slice-pad",)))
    out = tmp_path / "o.h5"
    apply_transfer(plan, out, progress=False)
    got = read_layer(out, "fc")
    np.testing.assert_array_equal(got[0], np.array([[k[i, j] for j in range(3)] for i in range(8)], "f4"))
    np.testing.assert_array_equal(got[1], np.array([b[j] for j in range(3)], "f4"))
    kernel = plan.layers[0].variables[0]
    assert kernel.adapter == "slice-pad" and kernel.reason == "slice-pad: axis 1: 10 -> 3, [3:10] dropped"


def test_slice_pad_extends_explicitly_with_zeros_and_ones_for_gamma_and_variance(tmp_path):
    source, target, k, b, stats = dense_pair(tmp_path, 3, 5, bn=True)
    plan = plan_transfer(source, target, TransferOptions(adapt=("slice-pad",)))
    out = tmp_path / "o.h5"
    apply_transfer(plan, out, progress=False)
    got = read_layer(out, "fc")
    expected = np.zeros((8, 5), "f4")
    expected[:, :3] = k
    np.testing.assert_array_equal(got[0], expected)
    np.testing.assert_array_equal(got[1], np.array([b[0], b[1], b[2], 0, 0], "f4"))
    gamma, beta, mean, variance = read_layer(out, "bn")
    np.testing.assert_array_equal(gamma, np.array([*stats[0], 1, 1], "f4"))
    np.testing.assert_array_equal(beta, np.array([*stats[1], 0, 0], "f4"))
    np.testing.assert_array_equal(mean, np.array([*stats[2], 0, 0], "f4"))
    np.testing.assert_array_equal(variance, np.array([*stats[3], 1, 1], "f4"))
    reasons = {v.target: v.reason for layer in plan.layers for v in layer.variables}
    assert reasons["gamma"] == "slice-pad: axis 0: 3 -> 5, [3:5] set to 1"
    assert reasons["kernel"] == "slice-pad: axis 1: 3 -> 5, [3:5] set to 0"


def test_reshape_moves_the_same_elements_into_another_layout(tmp_path):
    (k,) = rng_arrays(8, (4, 6))
    source = write_legacy(tmp_path / "s.h5", {"proj": {"kernel": k}})
    target = write_legacy(tmp_path / "t.h5", {"proj": {"kernel": np.zeros((4, 2, 3), "f4")}})
    plan = plan_transfer(source, target, TransferOptions(adapt=("reshape",)))
    out = tmp_path / "o.h5"
    apply_transfer(plan, out, progress=False)
    expected = np.empty((4, 2, 3), "f4")
    for i in range(4):
        for j in range(6):
            expected[i, j // 3, j % 3] = k[i, j]
    np.testing.assert_array_equal(read_layer(out, "proj")[0], expected)


def test_a_transposed_shape_is_a_mismatch_even_with_reshape(tmp_path):
    (k,) = rng_arrays(9, (4, 8))
    source = write_legacy(tmp_path / "s.h5", {"proj": {"kernel": k}})
    target = write_legacy(tmp_path / "t.h5", {"proj": {"kernel": np.zeros((8, 4), "f4")}})
    # Exact comparison: never a silent reshape.
    plan = plan_transfer(source, target)
    assert plan.exit_code == 2 and "shape (4, 8) in the source, (8, 4) in the target" in plan.problems[0]
    plan = plan_transfer(source, target, TransferOptions(adapt=("reshape",)))
    assert plan.exit_code == 2 and "would move values across axes" in plan.problems[0]
    # slice-pad would apply, but only when asked for.
    plan = plan_transfer(source, target, TransferOptions(adapt=("reshape", "slice-pad")))
    assert plan.exit_code == 0 and plan.layers[0].variables[0].adapter == "slice-pad"


def test_adapted_reports_say_so_in_every_format(tmp_path, cli):
    import jsonschema
    from support import ROOT

    source, target, _, _, _ = dense_pair(tmp_path, 10, 3)
    code, out, err = cli("transfer", source, target, "--dry-run", "--adapt", "slice-pad", "--format", "json")
    data = json.loads(out)
    assert code == 0
    jsonschema.validate(data, json.loads((ROOT / "archdiff/schemas/transfer.schema.json").read_text()))
    assert data["options"]["adapt"] == ["slice-pad"]
    assert data["layers"][0]["status"] == "adapted" and data["totals"]["adapted_layers"] == 1
    assert data["layers"][0]["variables"][0]["adapter"] == "slice-pad"
    text = render(dry_run(plan_transfer(source, target, TransferOptions(adapt=("slice-pad",)))))
    assert "would adapt" in text and "slice-pad: axis 1: 10 -> 3" in text and "adapted in 1 layer" in text
    md = render(dry_run(plan_transfer(source, target, TransferOptions(adapt=("slice-pad",)))), "markdown")
    assert "would adapt" in md


def test_unknown_adapters_are_usage_errors(cli, tmp_path):
    source, target, _, _, _ = dense_pair(tmp_path, 10, 3)
    with pytest.raises(UsageError, match="'stretch' is not an adapter"):
        TransferOptions(adapt=("stretch",))
    code, _, err = cli("transfer", source, target, "--dry-run", "--adapt", "slice-pad,stretch")
    assert code == 2 and err.startswith("archdiff: error: --adapt 'stretch' is not an adapter")
    # Repeated and comma-separated names are one list, in the order adapters are tried.
    assert TransferOptions(adapt=("slice-pad", "reshape,input-channels")).adapt == (
        "input-channels", "reshape", "slice-pad")


def test_adapted_values_are_verified_after_writing(tmp_path):
    source, target, _, _, _ = dense_pair(tmp_path, 10, 3)
    report = apply_transfer(plan_transfer(source, target, TransferOptions(adapt=("slice-pad",))), tmp_path / "o.h5",
                            progress=False)
    assert report.verified and set(report.checksums) == {"fc/kernel", "fc/bias"}
    with h5py.File(tmp_path / "o.h5") as f:
        import hashlib

        data = np.ascontiguousarray(f["fc/fc/kernel:0"][()])
    assert report.checksums["fc/kernel"] == hashlib.sha256(data.tobytes()).hexdigest()
