"""``archdiff transfer`` without TensorFlow: matching, every format pair, safety, reports.

The committed fixtures were written by real Keras 3 and tf-keras from the same
seeded values, so a Keras 2 file and a Keras 3 file of one model hold equal
tensors. Each cross-format test scrambles a copy of the target (every dataset
overwritten), transfers from the source, and requires OUT to equal the
unscrambled target fixture dataset by dataset: any weight given to the wrong
layer or variable shows up, since every tensor holds distinct random values.
Keras' own loading of OUT is checked in test_transfer_oracle.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import FIXTURES, ROOT, run_cli

from archdiff.errors import UsageError
from archdiff.read import hdf5 as h5
from archdiff.transfer import (
    MapRule,
    TransferError,
    TransferOptions,
    apply_transfer,
    dry_run,
    load_map_file,
    parse_map_rule,
    plan_transfer,
)
from archdiff.transfer.render import render

K2 = FIXTURES / "keras2"
K3 = FIXTURES / "keras3"


# -- helpers ---------------------------------------------------------------------
def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def h5_values(path: Path) -> dict[str, bytes]:
    """Every dataset of an HDF5 file (or of a .keras zip's model.weights.h5): path -> raw bytes + shape."""
    out: dict[str, bytes] = {}

    def collect(f):
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                data = np.asarray(obj[()])
                out[name] = (data.dtype.str, data.shape, data.tobytes())

        f.visititems(visit)

    if str(path).endswith(".keras"):
        with zipfile.ZipFile(path) as zf, h5.open_zip_member_h5(str(path), zf, "model.weights.h5", where="t") as f:
            collect(f)
    else:
        with h5py.File(path, "r") as f:
            collect(f)
    return out


def scramble_h5(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f" and obj.size:
                obj[...] = np.full(obj.shape, -7.25, obj.dtype)

        f.visititems(visit)


def scrambled_copy(src: Path, folder: Path) -> Path:
    """A copy of a model/weights file with every float dataset overwritten."""
    dst = folder / ("scrambled_" + src.name)
    if src.name.endswith(".keras"):
        member = folder / "member.h5"
        with zipfile.ZipFile(src) as zf:
            member.write_bytes(zf.read("model.weights.h5"))
            infos = zf.infolist()
            scramble_h5(member)
            with zipfile.ZipFile(dst, "w") as out:
                for info in infos:
                    data = member.read_bytes() if info.filename == "model.weights.h5" else zf.read(info)
                    out.writestr(info, data)
        member.unlink()
    else:
        shutil.copyfile(src, dst)
        scramble_h5(dst)
    return dst


def write_k3(path: Path, layers: dict[str, list[np.ndarray]]) -> Path:
    """A Keras 3 layout .weights.h5: layers/<auto>/vars/<i>, with the real name in the vars group's attr."""
    with h5py.File(path, "w") as f:
        container = f.create_group("layers")
        for i, (name, arrays) in enumerate(layers.items()):
            group = container.create_group(f"dense_{i}" if i else "dense")
            var_group = group.create_group("vars")
            var_group.attrs["name"] = name
            for j, a in enumerate(arrays):
                var_group.create_dataset(str(j), data=a)
        f.create_group("vars")
    return path


def write_legacy(path: Path, layers: dict[str, dict[str, np.ndarray]], version: str = "2.21.0") -> Path:
    """A Keras 2 save_weights .h5: layer_names at the root, weight_names per layer group."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = version.encode()
        for name, variables in layers.items():
            group = f.create_group(name)
            names = [f"{name}/{v}:0" for v in variables]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for n, a in zip(names, variables.values()):
                group.create_dataset(n, data=a)
    return path


def rng_arrays(seed: int, *shapes, dtype="float32") -> list[np.ndarray]:
    gen = np.random.default_rng(seed)
    return [gen.standard_normal(s).astype(dtype) for s in shapes]


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# -- every format into every format ------------------------------------------------
SOURCES = {
    "nested": [K2 / "nested.h5", K2 / "nested_weights.h5", K2 / "nested.keras", K3 / "nested.h5",
               K3 / "nested.weights.h5", K3 / "nested.keras"],
    "resnet_small": [K2 / "resnet_small.h5", K2 / "resnet_small_weights.h5", K3 / "resnet_small.h5",
                     K3 / "resnet_small.weights.h5", K3 / "resnet_small.keras",
                     K3 / "sharded" / "resnet_small.weights.json"],
    "sequential": [K2 / "sequential.h5", K2 / "sequential_weights.h5", K3 / "sequential.h5",
                   K3 / "sequential.weights.h5", K3 / "sequential.keras"],
    "functional": [K2 / "functional.h5", K2 / "functional_weights.h5", K2 / "functional.keras",
                   K3 / "functional.weights.h5", K3 / "functional.keras"],
}
TARGETS = {
    "nested": [K3 / "nested.keras", K3 / "nested.weights.h5", K3 / "nested.h5", K2 / "nested.h5",
               K2 / "nested_weights.h5", K2 / "nested.keras"],
    "resnet_small": [K3 / "resnet_small.keras", K3 / "resnet_small.weights.h5", K2 / "resnet_small.h5",
                     K2 / "resnet_small_weights.h5"],
    "sequential": [K3 / "sequential.keras", K3 / "sequential.weights.h5", K2 / "sequential_weights.h5"],
    "functional": [K3 / "functional.keras", K3 / "functional.weights.h5", K2 / "functional_weights.h5"],
}
CASES = [pytest.param(s, t, id=f"{s.parent.name}-{s.name}->{t.parent.name}-{t.name}")
         for model in SOURCES for s in SOURCES[model] for t in TARGETS[model]]


def out_name(target: Path) -> str:
    name = target.name
    for suffix in (".keras", ".weights.h5", ".h5"):
        if name.endswith(suffix):
            return "out" + suffix
    raise AssertionError(name)


@pytest.mark.parametrize("source,target", CASES)
def test_every_format_pair_gives_each_layer_its_own_weights(source, target, tmp_path):
    scrambled = scrambled_copy(target, tmp_path)
    out = tmp_path / out_name(target)
    before = {p: sha(p) for p in (source, scrambled)}
    report = apply_transfer(plan_transfer(source, scrambled), out, progress=False)
    assert report.exit_code == 0, render(report)
    assert report.written and report.verified
    assert h5_values(out) == h5_values(target)
    assert {p: sha(p) for p in (source, scrambled)} == before
    assert leftovers(tmp_path, {scrambled.name, out.name}) == []


def test_keras_target_keeps_config_metadata_and_member_layout(tmp_path):
    target = scrambled_copy(K3 / "nested.keras", tmp_path)
    out = tmp_path / "out.keras"
    apply_transfer(plan_transfer(K2 / "nested.h5", target), out, progress=False)
    with zipfile.ZipFile(target) as a, zipfile.ZipFile(out) as b:
        assert [i.filename for i in a.infolist()] == [i.filename for i in b.infolist()]
        for ia, ib in zip(a.infolist(), b.infolist()):
            assert ia.compress_type == ib.compress_type == zipfile.ZIP_STORED
            if ia.filename != "model.weights.h5":
                assert a.read(ia) == b.read(ib)
                assert ia.date_time == ib.date_time


def test_output_gets_the_usual_file_mode(tmp_path):
    target = scrambled_copy(K3 / "nested.weights.h5", tmp_path)
    out = tmp_path / "out.weights.h5"
    apply_transfer(plan_transfer(K2 / "nested.h5", target), out, progress=False)
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


# -- the command line ----------------------------------------------------------------
def test_cli_copies_and_reports_every_layer(cli, tmp_path):
    target = scrambled_copy(K3 / "resnet_small.keras", tmp_path)
    out = tmp_path / "out.keras"
    code, stdout, stderr = cli("transfer", K2 / "resnet_small.h5", target, "-o", out)
    assert code == 0, stderr
    assert "conv2_block1_1_conv" in stdout and "copied" in stdout
    assert "exit 0" in stdout
    assert h5_values(out) == h5_values(K3 / "resnet_small.keras")


def test_cli_needs_an_output_unless_dry_run(cli):
    code, _, stderr = cli("transfer", K2 / "nested.h5", K3 / "nested.keras")
    assert code == 2 and "-o OUT" in stderr


def test_dry_run_writes_nothing_and_gives_the_same_exit_code(cli, tmp_path):
    target = scrambled_copy(K3 / "nested.keras", tmp_path)
    out = tmp_path / "out.keras"
    code, stdout, _ = cli("transfer", K2 / "nested.h5", target, "-o", out, "--dry-run")
    assert code == 0
    assert "dry run" in stdout
    assert not out.exists()
    assert leftovers(tmp_path, {target.name}) == []


# -- matching ------------------------------------------------------------------------
@pytest.fixture
def renamed_pair(tmp_path):
    a, b, c = rng_arrays(1, (4, 8), (8,), (8, 3))
    source = write_legacy(tmp_path / "src.h5", {"old_fc1": {"kernel": a, "bias": b},
                                                 "old_fc2": {"kernel": c}, "shared": {"kernel": a}})
    target = write_k3(tmp_path / "tgt.weights.h5", {"new_fc1": [np.zeros((4, 8), "float32"), np.zeros(8, "float32")],
                                                     "new_fc2": [np.zeros((8, 3), "float32")],
                                                     "shared": [np.zeros((4, 8), "float32")],
                                                     "head": [np.zeros((3, 2), "float32")]})
    return source, target, (a, b, c)


def read_layer(path: Path, layer: str) -> list[np.ndarray]:
    from archdiff import load

    arch = load(path)
    specs = arch.by_path[layer].weights
    with h5py.File(path, "r") as f:
        return [f[s.location][()] for s in specs]


def test_without_rules_only_same_names_are_copied(renamed_pair, tmp_path):
    source, target, (a, _, _) = renamed_pair
    plan = plan_transfer(source, target)
    status = {layer.target: layer.status for layer in plan.layers}
    assert status == {"new_fc1": "kept", "new_fc2": "kept", "shared": "copied", "head": "kept"}
    assert {u.path for u in plan.unused} == {"old_fc1", "old_fc2"}
    # 1 of 3 source layers used, 1 of 4 target layers filled: refused as probably unrelated (exit 1) ...
    assert plan.exit_code == 1 and "probably do not correspond" in plan.refusal
    out = tmp_path / "o.weights.h5"
    with pytest.raises(TransferError) as info:
        apply_transfer(plan, out, progress=False)
    assert info.value.exit_code == 1 and not out.exists()
    # ... unless --allow-low-coverage says it is meant.
    plan = plan_transfer(source, target, TransferOptions(allow_low_coverage=True))
    assert plan.exit_code == 0 and plan.refusal is None
    apply_transfer(plan, out, progress=False)
    np.testing.assert_array_equal(read_layer(out, "shared")[0], a)


def test_map_and_regex_rules_rename_source_layers(renamed_pair, tmp_path):
    source, target, (a, b, c) = renamed_pair
    options = TransferOptions(maps=(parse_map_rule("old_fc1=new_fc1"), parse_map_rule(r"re:^old_(fc\d)$=new_\1")))
    plan = plan_transfer(source, target, options)
    by = {layer.target: (layer.status, layer.source, layer.matched_by) for layer in plan.layers}
    assert by["new_fc1"] == ("copied", "old_fc1", "map")
    assert by["new_fc2"] == ("copied", "old_fc2", "regex")
    assert by["head"][0] == "kept"
    out = tmp_path / "o.weights.h5"
    apply_transfer(plan, out, progress=False)
    got = read_layer(out, "new_fc1")
    np.testing.assert_array_equal(got[0], a)
    np.testing.assert_array_equal(got[1], b)
    np.testing.assert_array_equal(read_layer(out, "new_fc2")[0], c)


def test_map_file_yaml_and_text(renamed_pair, tmp_path, cli):
    source, target, _ = renamed_pair
    (tmp_path / "m.yaml").write_text("old_fc1: new_fc1\n're:^old_(fc2)$': 'new_\\1'\n")
    (tmp_path / "m.txt").write_text("# renames\n\nold_fc1=new_fc1\nre:^old_(fc2)$=new_\\1\n")
    for name in ("m.yaml", "m.txt"):
        rules = load_map_file(str(tmp_path / name))
        assert [r.text for r in rules] == ["old_fc1=new_fc1", r"re:^old_(fc2)$=new_\1"]
        code, stdout, stderr = cli("transfer", source, target, "--map-file", tmp_path / name, "--dry-run",
                                   "--format", "json")
        data = json.loads(stdout)
        assert code == 0, stderr  # the head keeps its own weights: the transfer does what was asked
        assert {(x["target"], x["status"]) for x in data["layers"]} >= {("new_fc1", "copied"), ("new_fc2", "copied")}


def test_an_explicit_rule_wins_over_a_same_name_match(renamed_pair):
    source, target, _ = renamed_pair
    plan = plan_transfer(source, target, TransferOptions(maps=(parse_map_rule("old_fc1=shared"),)))
    layer = next(x for x in plan.layers if x.target == "shared")
    assert (layer.source, layer.matched_by) == ("old_fc1", "map")
    unused = {u.path: u.reason for u in plan.unused}
    assert "takes 'old_fc1'" in unused["shared"]


def test_a_rule_naming_no_layer_is_an_error_with_a_suggestion(renamed_pair):
    source, target, _ = renamed_pair
    with pytest.raises(UsageError, match="old_fc1"):
        plan_transfer(source, target, TransferOptions(maps=(parse_map_rule("old_fcl=new_fc1"),)))
    with pytest.raises(UsageError, match="new_fc1"):
        plan_transfer(source, target, TransferOptions(maps=(parse_map_rule("old_fc1=new_fcl"),)))


def test_two_rules_into_one_target_layer_are_refused(renamed_pair):
    source, target, _ = renamed_pair
    rules = (parse_map_rule("old_fc1=new_fc1"), parse_map_rule("old_fc2=new_fc1"))
    with pytest.raises(UsageError, match="several source layers"):
        plan_transfer(source, target, TransferOptions(maps=rules))


def test_prefix_rule_renames_a_nested_model(tmp_path):
    target = scrambled_copy(K3 / "nested.weights.h5", tmp_path)
    # Rename the source's nested model: base -> backbone, then map it back.
    plan = plan_transfer(K2 / "nested.h5", target, TransferOptions(maps=(parse_map_rule("base=base"),)))
    assert plan.exit_code == 0
    assert all(layer.matched_by == "map" for layer in plan.layers if layer.target.startswith("base/"))
    assert MapRule("base", "backbone").apply("base/conv1") == "backbone/conv1"
    assert MapRule("base", "backbone").apply("baseline") is None


@pytest.mark.parametrize("text", ["nothing", "=x", "x=", "re:(=x", "re:=x"])
def test_bad_rules_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_map_rule(text)


def test_regex_rule_splits_at_the_last_equals_sign():
    rule = parse_map_rule(r"re:(?<=block)_(\d)=_x\1")
    assert rule.apply("block_1") == "block_x1"


def test_nothing_in_common_is_an_error(tmp_path):
    source = write_k3(tmp_path / "a.weights.h5", {"x": rng_arrays(1, (2, 2))})
    target = write_k3(tmp_path / "b.weights.h5", {"y": rng_arrays(2, (2, 2))})
    plan = plan_transfer(source, target)
    assert plan.exit_code == 2
    assert "no target layer matched" in plan.problems[0]


def test_match_auto_takes_the_diffs_renames(renamed_pair, monkeypatch, tmp_path):
    """--match auto asks archdiff.matching for renames; user rules still come first."""
    import types

    source, target, _ = renamed_pair

    class Matching:
        nestings = ()
        pairs = (types.SimpleNamespace(a="old_fc1", b="new_fc1", how="signature"),
                 types.SimpleNamespace(a="old_fc2", b="new_fc2", how="order"))
        a_to_b = {"old_fc1": "new_fc1", "old_fc2": "new_fc2"}

    fake = types.ModuleType("archdiff.diff.matching")
    fake.match_layers = lambda a, b, *, detect_renames=True, rules=(): Matching()
    fake.find_nestings = lambda a, b: ()
    monkeypatch.setitem(sys.modules, "archdiff.diff.matching", fake)
    plan = plan_transfer(source, target, TransferOptions(match="auto"))
    by = {layer.target: (layer.source, layer.matched_by) for layer in plan.layers}
    assert by["new_fc1"] == ("old_fc1", "auto") and by["new_fc2"] == ("old_fc2", "auto")


# -- variables, shapes, dtypes ------------------------------------------------------------
def test_named_variables_pair_by_name_whatever_their_order(tmp_path):
    k, b = rng_arrays(3, (4, 2), (2,))
    source = write_legacy(tmp_path / "s.h5", {"d": {"bias": b, "kernel": k}})
    target = write_legacy(tmp_path / "t.h5", {"d": {"kernel": np.zeros((4, 2), "float32"),
                                                     "bias": np.zeros(2, "float32")}})
    plan = plan_transfer(source, target)
    assert [(v.target, v.source, v.paired_by) for v in plan.layers[0].variables] == [
        ("kernel", "kernel", "name"), ("bias", "bias", "name")]
    out = tmp_path / "o.h5"
    apply_transfer(plan, out, progress=False)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["d/d/kernel:0"][()], k)
        np.testing.assert_array_equal(f["d/d/bias:0"][()], b)


def test_variables_that_differ_by_name_do_not_fit(tmp_path):
    source = write_legacy(tmp_path / "s.h5", {"d": {"kernel": np.ones((4, 2), "f4"), "bias": np.ones(2, "f4")}})
    target = write_legacy(tmp_path / "t.h5", {"d": {"kernel": np.zeros((4, 2), "f4")}})
    plan = plan_transfer(source, target)
    assert plan.layers[0].status == "mismatch"
    assert "differ by name" in plan.problems[0]


def test_positional_variables_need_the_same_count(tmp_path):
    source = write_k3(tmp_path / "s.weights.h5", {"d": [np.ones((4, 2), "f4"), np.ones(2, "f4")]})
    target = write_k3(tmp_path / "t.weights.h5", {"d": [np.ones((4, 2), "f4")]})
    plan = plan_transfer(source, target)
    assert "2 variables, the target layer 1" in plan.problems[0]


@pytest.fixture
def mismatched(tmp_path):
    src = {"a": rng_arrays(1, (4, 8), (8,)), "b": rng_arrays(2, (8, 10), (10,)), "c": rng_arrays(3, (10, 5)),
           "d": rng_arrays(4, (3,))}
    tgt = {"a": [np.zeros((4, 8), "f4"), np.zeros(8, "f4")], "b": [np.zeros((8, 3), "f4"), np.zeros(3, "f4")],
           "c": [np.zeros((10, 6), "f4")], "d": [np.zeros(3, "f4")]}
    return write_k3(tmp_path / "s.weights.h5", src), write_k3(tmp_path / "t.weights.h5", tgt), src


def test_shape_mismatches_are_listed_together_and_nothing_is_written(mismatched, cli, tmp_path):
    source, target, _ = mismatched
    before = {p.name: sha(p) for p in (source, target)}
    out = tmp_path / "o.weights.h5"
    code, stdout, stderr = cli("transfer", source, target, "-o", out)
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("archdiff: error: 2 matched layers do not fit")
    assert "b <- b" in stderr and "c <- c" in stderr and "(8, 10)" in stderr and "(10, 6)" in stderr
    assert "mismatch" in stdout
    assert not out.exists()
    assert leftovers(tmp_path, set(before)) == []
    assert {p.name: sha(p) for p in (source, target)} == before
    with pytest.raises(TransferError) as info:
        apply_transfer(plan_transfer(source, target), out)
    assert len(info.value.plan.problems) == 2


def test_skip_mismatch_skips_and_reports_those_layers(mismatched, cli, tmp_path):
    source, target, src = mismatched
    out = tmp_path / "o.weights.h5"
    code, stdout, _ = cli("transfer", source, target, "-o", out, "--skip-mismatch", "--format", "json")
    assert code == 0  # asked to skip what does not fit, and 2 of 4 layers do: done as asked
    data = json.loads(stdout)
    status = {x["target"]: x["status"] for x in data["layers"]}
    assert status == {"a": "copied", "b": "skipped", "c": "skipped", "d": "copied"}
    assert data["totals"]["skipped_layers"] == 2
    b = next(x for x in data["layers"] if x["target"] == "b")
    assert all(v["action"] == "skip" and v["reason"] for v in b["variables"])
    np.testing.assert_array_equal(read_layer(out, "a")[0], src["a"][0])
    np.testing.assert_array_equal(read_layer(out, "b")[0], np.zeros((8, 3), "f4"))


def test_lossy_casts_are_refused_unless_allowed(tmp_path):
    (k,) = rng_arrays(5, (4, 4), dtype="float64")
    source = write_k3(tmp_path / "s.weights.h5", {"d": [k]})
    target = write_k3(tmp_path / "t.weights.h5", {"d": [np.zeros((4, 4), "float32")]})
    plan = plan_transfer(source, target)
    assert plan.exit_code == 2 and "--allow-cast" in plan.problems[0]
    plan = plan_transfer(source, target, TransferOptions(allow_cast=True))
    assert plan.layers[0].variables[0].action == "cast"
    out = tmp_path / "o.weights.h5"
    apply_transfer(plan, out, progress=False)
    np.testing.assert_array_equal(read_layer(out, "d")[0], k.astype("float32"))


def test_lossless_casts_are_allowed(tmp_path):
    (k,) = rng_arrays(6, (4, 4), dtype="float16")
    source = write_k3(tmp_path / "s.weights.h5", {"d": [k]})
    target = write_k3(tmp_path / "t.weights.h5", {"d": [np.zeros((4, 4), "float32")]})
    plan = plan_transfer(source, target)
    assert plan.exit_code == 0 and plan.layers[0].variables[0].action == "cast"
    out = tmp_path / "o.weights.h5"
    apply_transfer(plan, out, progress=False)
    got = read_layer(out, "d")[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, k.astype("float32"))


def test_large_tensors_are_copied_in_blocks(tmp_path, monkeypatch):
    from archdiff.transfer import write as h5write

    monkeypatch.setattr(h5write, "BLOCK_BYTES", 1000)
    k, b, s = rng_arrays(7, (3, 37, 41), (5000,), ())
    source = write_k3(tmp_path / "s.weights.h5", {"d": [k, b, s]})
    target = write_k3(tmp_path / "t.weights.h5", {"d": [np.zeros_like(k), np.zeros_like(b), np.zeros_like(s)]})
    out = tmp_path / "o.weights.h5"
    report = apply_transfer(plan_transfer(source, target), out, progress=False)
    assert report.verified
    got = read_layer(out, "d")
    for want, have in zip((k, b, s), got):
        np.testing.assert_array_equal(have, want)
    digest = hashlib.sha256(np.ascontiguousarray(k).tobytes()).hexdigest()
    assert report.checksums["d/0"] == digest


# -- safety ------------------------------------------------------------------------------
def test_output_equal_to_an_input_is_refused(tmp_path, cli):
    target = scrambled_copy(K3 / "nested.weights.h5", tmp_path)
    before = sha(target)
    code, _, stderr = cli("transfer", K2 / "nested.h5", target, "-o", target)
    assert code == 2 and "is the input" in stderr
    link = tmp_path / "alias.weights.h5"
    link.symlink_to(target)
    code, _, stderr = cli("transfer", K2 / "nested.h5", target, "-o", link)
    assert code == 2 and "is the input" in stderr
    assert sha(target) == before


def test_output_named_for_another_format_is_refused(cli, tmp_path):
    code, _, stderr = cli("transfer", K2 / "nested.h5", K3 / "nested.keras", "-o", tmp_path / "out.weights.h5")
    assert code == 2 and ".keras" in stderr
    code, _, stderr = cli("transfer", K2 / "nested.h5", K3 / "nested.weights.h5", "-o", tmp_path / "out.h5")
    assert code == 2 and ".weights.h5" in stderr


def test_targets_without_weights_are_refused(cli, tmp_path):
    code, _, stderr = cli("transfer", K2 / "nested.h5", K3 / "nested.json", "-o", tmp_path / "o.json")
    assert code == 2 and "no weights to write into" in stderr


def test_links_in_inputs_are_refused(tmp_path, cli):
    target = tmp_path / "t.weights.h5"
    shutil.copyfile(K3 / "nested.weights.h5", target)
    with h5py.File(target, "r+") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = h5py.SoftLink("/layers/dense/vars/0")
    code, _, stderr = cli("transfer", K2 / "nested.h5", target, "-o", tmp_path / "o.weights.h5")
    assert code == 2 and "link" in stderr
    assert not (tmp_path / "o.weights.h5").exists()


def test_transfer_never_imports_tensorflow(tmp_path):
    target = scrambled_copy(K3 / "nested.keras", tmp_path)
    code = (
        "import sys\n"
        "from archdiff.cli import main\n"
        f"rc = main(['transfer', {str(K2 / 'nested.h5')!r}, {str(target)!r}, '-o', {str(tmp_path / 'o.keras')!r}])\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'torch', 'jax') if m in sys.modules)\n"
        "print(rc, heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr


def test_no_progress_bar_when_piped(tmp_path):
    target = scrambled_copy(K3 / "nested.keras", tmp_path)
    done = run_cli("transfer", K2 / "nested.h5", target, "-o", tmp_path / "o.keras")
    assert done.returncode == 0 and done.stderr == ""


def test_progress_bar_draws_on_a_terminal_only():
    import io

    from archdiff.progress import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty, pipe = Tty(), io.StringIO()
    for stream in (tty, pipe):
        with Progress(100, "transfer", stream=stream) as bar:
            bar.advance(50)
            bar.advance(50)
    assert "100.0%" in tty.getvalue() and pipe.getvalue() == ""


# -- reports -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def schema():
    return json.loads((ROOT / "archdiff" / "schemas" / "transfer.schema.json").read_text())


def test_json_reports_follow_the_schema(schema, mismatched, renamed_pair, tmp_path):
    import jsonschema

    source, target, _ = mismatched
    reports = [
        TransferReport_from(plan_transfer(source, target)),
        TransferReport_from(plan_transfer(source, target, TransferOptions(skip_mismatch=True))),
        apply_transfer(plan_transfer(source, target, TransferOptions(skip_mismatch=True)), tmp_path / "o.weights.h5",
                       progress=False),
        dry_run(plan_transfer(*renamed_pair[:2], TransferOptions(maps=(parse_map_rule("re:^old_=new_"),))),
                tmp_path / "x.weights.h5"),
        apply_transfer(plan_transfer(K2 / "nested_weights.h5", scrambled_copy(K3 / "nested.keras", tmp_path)),
                       tmp_path / "n.keras", progress=False),
    ]
    for report in reports:
        data = json.loads(render(report, "json"))
        jsonschema.validate(data, schema)
        assert data["exit_code"] == report.exit_code


def TransferReport_from(plan):
    from archdiff.transfer import TransferReport

    return TransferReport(plan, None)


def test_text_and_markdown_list_every_layer_and_the_totals(mismatched, tmp_path):
    from markdown_it import MarkdownIt

    source, target, _ = mismatched
    report = apply_transfer(plan_transfer(source, target, TransferOptions(skip_mismatch=True)),
                            tmp_path / "o.weights.h5", progress=False)
    text = render(report, "text", colour=False)
    for name in ("a", "b", "c", "d"):
        assert any(line.startswith(name + " ") for line in text.splitlines())
    assert "skipped 2 matched layers" in text and "exit 0" in text
    md = render(report, "markdown")
    html = MarkdownIt("commonmark").enable("table").render(md)
    assert "<table>" in html and "skipped" in html
    coloured = render(report, "text", colour=True)
    assert "\033[" in coloured


def test_blocks_cover_every_element_once_in_c_order():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from archdiff.transfer.write import blocks

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.integers(0, 6), min_size=0, max_size=4), st.integers(1, 64), st.sampled_from([1, 2, 4, 8]))
    def check(shape, budget, itemsize):
        data = np.arange(int(np.prod(shape)) if shape else 1).reshape(shape)
        pieces = []
        for sel in blocks(tuple(shape), itemsize, budget):
            block = data[sel] if sel else data[()]
            block = np.asarray(block)
            assert block.size * itemsize <= max(budget, itemsize)
            pieces.append(block.reshape(-1))
        got = np.concatenate(pieces) if pieces else np.array([], data.dtype)
        np.testing.assert_array_equal(got, data.reshape(-1))

    check()


def renamed_keras(src: Path, folder: Path, old: str, new: str) -> Path:
    """A copy of a .keras model with one layer renamed in its config and its weights' name attribute."""
    dst = folder / ("renamed_" + src.name)
    member = folder / "renamed_member.h5"
    with zipfile.ZipFile(src) as zf:
        member.write_bytes(zf.read("model.weights.h5"))
        with h5py.File(member, "r+") as f:
            def visit(name, obj):
                if isinstance(obj, h5py.Group) and name.endswith("vars") and obj.attrs.get("name") == old:
                    obj.attrs["name"] = new

            f.visititems(visit)
        with zipfile.ZipFile(dst, "w") as out:
            for info in zf.infolist():
                if info.filename == "model.weights.h5":
                    data = member.read_bytes()
                elif info.filename == "config.json":
                    data = zf.read(info).replace(f'"{old}"'.encode(), f'"{new}"'.encode())
                else:
                    data = zf.read(info)
                out.writestr(info, data)
    member.unlink()
    return dst


def test_match_auto_pairs_a_renamed_layer_with_the_diffs_matcher(tmp_path, cli):
    source = renamed_keras(K3 / "resnet_small.keras", tmp_path, "conv2_block1_2_conv", "middle_conv")
    target = scrambled_copy(K3 / "resnet_small.keras", tmp_path)
    plan = plan_transfer(source, target)
    assert {u.path for u in plan.unused} == {"middle_conv"} and plan.exit_code == 0
    out = tmp_path / "out.keras"
    code, stdout, stderr = cli("transfer", source, target, "-o", out, "--match", "auto", "--format", "json")
    assert code == 0, stderr
    layer = next(x for x in json.loads(stdout)["layers"] if x["target"] == "conv2_block1_2_conv")
    assert (layer["source"], layer["matched_by"], layer["status"]) == ("middle_conv", "auto", "copied")
    assert h5_values(out) == h5_values(K3 / "resnet_small.keras")


def test_files_without_layer_names_pair_by_auto_names_and_say_so(tmp_path):
    """tf-keras' .weights.h5 holds only auto names (dense_1): pairing by them is flagged, never silent."""
    target = scrambled_copy(K2 / "functional.weights.h5", tmp_path)
    plan = plan_transfer(K2 / "functional.weights.h5", target)
    assert {layer.matched_by for layer in plan.layers} == {"auto-name"}
    assert any("Keras made up" in n for n in plan.notes)
    apply_transfer(plan, tmp_path / "o.weights.h5", progress=False)
    assert h5_values(tmp_path / "o.weights.h5") == h5_values(K2 / "functional.weights.h5")
    # Into a file with real names nothing matches, and the error says why.
    plan = plan_transfer(K2 / "functional.weights.h5", K3 / "functional.weights.h5")
    assert plan.exit_code == 2 and "source names no layers" in plan.problems[0]


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "pread-pwrite"])
def test_copy_file_except_leaves_holes_and_copies_the_rest(tmp_path, monkeypatch, kernel_copy):
    from archdiff.transfer import write as h5write

    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    data = bytes(range(256)) * 4000
    src = tmp_path / "src.bin"
    src.write_bytes(b"HEAD" + data)
    holes = [(100, 50), (120, 100), (900_000, 10**9)]  # overlapping, and one past the end
    dst = tmp_path / "dst.bin"
    h5write.copy_file_except(str(src), str(dst), holes, start=4, length=len(data))
    got = dst.read_bytes()
    want = bytearray(data)
    want[100:220] = bytes(120)
    want[900_000:] = bytes(len(data) - 900_000)
    assert got == bytes(want)


def test_keras2_weights_only_files_pair_deeply_nested_layers_by_top_model_and_name(tmp_path):
    """Keras 2 save_weights keeps `outer` -> `conv1/kernel:0`, losing the `inner` model between them."""
    k, b = rng_arrays(9, (3, 3, 3, 4), (4,))
    source = tmp_path / "src_weights.h5"
    with h5py.File(source, "w") as f:
        f.attrs["layer_names"] = np.array([b"outer"])
        f.attrs["keras_version"] = b"2.21.0"
        group = f.create_group("outer")
        group.attrs["weight_names"] = np.array([b"conv1/kernel:0", b"conv1/bias:0"])
        group.create_dataset("conv1/kernel:0", data=k)
        group.create_dataset("conv1/bias:0", data=b)
    target = tmp_path / "tgt.weights.h5"
    with h5py.File(target, "w") as f:
        outer = f.create_group("layers/functional")
        outer.create_group("vars").attrs["name"] = "outer"
        inner = outer.create_group("layers/functional")
        inner.create_group("vars").attrs["name"] = "inner"
        conv = inner.create_group("layers/conv2d/vars")
        conv.attrs["name"] = "conv1"
        conv.create_dataset("0", data=np.zeros_like(k))
        conv.create_dataset("1", data=np.zeros_like(b))
    plan = plan_transfer(source, target)
    (layer,) = plan.layers
    assert (layer.target, layer.source, layer.matched_by, layer.status) == (
        "outer/inner/conv1", "outer/conv1", "nesting", "copied")
    assert any("nested below the top level" in n for n in plan.notes)
    out = tmp_path / "o.weights.h5"
    apply_transfer(plan, out, progress=False)
    with h5py.File(out) as f:
        np.testing.assert_array_equal(f["layers/functional/layers/functional/layers/conv2d/vars/0"][()], k)
        np.testing.assert_array_equal(f["layers/functional/layers/functional/layers/conv2d/vars/1"][()], b)


def test_non_numeric_datasets_never_receive_weights(tmp_path):
    source = write_k3(tmp_path / "s.weights.h5", {"d": rng_arrays(1, (2,))})
    target = tmp_path / "t.weights.h5"
    with h5py.File(target, "w") as f:
        group = f.create_group("layers/dense/vars")
        group.attrs["name"] = "d"
        group.create_dataset("0", data=np.array(["a", "b"], dtype=object), dtype=h5py.string_dtype())
    from archdiff.errors import ArchdiffError

    try:
        plan = plan_transfer(source, target)
    except ArchdiffError as exc:  # the reader refuses such a file outright
        assert "number" in exc.one_line()
    else:
        assert plan.exit_code == 2 and "not a numeric dtype" in plan.problems[0]


def test_a_keras_file_without_weights_is_refused(tmp_path):
    bare = tmp_path / "bare.keras"
    with zipfile.ZipFile(K3 / "nested.keras") as zf, zipfile.ZipFile(bare, "w") as out:
        for info in zf.infolist():
            if info.filename != "model.weights.h5":
                out.writestr(info, zf.read(info))
    with pytest.raises(Exception, match="source holds no weights"):
        plan_transfer(bare, K3 / "nested.weights.h5")
    with pytest.raises(UsageError, match="no weights to write into"):
        plan_transfer(K3 / "nested.weights.h5", bare)


# -- the flush beside the read-back check (archdiff.transfer.write.syncing) ----------------
def test_syncing_flushes_every_file_on_a_worker_before_the_block_is_left(monkeypatch, tmp_path):
    import threading
    import time

    from archdiff.transfer import write

    flushed = []

    def slow_flush(path):
        time.sleep(0.05)
        flushed.append((path, threading.current_thread().name))

    monkeypatch.setattr(write, "fsync_path", slow_flush)
    inside = []
    with write.syncing("a", None, "b", where=str(tmp_path / "out.h5")):
        inside.append(len(flushed))  # the block runs while the flush waits on the disk
    assert inside == [0]
    assert [p for p, _ in flushed] == ["a", "b"]
    assert all(name == "archdiff-fsync" for _, name in flushed)


def test_a_failed_flush_is_an_error_on_the_output_after_the_block(monkeypatch, tmp_path):
    import errno

    from archdiff.errors import OutputError
    from archdiff.transfer import write

    def broken(path):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(write, "fsync_path", broken)
    ran = []
    out = str(tmp_path / "out.h5")
    with pytest.raises(OutputError) as caught:
        with write.syncing("tmp", where=out):
            ran.append(True)
    assert ran == [True]
    assert caught.value.path == out and "Input/output error" in caught.value.message


def test_the_checks_own_error_wins_over_a_failed_flush(monkeypatch, tmp_path):
    from archdiff.errors import OutputError
    from archdiff.transfer import write

    monkeypatch.setattr(write, "fsync_path", lambda path: (_ for _ in ()).throw(OSError(5, "EIO")))
    with pytest.raises(OutputError, match="differ"):
        with write.syncing("tmp", where=str(tmp_path / "o")):
            raise OutputError("reading the output back, 1 variables differ from what was written")


@pytest.mark.parametrize("target", [K3 / "functional.weights.h5", K3 / "functional.keras"])
def test_a_disk_that_fails_the_flush_leaves_no_output_and_says_so(cli, monkeypatch, tmp_path, target):
    import errno

    real = os.fsync
    calls = []

    def failing(fd):
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    out = tmp_path / f"out{''.join(target.suffixes)}"
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    code, stdout, err = cli("transfer", K2 / "functional.h5", target, "-o", out)
    monkeypatch.setattr(os, "fsync", real)
    assert calls, "the transfer flushed nothing"
    assert code == 2 and stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot flush the output to the disk" in lines[0] and str(out) in lines[0]
    assert not out.exists() and not [p for p in tmp_path.iterdir()], "a temporary file was left"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == before
