"""Where fine-tuning runs: device and ``tf.distribute`` strategy selection.

This module owns ``--device auto|cpu|gpu`` and ``--mixed-precision``:

* ``auto``: a GPU when TensorFlow sees one; ``MirroredStrategy`` across the
  local GPUs when it sees several; the CPU otherwise.
* ``gpu``: the same, but an error when TensorFlow sees no GPU.
* ``cpu``: the CPU, even where GPUs are present.
* Whatever the device, ``MultiWorkerMirroredStrategy`` when ``TF_CONFIG``
  describes a cluster of more than one task.
* Mixed precision (``mixed_float16``) only on a GPU; on the CPU it is
  declined with a note, since it makes CPU training slower, not faster.

:func:`plan_devices` is pure (lists of device names and the ``TF_CONFIG``
text in, a :class:`DevicePlan` out), so the choice is unit-tested without a
GPU; :func:`detect` asks TensorFlow, :func:`make_strategy` builds the
strategy, and :class:`StepTimer` measures the time per training step that
the report shows.
"""
from __future__ import annotations

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


@dataclass(frozen=True)
class DevicePlan:
    """The device and strategy chosen for training, and why."""

    requested: str
    #: "cpu" or "gpu": what the training steps run on.
    device: str
    #: DEFAULT, ONE_DEVICE, MIRRORED or MULTI_WORKER.
    strategy: str
    #: The logical devices the strategy uses (``/device:GPU:0`` ...).
    devices: tuple[str, ...]
    #: Replicas in sync on this worker (GPUs mirrored, or 1).
    replicas: int = 1
    #: Tasks in the TF_CONFIG cluster (1 when there is none).
    workers: int = 1
    mixed_precision: bool = False
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "requested": self.requested,
            "device": self.device,
            "strategy": self.strategy,
            "devices": list(self.devices),
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
                 mixed_precision: bool = False) -> DevicePlan:
    """Choose device and strategy from what TensorFlow sees (pure: no TensorFlow here).

    ``gpus`` are logical GPU device names as ``tf.config.list_logical_devices``
    gives them; ``tf_config`` is the ``TF_CONFIG`` environment variable's text.
    """
    if requested not in DEVICE_CHOICES:
        raise UsageError(f"--device '{requested}' is not one of {', '.join(DEVICE_CHOICES)}")
    gpus = tuple(gpus)
    notes: list[str] = []
    if requested == "gpu" and not gpus:
        raise UsageError("--device gpu was asked for, but TensorFlow sees no GPU",
                         hint="check the CUDA drivers with nvidia-smi and tf.config.list_physical_devices('GPU'), "
                              "or use --device auto to fall back to the CPU")
    use_gpu = bool(gpus) and requested in ("auto", "gpu")
    if requested == "cpu" and gpus:
        notes.append(f"--device cpu: {len(gpus)} GPU(s) seen and left unused")
    if not gpus and requested == "auto":
        notes.append("TensorFlow sees no GPU: training on the CPU")
    device = "gpu" if use_gpu else "cpu"
    devices = gpus if use_gpu else ("/device:CPU:0",)

    workers = cluster_size(tf_config)
    if workers > 1:
        strategy, replicas = MULTI_WORKER, (len(gpus) if use_gpu else 1)
        notes.append(f"TF_CONFIG describes a cluster of {workers} tasks: MultiWorkerMirroredStrategy")
    elif use_gpu and len(gpus) > 1:
        strategy, replicas = MIRRORED, len(gpus)
    elif use_gpu:
        strategy, replicas = DEFAULT, 1
    elif gpus:
        # GPUs are there but not wanted: pin the work to the CPU explicitly.
        strategy, replicas = ONE_DEVICE, 1
    else:
        strategy, replicas = DEFAULT, 1

    mixed = False
    if mixed_precision:
        if use_gpu:
            mixed = True
        else:
            notes.append("mixed precision declined: it needs a GPU (on the CPU it is slower); training in float32")
    return DevicePlan(requested=requested, device=device, strategy=strategy, devices=tuple(devices),
                      replicas=max(1, replicas), workers=max(1, workers), mixed_precision=mixed, notes=tuple(notes))


def detect() -> tuple[str, ...]:
    """The logical GPUs TensorFlow sees, by name (empty on a CPU-only machine)."""
    from archdiff.lazy import require_tensorflow

    tf = require_tensorflow()

    physical = tf.config.list_physical_devices("GPU")
    if not physical:
        return ()
    return tuple(d.name for d in tf.config.list_logical_devices("GPU"))


def choose(requested: str = "auto", *, mixed_precision: bool = False, environ=None) -> DevicePlan:
    """Detect the devices and plan: what ``archdiff validate --device`` runs on."""
    from archdiff.lazy import require_keras

    require_keras()
    env = os.environ if environ is None else environ
    return plan_devices(requested, gpus=detect(), tf_config=env.get("TF_CONFIG"), mixed_precision=mixed_precision)


def make_strategy(plan: DevicePlan):
    """The ``tf.distribute`` strategy a plan names."""
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
