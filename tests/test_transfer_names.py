"""Variable names that differ between Keras 2 and Keras 3 for the same variable pair up.

Keras 2's DepthwiseConv2D calls its kernel ``depthwise_kernel``; Keras 3 calls
it ``kernel`` (``keras/src/layers/convolutional/base_depthwise_conv.py``).
Found porting a tf-keras MobileNetV2 into Keras 3 (tests/test_port_keras.py
checks that port in Keras).
"""
from __future__ import annotations

import numpy as np
from test_transfer import read_layer, rng_arrays, write_legacy

from archdiff.transfer import apply_transfer, plan_transfer


def test_a_keras2_depthwise_kernel_is_the_keras3_kernel(tmp_path):
    k, b = rng_arrays(4, (3, 3, 8, 1), (8,))
    source = write_legacy(tmp_path / "s.h5", {"dw": {"depthwise_kernel": k, "bias": b}})
    target = write_legacy(tmp_path / "t.h5", {"dw": {"kernel": np.zeros_like(k), "bias": np.zeros_like(b)}},
                          version="3.15.1")
    plan = plan_transfer(source, target)
    (layer,) = plan.layers
    assert layer.status == "copied" and [(v.target, v.source, v.paired_by) for v in layer.variables] == [
        ("kernel", "depthwise_kernel", "name"), ("bias", "bias", "name")]
    apply_transfer(plan, tmp_path / "o.h5", progress=False)
    np.testing.assert_array_equal(read_layer(tmp_path / "o.h5", "dw")[0], k)


def test_other_different_names_still_do_not_pair(tmp_path):
    k, b = rng_arrays(4, (3, 3, 8, 1), (8,))
    source = write_legacy(tmp_path / "s.h5", {"dw": {"pointwise_kernel": k, "bias": b}})
    target = write_legacy(tmp_path / "t.h5", {"dw": {"kernel": np.zeros_like(k), "bias": np.zeros_like(b)}})
    plan = plan_transfer(source, target)
    assert plan.exit_code == 2 and "the variables differ by name" in plan.problems[0]
