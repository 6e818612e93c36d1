"""Mixed precision for fine-tuning, and float32 for the comparisons.

``--mixed-precision`` (on a GPU; :mod:`archdiff.validate.devices` decides)
rebuilds the target with every layer computing in ``mixed_float16`` except
its inputs and outputs, and wraps the optimizer in Keras' loss scaling, as
Keras' mixed-precision guide advises. Checks 1 to 3 compare values bit for
bit, so they run under a float32 policy whatever the global one is.
"""
from __future__ import annotations

from contextlib import contextmanager

from archdiff.validate.rebuilding import entry_name, strip_versions


def mixed_precision_config(serialized: dict, *, top: bool = True) -> dict:
    """The config with every layer computing in mixed_float16, except inputs and the model's outputs.

    The outputs stay float32, as Keras' mixed-precision guide advises, so the
    softmax and the loss are computed in full precision.
    """
    doc = strip_versions(serialized)
    config = doc.get("config") or {}
    outputs = set()
    if top:
        for ref in config.get("output_layers") or []:
            if isinstance(ref, list) and ref and isinstance(ref[0], str):
                outputs.add(ref[0])
            elif isinstance(ref, list):
                outputs.update(r[0] for r in ref if isinstance(r, list) and r)
    entries = config.get("layers") or []
    if top and doc.get("class_name") == "Sequential" and entries:
        outputs.add(entry_name(entries[-1]))
    for entry in entries:
        name = entry_name(entry)
        if entry.get("class_name") == "InputLayer" or name in outputs:
            continue
        inner = entry.get("config")
        if isinstance(inner, dict):
            if isinstance(inner.get("layers"), list):
                nested = mixed_precision_config({"class_name": entry["class_name"], "config": inner}, top=False)
                inner.update(nested["config"])
                continue
            inner["dtype"] = "mixed_float16"
    return doc


@contextmanager
def float32_policy():
    """Checks 1-3 compare in float32 whatever the global dtype policy is."""
    from archdiff.lazy import require_keras

    keras = require_keras()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def optimizer(learning_rate: float, *, mixed_precision: bool):
    """Adam at ``learning_rate``; with loss scaling under mixed precision (float16 gradients underflow)."""
    from archdiff.lazy import require_keras

    keras = require_keras()
    opt = keras.optimizers.Adam(learning_rate=learning_rate)
    return keras.optimizers.LossScaleOptimizer(opt) if mixed_precision else opt
