"""Where fine-tuning runs: device and distribution, on every Keras backend.

This module owns ``--device auto|cpu|gpu`` and ``--mixed-precision``:

* ``auto``: a GPU when the backend sees one, the CPU otherwise;
  ``gpu``: the same, but an error when it sees none; ``cpu``: the CPU, even
  where GPUs are present.
* Several local GPUs: **TensorFlow** mirrors across them
  (``tf.distribute.MirroredStrategy``), and ``MultiWorkerMirroredStrategy``
  when ``TF_CONFIG`` describes a cluster of more than one task; **JAX** uses
  Keras' own data parallelism (``keras.distribution.DataParallel``, the
  batch split across the devices); **PyTorch** trains on one device (Keras
  offers no data parallelism there): the others are named as unused.
* Mixed precision (``mixed_float16``) only on a GPU that computes float16
  fast (compute capability 7.0 or more, where the backend says); on the CPU
  it is declined with a note, since it makes CPU training slower.

:func:`plan_devices` is pure (the backend, lists of device names, the
``TF_CONFIG`` text in; a :class:`DevicePlan` out), so the choice is
unit-tested for each backend with mocked device lists; :func:`detect` asks
the backend (``tf.config``, ``jax.devices()``, ``torch.cuda``),
:func:`make_strategy` builds what the plan names (a scope every model is
built, compiled and trained in), and :class:`StepTimes` measures the time per
training step that the report shows.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field, replace

from archdiff.errors import UsageError

DEVICE_CHOICES = ("auto", "cpu", "gpu")

DEFAULT = "default"
ONE_DEVICE = "OneDeviceStrategy"
MIRRORED = "MirroredStrategy"
MULTI_WORKER = "MultiWorkerMirroredStrategy"
#: JAX: Keras' data parallelism over several devices.
DATA_PARALLEL = "DataParallel"
#: JAX / PyTorch: one device chosen with ``keras.device(name)``.
DEVICE_SCOPE = "keras.device"
#: Below this compute capability float16 is not faster on NVIDIA GPUs (no tensor cores).
MIXED_PRECISION_CAPABILITY = (7, 0)


@dataclass(frozen=True)
class GpuInfo:
    """What a backend sees: the GPUs' device names (as the backend addresses them), kinds, capability."""

    names: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    #: The smallest compute capability among them, where the backend tells it.
    capability: tuple[int, int] | None = None


@dataclass(frozen=True)
class DevicePlan:
    """The device and strategy chosen for training, and why."""

    requested: str
    #: "cpu" or "gpu": what the training steps run on.
    device: str
    #: DEFAULT, ONE_DEVICE, MIRRORED, MULTI_WORKER (TensorFlow), DATA_PARALLEL, DEVICE_SCOPE (JAX, PyTorch).
    strategy: str
    #: The devices the training uses (``/device:GPU:0``, ``gpu:0``, ``cuda:0``, ...).
    devices: tuple[str, ...]
    #: Replicas in sync on this worker (GPUs mirrored, or 1).
    replicas: int = 1
    #: Tasks in the TF_CONFIG cluster (1 when there is none).
    workers: int = 1
    mixed_precision: bool = False
    notes: tuple[str, ...] = ()
    backend: str = "tensorflow"
    #: What the devices are (``NVIDIA H200``), where the backend says.
    device_kinds: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "requested": self.requested,
            "device": self.device,
            "strategy": self.strategy,
            "devices": list(self.devices),
            "device_kinds": list(self.device_kinds),
            "replicas": self.replicas,
            "workers": self.workers,
            "mixed_precision": self.mixed_precision,
            "notes": list(self.notes),
        }

    def describe(self) -> str:
        where = ", ".join(self.devices) or self.device
        text = f"{self.device.upper()} ({where}), {self.strategy}"
        if self.replicas > 1:
            text += f", {self.replicas} replicas"
        if self.workers > 1:
            text += f", {self.workers} workers"
        if self.mixed_precision:
            text += ", mixed_float16"
        return text


def cluster_size(tf_config: str | None) -> int:
    """How many tasks a TF_CONFIG describes (chief, workers); 0 without one.

    An unreadable TF_CONFIG is an error, not silently a single machine: a
    cluster job that quietly trained alone would report the wrong thing.
    """
    if not tf_config or not tf_config.strip():
        return 0
    try:
        document = json.loads(tf_config)
    except ValueError as exc:
        raise UsageError(f"TF_CONFIG is not valid JSON ({exc})",
                         hint="unset it, or give {\"cluster\": {\"worker\": [...]}, \"task\": {...}}") from None
    cluster = document.get("cluster") if isinstance(document, dict) else None
    if not isinstance(cluster, dict):
        return 0
    total = 0
    for role in ("chief", "worker"):
        members = cluster.get(role) or []
        if not isinstance(members, list):
            raise UsageError(f"TF_CONFIG's cluster '{role}' is not a list of host:port")
        total += len(members)
    return total


def plan_devices(requested: str = "auto", *, gpus=(), tf_config: str | None = None,
                 mixed_precision: bool = False, backend: str = "tensorflow", kinds=(),
                 capability: tuple[int, int] | None = None) -> DevicePlan:
    """Choose device and strategy from what the backend sees (pure: no framework here).

    ``gpus`` are the GPU device names as the backend gives them
    (``tf.config.list_logical_devices``, ``gpu:N`` for JAX, ``cuda:N`` for
    PyTorch); ``tf_config`` is the ``TF_CONFIG`` environment variable's text;
    ``capability`` the GPUs' smallest compute capability, where known.
    """
    if requested not in DEVICE_CHOICES:
        raise UsageError(f"--device '{requested}' is not one of {', '.join(DEVICE_CHOICES)}")
    if backend not in ("tensorflow", "jax", "torch"):
        raise UsageError(f"backend '{backend}' is not one of tensorflow, jax, torch")
    gpus = tuple(gpus)
    label = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}[backend]
    notes: list[str] = []
    if requested == "gpu" and not gpus:
        checks = {"tensorflow": "tf.config.list_physical_devices('GPU')", "jax": "jax.devices()",
                  "torch": "torch.cuda.is_available()"}[backend]
        raise UsageError(f"--device gpu was asked for, but {label} sees no GPU",
                         hint=f"check the CUDA drivers with nvidia-smi and {checks}, "
                              "or use --device auto to fall back to the CPU")
    use_gpu = bool(gpus) and requested in ("auto", "gpu")
    if requested == "cpu" and gpus:
        notes.append(f"--device cpu: {len(gpus)} GPU(s) seen and left unused")
    if not gpus and requested == "auto":
        notes.append(f"{label} sees no GPU: training on the CPU")
    device = "gpu" if use_gpu else "cpu"
    cpu_name = {"tensorflow": "/device:CPU:0", "jax": "cpu:0", "torch": "cpu"}[backend]
    devices = gpus if use_gpu else (cpu_name,)
    workers = cluster_size(tf_config)
    if backend == "tensorflow":
        strategy, replicas, devices = _tensorflow_strategy(use_gpu, gpus, devices, workers, notes)
    else:
        if workers > 1:
            notes.append(f"TF_CONFIG describes {workers} tasks, but it configures TensorFlow only: "
                         f"{label} trains on this host")
            workers = 1
        strategy, replicas, devices = _keras_strategy(backend, use_gpu, gpus, devices, notes)

    mixed = False
    if mixed_precision:
        if not use_gpu:
            notes.append("mixed precision declined: it needs a GPU (on the CPU it is slower); training in float32")
        elif capability is not None and tuple(capability) < MIXED_PRECISION_CAPABILITY:
            notes.append(f"mixed precision declined: compute capability {capability[0]}.{capability[1]} has no fast "
                         "float16 (7.0 or more needed); training in float32")
        else:
            mixed = True
    return DevicePlan(requested=requested, device=device, strategy=strategy, devices=tuple(devices),
                      replicas=max(1, replicas), workers=max(1, workers), mixed_precision=mixed, notes=tuple(notes),
                      backend=backend, device_kinds=tuple(kinds) if use_gpu else ())


def _tensorflow_strategy(use_gpu: bool, gpus: tuple, devices: tuple, workers: int, notes: list[str]):
    if workers > 1:
        notes.append(f"TF_CONFIG describes a cluster of {workers} tasks: MultiWorkerMirroredStrategy")
        return MULTI_WORKER, (len(gpus) if use_gpu else 1), devices
    if use_gpu and len(gpus) > 1:
        return MIRRORED, len(gpus), devices
    if use_gpu:
        return DEFAULT, 1, devices
    if gpus:
        # GPUs are there but not wanted: pin the work to the CPU explicitly.
        return ONE_DEVICE, 1, devices
    return DEFAULT, 1, devices


def _keras_strategy(backend: str, use_gpu: bool, gpus: tuple, devices: tuple, notes: list[str]):
    """JAX and PyTorch: Keras' own placement (``keras.device``) and, on JAX, ``keras.distribution``."""
    if use_gpu and len(gpus) > 1:
        if backend == "jax":
            notes.append(f"keras.distribution.DataParallel over {len(gpus)} devices: each batch is split "
                         "across them")
            return DATA_PARALLEL, len(gpus), devices
        notes.append(f"the PyTorch backend trains on one device ({gpus[0]}): Keras offers no data parallelism "
                     f"there, so {len(gpus) - 1} GPU(s) are left unused")
        return DEVICE_SCOPE, 1, gpus[:1]
    if use_gpu:
        return DEFAULT, 1, devices
    if gpus:
        # The backend would put the work on the GPU by itself: place it on the CPU explicitly.
        return DEVICE_SCOPE, 1, devices
    return DEFAULT, 1, devices


def detect(backend: str | None = None) -> GpuInfo:
    """The GPUs the backend sees (empty on a CPU-only machine): ``tf.config``, ``jax.devices()``, ``torch.cuda``."""
    from archdiff.lazy import loaded_backend, require_backend_module

    backend = backend or loaded_backend() or "tensorflow"
    module = require_backend_module(backend)
    if backend == "tensorflow":
        return _detect_tensorflow(module)
    if backend == "jax":
        return _detect_jax(module)
    return _detect_torch(module)


def _capability(values) -> tuple[int, int] | None:
    found = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, str):
            major, _, minor = value.partition(".")
            value = (major, minor or 0)
        try:
            found.append((int(value[0]), int(value[1])))
        except (TypeError, ValueError, IndexError):
            continue
    return min(found) if found else None


def _detect_tensorflow(tf) -> GpuInfo:
    physical = tf.config.list_physical_devices("GPU")
    if not physical:
        return GpuInfo()
    details = []
    for device in physical:
        try:
            details.append(tf.config.experimental.get_device_details(device) or {})
        except Exception:  # noqa: BLE001 - details are optional
            details.append({})
    names = tuple(d.name for d in tf.config.list_logical_devices("GPU"))
    return GpuInfo(names=names, kinds=tuple(str(d.get("device_name", "GPU")) for d in details),
                   capability=_capability(d.get("compute_capability") for d in details))


def _detect_jax(jax) -> GpuInfo:
    try:
        gpus = list(jax.devices("gpu"))
    except RuntimeError:  # "Unknown backend: 'gpu' requested, but no platforms that are instances of gpu"
        return GpuInfo()
    return GpuInfo(names=tuple(f"gpu:{d.id}" for d in gpus),
                   kinds=tuple(str(getattr(d, "device_kind", "GPU")) for d in gpus),
                   capability=_capability(getattr(d, "compute_capability", None) for d in gpus))


def _detect_torch(torch) -> GpuInfo:
    if not torch.cuda.is_available():
        return GpuInfo()
    count = int(torch.cuda.device_count())
    return GpuInfo(names=tuple(f"cuda:{i}" for i in range(count)),
                   kinds=tuple(str(torch.cuda.get_device_name(i)) for i in range(count)),
                   capability=_capability(tuple(torch.cuda.get_device_capability(i)) for i in range(count)))


def choose(requested: str = "auto", *, mixed_precision: bool = False, environ=None,
           backend: str | None = None) -> DevicePlan:
    """Detect the devices and plan: what ``archdiff validate --device`` runs on."""
    from archdiff.lazy import loaded_backend, require_keras

    require_keras()
    backend = backend or loaded_backend() or "tensorflow"
    env = os.environ if environ is None else environ
    seen = detect(backend)
    return plan_devices(requested, gpus=seen.names, tf_config=env.get("TF_CONFIG"), mixed_precision=mixed_precision,
                        backend=backend, kinds=seen.kinds, capability=seen.capability)


class _Scope:
    """What :func:`make_strategy` gives on JAX and PyTorch: a ``scope()`` and a replica count, like tf.distribute."""

    def __init__(self, make_scope, replicas: int = 1, distribution=None):
        self._make_scope = make_scope
        self.num_replicas_in_sync = replicas
        self.distribution = distribution

    def scope(self):
        return self._make_scope()


def make_strategy(plan: DevicePlan):
    """What a plan names: a ``tf.distribute`` strategy, a ``keras.distribution``, or a ``keras.device`` scope."""
    if plan.backend != "tensorflow":
        from archdiff.lazy import require_keras

        keras = require_keras()
        if plan.strategy == DATA_PARALLEL:
            distribution = keras.distribution.DataParallel(devices=list(plan.devices))
            return _Scope(distribution.scope, replicas=len(plan.devices), distribution=distribution)
        if plan.strategy == DEVICE_SCOPE:
            device = plan.devices[0]
            return _Scope(lambda: keras.device(device))
        return _Scope(contextlib.nullcontext)
    from archdiff.lazy import require_tensorflow

    tf = require_tensorflow()

    if plan.strategy == MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if plan.strategy == MIRRORED:
        return tf.distribute.MirroredStrategy(devices=list(plan.devices))
    if plan.strategy == ONE_DEVICE:
        return tf.distribute.OneDeviceStrategy(plan.devices[0])
    return tf.distribute.get_strategy()


def with_strategy_name(plan: DevicePlan, strategy) -> DevicePlan:
    """The plan, corrected by what the built strategy reports (replica count)."""
    replicas = int(getattr(strategy, "num_replicas_in_sync", plan.replicas) or plan.replicas)
    return replace(plan, replicas=replicas) if replicas != plan.replicas else plan


@dataclass
class StepTimes:
    """Wall time of each training step of one stage, in seconds."""

    seconds: list[float] = field(default_factory=list)

    def per_step_ms(self) -> float | None:
        """Median step time; the first step (graph tracing) left out when there are others."""
        values = self.seconds[1:] if len(self.seconds) > 1 else self.seconds
        if not values:
            return None
        ordered = sorted(values)
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        return round(median * 1000.0, 3)


def step_timer(times: StepTimes):
    """A Keras callback recording each training step's wall time into ``times``."""
    from archdiff.lazy import require_keras

    keras = require_keras()

    class StepTimer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self._start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.seconds.append(time.perf_counter() - self._start)

    return StepTimer()
