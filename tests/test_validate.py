"""``archdiff.validate``: a correct transfer validates; wrong ones fail, naming the layer.

The transferred files are made with Keras itself (set_weights layer by layer),
so these tests judge validate, not the transfer command. Tiny models, a few
training steps: the whole module runs in well under a minute on two cores.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from test_validate_support import fast_options, make_files

pytestmark = pytest.mark.tensorflow


@pytest.fixture(scope="module")
def keras():
    from archdiff.lazy import require_keras

    return require_keras()


@pytest.fixture(scope="module")
def files(keras, tmp_path_factory):
    return make_files(keras, tmp_path_factory.mktemp("validate"))


def run(files, weights, **changes):
    from archdiff.validate import validate

    return validate(str(files / "target.keras"), str(files / weights), str(files / "source.keras"),
                    fast_options(**changes), progress=False)


# -- a correct transfer ------------------------------------------------------------------
@pytest.fixture(scope="module")
def good_report(files):
    return run(files, "good.weights.h5", unfreeze_lr=1e-5, unfreeze_epochs=1)


def test_correct_transfer_passes_every_check(good_report):
    report = good_report
    assert report.exit_code == 0, report.failures
    assert dict(report.checks) == {"rebuild": "pass", "weights_arrived": "pass", "outputs": "pass",
                                   "finetune": "pass"}
    assert report.failures == []


def test_correct_transfer_lists_what_arrived_and_what_did_not(good_report):
    w = good_report.weights_arrived
    assert sorted(w.arrived) == ["bn1", "bn2", "bn3", "conv1", "conv2", "conv3"]
    assert w.checked_variables == w.equal_variables == 18
    assert {x["layer"] for x in w.not_transferred} == {"conv4", "bn4", "new_head"}
    assert w.unused_source == ("head",)


def test_outputs_compared_on_the_shared_subgraph(good_report):
    o = good_report.outputs
    # conv1 .. relu3 are shared; block 4 and the head are not.
    assert set(o.shared_layers) == {"conv1", "bn1", "relu1", "conv2", "bn2", "relu2", "pool", "conv3", "bn3",
                                    "relu3"}
    assert [x.target_layer for x in o.outputs] == ["relu3"]
    assert o.outputs[0].max_abs_diff == 0.0
    assert {"layer": "gap", "reason": "its input 'relu4' is not shared"} in o.excluded


def test_finetune_freezes_transferred_layers_and_keeps_frozen_bn_in_inference(good_report):
    f = good_report.finetune
    assert f.freeze["mode"] == "transferred"
    assert set(f.freeze["layers"]) == {"bn1", "bn2", "bn3", "conv1", "conv2", "conv3"}
    stage1, stage2 = f.stages
    # conv: kernel, bias; bn: gamma, beta, moving_mean, moving_variance -> 3 * 2 + 3 * 4
    assert stage1.frozen_variables == 18
    assert stage1.frozen_changed == () and stage1.trainable_unchanged == ()
    assert stage1.loss_finite and stage1.loss_falling
    assert stage1.steps == 3 * 3  # 96 samples / 32 per batch, 3 epochs
    assert stage1.metric_before is not None and stage1.metric_after is not None
    # Stage 2 unfreezes all but the frozen BatchNormalization layers (inference mode, moving stats untouched).
    assert stage2.learning_rate == 1e-5
    assert set(stage2.frozen_layers) == {"bn1", "bn2", "bn3"}
    assert stage2.frozen_changed == () and stage2.trainable_unchanged == ()
    assert f.scratch is not None and f.scratch.steps == stage1.steps + stage2.steps
    assert f.transfer_gain == pytest.approx(f.metric_after - f.scratch.metric_after)
    assert f.device["device"] == "cpu" and f.device["strategy"] == "default" and f.device["backend"] == "tensorflow"
    assert good_report.rebuild.backend == "tensorflow" and good_report.rebuild.backend_version
    assert stage1.time_per_step_ms is not None and stage1.time_per_step_ms > 0


def test_report_is_json_serializable_and_fits_the_schema(good_report):
    import json
    from pathlib import Path

    import jsonschema  # a test dependency (the test extra): missing is a failure, not a skip

    from archdiff.validate.render import render

    schema = json.loads((Path(__file__).resolve().parent.parent / "archdiff" / "schemas"
                         / "validate.schema.json").read_text())
    data = json.loads(render(good_report, "json"))
    jsonschema.validate(data, schema)
    assert data["exit_code"] == 0 and data["checks"]["finetune"] == "pass"


# -- transfers that went wrong -------------------------------------------------------------
def test_swapped_variables_inside_one_layer_fail_naming_layer_and_variables(files):
    report = run(files, "swapped.weights.h5", finetune=False)
    assert report.exit_code == 1
    w = report.weights_arrived
    assert w.status == "fail"
    assert w.failures == ("layer 'bn2': variables are swapped: 'gamma' holds the source's 'beta', "
                          "'beta' holds the source's 'gamma'",)
    bad = next(a for a in w.layers if a.target == "bn2")
    assert {v.name: v.holds for v in bad.variables if not v.equal} == {"gamma": "bn2:beta", "beta": "bn2:gamma"}
    # The outputs differ too, and the difference is traced back to bn2.
    assert report.outputs.status == "fail"
    assert [o["layer"] for o in report.outputs.origin] == ["bn2"]
    assert "starts at layer 'bn2'" in report.outputs.failures[0]


def test_layer_given_another_layers_weights_fails_naming_both(files):
    report = run(files, "shifted.weights.h5", finetune=False)
    assert report.exit_code == 1
    assert report.weights_arrived.failures == (
        "layer 'conv3' holds the weights of source layer 'conv2' (kernel, bias), not those of 'conv3'",)
    assert [o["layer"] for o in report.outputs.origin] == ["conv3"]


def test_layer_left_with_its_initial_values_is_named(files):
    from archdiff.validate import validate

    report = validate(str(files / "target.keras"), str(files / "forgot.weights.h5"), str(files / "source.keras"),
                      fast_options(finetune=False), progress=False)
    failures = report.weights_arrived.failures
    assert len(failures) == 1
    assert failures[0].startswith("layer 'conv1': 'kernel' was not transferred (it still holds the target's own "
                                  "initial value)")


def test_a_frozen_layer_that_changes_fails_the_finetune_check(files, keras, monkeypatch):
    import archdiff.validate.finetuning as v

    real_fit = v._fit

    def unfreezing_fit(model, data, epochs, batch_size, callbacks, seed):
        # A bug that unfreezes a transferred layer behind the freezing's back.
        model.get_layer("conv2").trainable = True
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=model.loss, metrics=["accuracy"])
        return real_fit(model, data, epochs, batch_size, callbacks, seed)

    monkeypatch.setattr(v, "_fit", unfreezing_fit)
    report = run(files, "good.weights.h5", scratch=False, epochs=1)
    assert report.exit_code == 1
    assert report.finetune.status == "fail"
    stage = report.finetune.stages[0]
    assert stage.frozen_changed == ("conv2/kernel", "conv2/bias")
    assert report.failures == ["stage 1: frozen variable(s) changed during training: conv2/kernel, conv2/bias"]


def test_a_trainable_layer_that_never_changes_fails(files, keras, monkeypatch):
    import archdiff.validate.finetuning as v

    real_snapshot = v._snapshot

    def freeze_head_quietly(model):
        # Trainable in the optimizer's eyes, but its gradient never arrives: stop it after the snapshot.
        snap = real_snapshot(model)
        head = model.get_layer("new_head")
        frozen_value = head.kernel.numpy()
        head.kernel.constraint = lambda w: keras.ops.convert_to_tensor(frozen_value)  # each update is undone
        return snap

    monkeypatch.setattr(v, "_snapshot", freeze_head_quietly)
    report = run(files, "good.weights.h5", scratch=False, epochs=1)
    assert report.finetune.status == "fail"
    assert "new_head/kernel" in report.finetune.stages[0].trainable_unchanged


def test_progress_goes_to_the_epoch_bar_and_nothing_else_is_printed(files, capsys):
    from archdiff.read import load
    from archdiff.validate import finetune

    target = str(files / "good.keras")
    options = fast_options(epochs=2, scratch=False, freeze_until="conv3")
    finetune(load(target), target, None, options, progress=False)
    out, err = capsys.readouterr()
    assert out == "" and "archdiff" not in err
    finetune(load(target), target, None, options, progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "\rarchdiff validate: stage 1 [" in err and "2/2 epochs  loss " in err


# -- freezing by index or name ---------------------------------------------------------------
def test_freeze_until_name_freezes_the_layers_before_it(files):
    report = run(files, "good.weights.h5", freeze_until="conv3", scratch=False, epochs=2)
    f = report.finetune
    assert f.status == "pass", f.failures
    # model.layers: image, conv1, bn1, relu1, conv2, bn2, relu2, pool, conv3 ...
    assert f.freeze["index"] == 8 and f.freeze["first_trainable"] == "conv3"
    assert set(f.freeze["layers"]) == {"conv1", "bn1", "conv2", "bn2"}


def test_freeze_until_index_matches_archdiff_layers(files, keras):
    from archdiff.read import load
    from archdiff.validate import rebuild, resolve_freeze_until
    from archdiff.views import layer_rows

    arch = load(str(files / "target.keras"))
    rows = {r["name"]: r["index"] for r in layer_rows(arch)}
    model = rebuild(arch)
    assert resolve_freeze_until(model, "conv3") == rows["conv3"] == 8
    assert resolve_freeze_until(model, str(rows["conv4"])) == rows["conv4"]
    from archdiff.errors import UsageError

    with pytest.raises(UsageError, match="did you mean 'conv3'"):
        resolve_freeze_until(model, "conv_3")
    with pytest.raises(UsageError, match="out of range"):
        resolve_freeze_until(model, "99")


# -- without a source ---------------------------------------------------------------------------
def test_without_source_checks_two_and_three_are_skipped(files):
    from archdiff.validate import validate

    report = validate(str(files / "good.keras"), None, None, fast_options(scratch=False, epochs=2,
                                                                           freeze_until="conv4"), progress=False)
    assert dict(report.checks)["weights_arrived"] == "skipped"
    assert dict(report.checks)["outputs"] == "skipped"
    assert report.finetune.status == "pass"
    # No silent skips: a check that could not run fails the run unless --allow-skip accepts it.
    assert report.exit_code == 1
    assert report.unaccepted_skips == ["weights_arrived", "outputs"]
    assert report.failures == [
        "check 'weights_arrived' was skipped: no --source: nothing to compare the weights with "
        "(--allow-skip weights_arrived accepts this)",
        "check 'outputs' was skipped: no --source: nothing to compare the outputs with "
        "(--allow-skip outputs accepts this)"]
    import dataclasses

    accepted = dataclasses.replace(report, options=report.options.with_changes(
        allow_skip=("weights_arrived", "outputs")))
    assert accepted.exit_code == 0 and accepted.failures == []


# -- the output comparison at another input size ------------------------------------------------
def test_source_layers_run_at_the_targets_input_size(keras, tmp_path):
    from archdiff.validate import validate

    make_files(keras, tmp_path, target_image=(24, 24, 3))
    report = validate(str(tmp_path / "target.keras"), str(tmp_path / "good.weights.h5"),
                      str(tmp_path / "source.keras"), fast_options(finetune=False), progress=False)
    assert report.exit_code == 0, report.failures
    assert report.outputs.status == "pass"
    assert report.outputs.input_shapes == {"image": [None, 24, 24, 3]}
    assert report.outputs.source_input_shapes == {"image": [None, 16, 16, 3]}
    assert any("run at the target's size" in n for n in report.outputs.notes)


def _flat_dense_pair(keras, tmp_path):
    L = keras.layers

    def model(size, name):
        inputs = keras.Input((size, size, 3), name="image")
        x = L.Conv2D(4, 3, name="conv")(inputs)
        x = L.Flatten(name="flat")(x)
        x = L.Dense(5, name="dense")(x)
        return keras.Model(inputs, L.Dense(2, name="out")(x), name=name)

    source, target = model(8, "s"), model(10, "t")
    source.save(tmp_path / "s.keras")
    for name in ("conv", "out"):  # what a transfer copies: the layers whose shapes fit
        target.get_layer(name).set_weights(source.get_layer(name).get_weights())
    target.save(tmp_path / "t.keras")
    return str(tmp_path / "s.keras"), str(tmp_path / "t.keras")


def test_a_layer_whose_weights_did_not_fit_ends_the_shared_subgraph(keras, tmp_path):
    from archdiff.validate import validate

    source, target = _flat_dense_pair(keras, tmp_path)
    report = validate(target, None, source, fast_options(finetune=False), progress=False)
    assert report.exit_code == 0, report.failures
    assert [x["layer"] for x in report.weights_arrived.not_transferred] == ["dense"]
    o = report.outputs
    assert [(x.target_layer, x.status) for x in o.outputs] == [("flat", "pass")]
    assert o.excluded[0]["layer"] == "dense" and "not transferred" in o.excluded[0]["reason"]


def test_a_part_that_cannot_run_at_the_targets_size_steps_back_to_what_can(keras, tmp_path):
    from archdiff.read import load
    from archdiff.validate import compare_outputs, pair_layers, rebuild

    source, target = _flat_dense_pair(keras, tmp_path)
    s_arch, t_arch = load(source), load(target)
    model = rebuild(t_arch)
    model.load_weights(target)
    # Without knowing 'dense' did not fit, the comparison tries it, fails at 10x10, and steps back.
    o = compare_outputs(model, t_arch, s_arch, pair_layers(s_arch, t_arch), atol=1e-5, rtol=1e-5, batch=2,
                        seed=0, unsafe=False)
    by_layer = {x.target_layer: x for x in o.outputs}
    assert o.status == "pass"
    assert by_layer["flat"].status == "pass"
    assert by_layer["out"].status == "not_compared"
    assert by_layer["out"].reason.startswith("cannot run at the target's input size: ValueError")


# -- rebuilding safely ----------------------------------------------------------------------------
def test_lambda_code_is_refused_in_safe_mode_and_runs_with_unsafe(keras, tmp_path):
    from archdiff.errors import UnsafeInputError
    from archdiff.read import load
    from archdiff.validate import rebuild

    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    arch = load(str(tmp_path / "lambda.keras"))
    with pytest.raises(UnsafeInputError, match="'double'.*--unsafe"):
        rebuild(arch)
    model = rebuild(arch, unsafe=True)
    assert np.allclose(np.asarray(model(np.ones((1, 4), "float32"))), 2.0)


def test_custom_classes_need_import(keras, tmp_path, monkeypatch):
    from archdiff.errors import InputError
    from archdiff.read import load
    from archdiff.validate import import_modules, rebuild

    module = tmp_path / "archdiff_test_custom_layers.py"
    module.write_text(
        "import keras\n"
        "@keras.saving.register_keras_serializable(package='archdifftest')\n"
        "class Scale(keras.layers.Layer):\n"
        "    def __init__(self, factor=1.0, **kw):\n"
        "        super().__init__(**kw)\n"
        "        self.factor = factor\n"
        "    def call(self, x):\n"
        "        return x * self.factor\n"
        "    def get_config(self):\n"
        "        return {**super().get_config(), 'factor': self.factor}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import archdiff_test_custom_layers as custom

    inputs = keras.Input((3,), name="x")
    keras.Model(inputs, custom.Scale(3.0, name="scale")(inputs)).save(tmp_path / "custom.keras")
    # Forget the class, as a fresh process would not know it.
    keras.saving.get_custom_objects().pop("archdifftest>Scale", None)
    monkeypatch.delitem(sys.modules, "archdiff_test_custom_layers")
    arch = load(str(tmp_path / "custom.keras"))
    with pytest.raises(InputError, match="does not know the class.*--import MODULE"):
        rebuild(arch)
    import_modules(["archdiff_test_custom_layers"])
    model = rebuild(arch)
    assert np.allclose(np.asarray(model(np.ones((1, 3), "float32"))), 3.0)
    keras.saving.get_custom_objects().pop("archdifftest>Scale", None)


def test_weights_only_target_is_refused_with_a_hint(files):
    from archdiff.errors import TopologyUnknownError
    from archdiff.validate import validate

    with pytest.raises(TopologyUnknownError, match="holds no architecture"):
        validate(str(files / "good.weights.h5"), None, None, fast_options(finetune=False), progress=False)


# -- across Keras versions, with the real transfer command ------------------------------------------
def test_keras2_source_into_keras3_target_with_archdiff_transfer(tmp_path):
    from pathlib import Path

    from archdiff.transfer import TransferOptions, apply_transfer, plan_transfer
    from archdiff.validate import validate

    fixtures = Path(__file__).resolve().parent.parent / "fixtures"
    source = str(fixtures / "keras2" / "resnet_small.h5")
    target = str(fixtures / "keras3" / "resnet_small.keras")
    out = str(tmp_path / "out.keras")
    apply_transfer(plan_transfer(source, target, TransferOptions()), out, progress=False)
    report = validate(target, out, source, fast_options(finetune=False), progress=False)
    assert report.exit_code == 0, report.failures
    assert report.weights_arrived.equal_variables == report.weights_arrived.checked_variables > 50
    assert report.outputs.outputs[0].max_abs_diff == 0.0


def test_renamed_layers_are_paired_with_the_transfers_map_syntax(keras, files, tmp_path):
    """The target renamed conv2 to features2: by name it is 'not transferred'; with --map it arrived."""
    from test_validate_support import TARGET_CLASSES, transfer_by_name

    from archdiff.validate import validate

    L = keras.layers
    inputs = keras.Input((16, 16, 3), name="image")
    x = L.ReLU(name="relu1")(L.BatchNormalization(name="bn1")(L.Conv2D(8, 3, padding="same", name="conv1")(inputs)))
    x = L.Conv2D(8, 3, padding="same", name="features2")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    target = keras.Model(inputs, L.Dense(TARGET_CLASSES, activation="softmax", name="new_head")(x))
    target.save(tmp_path / "renamed.keras")
    source = keras.models.load_model(files / "source.keras")
    transfer_by_name(keras, source, target)
    target.get_layer("features2").set_weights(source.get_layer("conv2").get_weights())
    target.save_weights(tmp_path / "out.weights.h5")

    def check(**changes):
        return validate(str(tmp_path / "renamed.keras"), str(tmp_path / "out.weights.h5"),
                        str(files / "source.keras"), fast_options(finetune=False, **changes), progress=False)

    by_name = check()
    assert {"layer": "features2", "reason": "the source has no layer of this name"} in \
        by_name.weights_arrived.not_transferred
    mapped = check(maps=("conv2=features2",))
    assert mapped.exit_code == 0, mapped.failures
    assert "features2" in mapped.weights_arrived.arrived
    regex = check(maps=(r"re:^conv2$=features2",))
    assert "features2" in regex.weights_arrived.arrived
