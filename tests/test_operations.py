"""Keras 3 operations (``x + y``, ``keras.ops.*`` on symbolic tensors): graph nodes, not layers.

Keras' ``model.layers`` leaves them out, so every index archdiff prints must
skip them too; tf-keras' ``TFOpLambda`` / ``SlicingOpLambda`` are real layers
in tf-keras' ``model.layers`` and keep theirs. Keras itself is the oracle.
"""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.tensorflow


def _keras():
    from archdiff.lazy import require_keras

    return require_keras()


def _ops_model(keras):
    inp = keras.Input((8,), name="x_in")
    a = keras.layers.Dense(8, name="d1")(inp)
    b = a + 1.0                                   # an operation: Add
    c = keras.ops.mean(b, axis=-1, keepdims=True)  # an operation: Mean
    d = keras.layers.Dense(4, name="d2")(b * c)   # Multiply: an operation
    inner_in = keras.Input((4,), name="inner_in")
    inner = keras.Model(inner_in, keras.layers.Dense(2, name="d3")(keras.ops.relu(inner_in) - 0.5), name="inner")
    out = inner(d)
    return keras.Model(inp, [out, keras.layers.Activation("softmax", name="probs")(d)], name="with_ops")


def _keras_table(model, prefix=""):
    rows = []
    for i, layer in enumerate(model.layers):
        rows.append((prefix + layer.name, i, type(layer).__name__))
        if isinstance(layer, type(model)) or hasattr(layer, "layers") and layer.__class__.__name__ in (
                "Functional", "Sequential"):
            rows += _keras_table(layer, prefix + layer.name + "/")
    return rows


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    keras = _keras()
    model = _ops_model(keras)
    folder = tmp_path_factory.mktemp("ops")
    files = {"keras": folder / "m.keras", "h5": folder / "m.h5", "json": folder / "m.json"}
    model.save(files["keras"])
    model.save(files["h5"])
    files["json"].write_text(model.to_json())
    counts = (model.count_params(), sum(int(w.numpy().size) for w in model.trainable_weights))
    return model, files, _keras_table(model), counts


@pytest.mark.parametrize("fmt", ["keras", "h5", "json"])
def test_indices_follow_model_layers_not_the_config(saved, cli, fmt):
    model, files, expected, _ = saved
    code, out, err = cli("layers", files[fmt], "--format", "json")
    assert code == 0, err
    rows = json.loads(out)["layers"]
    got = [(r["path"], r["index"], r["class_name"]) for r in rows]
    assert len(expected) >= 6
    assert [(p, i) for p, i, _ in got] == [(p, i) for p, i, _ in expected]
    assert [c.replace("Model", "Functional") for _, _, c in got] == \
        [c.replace("Model", "Functional") for _, _, c in expected]


def test_operations_are_listed_on_request_without_an_index(saved, cli):
    _, files, _, _ = saved
    code, out, _ = cli("layers", files["keras"], "--format", "json", "--operations")
    rows = json.loads(out)["layers"]
    ops = [r for r in rows if r["is_operation"]]
    assert ops and all(r["index"] is None and r["params"] in (0, None) for r in ops)
    assert {r["class_name"] for r in ops} >= {"Add", "Mean", "Multiply"}


def test_summary_totals_and_counts_agree_with_keras(saved, cli):
    model, files, expected, (total, trainable) = saved
    code, out, _ = cli("summary", files["keras"], "--format", "json")
    data = json.loads(out)
    assert data["total_params"] == total and data["trainable_params"] == trainable
    assert data["layers"] == len(model.layers)
    assert data["operations"] >= 4


def test_operations_stay_nodes_of_the_graph(saved):
    import archdiff

    _, files, _, _ = saved
    g = archdiff.to_graph(archdiff.load(files["keras"]))
    ops = [n for n, a in g.nodes(data=True) if a.get("is_operation")]
    assert len(ops) >= 4 and all(g.nodes[n]["index"] == -1 for n in ops)
    assert all(g.in_degree(n) >= 1 and g.out_degree(n) >= 1 for n in ops)


def test_tf_keras_op_layers_are_layers_in_tf_keras(tmp_path, cli):
    import tf_keras

    inp = tf_keras.Input((8,), name="x_in")
    a = tf_keras.layers.Dense(8, name="d1")(inp)
    b = tf_keras.layers.Dense(4, name="d2")(a[:, :4] + 1.0)  # SlicingOpLambda, TFOpLambda
    model = tf_keras.Model(inp, b)
    path = tmp_path / "k2.h5"
    model.save(path)
    expected = [(layer.name, i, type(layer).__name__) for i, layer in enumerate(model.layers)]
    assert {"SlicingOpLambda", "TFOpLambda"} <= {c for _, _, c in expected}
    code, out, err = cli("layers", path, "--format", "json")
    assert code == 0, err
    got = [(r["name"], r["index"], r["class_name"]) for r in json.loads(out)["layers"]]
    assert got == expected
