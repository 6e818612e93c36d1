"""Every fixture format read without TensorFlow, checked against Keras' own answers.

fixtures/expected/*.json were recorded by the Keras that wrote each file
(fixtures/make_fixtures.py): layer order and indices as in ``model.layers``,
``count_params()`` per layer and in total, the trainable split, and each
layer's variables.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from support import FIXTURES, expected_for

import archdiff

MODEL_SUFFIXES = (".keras", ".h5", ".json", ".yaml")


def fixture_files() -> list[Path]:
    files = []
    for path in sorted(FIXTURES.rglob("*")):
        if "expected" in path.parts or "demo" in path.parts or "broken" in path.parts:
            continue
        if not path.is_file() or not path.name.endswith(MODEL_SUFFIXES):
            continue
        if path.parent.name == "sharded" and not path.name.endswith(".weights.json"):
            continue  # shards are read through their index
        if expected_for(path) is not None:
            files.append(path)
    return files


FILES = fixture_files()
IDS = [str(p.relative_to(FIXTURES)) for p in FILES]


def test_there_are_fixtures_in_every_format():
    names = {p.name for p in FILES}
    for suffix in (".keras", ".h5", ".weights.h5", "_weights.h5", ".json", ".config.json", ".yaml",
                   ".pyyaml.yaml", ".k213.weights.h5", ".weights.json"):
        assert any(n.endswith(suffix) for n in names), suffix
    assert any(p.parent.name == "keras2" for p in FILES) and any(p.parent.name == "keras3" for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_layers_match_keras(path: Path):
    expected = expected_for(path)
    arch = archdiff.load(path)
    exp_layers = expected["layers"]
    if arch.has_topology:
        got = [(l.path, l.index, l.depth, l.class_name) for l in arch.layers]
        want = [(l["path"], l["index"], l["depth"], l["class_name"]) for l in exp_layers]
        assert got == want
        got_flags = [l.trainable for l in arch.layers]
        want_flags = [l["trainable"] for l in exp_layers]
        if expected["written_by"]["package"] == "tf_keras" and expected["loaded_with"] != "in-memory model":
            # tf-keras' from_config leaves a nested model's own flag True while its
            # layers keep trainable=False (the trainable count is the same); archdiff
            # reports the flag the file holds, which is what the in-memory model had.
            got_flags = [f for f, l in zip(got_flags, arch.layers) if not l.is_model]
            want_flags = [f for f, l in zip(want_flags, arch.layers) if not l.is_model]
        assert got_flags == want_flags
    elif path.name.endswith("_weights.h5") or (path.suffix == ".h5" and "keras2" in path.parts
                                                and not path.name.endswith(".weights.h5")):
        # Keras 2 weights-only: top-level names in model.layers order.
        top = [l["path"] for l in exp_layers if l["depth"] == 0]
        assert top and [l.path for l in arch.layers] == top
    else:
        # Keras 3 weights-only: Keras' order and classes are not recorded. Files
        # with `name` attributes give the real names; older ones (tf-keras,
        # Keras 2.13-2.15) only the auto names: class in snake case + order.
        from archdiff.read.hdf5 import auto_names

        top = [l for l in exp_layers if l["depth"] == 0]
        if expected.get("model_class") == "Sequential" or path.name.startswith("sequential"):
            top = [l for l in top if l["class_name"] != "InputLayer"]
        got_top = {l.path for l in arch.layers if l.depth == 0}
        assert top and got_top
        if any("auto names" in n for n in arch.notes):
            assert got_top == set(auto_names([l["class_name"] for l in top]))
        else:
            assert got_top == {l["path"] for l in top}
        assert arch.notes and "topology is unknown" in arch.notes[0]


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_parameter_counts_match_keras(path: Path):
    expected = expected_for(path)
    arch = archdiff.load(path)
    counts = arch.param_counts()
    if counts is None:
        pytest.fail(f"{path.name}: no parameter counts")
    assert counts.total == expected["total_params"]
    if arch.has_topology:
        assert counts.trainable == expected["trainable_params"]
        assert counts.non_trainable == expected["non_trainable_params"]
    params = {l["path"]: l["params"] for l in expected["layers"]}
    compared = 0
    for layer in arch.layers:
        if layer.path in params:
            assert arch.params(layer) == params[layer.path], layer.path
            compared += 1
    assert compared or not arch.has_topology, "no layer's parameter count was compared"


WEIGHTS_ONLY = [p for p in FILES if not archdiff.load(p).has_topology]


def test_there_are_weights_only_fixtures():
    assert len(WEIGHTS_ONLY) >= 15, [p.name for p in WEIGHTS_ONLY]


@pytest.mark.parametrize("path", WEIGHTS_ONLY, ids=[str(p.relative_to(FIXTURES)) for p in WEIGHTS_ONLY])
def test_weights_only_trainable_split_is_unknown_with_a_floor_below_keras(path: Path, cli):
    """No weights file records a layer's trainable flag: the split is unknown (null), the total exact, and the
    non-trainable floor (variables that are never trainable, such as BatchNormalization's moving statistics)
    at most what Keras counted."""
    import json

    expected = expected_for(path)
    counts = archdiff.load(path).param_counts()
    assert counts.total == expected["total_params"]
    assert counts.trainable is None and counts.non_trainable is None
    assert counts.non_trainable_at_least is not None
    assert 0 <= counts.non_trainable_at_least <= expected["non_trainable_params"]
    code, out, err = cli("summary", path, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert data["total_params"] == expected["total_params"]
    assert data["trainable_params"] is None and data["non_trainable_params"] is None
    assert data["non_trainable_params_at_least"] == counts.non_trainable_at_least


@pytest.mark.parametrize("path", [p for p in FILES if p.suffix != ".yaml" and not p.name.endswith(".json")],
                         ids=[i for p, i in zip(FILES, IDS) if p.suffix != ".yaml" and not p.name.endswith(".json")])
def test_weight_specs_match_keras(path: Path):
    """Every variable's shape and dtype, in Keras' order, named where the file can tell."""
    expected = expected_for(path)
    arch = archdiff.load(path)
    # Files that record only Keras' auto names (tf-keras, Keras 2.13-2.15): map them to the real layers.
    real = _auto_paths(expected) if any("auto names" in n for n in arch.notes) else {}
    compared = 0
    for layer in arch.layers:
        if layer.is_model or not layer.weights:
            continue
        want = expected["weights"].get(real.get(layer.path, layer.path))
        assert want is not None, f"{layer.path}: a layer with weights that Keras' model does not have"
        compared += 1
        got = layer.weights
        assert got is not None, layer.path
        assert [tuple(w.shape) for w in got] == [tuple(w["shape"]) for w in want], layer.path
        assert [w.dtype for w in got] == [w["dtype"] for w in want], layer.path
        if arch.has_topology:
            assert [w.name for w in got] == [w["name"] for w in want], layer.path
    assert compared, "no layer's weights were compared"  # every layer with weights was (see the assert above)


def _auto_paths(expected: dict) -> dict[str, str]:
    """Auto-name path -> real path: Keras 3 keys each layer by its class in snake case, numbered per model."""
    from archdiff.names import auto_names

    children: dict[str, list[dict]] = {}
    for layer in expected["layers"]:
        children.setdefault(layer["path"].rpartition("/")[0], []).append(layer)
    out: dict[str, str] = {}

    def walk(parent: str, parent_auto: str) -> None:
        group = children.get(parent, [])
        for layer, name in zip(group, auto_names([l["class_name"] for l in group])):
            path = f"{parent_auto}/{name}" if parent_auto else name
            out[path] = layer["path"]
            walk(layer["path"], path)

    walk("", "")
    return out


def _has_config(path: Path) -> bool:
    return expected_for(path)["loaded_with"] != "in-memory model"


CONFIG_FILES = [p for p in FILES if _has_config(p)]


@pytest.mark.parametrize("path", CONFIG_FILES, ids=[str(p.relative_to(FIXTURES)) for p in CONFIG_FILES])
def test_output_shapes_match_keras(path: Path):
    """Every layer's output shape, read or inferred from the config, equals Keras'."""
    expected = expected_for(path)
    arch = archdiff.load(path)
    assert arch.has_topology
    assert arch.layers and len(arch.layers) == len(expected["layers"])
    for layer, want in zip(arch.layers, expected["layers"]):
        if want["output_shape"] is None:
            continue
        got = layer.output_shape
        assert got is not None, layer.path
        assert [list(got)] == [want["output_shape"]], layer.path


def test_chunked_layer_names_are_read():
    """Keras writes layer_names0, layer_names1, ... when the list outgrows an HDF5 attribute."""
    import h5py

    path = FIXTURES / "keras2" / "many_layers_weights.h5"
    with h5py.File(path, "r") as f:
        assert "layer_names" not in f.attrs and "layer_names0" in f.attrs and "layer_names1" in f.attrs
    arch = archdiff.load(path)
    assert len(arch.layers) == len(expected_for(path)["layers"])


def test_subclassed_model_says_topology_is_unknown():
    arch = archdiff.load(FIXTURES / "keras3" / "subclassed.weights.h5")
    assert not arch.has_topology
    with pytest.raises(archdiff.TopologyUnknownError):
        archdiff.to_graph(arch)


def test_shared_layer_is_one_layer_with_two_calls():
    arch = archdiff.load(FIXTURES / "keras3" / "functional.keras")
    shared = [l for l in arch.layers if len(l.calls) > 1]
    assert [l.name for l in shared] == ["shared_dense"]
    g = archdiff.to_graph(arch)
    assert g.in_degree("shared_dense") == 2
    assert len(arch.input_specs) == 2 and len(arch.outputs) == 2


def test_keras2_and_keras3_dialects_give_the_same_calls():
    k2 = archdiff.load(FIXTURES / "keras2" / "functional.json")
    k3 = archdiff.load(FIXTURES / "keras3" / "functional.json")
    assert k2.source.dialect == "keras2" and k3.source.dialect == "keras3"
    assert [(l.name, [c.inputs for c in l.calls]) for l in k2.layers] == \
           [(l.name, [c.inputs for c in l.calls]) for l in k3.layers]
