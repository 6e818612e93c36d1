"""``layers --freeze-until`` against Keras: the snippet freezes exactly what archdiff lists, the copies load so.

For Keras 3 (in this process) and tf-keras (a fresh interpreter: the two never
share one), on a nested model, a ResNet-style one and one with Keras 3
operations: archdiff plans the freeze without TensorFlow; Keras runs the
printed snippet on the loaded model, and loads each copy archdiff wrote with
``-o`` (``.keras``, ``.h5``, ``.json``). Each time the layers with weights that
Keras leaves frozen are exactly archdiff's list, the trainable parameters are
archdiff's count, and every layer but the InputLayers (whose config cannot
carry a flag, and which hold no weights) has the flag archdiff wrote; one
exception, Keras' own: tf-keras' ``model_from_json`` does not restore a nested
model's own flag (it restores its layers', so what trains is the same), and
there the nested models' flags are not compared.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from support import FIXTURES

from archdiff import load
from archdiff.views.freeze import plan_freeze, write_frozen

pytestmark = pytest.mark.tensorflow

#: Shared by both Keras: what Keras says about a model after the snippet, or as loaded.
INSPECT = '''
def inspect(keras, model):
    out = {"frozen": [], "flags": {}, "trainable_params": 0}
    def walk(m, prefix):
        for layer in m.layers:
            path = prefix + layer.name
            nested = type(layer).__name__ in ("Functional", "Sequential", "Model")
            if type(layer).__name__ != "InputLayer":
                out["flags"][path] = bool(layer.trainable)
            if nested:
                walk(layer, path + "/")
            elif layer.weights and not layer.trainable_weights:
                out["frozen"].append(path)
    walk(model, "")
    out["trainable_params"] = int(sum(int(w.shape.num_elements() if hasattr(w.shape, "num_elements")
                                          else __import__("math").prod(w.shape)) for w in model.trainable_weights))
    return out
'''


def expected(plan, arch) -> dict:
    flags = {x.path: x.path not in plan.frozen_paths for x in arch.layers
             if not x.is_operation and x.class_name != "InputLayer"}
    return {"frozen": sorted(r.path for r in plan.frozen), "flags": flags, "trainable_params": plan.trainable_after}


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from archdiff.lazy import require_keras

    return require_keras()


def inspect(keras, model) -> dict:
    scope: dict = {}
    exec(INSPECT, scope)
    got = scope["inspect"](keras, model)
    got["frozen"] = sorted(got["frozen"])
    return got


def ops_model(keras, path):
    inp = keras.Input((8,), name="x_in")
    a = keras.layers.Dense(8, name="d1")(inp)
    b = a + 1.0
    c = keras.layers.Dense(8, name="d2")(keras.ops.relu(b))
    d = keras.layers.BatchNormalization(name="bn")(c * 2.0)
    model = keras.Model(inp, keras.layers.Dense(2, name="d3")(d), name="with_ops")
    model.save(path)
    # Keras numbers an operation's auto name per process ("add", or "add_1" after another test's x + y):
    # the names are Keras' own, in its order
    return path, [op.name for op in model.operations if not isinstance(op, keras.layers.Layer)]


CASES = [("keras3/nested.keras", "base/conv2"), ("keras3/nested.keras", "head"), ("keras3/resnet_small.keras", "29"),
         ("keras3/resnet_small.keras", "conv3_block1_0_bn"), ("keras3/functional.keras", "2")]


@pytest.mark.parametrize("rel, until", CASES)
def test_the_keras3_snippet_freezes_exactly_what_archdiff_lists(keras, rel, until, tmp_path):
    path = FIXTURES / rel
    arch = load(path)
    plan = plan_freeze(arch, until)
    code = plan.snippet("keras").replace("import keras\n", "")
    scope = {"keras": keras}
    exec(compile(code, "snippet", "exec"), scope)
    assert inspect(keras, scope["model"]) == expected(plan, arch)


def test_the_snippet_and_copies_skip_keras3_operations(keras, tmp_path):
    path, operations = ops_model(keras, tmp_path / "ops.keras")
    arch = load(path)
    assert len(operations) == 3
    assert [(x.name, x.index) for x in arch.layers if x.is_operation] == [(name, None) for name in operations]
    plan = plan_freeze(arch, "bn")
    assert [r.path for r in plan.frozen] == ["d1", "d2"]
    scope = {"keras": keras}
    exec(compile(plan.snippet("keras").replace("import keras\n", ""), "snippet", "exec"), scope)
    assert inspect(keras, scope["model"]) == expected(plan, arch)
    write_frozen(arch, plan, str(tmp_path / "frozen.keras"))
    assert inspect(keras, keras.models.load_model(tmp_path / "frozen.keras")) == expected(plan, arch)


@pytest.mark.parametrize("rel, until, suffix", [("keras3/nested.keras", "base/conv2", ".keras"),
                                                ("keras3/resnet_small.keras", "conv3_block1_1_conv", ".keras"),
                                                ("keras3/nested.h5", "base/conv2", ".h5"),
                                                ("keras3/functional.h5", "branch_b", ".h5"),
                                                ("keras3/nested.json", "head", ".json")])
def test_keras3_loads_the_written_copy_with_those_flags(keras, rel, until, suffix, tmp_path, cli):
    path = FIXTURES / rel
    arch = load(path)
    plan = plan_freeze(arch, until)
    out = tmp_path / f"frozen{suffix}"
    code, _, err = cli("layers", path, "--freeze-until", until, "-o", out)
    assert code == 0, err
    if suffix == ".json":
        model = keras.models.model_from_json(out.read_text())
    else:
        model = keras.models.load_model(out)
        # The weights came through unchanged.
        original = keras.models.load_model(path)
        for a, b in zip(original.weights, model.weights):
            assert (a.numpy() == b.numpy()).all()
    assert inspect(keras, model) == expected(plan, arch)


TF_KERAS = '''
import json, sys
import tf_keras as keras
{inspect}
cases = json.loads(sys.argv[1])
results = []
for case in cases:
    scope = {{"keras": keras}}
    if case["snippet"] is not None:
        exec(case["snippet"].replace("import tf_keras as keras", ""), scope)
        model = scope["model"]
    elif case["path"].endswith(".json"):
        model = keras.models.model_from_json(open(case["path"]).read())
    else:
        model = keras.models.load_model(case["path"], compile=False)
    results.append(inspect(keras, model))
print(json.dumps(results))
'''


def test_tf_keras_runs_the_snippet_and_loads_the_copies_with_those_flags(tmp_path):
    cases, wants = [], []
    for rel, until in (("keras2/nested.h5", "base/conv2"), ("keras2/resnet_small.h5", "29"),
                       ("keras2/nested.json", "head"), ("keras2/functional.h5", "branch_b")):
        path = FIXTURES / rel
        arch = load(path)
        plan = plan_freeze(arch, until)
        want = expected(plan, arch)
        if not rel.endswith(".json"):
            cases.append({"snippet": plan.snippet("tf-keras"), "path": None})
            wants.append(want)
        out = tmp_path / f"{rel.replace('/', '_')}"
        write_frozen(arch, plan, str(out))
        cases.append({"snippet": None, "path": str(out)})
        wants.append(want)
    script = TF_KERAS.format(inspect=INSPECT)
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for g, w, case in zip(got, wants, cases):
        g["frozen"] = sorted(g["frozen"])
        if case["path"] and case["path"].endswith(".json"):
            models = {path for path in w["flags"] if any(p.startswith(path + "/") for p in w["flags"])}
            for flags in (g["flags"], w["flags"]):
                for path in models:
                    flags.pop(path, None)
        assert g == w, case["path"] or case["snippet"]
