"""The oracle on random Keras 3 Functional models (tests/zoo/generated.py), saved as .keras, .h5, .weights.h5
and to_json(): the same agreement as the zoo's (tests/test_zoo.py).

Keras 3 runs in this process. CI draws a few examples, derandomized (the same
ones every run); ``ARCHDIFF_ZOO=all`` (``make test-zoo``) draws many, at random.
A failing example shrinks to a small recipe: build it, save it into the fixtures
and pin it with a test of its own.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
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


@settings(max_examples=EXAMPLES, deadline=None, derandomize=not catalog.FULL, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(recipe=generated.recipes())
@example(recipe=EVERY_STEP)
def test_a_random_functional_model_agrees_with_keras(recipe, tmp_path_factory):
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    model = generated.build(keras, recipe)
    builder.seed_weights(model, np.random.default_rng(0))
    folder = tmp_path_factory.mktemp("generated")
    model.save(folder / FILES["keras"])
    model.save(folder / FILES["h5"])
    model.save_weights(folder / FILES["weights"])
    (folder / FILES["json"]).write_text(model.to_json())
    truth = {"rows": builder.rows_of(model), "weights": builder.weights_of(model),
             "operations": builder.operations_of(keras, "k3", model),
             "totals": [model.count_params(),
                        int(sum(int(np.prod(w.shape)) for w in model.trainable_weights)),
                        int(sum(int(np.prod(w.shape)) for w in model.non_trainable_weights))]}
    oracle.load.cache_clear()
    problems = []
    for fmt, name in FILES.items():
        path = folder / name
        found = oracle.check_layers(truth, path, fmt) + oracle.check_totals(truth, path, fmt)
        if fmt in oracle.WITH_WEIGHTS:
            found += oracle.check_mapping(truth, path)
        if fmt != "weights":
            found += oracle.check_operations(truth, path)
        problems += [f"{fmt}: {p}" for p in found]
    problems += oracle.check_diff_identical(folder / FILES["keras"], folder / FILES["h5"])
    problems += oracle.check_diff_identical(folder / FILES["keras"], folder / FILES["json"])
    if model.weights:  # a model without variables has nothing to transfer (archdiff refuses it, rightly)
        problems += oracle.check_transfer(folder / FILES["keras"], folder)
    assert not problems, f"recipe {recipe}:\n  " + "\n  ".join(problems[:20])
