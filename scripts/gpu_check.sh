#!/usr/bin/env bash
# The GPU check of `archdiff validate`, for a machine with JAX + CUDA and no TensorFlow.
#
#   bash scripts/gpu_check.sh [WHEELS_DIR]
#
# 1. installs the wheels in WHEELS_DIR (default: ./wheels: archdiff, jax[cuda12] and
#    its plugins, keras, h5py ...) without reaching any index;
# 2. builds a small port with Keras on JAX (no TensorFlow anywhere): a seeded source
#    CNN, and a target with the same body and a new head, the body's weights copied;
# 3. runs `archdiff validate --backend jax --device gpu` on it (all four checks) and
#    prints the device, the time per training step and the checks that passed.
# 4. the same on PyTorch's backend where torch is installed.
# Exit status: that of validate (0: every check passed on the GPU, on each backend run).
set -euo pipefail

WHEELS=${1:-wheels}
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

if [ -d "$WHEELS" ]; then
  "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$WHEELS"/*.whl
fi
export KERAS_BACKEND=jax
"$PY" - <<'EOF'
import importlib.util, sys
import jax
print("jax", jax.__version__, "devices:", jax.devices())
if importlib.util.find_spec("tensorflow") is not None:
    print("note: TensorFlow is installed here too; this check runs without it")
if not any(d.platform == "gpu" for d in jax.devices()):
    sys.exit("JAX sees no GPU: check the CUDA plugin (pip install 'jax[cuda12]') and nvidia-smi")
EOF

"$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path

import keras
import numpy as np

folder = Path(sys.argv[1])
L = keras.layers


def body(inputs):
    x = inputs
    for i, filters in enumerate((32, 64, 128), start=1):
        x = L.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
        x = L.BatchNormalization(name=f"bn{i}")(x)
        x = L.ReLU(name=f"relu{i}")(x)
        x = L.MaxPooling2D(name=f"pool{i}")(x)
    return L.GlobalAveragePooling2D(name="gap")(x)


keras.utils.set_random_seed(0)
inputs = keras.Input((64, 64, 3), name="image")
source = keras.Model(inputs, L.Dense(8, activation="softmax", name="head")(body(inputs)), name="source")
rng = np.random.default_rng(0)
for var in source.weights:
    positive = var.path.endswith(("gamma", "moving_variance"))
    var.assign((rng.uniform(0.8, 1.2, var.shape) if positive else rng.normal(0, 0.1, var.shape)).astype("float32"))
source.save(folder / "source.keras")
inputs = keras.Input((64, 64, 3), name="image")
target = keras.Model(inputs, L.Dense(4, activation="softmax", name="new_head")(body(inputs)), name="target")
for layer in target.layers:
    if layer.weights and layer.name != "new_head":
        layer.set_weights(source.get_layer(layer.name).get_weights())
target.save(folder / "target.keras")
print("port written on", keras.backend.backend(), "to", folder)
EOF

set +e
"$PY" -m archdiff validate "$WORK/target.keras" --source "$WORK/source.keras" --backend jax --device gpu \
  --format json -o "$WORK/report.json" --no-progress
code=$?
set -e
"$PY" - "$WORK/report.json" <<'EOF'
import json, sys

r = json.load(open(sys.argv[1]))
d = r["finetune"].get("device") or {}
print("backend:", r["rebuild"]["backend"], r["rebuild"]["backend_version"], "- Keras", r["rebuild"]["keras_version"])
print("device: ", d.get("device"), d.get("devices"), d.get("device_kinds"), d.get("strategy"),
      "mixed precision" if d.get("mixed_precision") else "float32")
for s in r["finetune"].get("stages", []):
    print(f"step:    {s['name']}: {s['time_per_step_ms']} ms per step over {s['steps']} steps")
print("checks: ", ", ".join(f"{k} {v}" for k, v in r["checks"].items()))
print("failures:", r["failures"] or "none")
EOF
# PyTorch's backend too, where PyTorch is installed (CI does not install it: tests/conftest.py).
if "$PY" -c "import torch" 2>/dev/null; then
  set +e
  KERAS_BACKEND=torch "$PY" -m archdiff validate "$WORK/target.keras" --source "$WORK/source.keras" \
    --backend torch --device gpu --format json -o "$WORK/report-torch.json" --no-progress
  torch_code=$?
  set -e
  echo "torch: validate exit $torch_code"
  [ "$code" -eq 0 ] && code=$torch_code
else
  echo "torch: not installed here, its backend not checked"
fi
exit $code
