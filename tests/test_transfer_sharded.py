"""Sharded ``*.weights.json`` targets, without TensorFlow: named as Keras names them, verified, atomic.

The committed fixture ``keras3/sharded/resnet_small.weights.json`` (three
shards, written by Keras 3's ``save_weights(max_shard_size=...)``) is the
target; the tf-keras fixture ``keras2/resnet_small.h5`` holds the same model's
values. Keras loading the result is checked in ``test_port_keras.py``.
"""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from support import FIXTURES
from test_transfer import h5_values, scramble_h5, sha

from archdiff.errors import UsageError
from archdiff.transfer import apply_transfer, plan_transfer

SHARDED = FIXTURES / "keras3" / "sharded" / "resnet_small.weights.json"
SHARDS = sorted(SHARDED.parent.glob("*.weights.h5"))


@pytest.fixture
def scrambled_target(tmp_path):
    """A copy of the sharded fixture with every float dataset overwritten."""
    folder = tmp_path / "target"
    folder.mkdir()
    (folder / SHARDED.name).write_bytes(SHARDED.read_bytes())
    for shard in SHARDS:
        (folder / shard.name).write_bytes(shard.read_bytes())
        scramble_h5(folder / shard.name)
    return folder / SHARDED.name


def test_a_sharded_target_gets_shards_named_after_out_and_an_index_naming_them(scrambled_target, tmp_path):
    before = {p.name: sha(p) for p in scrambled_target.parent.iterdir()}
    out = tmp_path / "out" / "ported.weights.json"
    out.parent.mkdir()
    report = apply_transfer(plan_transfer(FIXTURES / "keras2" / "resnet_small.h5", scrambled_target), out,
                            progress=False)
    assert report.written and report.verified and report.exit_code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["ported.weights.json", "ported_00000.weights.h5",
                                                            "ported_00001.weights.h5", "ported_00002.weights.h5"]
    index = json.loads(out.read_text())
    original = json.loads(SHARDED.read_text())
    assert index["metadata"] == original["metadata"] and list(index["weight_map"]) == list(original["weight_map"])
    renamed = {f"resnet_small_{i:05}.weights.h5": f"ported_{i:05}.weights.h5" for i in range(3)}
    assert index["weight_map"] == {k: [renamed[v] for v in vs] for k, vs in original["weight_map"].items()}
    # Each new shard holds what the fixture's shard holds: the transfer restored every scrambled value.
    for i, shard in enumerate(SHARDS):
        assert h5_values(out.parent / f"ported_{i:05}.weights.h5") == h5_values(shard)
    assert {p.name: sha(p) for p in scrambled_target.parent.iterdir()} == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_a_sharded_out_must_be_named_weights_json_and_not_collide_with_an_input(scrambled_target, tmp_path):
    plan = plan_transfer(FIXTURES / "keras2" / "resnet_small.h5", scrambled_target)
    with pytest.raises(UsageError, match=r"does not end with \.weights\.json"):
        apply_transfer(plan, tmp_path / "out.weights.h5")
    # Keras would name this index's shards resnet_small_0000N.weights.h5: the target's own shards.
    with pytest.raises(UsageError, match="resnet_small_00000.weights.h5' is the input"):
        apply_transfer(plan, scrambled_target.parent / "resnet_small.weights.weights.json")
    with pytest.raises(UsageError, match="is the input"):
        apply_transfer(plan, scrambled_target)


def test_a_failed_sharded_write_leaves_no_index_and_no_shards(scrambled_target, tmp_path, monkeypatch):
    from archdiff.errors import OutputError
    from archdiff.transfer import apply as apply_module

    def broken(*args, **kwargs):
        raise OutputError("simulated failure while verifying")

    monkeypatch.setattr(apply_module, "_verify", broken)
    out = tmp_path / "ported.weights.json"
    with pytest.raises(OutputError, match="simulated"):
        apply_transfer(plan_transfer(FIXTURES / "keras2" / "resnet_small.h5", scrambled_target), out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


def test_sharded_into_sharded(scrambled_target, tmp_path):
    out = tmp_path / "again.weights.json"
    report = apply_transfer(plan_transfer(SHARDED, scrambled_target), out, progress=False)
    assert report.exit_code == 0 and report.plan.totals.copied_layers == report.plan.totals.target_layers
    with h5py.File(tmp_path / "again_00001.weights.h5") as f:
        names = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert names and all(np.isfinite(f[n][()]).all() and not (f[n][()] == -7.25).all() for n in names
                             if f[n].size)
