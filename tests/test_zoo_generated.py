"""The oracle on random Keras models (tests/zoo/generated.py): the same agreement as the zoo's (tests/test_zoo.py).

Keras 3 Functional and Sequential models, saved as .keras, .h5, .weights.h5
and to_json(), are built in this process; tf-keras ones (Functional with
TFOpLambda operations, Sequential), saved as .h5, save_weights .h5 and
to_json(), in one tf-keras worker process (tests/zoo/k2_worker.py). CI draws a
few examples, derandomized (the same ones every run); ``ARCHDIFF_ZOO=all``
(``make test-zoo``) draws many, at random.
A failing example shrinks to a small recipe: build it, save it into the fixtures
and pin it with a test of its own.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from zoo import builder, catalog, generated, oracle

pytestmark = pytest.mark.tensorflow

FILES = {"keras": "m.keras", "h5": "m.h5", "weights": "m.weights.h5", "json": "m.json"}
EXAMPLES = 200 if catalog.FULL else 5
#: One recipe with every kind of step, run first every time (drawn examples may miss some).
EVERY_STEP = {"inputs": 2, "steps": [
    {"kind": "dense", "args": [0, 0], "name": "dense_7"}, {"kind": "shared", "args": [1, 1]},
    {"kind": "shared", "args": [2, 2]}, {"kind": "bn", "args": [4, 4]}, {"kind": "frozen", "args": [5, 5]},
    {"kind": "op_add", "args": [6, 3]}, {"kind": "op_scale", "args": [7, 7]},
    {"kind": "op_fn", "args": [8, 8], "fn": "tanh"}, {"kind": "concat", "args": [9, 0], "name": "head"},
    {"kind": "nested_seq", "args": [10, 10]}, {"kind": "nested_fn", "args": [11, 11], "name": "alpha"},
    {"kind": "add_layer", "args": [12, 3], "name": "add_3"}], "outputs": [13, 8]}


#: Each example costs seconds (saves, contained reads, a transfer). CI does not shrink a failure: it reports
#: the example as drawn at once (shrinking one failure takes hundreds of examples, so hours); make test-zoo
#: shrinks it to a small recipe to pin.
PHASES = list(Phase) if catalog.FULL else [Phase.explicit, Phase.reuse, Phase.generate]
SETTINGS = dict(deadline=None, derandomize=not catalog.FULL, database=None, phases=PHASES,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _truth(keras, model) -> dict:
    import numpy as np

    return {"rows": builder.rows_of(model), "weights": builder.weights_of(model),
            "operations": builder.operations_of(keras, "k3", model),
            "totals": [model.count_params(),
                       int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
                       int(sum(int(np.prod(w.shape)) for w in model.non_trainable_weights))]}


def _check(truth: dict, folder, files: dict, weights_only: str, with_weights: bool,
           operations: bool = True) -> list[str]:
    """Every file against Keras' answers; diff of the first file against each other: identical; a transfer."""
    oracle.load.cache_clear()
    problems = []
    for fmt, name in files.items():
        path = folder / name
        found = oracle.check_layers(truth, path, fmt) + oracle.check_totals(truth, path, fmt)
        if fmt in oracle.WITH_WEIGHTS:
            found += oracle.check_mapping(truth, path)
        if operations and fmt not in oracle.WEIGHTS_ONLY:  # Keras 3 operations (tf-keras' TFOpLambda are layers)
            found += oracle.check_operations(truth, path)
        problems += [f"{fmt}: {p}" for p in found]
    first, *others = files.values()
    for other in others:
        problems += oracle.check_diff_identical(folder / first, folder / other)
    problems += oracle.check_diff_identical(folder / files[weights_only], folder / first)
    if with_weights:  # a model without variables has nothing to transfer (archdiff refuses it, rightly)
        problems += oracle.check_transfer(folder / first, folder)
    return problems


def _check_k3(recipe: dict, tmp_path_factory) -> None:
    import keras
    import numpy as np

    keras.backend.clear_session()  # Keras numbers auto names per process: each example from a clean scope
    keras.utils.set_random_seed(0)
    model = generated.build(keras, recipe)
    builder.seed_weights(model, np.random.default_rng(0))
    folder = tmp_path_factory.mktemp("generated")
    model.save(folder / FILES["keras"])
    model.save(folder / FILES["h5"])
    model.save_weights(folder / FILES["weights"])
    (folder / FILES["json"]).write_text(model.to_json())
    problems = _check(_truth(keras, model), folder, FILES, "weights", bool(model.weights))
    assert not problems, f"recipe {recipe}:\n  " + "\n  ".join(problems[:20])


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(recipe=generated.recipes())
@example(recipe=EVERY_STEP)
def test_a_random_functional_model_agrees_with_keras(recipe, tmp_path_factory):
    _check_k3(recipe, tmp_path_factory)


#: One Sequential recipe with every kind of step.
EVERY_SEQUENTIAL_STEP = {"name": "stack", "sequential": [
    {"kind": "dense", "name": "dense_7"}, {"kind": "bn"}, {"kind": "frozen"}, {"kind": "dropout", "name": "alpha"},
    {"kind": "activation", "fn": "tanh"}, {"kind": "nested_seq", "name": "beta"}, {"kind": "nested_seq"},
    {"kind": "dense"}]}


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(recipe=generated.sequential_recipes())
@example(recipe=EVERY_SEQUENTIAL_STEP)
def test_a_random_sequential_model_agrees_with_keras(recipe, tmp_path_factory):
    _check_k3(recipe, tmp_path_factory)


#: How long one tf-keras build (or the worker's start) may take before the test fails: a hang guard.
WORKER_WAIT_S = 300
K2_FILES = {"h5": "m.h5", "weights_h5": "m_weights.h5", "json": "m.json"}


@pytest.fixture(scope="module")
def tf_keras_worker():
    """One tf-keras process for every tf-keras example (tests/zoo/k2_worker.py)."""
    import json
    import select
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).with_name("zoo") / "k2_worker.py"
    proc = subprocess.Popen([sys.executable, str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)

    def answer(seconds: float) -> str:
        """One line from the worker, or a failure naming the hang (a guard, not a speed check)."""
        if not select.select([proc.stdout], [], [], seconds)[0]:
            proc.kill()
            raise AssertionError(f"the tf-keras worker gave no answer within {seconds:.0f} s")
        line = proc.stdout.readline()
        assert line, f"the tf-keras worker died (exit {proc.poll()})"
        return line

    def ask(job: dict) -> dict:
        proc.stdin.write(json.dumps(job) + "\n")
        proc.stdin.flush()
        return json.loads(answer(WORKER_WAIT_S))

    assert "ready" in json.loads(answer(WORKER_WAIT_S)), "the tf-keras worker did not start"
    try:
        yield ask
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # a hang guard
            proc.kill()


@settings(max_examples=EXAMPLES, **SETTINGS)
@given(recipe=st.one_of(generated.recipes(), generated.sequential_recipes()))
@example(recipe=EVERY_STEP)
@example(recipe=EVERY_SEQUENTIAL_STEP)
def test_a_random_tf_keras_model_agrees_with_tf_keras(recipe, tf_keras_worker, tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated_k2")
    truth = tf_keras_worker({"recipe": recipe, "folder": str(folder)})
    assert "error" not in truth, f"tf-keras could not build recipe {recipe}: {truth['error']}"
    with_weights = any(truth["weights"].values())
    problems = _check(truth, folder, K2_FILES, "weights_h5", with_weights, operations=False)
    # the Keras 3 export of a Keras 2 file loads in Keras 3 with the same layers and parameters
    problems += oracle.check_export_to_keras3(truth, folder / K2_FILES["h5"], folder)
    assert not problems, f"recipe {recipe}:\n  " + "\n  ".join(problems[:20])
