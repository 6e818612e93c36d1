"""The diff stage's library API: its vocabulary and validator, the sequence alignment, the gate as data."""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import shutil
import subprocess

import jsonschema
import pytest
from support import FIXTURES, ROOT

from archdiff.diff import (
    CHANGE_KINDS,
    EFFECTS,
    GATE_DEFAULT_FAIL_ON,
    KINDS,
    DiffOptions,
    classify,
    diff,
    gate_files,
    io_changed,
    validate_diff,
    weight_changed,
)
from archdiff.diff.matching.sequences import align
from archdiff.read import load

PAIRS = [("demo/source.keras", "demo/target.keras"), ("keras2/nested.h5", "keras3/nested.keras"),
         ("keras3/sequential.keras", "keras3/functional.keras"), ("keras3/functional.json", "keras3/nested.json"),
         ("keras2/resnet_small.h5", "keras3/resnet_small.keras"), ("keras3/functional.weights.h5", "keras3/functional.keras")]


# -- the vocabulary ------------------------------------------------------------------------
def test_every_change_kind_has_its_effects_and_they_are_kinds():
    assert set(EFFECTS) == set(CHANGE_KINDS)
    assert all(e in KINDS for effects in EFFECTS.values() for e in effects)


def test_weight_changes_break_on_shape_not_on_dtype():
    old = {"shape": [3, 4], "dtype": "float32"}
    assert weight_changed("kernel", old, {"shape": [3, 5], "dtype": "float32"}).effect == "weights-breaking"
    assert weight_changed("kernel", old, {"shape": [3, 4], "dtype": "float16"}).effect == "weights-compatible"
    assert weight_changed("kernel", None, old).op == "added"
    assert io_changed("input", 0, "name", "a", "b").effect == "cosmetic"
    assert io_changed("output", 1, "shape", [1], [2]).effect == "interface-changing"


def test_classify_implies_compatible_weights_for_any_substantive_change():
    assert classify([]) == ((), "identical")
    assert classify(["cosmetic"]) == (("cosmetic",), "cosmetic")
    assert classify(["topology-changing"]) == (("weights-compatible", "topology-changing"), "topology-changing")
    assert classify(["weights-breaking", "cosmetic"]) == (("cosmetic", "weights-breaking"), "weights-breaking")


@pytest.mark.parametrize("a, b", PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
@pytest.mark.parametrize("strict", [False, True], ids=["normal", "strict"])
def test_every_diff_of_the_fixtures_is_valid(a, b, strict):
    d = diff(load(FIXTURES / a), load(FIXTURES / b), DiffOptions(strict=strict))
    validate_diff(d)
    validate_diff(diff(load(FIXTURES / b), load(FIXTURES / a), DiffOptions(strict=strict)))


def test_the_validator_catches_a_wrong_effect_and_a_wrong_classification():
    d = diff(load(FIXTURES / "demo" / "source.keras"), load(FIXTURES / "demo" / "target.keras"))
    layer = next(m for m in d.matched if m.changes)
    change = layer.changes[0]
    bad = dataclasses.replace(change, effect=next(k for k in KINDS if k not in EFFECTS[change.kind]))
    broken = dataclasses.replace(d, matched=(dataclasses.replace(layer, changes=(bad,)),))
    with pytest.raises(ValueError, match="cannot be"):
        validate_diff(broken)
    with pytest.raises(ValueError, match="its changes give"):
        validate_diff(dataclasses.replace(d, classification="cosmetic"))


def test_no_re_exported_name_hides_a_module_of_the_package():
    """``from archdiff.diff.render import render`` in the ``__init__`` would turn ``archdiff.diff.render`` into a function."""
    import importlib
    import pkgutil
    import types

    import archdiff.diff

    modules = [m.name for m in pkgutil.walk_packages(archdiff.diff.__path__, "archdiff.diff.")]
    assert "archdiff.diff.render.json" in modules and "archdiff.diff.matching.seq_myers" in modules
    for name in modules:
        module = importlib.import_module(name)
        parent, _, leaf = name.rpartition(".")
        assert getattr(importlib.import_module(parent), leaf) is module, name
        assert isinstance(module, types.ModuleType)


def test_the_cli_spells_the_gate_default_as_the_library_does():
    from archdiff.cli.diff import GATE_DEFAULT_FAIL_ON as CLI_DEFAULT

    assert CLI_DEFAULT == GATE_DEFAULT_FAIL_ON


# -- the order alignment ---------------------------------------------------------------------
def _lcs_length(sa, sb) -> int:
    """Textbook O(N * M) longest common subsequence length: an independent answer."""
    prev = [0] * (len(sb) + 1)
    for x in sa:
        row = [0]
        for j, y in enumerate(sb):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    return prev[-1]


def test_alignment_is_a_longest_common_subsequence_and_greedy_stays_in_order():
    rng = random.Random(7)
    for _ in range(200):
        sa = [rng.choice("abcd") for _ in range(rng.randrange(0, 30))]
        sb = [rng.choice("abcd") for _ in range(rng.randrange(0, 30))]
        for algorithm in ("myers", "greedy"):
            pairs = align(sa, sb, algorithm=algorithm)
            assert all(sa[i] == sb[j] for i, j in pairs)
            assert all(i1 < i2 and j1 < j2 for (i1, j1), (i2, j2) in itertools.pairwise(pairs))
            if algorithm == "myers":
                assert len(pairs) == _lcs_length(sa, sb)
        # Past its budget Myers hands over to greedy.
        assert align(sa, sb, budget=0) == align(sa, sb, algorithm="greedy")
    with pytest.raises(ValueError, match="unknown alignment algorithm"):
        align(["a"], ["a"], algorithm="difflib")


# -- the gate as data --------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_gate_files_returns_one_result_per_file(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    root = tmp_path / "repo"
    root.mkdir()
    for key, value in {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_CONFIG_NOSYSTEM": "1",
                       "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                       "GIT_COMMITTER_EMAIL": "t@example.invalid"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    shutil.copy(FIXTURES / "demo" / "source.keras", "model.keras")
    shutil.copy(FIXTURES / "keras3" / "functional.keras", "gone.keras")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run(["git", *args], check=True, capture_output=True)
    shutil.copy(FIXTURES / "demo" / "target.keras", "model.keras")
    os.unlink("gone.keras")
    shutil.copy(FIXTURES / "keras3" / "nested.keras", "new.keras")

    result = gate_files(["model.keras", "gone.keras", "new.keras"])
    assert [(f.path, f.status) for f in result.files] == [("model.keras", "compared"), ("gone.keras", "deleted"),
                                                          ("new.keras", "new")]
    assert result.options.fail_on == GATE_DEFAULT_FAIL_ON
    compared = result.files[0]
    assert compared.diff.a.path == "HEAD:model.keras" and compared.policy is None
    assert compared.exit_code == compared.diff.exit_code == result.exit_code
    schema = json.loads((ROOT / "archdiff" / "schemas" / "diff.schema.json").read_text())
    jsonschema.Draft202012Validator({**schema, "$ref": "#/$defs/gateReport"}).validate(result.to_dict())
    assert gate_files([]).exit_code == 0
