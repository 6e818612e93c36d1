"""Device and strategy selection, with TensorFlow's device lists mocked: the GPU path without a GPU."""
from __future__ import annotations

import contextlib
import json
from unittest import mock

import pytest

from archdiff.validate.devices import (DEFAULT, MIRRORED, MULTI_WORKER, ONE_DEVICE, StepTimes, cluster_size,
                                       plan_devices)
from archdiff.errors import UsageError

GPU0 = "/device:GPU:0"
GPU1 = "/device:GPU:1"


# -- the pure choice ------------------------------------------------------------------
def test_auto_without_gpu_trains_on_the_cpu():
    plan = plan_devices("auto", gpus=())
    assert (plan.device, plan.strategy, plan.devices, plan.replicas) == ("cpu", DEFAULT, ("/device:CPU:0",), 1)
    assert "no GPU" in plan.notes[0]


def test_auto_with_one_gpu_uses_it_with_the_default_strategy():
    plan = plan_devices("auto", gpus=(GPU0,))
    assert (plan.device, plan.strategy, plan.devices, plan.replicas) == ("gpu", DEFAULT, (GPU0,), 1)
    assert plan.notes == ()


def test_auto_with_several_gpus_mirrors_across_them():
    plan = plan_devices("auto", gpus=(GPU0, GPU1))
    assert (plan.device, plan.strategy, plan.devices, plan.replicas) == ("gpu", MIRRORED, (GPU0, GPU1), 2)
    assert plan.describe() == "GPU (/device:GPU:0, /device:GPU:1), MirroredStrategy, 2 replicas"


def test_gpu_requested_without_one_is_an_error_with_a_hint():
    with pytest.raises(UsageError, match="sees no GPU.*nvidia-smi"):
        plan_devices("gpu", gpus=())


def test_cpu_requested_with_gpus_pins_the_cpu():
    plan = plan_devices("cpu", gpus=(GPU0, GPU1))
    assert (plan.device, plan.strategy, plan.devices) == ("cpu", ONE_DEVICE, ("/device:CPU:0",))
    assert "2 GPU(s) seen and left unused" in plan.notes[0]


@pytest.mark.parametrize("gpus, replicas, device", [((), 1, "cpu"), ((GPU0, GPU1), 2, "gpu")])
def test_a_tf_config_cluster_means_multi_worker(gpus, replicas, device):
    tf_config = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]},
                            "task": {"type": "worker", "index": 0}})
    plan = plan_devices("auto", gpus=gpus, tf_config=tf_config)
    assert (plan.strategy, plan.workers, plan.replicas, plan.device) == (MULTI_WORKER, 3, replicas, device)


def test_a_single_task_tf_config_is_not_a_cluster():
    tf_config = json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}})
    assert plan_devices("auto", gpus=(GPU0,), tf_config=tf_config).strategy == DEFAULT
    assert cluster_size(None) == 0 and cluster_size("") == 0


def test_an_unreadable_tf_config_is_an_error_not_a_silent_single_machine():
    with pytest.raises(UsageError, match="TF_CONFIG is not valid JSON"):
        plan_devices("auto", gpus=(), tf_config="{cluster")


def test_mixed_precision_only_on_a_gpu():
    assert plan_devices("auto", gpus=(GPU0,), mixed_precision=True).mixed_precision is True
    cpu = plan_devices("auto", gpus=(), mixed_precision=True)
    assert cpu.mixed_precision is False
    assert any("mixed precision declined" in n for n in cpu.notes)


def test_unknown_device_is_refused():
    with pytest.raises(UsageError, match="not one of auto, cpu, gpu"):
        plan_devices("tpu")


def test_step_time_is_the_median_without_the_tracing_step():
    assert StepTimes([5.0, 0.010, 0.030, 0.020]).per_step_ms() == 20.0
    assert StepTimes([0.004]).per_step_ms() == 4.0
    assert StepTimes([]).per_step_ms() is None


def test_plan_to_dict_round_trips_through_json():
    data = plan_devices("auto", gpus=(GPU0, GPU1), mixed_precision=True).to_dict()
    assert json.loads(json.dumps(data)) == {
        "requested": "auto", "device": "gpu", "strategy": MIRRORED, "devices": [GPU0, GPU1], "replicas": 2,
        "workers": 1, "mixed_precision": True, "notes": []}


# -- with TensorFlow's device lists mocked ---------------------------------------------------
@pytest.fixture
def tf():
    from archdiff.lazy import require_keras  # the tests using it are marked tensorflow: missing fails, not skips

    require_keras()
    import tensorflow

    return tensorflow


def _fake_gpus(tf, n):
    physical = [tf.config.PhysicalDevice(name=f"/physical_device:GPU:{i}", device_type="GPU") for i in range(n)]
    logical = [tf.config.LogicalDevice(name=f"/device:GPU:{i}", device_type="GPU") for i in range(n)]

    def list_physical(kind=None):
        return physical if kind == "GPU" else []

    def list_logical(kind=None):
        return logical if kind == "GPU" else []

    return mock.patch.multiple(tf.config, list_physical_devices=list_physical, list_logical_devices=list_logical)


@pytest.mark.tensorflow
@pytest.mark.parametrize("n, strategy", [(0, DEFAULT), (1, DEFAULT), (2, MIRRORED), (4, MIRRORED)])
def test_choose_reads_tensorflows_device_lists(tf, n, strategy):
    from archdiff.validate.devices import choose

    with _fake_gpus(tf, n):
        plan = choose("auto", environ={})
    assert plan.strategy == strategy
    assert plan.device == ("gpu" if n else "cpu")
    assert plan.replicas == max(1, n)
    if n:
        assert plan.devices == tuple(f"/device:GPU:{i}" for i in range(n))


@pytest.mark.tensorflow
def test_choose_gpu_on_this_machine_fails_cleanly_when_none_is_seen(tf):
    from archdiff.validate.devices import choose

    with _fake_gpus(tf, 0), pytest.raises(UsageError, match="--device gpu"):
        choose("gpu", environ={})


@pytest.mark.tensorflow
def test_make_strategy_builds_what_the_plan_names(tf):
    from archdiff.validate.devices import make_strategy

    with mock.patch.object(tf.distribute, "MirroredStrategy") as mirrored:
        make_strategy(plan_devices("auto", gpus=(GPU0, GPU1)))
    mirrored.assert_called_once_with(devices=[GPU0, GPU1])
    with mock.patch.object(tf.distribute, "MultiWorkerMirroredStrategy") as multi:
        make_strategy(plan_devices("auto", gpus=(), tf_config=json.dumps({"cluster": {"worker": ["a:1", "b:1"]}})))
    multi.assert_called_once_with()
    one = make_strategy(plan_devices("cpu", gpus=(GPU0,)))
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert make_strategy(plan_devices("auto", gpus=())) is tf.distribute.get_strategy()


@pytest.mark.tensorflow
def test_validate_reports_the_mirrored_gpu_path(tf, tmp_path, monkeypatch):
    """Two (mocked) GPUs: validate picks MirroredStrategy and reports it; the steps run on the CPU here."""
    import keras

    import archdiff.validate.finetuning as finetuning
    from archdiff.validate import finetune
    from archdiff.read import load
    from test_validate_support import fast_options, target_model

    keras.utils.set_random_seed(0)
    target_model(keras).save(tmp_path / "t.keras")

    class TwoReplicas:
        """Stands for MirroredStrategy over two GPUs; its scope is the default one, and it counts who is inside."""

        num_replicas_in_sync = 2
        depth = 0

        @contextlib.contextmanager
        def scope(self):
            self.depth += 1
            try:
                with tf.distribute.get_strategy().scope():
                    yield
            finally:
                self.depth -= 1

    fake = TwoReplicas()
    built_inside = []
    real_rebuild = finetuning.rebuild

    def rebuild(*args, **kwargs):
        built_inside.append(fake.depth > 0)
        return real_rebuild(*args, **kwargs)

    monkeypatch.setattr(finetuning, "rebuild", rebuild)
    with _fake_gpus(tf, 2), mock.patch.object(tf.distribute, "MirroredStrategy", return_value=fake) as ms:
        result = finetune(load(str(tmp_path / "t.keras")), str(tmp_path / "t.keras"), None,
                          fast_options(device="auto", epochs=1, scratch=False))
    ms.assert_called_once_with(devices=[GPU0, GPU1])
    assert built_inside == [True], "the model must be built inside the strategy's scope"
    assert result.device["device"] == "gpu"
    assert result.device["strategy"] == MIRRORED
    assert result.device["replicas"] == 2
    assert result.device["devices"] == [GPU0, GPU1]
    assert result.stages[0].time_per_step_ms is not None


@pytest.mark.tensorflow
def test_the_mixed_precision_path_trains(tf, tmp_path):
    """What --mixed-precision does on a GPU, forced here on the CPU: float16 compute, float32 head, loss scaling."""
    import keras

    from archdiff.validate.devices import DevicePlan
    from archdiff.read import load
    from archdiff.validate import finetune
    from test_validate_support import fast_options, target_model

    keras.utils.set_random_seed(0)
    target_model(keras).save(tmp_path / "t.keras")
    plan = DevicePlan(requested="gpu", device="gpu", strategy=DEFAULT, devices=(GPU0,), mixed_precision=True)
    result = finetune(load(str(tmp_path / "t.keras")), str(tmp_path / "t.keras"), None,
                      fast_options(epochs=1, scratch=False, freeze_until="conv3"), plan=plan)
    assert result.status == "pass", result.failures
    assert result.device["mixed_precision"] is True
    assert result.stages[0].loss_finite


@pytest.mark.tensorflow
def test_every_model_is_built_and_trained_inside_a_real_strategys_scope(tf, tmp_path, monkeypatch):
    """A real OneDeviceStrategy (what --device cpu uses beside GPUs): it must own every variable.

    The fine-tuned model, the one trained from scratch, and both optimizers:
    a variable made outside ``strategy.scope()`` would be placed and
    synchronized by no strategy (under MirroredStrategy: one GPU's copy only).
    """
    import keras

    import archdiff.validate.finetuning as finetuning
    from archdiff.read import load
    from archdiff.validate import devices, finetune
    from archdiff.validate.devices import DevicePlan
    from test_validate_support import fast_options, target_model

    keras.utils.set_random_seed(0)
    path = str(tmp_path / "t.keras")
    target_model(keras).save(path)
    strategies, trained = [], []
    real_make, real_fit = devices.make_strategy, finetuning._fit

    def make_strategy(plan):
        strategies.append(real_make(plan))
        return strategies[-1]

    def fit(model, *args):
        trained.append(model)
        return real_fit(model, *args)

    monkeypatch.setattr(devices, "make_strategy", make_strategy)
    monkeypatch.setattr(finetuning, "_fit", fit)
    plan = DevicePlan(requested="cpu", device="cpu", strategy=ONE_DEVICE, devices=("/device:CPU:0",))
    result = finetune(load(path), path, None, fast_options(epochs=1, freeze_until="conv3"), plan=plan)
    assert result.status == "pass", result.failures
    assert result.device["strategy"] == ONE_DEVICE
    (strategy,) = strategies
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert len(trained) == 2 and trained[0] is not trained[1]  # stage 1, and from scratch
    for model in trained:
        variables = list(model.weights) + list(model.optimizer.variables)
        assert len(variables) > len(model.weights)
        outside = [v.path for v in variables if not strategy.extended.variable_created_in_scope(v.value)]
        assert not outside, f"made outside the strategy's scope: {outside[:5]}"
