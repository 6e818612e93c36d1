"""``--build`` (archdiff.read.build): what it refuses, what it caches, and how a build's record becomes an
Architecture.

What a build reads is checked against keras-hub itself in tests/test_keras_hub_oracle.py; these tests need no
Keras except the two marked ones, which build for real.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from archdiff.read import build as building
from archdiff.read import load

HUB = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "keras_hub")
BERT = os.path.join(HUB, "bert2.keras")
BERT_JSON = os.path.join(HUB, "bert2.json")


def record(key: str, *, graph=None, extra: bool = False) -> dict:
    """A build's record written by hand: bert2's pooled_dense, as Keras' saving code locates its variables."""
    weights = [{"name": "kernel", "path": "pooled_dense/kernel", "shape": [16, 16], "dtype": "float32",
                "trainable": True, "file": "layers/dense/vars/0"},
               {"name": "bias", "path": "pooled_dense/bias", "shape": [16], "dtype": "float32", "trainable": True,
                "file": "layers/dense/vars/1"}]
    if extra:
        weights.append({"name": "scale", "path": "pooled_dense/scale", "shape": [3], "dtype": "float32",
                        "trainable": False, "file": "layers/dense/vars/2"})
    return {"format": building.RECORD_FORMAT, "key": key, "class_name": "BertBackbone", "module": "keras_hub.x",
            "name": "bert_backbone", "keras_version": "3.0", "keras_hub_version": "0.1", "backend": "jax",
            "graph": graph, "total_params": 0, "trainable_params": 0,
            "layers": [{"name": "pooled_dense", "class_name": "Dense", "module": "keras.src.layers.core.dense",
                        "trainable": True, "output_shapes": [[None, 16]], "weights": weights}]}


def key_of(path: str) -> str:
    return building.build_key(dict(load(path).config), ())


def test_a_record_locates_each_variable_in_the_file_and_says_what_it_cannot():
    arch = load(BERT)
    built = building.from_record(arch, record("k", extra=True), cached=False, cache_path=None)
    (dense,) = built.layers
    assert (dense.name, dense.class_name, dense.index) == ("pooled_dense", "Dense", 0)
    assert [(w.name, w.location) for w in dense.weights] == [
        ("kernel", "/layers/dense/vars/0"), ("bias", "/layers/dense/vars/1"), ("scale", None)]
    datasets = sum(len(layer.weights or ()) for layer in arch.layers)
    notes = " | ".join(built.notes)
    assert "no dataset (of the built shape) for: pooled_dense/scale" in notes
    assert f"{datasets - 2} dataset(s) in the file belong to no variable" in notes
    assert "connections are unknown" in notes and not built.has_topology
    assert built.constructor == arch.constructor  # the arguments stay beside the built layers


def test_a_record_whose_shape_disagrees_with_the_file_is_not_located():
    arch = load(BERT)
    rec = record("k")
    rec["layers"][0]["weights"][0]["shape"] = [16, 17]
    built = building.from_record(arch, rec, cached=False, cache_path=None)
    assert built.layers[0].weights[0].location is None
    assert any("pooled_dense/kernel" in n for n in built.notes)


def test_a_cached_build_is_read_without_keras(tmp_path):
    cache = tmp_path / "cache"
    key = key_of(BERT_JSON)
    (cache / "builds").mkdir(parents=True)
    (cache / "builds" / f"{key}.json").write_text(json.dumps(record(key)))
    code = ("import sys, json; from archdiff.read import load; a = load(sys.argv[1], build=True); "
            "print(json.dumps([[l.name, l.class_name] for l in a.layers])); "
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'keras_hub') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, BERT_JSON], capture_output=True, text=True,
                          env={**os.environ, "ARCHDIFF_CACHE_DIR": str(cache)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    layers, imported = proc.stdout.splitlines()
    assert json.loads(layers) == [["pooled_dense", "Dense"]] and imported == "[]"


def test_a_damaged_cache_entry_is_rebuilt_and_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHDIFF_CACHE_DIR", str(tmp_path))
    key = key_of(BERT_JSON)
    entry = tmp_path / "builds" / f"{key}.json"
    entry.parent.mkdir()
    entry.write_text('{"format": 2, "key": "')
    built = []
    monkeypatch.setattr(building, "_run_build", lambda config, imports, where: built.append(1) or record(key))
    arch = load(BERT_JSON, build=True)
    assert built == [1] and arch.built["cached"] is False
    assert json.loads(entry.read_text())["key"] == key
    again = load(BERT_JSON, build=True)  # now from the cache: no second build
    assert built == [1] and again.built["cached"] is True


def test_the_cache_key_follows_the_config_the_versions_and_the_imports(monkeypatch):
    config = dict(load(BERT_JSON).config)
    key = building.build_key(config, ())
    assert building.build_key(json.loads(json.dumps(config)), ()) == key
    other = json.loads(json.dumps(config))
    other["config"]["num_layers"] = 3
    assert building.build_key(other, ()) != key
    assert building.build_key(config, ("my_layers",)) != key
    monkeypatch.setattr(building, "_version", lambda dist: "9.9")
    assert building.build_key(config, ()) != key


def test_cache_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHDIFF_CACHE_DIR", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(building, "_run_build", lambda config, imports, where: record("x"))
    arch = load(BERT_JSON, build=True)
    assert arch.built["cache"] is None and not list(tmp_path.rglob("*.json"))


def test_a_module_the_file_names_is_refused_before_anything_is_imported(tmp_path, cli, monkeypatch):
    marker = tmp_path / "imported"
    package = tmp_path / "evil_pkg"
    package.mkdir()
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('yes')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    document = json.loads(open(BERT_JSON).read())
    document["config"]["dtype"] = {"module": "evil_pkg.policies", "class_name": "Policy", "config": {}}
    target = tmp_path / "bert.json"
    target.write_text(json.dumps(document))
    monkeypatch.setattr(building, "_run_build", lambda *a, **k: pytest.fail("nothing may be built"))
    code, out, err = cli("layers", target, "--build")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "evil_pkg.policies" in err and "--import evil_pkg" in err and not marker.exists()


def test_import_without_build_is_a_usage_error(cli):
    code, out, err = cli("layers", BERT_JSON, "--import", "my_layers")
    assert code == 2 and "--import is for --build" in err and out == ""
    code, _, err = cli("layers", BERT_JSON, "--build", "--import", "not a module")
    assert code == 2 and "is not a module name" in err


def test_build_leaves_a_model_whose_config_lists_its_layers_unchanged(cli):
    path = os.path.join(HUB, os.pardir, "keras3", "functional.keras")
    assert cli("layers", path, "--build") == cli("layers", path)


@pytest.mark.tensorflow
def test_a_constructor_that_raises_is_one_line(tmp_path, cli):
    document = json.loads(open(BERT_JSON).read())
    document["config"]["hidden_dim"] = -16  # Keras refuses a negative layer width
    target = tmp_path / "bad.json"
    target.write_text(json.dumps(document))
    code, out, err = cli("layers", target, "--build")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "Keras could not build 'BertBackbone'" in err


@pytest.mark.tensorflow
def test_a_real_build_is_cached_and_the_next_run_imports_nothing(tmp_path, cli, monkeypatch):
    monkeypatch.setenv("ARCHDIFF_CACHE_DIR", str(tmp_path))
    code, first, err = cli("layers", BERT_JSON, "--build", "--format", "json")
    assert code == 0, err
    (entry,) = (tmp_path / "builds").glob("*.json")
    assert entry.name == key_of(BERT_JSON) + ".json"
    monkeypatch.setattr(building, "_run_build", lambda *a, **k: pytest.fail("the cache must answer"))
    code, second, _ = cli("layers", BERT_JSON, "--build", "--format", "json")
    assert code == 0 and json.loads(second)["layers"] == json.loads(first)["layers"]


def test_a_built_model_is_read_unbuilt_beside_a_file_with_nothing_to_build():
    built = building.from_record(load(BERT), record("k"), cached=False, cache_path=None)
    weights_only = load(os.path.join(HUB, "bert2.weights.h5"))
    functional = load(os.path.join(HUB, os.pardir, "keras3", "functional.keras"))
    reloaded = []

    def reload(arch):
        reloaded.append(arch)
        return load(BERT)

    a, b = building.alike(built, weights_only, reload)
    assert reloaded == [built] and a.built is None and b is weights_only
    assert any(n.startswith("--build: the other input holds no config") for n in a.notes)
    # A config that lists its layers names its variables as Keras does: nothing to undo.
    assert building.alike(built, functional, reload) == (built, functional) and len(reloaded) == 1


def test_build_on_a_file_with_nothing_to_build_says_so(cli):
    code, out, err = cli("layers", os.path.join(HUB, "bert2.weights.h5"), "--build")
    assert code == 0, err
    assert "--build: this input holds no config to build from (weights only)" in out
    assert cli("layers", os.path.join(HUB, "bert2.weights.h5"))[1] in out.replace(
        "note: --build: this input holds no config to build from (weights only): read as it is\n", "")
