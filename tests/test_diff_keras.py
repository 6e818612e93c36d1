"""archdiff diff checked against Keras itself (models built with real Keras 3 and tf-keras).

Every model is built once per session, in a fresh subprocess (Keras 3 and
tf-keras never share a process, and auto names start from a clean scope),
and Keras' own ``model.layers`` names are recorded beside the saved files.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from support import run_cli

from archdiff.diff import DiffOptions, diff
from archdiff.diff.matching import match_layers
from archdiff.read import load

pytestmark = pytest.mark.tensorflow


def build(code: str, folder) -> dict:
    """Run Keras ``code`` in a fresh process; it writes files into OUT and returns names via RESULT."""
    script = textwrap.dedent("""
        import json, os, sys
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        OUT = sys.argv[1]
        RESULT = {}
    """) + textwrap.dedent(code) + "\nprint('@@' + json.dumps(RESULT))\n"
    proc = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("@@")][-1]
    return json.loads(line[2:])


@pytest.fixture(scope="module")
def resnets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resnets")
    names = build("""
        import keras
        for key, fn, top in (("r50", "ResNet50", False), ("r101", "ResNet101", False), ("r50top", "ResNet50", True)):
            keras.backend.clear_session()  # a fresh name scope: the input is "input_layer" each time
            m = getattr(keras.applications, fn)(weights=None, include_top=top)
            m.save(os.path.join(OUT, key + ".keras"))
            RESULT[key] = [layer.name for layer in m.layers]
    """, folder)
    return folder, names


def assert_name_sets(a_path, b_path, names_a, names_b):
    m = match_layers(load(a_path), load(b_path))
    by_name = {p.a for p in m.pairs if p.how == "name"}
    assert by_name == set(names_a) & set(names_b)
    assert set(m.only_a) == set(names_a) - set(names_b)
    assert set(m.only_b) == set(names_b) - set(names_a)
    assert m.renames() == {}
    return m


def test_resnet50_vs_resnet101_name_sets(resnets):
    folder, names = resnets
    assert_name_sets(folder / "r50.keras", folder / "r101.keras", names["r50"], names["r101"])
    d = diff(load(folder / "r50.keras"), load(folder / "r101.keras"))
    assert d.classification == "topology-changing" and "weights-breaking" not in d.kinds
    assert len(d.added) == len(names["r101"]) - len(names["r50"]) and not d.removed
    changed = {m.b: m for m in d.changed}
    # The first conv5 block now follows conv4_block23 instead of conv4_block6.
    assert [c.new for c in changed["conv5_block1_1_conv"].changes if c.kind == "inputs"] == [["conv4_block23_out"]]


def test_resnet50_with_and_without_top_name_sets(resnets):
    folder, names = resnets
    m = assert_name_sets(folder / "r50top.keras", folder / "r50.keras", names["r50top"], names["r50"])
    assert set(m.only_a) == {"avg_pool", "predictions"}
    d = diff(load(folder / "r50top.keras"), load(folder / "r50.keras"))
    assert "interface-changing" in d.kinds and {e.path for e in d.removed} == {"avg_pool", "predictions"}


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """The same model built twice without explicit names, the second with one Conv2D inserted early."""
    folder = tmp_path_factory.mktemp("shifted")
    return folder, build("""
        import keras
        from keras import layers

        def make(insert):
            keras.backend.clear_session()
            ids = []  # (logical id, Keras' auto name) for every layer but the inserted one

            def add(lid, layer):
                ids.append((lid, layer.name))
                return layer

            inp = keras.Input((32, 32, 3))
            ids.append(("input", inp._keras_history[0].name))
            x = inp
            inserted = None
            if insert:
                conv = layers.Conv2D(8, 3, padding="same")
                inserted = conv.name
                x = conv(x)
            for i, f in enumerate((16, 16, 32)):
                y = add(f"conv{i}", layers.Conv2D(f, 3, padding="same"))(x)
                y = add(f"bn{i}", layers.BatchNormalization())(y)
                y = add(f"relu{i}", layers.Activation("relu"))(y)
                if x.shape[-1] == f:
                    y = add(f"add{i}", layers.Add())([x, y])
                x = y
            x = add("gap", layers.GlobalAveragePooling2D())(x)
            x = add("fc", layers.Dense(10))(x)
            model = keras.Model(inp, x)
            return model, dict(ids), inserted

        a, ids_a, _ = make(False)
        b, ids_b, inserted = make(True)
        a.save(os.path.join(OUT, "a.keras"))
        b.save(os.path.join(OUT, "b.keras"))
        RESULT.update(ids_a=ids_a, ids_b=ids_b, inserted=inserted,
                      names_a=[l.name for l in a.layers], names_b=[l.name for l in b.layers])
    """, folder)


def test_layer_inserted_early_shifts_auto_names_into_renames(shifted):
    folder, info = shifted
    expected = {info["ids_a"][lid]: info["ids_b"][lid] for lid in info["ids_a"]}
    assert any(a != b for a, b in expected.items()), "the insertion did not shift any auto name"
    m = match_layers(load(folder / "a.keras"), load(folder / "b.keras"))
    assert m.a_to_b == expected
    assert m.renames() == {a: b for a, b in expected.items() if a != b}
    assert m.only_a == () and m.only_b == (info["inserted"],)
    for p in m.pairs:
        if p.how != "name":
            assert p.evidence
    d = diff(load(folder / "a.keras"), load(folder / "b.keras"))
    assert [e.path for e in d.added] == [info["inserted"]] and not d.removed


MODEL_CODE = """
def make(keras):
    layers = keras.layers
    head = keras.Sequential([keras.Input((16,)), layers.Dense(8, activation="relu"), layers.Dropout(0.1)],
                            name="head")
    inp = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(4, 3, padding="same")(inp)
    x = layers.BatchNormalization(axis=-1)(x)
    x = layers.Activation("relu")(x)
    y = layers.Conv2D(4, 1)(x)
    x = layers.Add()([x, y])
    x = layers.Flatten()(x)
    x = layers.Dense(16)(x)
    x = head(x)
    out = layers.Dense(3, activation="softmax")(x)
    return keras.Model(inp, out, name="net")
"""


@pytest.fixture(scope="module")
def same_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("same")
    k3 = build(MODEL_CODE + """
import keras
keras.utils.set_random_seed(0)
m = make(keras)
m.save(os.path.join(OUT, "k3.keras"))
m.save(os.path.join(OUT, "k3.h5"))
open(os.path.join(OUT, "k3.json"), "w").write(m.to_json())
RESULT["names"] = [l.name for l in m.layers]
""", folder)
    k2 = build(MODEL_CODE + """
import tf_keras as keras
keras.utils.set_random_seed(0)
m = make(keras)
m.save(os.path.join(OUT, "k2.h5"))
open(os.path.join(OUT, "k2.json"), "w").write(m.to_json())
RESULT["names"] = [l.name for l in m.layers]
""", folder)
    return folder, k3["names"], k2["names"]


def test_keras2_h5_and_keras3_keras_of_the_same_code_are_identical(same_model):
    folder, names3, names2 = same_model
    assert names2 == names3  # Keras' own view: the same layers
    a, b = load(folder / "k2.h5"), load(folder / "k3.keras")
    assert a.source.dialect == "keras2" and b.source.dialect == "keras3"
    # The architectures: tf-keras and Keras 3 draw other random initial values from the same seed, which the
    # value comparison reports (tests/test_diff_values_keras.py ports one file's values into the other).
    d = diff(a, b, DiffOptions(values="off"))
    assert d.identical, json.dumps([m.to_dict() for m in d.changed] + [c.to_dict() for c in d.io_changes],
                                   default=str)[:3000]
    proc = run_cli("diff", folder / "k2.h5", folder / "k3.keras", "--topology-only")
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("a, b", [("k3.keras", "k3.h5"), ("k3.keras", "k3.json"), ("k3.h5", "k3.json"),
                                  ("k2.h5", "k2.json"), ("k2.json", "k3.json")])
def test_same_model_in_other_formats_is_identical(same_model, a, b):
    folder = same_model[0]
    d = diff(load(folder / a), load(folder / b))
    assert d.identical and d.exit_code == 0
