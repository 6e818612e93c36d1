"""The built-in synthetic task and the pieces of validate that need no TensorFlow."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from archdiff.validate import synthetic


def test_same_seed_same_arrays_other_seed_other_arrays():
    a = synthetic.target_task((16, 16, 3), n_classes=4, n_train=20, n_test=10, seed=3)
    b = synthetic.target_task((16, 16, 3), n_classes=4, n_train=20, n_test=10, seed=3)
    c = synthetic.target_task((16, 16, 3), n_classes=4, n_train=20, n_test=10, seed=4)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_shapes_ranges_and_labels():
    task = synthetic.target_task((24, 20, 1), n_classes=5, n_train=40, n_test=16, seed=0)
    assert task.x_train.shape == (40, 24, 20, 1) and task.x_test.shape == (16, 24, 20, 1)
    assert task.x_train.dtype == np.float32 and task.y_train.dtype == np.int32
    assert 0.0 <= task.x_train.min() and task.x_train.max() <= 1.0
    assert set(np.unique(task.y_train)) <= set(range(5))
    assert len(task.pairs) == 5 and len(set(task.pairs)) == 5
    x, y = synthetic.make_source(30, (16, 16, 3), seed=1)
    assert x.shape == (30, 16, 16, 3) and set(np.unique(y)) <= set(range(synthetic.N_PRIMITIVES))


def test_train_and_test_splits_describe_the_same_pairs():
    task = synthetic.target_task(n_classes=6, n_train=8, n_test=8, seed=5)
    assert task.pairs == synthetic.target_pairs(6, 5)
    assert task.describe() == {"name": "builtin-target", "image_shape": [32, 32, 3], "classes": 6,
                               "train_samples": 8, "test_samples": 8}


@pytest.mark.parametrize("shape, classes, message", [
    ((8, 8, 3), 4, "at least 16 x 16"),
    ((32, 32), 4, "(height, width, channels)"),
    ((32, 32, 2), 4, "1- or 3-channel"),
    ((32, 32, 3), 1, "2 to 28 classes"),
    ((32, 32, 3), 29, "2 to 28 classes"),
])
def test_what_the_task_cannot_make_is_refused(shape, classes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        synthetic.target_task(shape, n_classes=classes, n_train=2, n_test=2)


def test_primitive_names():
    assert [synthetic.primitive_name(i) for i in (0, 3, 4)] == ["warm-0deg", "warm-135deg", "cool-0deg"]


def test_the_class_signal_is_in_the_patches_not_the_background():
    """A class is which pair of primitives is present: images of one class share that, not pixels."""
    x, y = synthetic.make_target(200, (32, 32, 3), n_classes=2, seed=0)
    means = [x[y == k].mean() for k in (0, 1)]
    assert abs(means[0] - means[1]) < 0.02  # no trivial brightness shortcut


# -- pieces of archdiff.validate that are plain data --------------------------------------------
def test_mixed_precision_config_leaves_inputs_and_outputs_in_float32():
    from archdiff.validate import mixed_precision_config

    doc = {"class_name": "Functional", "config": {
        "name": "m", "input_layers": [["x", 0, 0]], "output_layers": [["out", 0, 0]],
        "layers": [
            {"class_name": "InputLayer", "name": "x", "config": {"name": "x", "dtype": "float32"}},
            {"class_name": "Dense", "name": "d", "config": {"name": "d", "dtype": "float32"}},
            {"class_name": "Sequential", "name": "inner", "config": {"name": "inner", "layers": [
                {"class_name": "Dense", "config": {"name": "i1", "dtype": "float32"}}]}},
            {"class_name": "Dense", "name": "out", "config": {"name": "out", "dtype": "float32"}},
        ]}, "keras_version": "3.15.1"}
    out = mixed_precision_config(doc)
    layers = {e["name"]: e["config"] for e in out["config"]["layers"]}
    assert layers["x"]["dtype"] == "float32" and layers["out"]["dtype"] == "float32"
    assert layers["d"]["dtype"] == "mixed_float16"
    assert layers["inner"]["layers"][0]["config"]["dtype"] == "mixed_float16"
    assert "keras_version" not in out
    assert doc["config"]["layers"][1]["config"]["dtype"] == "float32"  # the input is not changed


def test_lambda_layers_with_code_are_found_in_both_dialects():
    from archdiff.validate import lambda_layers_with_code

    doc = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "Lambda", "name": "k3", "config": {"name": "k3", "function": {
            "class_name": "__lambda__", "config": {"code": "abc"}}}},
        {"class_name": "Lambda", "config": {"name": "k2", "function": ["4wEA", None, None],
                                            "function_type": "lambda"}},
        {"class_name": "Lambda", "config": {"name": "registered", "function": {
            "class_name": "function", "config": "my_fn", "module": "mymod"}}},
        {"class_name": "Functional", "name": "sub", "config": {"name": "sub", "layers": [
            {"class_name": "Lambda", "config": {"name": "deep", "function": {"class_name": "__lambda__"}}}]}},
    ]}}
    assert lambda_layers_with_code(doc) == ["k3", "k2", "sub/deep"]


def test_config_differences_ignore_names_initializers_and_dialect_spelling():
    from archdiff.validate import config_differences

    a = {"name": "c", "filters": 8, "kernel_size": (3, 3), "axis": [3], "kernel_initializer": {"x": 1},
         "dtype": "float32"}
    b = {"name": "other", "filters": 8, "kernel_size": [3, 3], "axis": 3, "kernel_initializer": {"y": 2},
         "dtype": {"class_name": "DTypePolicy"}, "synchronized": False}
    assert config_differences(a, b) == []
    assert config_differences({"strides": [1, 1]}, {"strides": [2, 2]}) == ["strides: [1, 1] vs [2, 2]"]


def test_the_validate_command_does_not_load_tensorflow_until_it_runs():
    """Registering the command (what every archdiff invocation does) must stay light."""
    code = ("import sys; from archdiff.cli import build_parser; build_parser(); "
            "import archdiff.validate, archdiff.validate.render, archdiff.validate.devices, archdiff.validate.synthetic; "
            "bad = [m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_result_record_is_frozen():
    """Checks build their records once from what they computed; nothing can change one afterwards."""
    import dataclasses

    from archdiff.validate import report

    records = [obj for obj in vars(report).values()
               if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == report.__name__]
    assert {r.__name__ for r in records} >= {"RebuildResult", "VariableResult", "LayerArrival", "WeightsCheck",
                                             "OutputResult", "OutputsCheck", "StageResult", "ScratchResult",
                                             "FinetuneCheck", "ValidationReport"}
    assert [r.__name__ for r in records if not r.__dataclass_params__.frozen] == []
    check = report.WeightsCheck(status=report.PASS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.status = report.FAIL
    assert check.to_dict()["failures"] == [] and isinstance(check.failures, tuple)


def test_only_the_renderer_formats_for_people():
    """No module of the validate stage but render.py prints or writes to stdout/stderr itself."""
    import ast
    from pathlib import Path

    import archdiff.validate

    offenders = []
    for path in sorted(Path(archdiff.validate.__file__).parent.glob("*.py")):
        if path.name == "render.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.name}:{node.lineno}: print")
            if isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr") and \
                    isinstance(node.value, ast.Name) and node.value.id == "sys":
                offenders.append(f"{path.name}:{node.lineno}: sys.{node.attr}")
    assert offenders == []


def test_an_epoch_bar_counts_epochs_and_shows_the_loss():
    import io

    from archdiff.progress import Progress

    stream = io.StringIO()
    bar = Progress(4, "archdiff validate: stage 1", unit="epochs", stream=stream, enabled=True)
    bar.advance(1, detail="loss 1.2500")
    bar.advance(3, detail="loss 0.5")
    bar.close()
    text = stream.getvalue()
    assert "archdiff validate: stage 1 [#######" in text and "1/4 epochs  loss 1.2500" in text
    assert "4/4 epochs  loss 0.5\033[K" in text and text.endswith("\r\033[K")
    quiet = io.StringIO()
    Progress(4, "x", unit="epochs", stream=quiet).advance(4)  # not a terminal: nothing
    assert quiet.getvalue() == ""
