"""validate on hostile inputs: the one command that runs Keras must not run what the files carry.

validate rebuilds the model with Keras, which is where a Lambda layer's
bytecode or a module named in a config could run: each canary file goes
through it (as the target, and as weights or source where that fits), and
a few broken files check that it fails before TensorFlow is even needed.
One driver process (TensorFlow imported once); marked ``tensorflow``.
"""
from __future__ import annotations

import harness
import pytest

pytestmark = pytest.mark.tensorflow

B = harness.CORPUS
GOOD_WEIGHTS = str(harness.GOOD_TARGET)

#: (label, argv, expect, message)
RUNS = [
    ("lambda-k3-keras", ["validate", str(B / "cfg_lambda_k3.keras"), "--no-finetune"], "error", "Lambda"),
    ("lambda-k2-h5", ["validate", str(B / "cfg_lambda_k2.h5"), "--no-finetune"], "error", "Lambda"),
    ("lambda-k3-json", ["validate", str(B / "cfg_lambda_k3.json"), "--weights", GOOD_WEIGHTS, "--no-finetune"],
     "error", "Lambda"),
    ("lambda-k2-yaml", ["validate", str(B / "cfg_lambda_k2.yaml"), "--weights", GOOD_WEIGHTS, "--no-finetune"],
     "error", "Lambda"),
    ("canary-module", ["validate", str(B / "cfg_canary_module.json"), "--weights", GOOD_WEIGHTS, "--no-finetune"],
     "error", "Fire|class"),
    ("yaml-tag", ["validate", str(B / "yaml_python_apply_in_layer.yaml"), "--weights", GOOD_WEIGHTS,
                  "--no-finetune"], "error", "tag"),
    ("pickle-training-config", ["validate", str(B / "h5_attr_training_config_pickle.h5"), "--no-finetune",
                                "--allow-skip", "weights_arrived,outputs"], "ok", None),
    ("truncated-target", ["validate", str(B / "zip_truncated_50pct.keras"), "--no-finetune"], "error", "zip"),
    ("external-link-weights", ["validate", str(harness.GOOD_MODEL), "--weights",
                               str(B / "h5_external_link_passwd.weights.h5"), "--no-finetune"], "error", "link"),
    ("terabyte-weights", ["validate", str(harness.GOOD_MODEL), "--weights",
                          str(B / "h5_terabyte_chunked.weights.h5"), "--no-finetune"], "error", "declares"),
    ("bomb-source", ["validate", str(harness.GOOD_MODEL), "--source", str(B / "zip_bomb_weights_deflate.keras"),
                     "--no-finetune"], "error", "bomb"),
]


#: A training_config pickle is never read: the model validates (no --source: rebuild only, the two skipped
#: checks accepted by name, exit 0; without --allow-skip a skipped check is exit 1).
OK_EXITS = {"pickle-training-config": {"*": 0}}


def test_validate_on_hostile_inputs(tmp_path, canary_env):
    import tensorflow  # noqa: F401 - marked tensorflow: a missing install fails here, it does not skip

    jobs = []
    for label, argv, expect, message in RUNS:
        case = {"file": label, "expect": expect, "message": message, "what": label, "exits": OK_EXITS.get(label)}
        jobs.append(harness.Job(f"{label}::validate", "validate", argv, case, B / label))
    results = harness.run_driver(jobs, tmp_path, canary_env=canary_env, timeout=600,
                                 env={"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    found = {}
    for job in jobs:
        result = results.get(job.id)
        problems = harness.problems(job, result)
        if result and not result.get("crash"):
            # TensorFlow logs to stderr when it starts; the contract is about archdiff's own lines.
            err = "\n".join(line for line in result["stderr"].splitlines() if line.startswith("archdiff"))
            problems = harness.problems(job, {**result, "stderr": err + ("\n" if err else "")})
        if problems:
            found[job.id] = problems
    assert not found, "\n".join(f"{k}: {v}" for k, v in found.items())
    assert not canary_env["canary"].exists(), "validate ran a payload"
