"""``archdiff validate`` on the command line: exit codes, formats, data options, errors as one line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_validate_support import IMAGE, TARGET_CLASSES, make_files

pytestmark = pytest.mark.tensorflow

SCHEMA = Path(__file__).resolve().parent.parent / "archdiff" / "schemas" / "validate.schema.json"
FAST = ["--epochs", "2", "--samples", "64", "--test-samples", "32", "--learning-rate", "3e-3", "--device", "cpu",
        "--no-progress"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from archdiff.lazy import require_keras

    return make_files(require_keras(), tmp_path_factory.mktemp("validate_cli"))


def test_good_transfer_exits_0_with_a_text_report(cli, files):
    code, out, err = cli("validate", files / "target.keras", "--weights", files / "good.weights.h5",
                         "--source", files / "source.keras", *FAST)
    assert code == 0, out + err
    assert "[PASS   ] 2. weights arrived  18 variables in 6 layers equal the source's, bit for bit" in out
    assert "[PASS   ] 3. outputs" in out
    assert "transfer gain:" in out
    assert "Keras 3.15" in out and " on tensorflow " in out  # which Keras, which backend and version ran
    assert out.rstrip().endswith("exit 0: every check passed (4 of 4)")


def test_json_report_fits_the_schema_and_markdown_renders(cli, files, tmp_path):
    import jsonschema  # a test dependency (the test extra): missing is a failure, not a skip
    code, out, _ = cli("validate", files / "target.keras", "--weights", files / "swapped.weights.h5",
                       "--source", files / "source.keras", "--no-finetune", "--format", "json")
    assert code == 1
    data = json.loads(out)
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert data["checks"] == {"rebuild": "pass", "weights_arrived": "fail", "outputs": "fail", "finetune": "skipped"}
    assert data["failures"][0].startswith("layer 'bn2': variables are swapped")

    report = tmp_path / "report.md"
    code, out, _ = cli("validate", files / "target.keras", "--weights", files / "swapped.weights.h5",
                       "--source", files / "source.keras", "--no-finetune", "--format", "markdown", "-o", report)
    assert code == 1 and out == ""
    text = report.read_text()
    assert text.startswith("### ❌ archdiff validate")
    assert "| 2. weights arrived | ❌ fail |" in text
    assert "- layer 'bn2': variables are swapped" in text
    import markdown_it  # a test dependency (the test extra)
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<table>" in html


def test_errors_are_one_line_and_exit_2(cli, files):
    code, out, err = cli("validate", files / "good.weights.h5")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "holds no architecture" in err
    code, _, err = cli("validate", files / "target.keras", "--weights", files / "good.weights.h5",
                       "--freeze-until", "nope", *FAST)
    assert code == 2 and "--freeze-until 'nope'" in err
    code, _, err = cli("validate", files / "target.keras", "--unfreeze-epochs", "2")
    assert code == 2 and "--unfreeze-epochs needs --unfreeze-lr" in err
    code, _, err = cli("validate", files / "target.keras", "--import", "no_such_module_archdiff")
    assert code == 2 and "--import 'no_such_module_archdiff' cannot be imported" in err


def test_report_file_may_not_overwrite_an_input(cli, files):
    code, _, err = cli("validate", files / "target.keras", "-o", files / "target.keras", "--no-finetune")
    assert code == 2 and "is the input" in err


def test_npz_data_and_freeze_until_index(cli, files, tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((80,) + IMAGE, dtype=np.float32)
    y = (x[:, :, :, 0].mean(axis=(1, 2)) > 0.5).astype("int64") + (x[:, :, :, 1].mean(axis=(1, 2)) > 0.5)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    code, out, err = cli("validate", files / "good.keras", "--data", tmp_path / "data.npz", "--freeze-until", "8",
                         "--format", "json", "--allow-skip", "weights_arrived,outputs", *FAST)
    assert code == 0, out + err
    data = json.loads(out)
    ft = data["finetune"]
    assert ft["data"]["kind"] == "npz" and ft["data"]["train_samples"] == 64 and ft["data"]["test_samples"] == 16
    assert ft["freeze"]["index"] == 8 and ft["freeze"]["first_trainable"] == "conv3"
    assert ft["scratch"] is None  # only on the built-in task
    assert data["checks"]["weights_arrived"] == "skipped"


def test_npz_with_labels_the_head_cannot_take_is_refused(cli, files, tmp_path):
    np.savez(tmp_path / "bad.npz", x=np.zeros((10,) + IMAGE, "float32"), y=np.arange(10))
    code, _, err = cli("validate", files / "good.keras", "--data", tmp_path / "bad.npz", *FAST)
    assert code == 2 and f"labels must be 0..{TARGET_CLASSES - 1}" in err


def test_image_folder_data(cli, files, tmp_path):
    import tensorflow as tf

    root = tmp_path / "images"
    rng = np.random.default_rng(1)
    for c in range(TARGET_CLASSES):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(8):
            pixels = (rng.random((20, 20, 3)) * 80 + 60 * c).astype("uint8")
            (root / f"class_{c}" / f"{i}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    code, out, err = cli("validate", files / "good.keras", "--data", root, "--freeze-until", "conv4",
                         "--format", "json", "--allow-skip", "all", *FAST)
    assert code == 0, out + err
    ft = json.loads(out)["finetune"]
    assert ft["data"]["kind"] == "dir"
    assert ft["data"]["class_names"] == ["class_0", "class_1", "class_2"]
    assert ft["data"]["image_shape"] == list(IMAGE)
    assert ft["status"] == "pass"


def test_the_demo_fixtures_validate_after_archdiff_transfer(cli, tmp_path):
    """The demo's story end to end, with the real transfer command (a short fine-tune)."""
    demo = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
    out = tmp_path / "out.keras"
    code, _, err = cli("transfer", demo / "source.keras", demo / "target.keras", "-o", out)
    assert code == 0, err  # done as asked: the new block and head keep their own weights
    code, text, err = cli("validate", demo / "target.keras", "--weights", out, "--source", demo / "source.keras",
                          "--format", "json", "--epochs", "2", "--samples", "128", "--test-samples", "128",
                          "--no-progress")
    assert code == 0, text + err
    data = json.loads(text)
    assert data["weights_arrived"]["arrived_layers"] == 4
    assert data["outputs"]["outputs"][0]["target_layer"] == "block2_pool"
    assert data["finetune"]["metric_after"] > data["finetune"]["scratch"]["metric_after"]
