"""validate across Keras backends: each backend in its own process (Keras fixes its backend at import).

- the transfer-learning guide's scenario (a flat Xception's weights in
  ``inputs -> xception(training=False) -> GAP -> Dropout -> Dense(1)``) runs
  all four checks and passes on TensorFlow and on JAX, and the two backends
  agree on the port's outputs;
- a port with two same-shaped variables swapped fails on both;
- outputs recorded from the Keras 2 model on tf-keras are matched by the
  Keras 3 port on JAX;
- the same port on PyTorch's backend (make test installs PyTorch's CPU build;
  a skip fails in CI).

These run ``python -m archdiff`` in subprocesses, so the pytest process
(already holding Keras on TensorFlow) is not asked to switch.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_validate_support import make_files

pytestmark = pytest.mark.tensorflow

ROOT = Path(__file__).resolve().parent.parent


def archdiff(*args, env=None, timeout=900):
    """``python -m archdiff ARGS`` in a fresh process: (exit code, stdout, stderr)."""
    path = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    full = dict(os.environ, PYTHONPATH=path, ARCHDIFF_NO_PROGRESS="1", TF_CPP_MIN_LOG_LEVEL="3",
                CUDA_VISIBLE_DEVICES="")
    full.pop("KERAS_BACKEND", None)
    full.update(env or {})
    done = subprocess.run([sys.executable, "-m", "archdiff", *map(str, args)], capture_output=True, text=True,
                          env=full, timeout=timeout, cwd=str(ROOT))
    return done.returncode, done.stdout, done.stderr


def _jax_installed() -> bool:
    from archdiff.lazy import backend_installed

    return backend_installed("jax")


@pytest.fixture(scope="module")
def keras():
    from archdiff.lazy import require_keras

    return require_keras()


@pytest.fixture(scope="module")
def guide(keras, tmp_path_factory):
    """The guide's model with a flat Xception's (seeded, not downloaded) weights ported into its nested base."""
    import numpy as np

    folder = tmp_path_factory.mktemp("guide")
    size = (71, 71, 3)  # Xception's smallest input: the scenario at the lowest cost
    # Both models are built from a fresh naming state, as in two new sessions. Without it, in a long pytest
    # process the flat base's weightless auto-named layers came out as add_1 .. add_12 (earlier tests had used
    # "add") and the nested one's as add .. add_11: the names no longer paired, so the shared sub-graph ended
    # at block2_pool, the last layer before the first 'add' (the failure held as an xfail before).
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    flat = keras.applications.Xception(weights=None, include_top=False, input_shape=size)
    rng = np.random.default_rng(0)
    for var in flat.weights:
        positive = var.path.endswith(("gamma", "moving_variance"))
        value = rng.uniform(0.8, 1.2, var.shape) if positive else rng.normal(0.0, 0.05, var.shape)
        var.assign(value.astype("float32"))
    flat.save(folder / "xception.keras")
    # A fresh process would give the auto-named layers (conv2d, add ...) the same names: so does a new session.
    keras.backend.clear_session()
    base = keras.applications.Xception(weights=None, include_top=False, input_shape=size)
    for layer in base.layers:
        if layer.weights:
            layer.set_weights(flat.get_layer(layer.name).get_weights())
    inputs = keras.Input(size)
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    keras.Model(inputs, keras.layers.Dense(1)(x)).save(folder / "guide.keras")
    keras.backend.clear_session()
    return folder


@pytest.mark.skipif(not _jax_installed(), reason="JAX is not installed (make test installs it)")
def test_the_guides_scenario_passes_every_check_on_tensorflow_and_jax(guide):
    code, out, err = archdiff("validate", guide / "guide.keras", "--source", guide / "xception.keras",
                              "--map", r"re:^(.+)$=xception/\1", "--budget", "quick", "--backends", "tensorflow,jax",
                              "--format", "json")
    assert code == 0, out + err
    data = json.loads(out)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, json.loads((ROOT / "archdiff" / "schemas" / "validate.schema.json").read_text()))
    assert data["kind"] == "backends" and data["backends"] == ["tensorflow", "jax"]
    for name in ("tensorflow", "jax"):
        report = data["reports"][name]
        assert report["checks"] == {"rebuild": "pass", "weights_arrived": "pass", "outputs": "pass",
                                    "finetune": "pass"}, (name, report["failures"])
        assert report["rebuild"]["backend"] == name and report["rebuild"]["backend_version"]
        # The outputs are compared inside the nested base, against the flat source.
        assert report["outputs"]["nested"] == ["xception"]
        assert report["outputs"]["outputs"][0]["target_layer"] == "xception/block14_sepconv2_act", (
            name, report["outputs"].get("excluded", [])[:5], report["outputs"].get("notes"))
        ft = report["finetune"]
        assert ft["loss_name"] == "binary_crossentropy (from logits)"
        assert ft["freeze"]["layer_count"] == 80  # every layer of the base with weights
        assert any("BatchNormalization" in n and "inference mode" in n for n in ft["notes"])
        assert ft["stages"][0]["frozen_changed"] == [] and ft["stages"][0]["loss_falling"] is True
    agreement = data["agreement"]
    assert agreement["status"] == "pass" and agreement["baseline"] == "tensorflow"
    (comparison,) = agreement["comparisons"]
    assert comparison["backend"] == "jax" and comparison["output"] == "dense"
    assert comparison["max_abs_diff"] < 1e-4 and comparison["cosine_similarity"] > 0.9999


@pytest.mark.skipif(not _jax_installed(), reason="JAX is not installed (make test installs it)")
def test_swapped_variables_fail_on_both_backends_which_still_agree(keras, tmp_path):
    make_files(keras, tmp_path)
    code, out, err = archdiff("validate", tmp_path / "target.keras", "--weights", tmp_path / "swapped.weights.h5",
                              "--source", tmp_path / "source.keras", "--no-finetune", "--backends", "tensorflow,jax")
    assert code == 1, out + err
    for name in ("tensorflow", "jax"):
        assert (f"  - [{name}] layer 'bn2': variables are swapped: 'gamma' holds the source's 'beta', 'beta' holds "
                "the source's 'gamma'") in out
        assert f"[{name}] output of layer 'relu3' differs between target and source" in out
    assert "[PASS   ] backends agree  jax agrees with tensorflow" in out  # the same wrong weights on both
    assert out.rstrip().endswith("exit 1: 4 failure(s) across tensorflow, jax")


@pytest.mark.skipif(not _jax_installed(), reason="JAX is not installed (make test installs it)")
def test_a_reference_recorded_on_tf_keras_is_matched_by_the_keras3_port_on_jax(tmp_path):
    """Outputs of the Keras 2 model on the old stack (tf-keras) against the Keras 3 port on JAX."""
    pytest.importorskip("tf_keras")
    source = ROOT / "fixtures" / "keras2" / "resnet_small.h5"
    target = ROOT / "fixtures" / "keras3" / "resnet_small.keras"
    ref = tmp_path / "k2.npz"
    record = ("import sys, tf_keras; from archdiff.validate.reference import record_reference; "
              "m = tf_keras.models.load_model(sys.argv[1], compile=False); "
              "record_reference(m, sys.argv[2], batch=4, seed=1)")
    done = subprocess.run([sys.executable, "-c", record, str(source), str(ref)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3",
                                   CUDA_VISIBLE_DEVICES=""), timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = tmp_path / "port.keras"
    code, _, err = archdiff("transfer", source, target, "-o", out)
    assert code in (0, 1), err
    code, text, err = archdiff("validate", target, "--weights", out, "--source", source, "--reference", ref,
                               "--backend", "jax", "--no-finetune", "--atol", "1e-4", "--format", "json")
    assert code == 0, text + err
    data = json.loads(text)
    assert data["rebuild"]["backend"] == "jax"
    reference = data["reference"]
    assert reference["status"] == "pass" and reference["recorded"]["framework"] == "tf_keras"
    assert reference["recorded"]["keras_version"].startswith("2.")
    assert all(o["status"] == "pass" and o["cosine_similarity"] > 0.9999 for o in reference["outputs"])
    assert data["weights_arrived"]["status"] == "pass" and data["outputs"]["status"] == "pass"


def test_a_backend_that_is_not_installed_or_already_loaded_is_one_line(cli, tmp_path, monkeypatch):
    import archdiff.lazy as lazy

    code, out, err = cli("validate", tmp_path / "missing.keras", "--backend", "jax")
    # This process already runs Keras on TensorFlow: it says so, in one line, and exits 2.
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "Keras was already imported in this process with the tensorflow backend, so it cannot run on jax" in err
    monkeypatch.setattr(lazy, "backend_installed", lambda name: name == "tensorflow")
    code, _, err = cli("validate", tmp_path / "missing.keras", "--backends", "tensorflow,torch")
    assert code == 2 and err.count("\n") == 1 and "the Keras backend 'torch' is not installed" in err
    assert "pip install torch" in err


def _torch_importable() -> bool:
    from archdiff.lazy import backend_installed

    return backend_installed("torch")


@pytest.mark.torch
@pytest.mark.skipif(not _torch_importable(), reason="PyTorch is not installed here (make test installs its CPU "
                                                    "build): its backend is not tested")
def test_the_port_validates_on_torch_too(keras, tmp_path):
    make_files(keras, tmp_path)
    code, out, err = archdiff("validate", tmp_path / "target.keras", "--weights", tmp_path / "good.weights.h5",
                              "--source", tmp_path / "source.keras", "--backend", "torch", "--epochs", "2",
                              "--samples", "64", "--test-samples", "32", "--format", "json")
    assert code == 0, out + err
    data = json.loads(out)
    assert data["rebuild"]["backend"] == "torch" and data["finetune"]["device"]["backend"] == "torch"
