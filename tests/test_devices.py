"""Device and strategy selection, with TensorFlow's device lists mocked: the GPU path without a GPU."""
from __future__ import annotations

import contextlib
import json
from unittest import mock

import pytest

from archdiff.errors import UsageError
from archdiff.validate.devices import DEFAULT, MIRRORED, MULTI_WORKER, ONE_DEVICE, StepTimes, cluster_size, plan_devices

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
        "backend": "tensorflow", "requested": "auto", "device": "gpu", "strategy": MIRRORED,
        "devices": [GPU0, GPU1], "device_kinds": [], "replicas": 2, "workers": 1, "mixed_precision": True,
        "notes": []}


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
    from test_validate_support import fast_options, target_model

    import archdiff.validate.finetuning as finetuning
    from archdiff.read import load
    from archdiff.validate import finetune

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
    from test_validate_support import fast_options, target_model

    from archdiff.read import load
    from archdiff.validate import finetune
    from archdiff.validate.devices import DevicePlan

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
    from test_validate_support import fast_options, target_model

    import archdiff.validate.finetuning as finetuning
    from archdiff.read import load
    from archdiff.validate import devices, finetune
    from archdiff.validate.devices import DevicePlan

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


# -- JAX and PyTorch: the choice with their device lists mocked -------------------------------------
from archdiff.validate.devices import (  # noqa: E402
    DATA_PARALLEL,
    DEVICE_SCOPE,
    GpuInfo,
    _detect_jax,
    _detect_tensorflow,
    _detect_torch,
)


@pytest.mark.parametrize("backend, gpus, strategy, replicas, devices", [
    ("jax", (), DEFAULT, 1, ("cpu:0",)),
    ("jax", ("gpu:0",), DEFAULT, 1, ("gpu:0",)),
    ("jax", ("gpu:0", "gpu:1", "gpu:2", "gpu:3"), DATA_PARALLEL, 4, ("gpu:0", "gpu:1", "gpu:2", "gpu:3")),
    ("torch", (), DEFAULT, 1, ("cpu",)),
    ("torch", ("cuda:0",), DEFAULT, 1, ("cuda:0",)),
    ("torch", ("cuda:0", "cuda:1"), DEVICE_SCOPE, 1, ("cuda:0",)),
])
def test_auto_on_jax_and_torch(backend, gpus, strategy, replicas, devices):
    plan = plan_devices("auto", gpus=gpus, backend=backend)
    assert (plan.strategy, plan.replicas, plan.devices, plan.backend) == (strategy, replicas, devices, backend)
    assert plan.device == ("gpu" if gpus else "cpu")
    if backend == "torch" and len(gpus) > 1:
        assert "1 GPU(s) are left unused" in plan.notes[0]  # said, not silently ignored


@pytest.mark.parametrize("backend, cpu", [("jax", "cpu:0"), ("torch", "cpu")])
def test_cpu_beside_gpus_is_placed_explicitly_on_jax_and_torch(backend, cpu):
    plan = plan_devices("cpu", gpus=("gpu:0" if backend == "jax" else "cuda:0",), backend=backend)
    assert (plan.strategy, plan.devices) == (DEVICE_SCOPE, (cpu,))


@pytest.mark.parametrize("backend, message", [("jax", r"JAX sees no GPU.*jax\.devices\(\)"),
                                              ("torch", r"PyTorch sees no GPU.*torch\.cuda\.is_available\(\)")])
def test_gpu_requested_without_one_names_the_backend(backend, message):
    with pytest.raises(UsageError, match=message):
        plan_devices("gpu", gpus=(), backend=backend)


def test_tf_config_is_tensorflows_only():
    tf_config = json.dumps({"cluster": {"worker": ["a:1", "b:1"]}})
    plan = plan_devices("auto", gpus=("gpu:0",), tf_config=tf_config, backend="jax")
    assert plan.workers == 1 and plan.strategy == DEFAULT
    assert "configures TensorFlow only" in plan.notes[0]


def test_mixed_precision_needs_a_gpu_with_fast_float16():
    assert plan_devices("auto", gpus=("cuda:0",), backend="torch", mixed_precision=True,
                        capability=(8, 0)).mixed_precision is True
    old = plan_devices("auto", gpus=("cuda:0",), backend="torch", mixed_precision=True, capability=(6, 1))
    assert old.mixed_precision is False and "compute capability 6.1" in old.notes[0]


class _FakeJaxDevice:
    def __init__(self, i, kind="NVIDIA H200"):
        self.id, self.device_kind, self.compute_capability, self.platform = i, kind, "9.0", "gpu"


def test_detect_reads_jax_devices():
    class FakeJax:
        def __init__(self, n):
            self.n = n

        def devices(self, kind=None):
            if kind == "gpu" and not self.n:
                raise RuntimeError("Unknown backend: 'gpu' requested, but no platforms that are instances of gpu")
            return [_FakeJaxDevice(i) for i in range(self.n)]

    assert _detect_jax(FakeJax(0)) == GpuInfo()
    seen = _detect_jax(FakeJax(2))
    assert seen == GpuInfo(names=("gpu:0", "gpu:1"), kinds=("NVIDIA H200", "NVIDIA H200"), capability=(9, 0))
    plan = plan_devices("auto", gpus=seen.names, kinds=seen.kinds, backend="jax")
    assert plan.strategy == DATA_PARALLEL and plan.to_dict()["device_kinds"] == ["NVIDIA H200", "NVIDIA H200"]


def test_detect_reads_torch_cuda():
    class Cuda:
        def __init__(self, n):
            self.n = n

        def is_available(self):
            return self.n > 0

        def device_count(self):
            return self.n

        def get_device_name(self, i):
            return "NVIDIA A100"

        def get_device_capability(self, i):
            return (8, 0)

    class FakeTorch:
        def __init__(self, n):
            self.cuda = Cuda(n)

    assert _detect_torch(FakeTorch(0)) == GpuInfo()
    assert _detect_torch(FakeTorch(2)) == GpuInfo(names=("cuda:0", "cuda:1"), kinds=("NVIDIA A100",) * 2,
                                                   capability=(8, 0))


@pytest.mark.tensorflow
def test_detect_reads_tensorflows_device_details(tf):
    with _fake_gpus(tf, 2), mock.patch.object(tf.config.experimental, "get_device_details",
                                              return_value={"device_name": "NVIDIA H200",
                                                            "compute_capability": (9, 0)}):
        seen = _detect_tensorflow(tf)
    assert seen == GpuInfo(names=(GPU0, GPU1), kinds=("NVIDIA H200",) * 2, capability=(9, 0))


@pytest.mark.tensorflow
def test_make_strategy_on_jax_uses_keras_distribution(tf):
    """The JAX plan's strategy is keras.distribution.DataParallel over the plan's devices, used as a scope."""
    import keras

    from archdiff.validate.devices import make_strategy

    plan = plan_devices("auto", gpus=("gpu:0", "gpu:1"), backend="jax")
    entered = []

    class FakeDataParallel:
        def __init__(self, devices):
            self.devices = devices

        @contextlib.contextmanager
        def scope(self):
            entered.append(self.devices)
            yield

    with mock.patch.object(keras.distribution, "DataParallel", FakeDataParallel):
        strategy = make_strategy(plan)
        with strategy.scope():
            pass
    assert entered == [["gpu:0", "gpu:1"]] and strategy.num_replicas_in_sync == 2
    with mock.patch.object(keras, "device") as device:
        with make_strategy(plan_devices("cpu", gpus=("cuda:0",), backend="torch")).scope():
            pass
    device.assert_called_once_with("cpu")
