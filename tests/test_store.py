"""The weight stores (archdiff.store), one per layout, against h5py reading the same fixtures.

Expected values come from h5py directly: which datasets a file holds, their
shapes, dtypes and bytes, the SHA-256 of those bytes, the layer names in the
attributes Keras writes (``layer_names`` / ``weight_names`` in legacy files,
``vars@name`` in Keras 3 files). Writes go to copies and are read back with
h5py.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from support import FIXTURES

from archdiff.errors import InputError, LimitExceededError, OutputError, UnsafeInputError, UsageError
from archdiff.store import (
    Keras3WeightsStore,
    KerasZipStore,
    LegacyH5Store,
    ShardedStore,
    blocks,
    open_store,
    store_class,
    store_for_path,
)

K2 = FIXTURES / "keras2"
K3 = FIXTURES / "keras3"
SHARDED = K3 / "sharded" / "resnet_small.weights.json"

#: (fixture, the store its name picks).
CASES = [
    (K3 / "nested.weights.h5", Keras3WeightsStore),
    (K3 / "resnet_small.weights.h5", Keras3WeightsStore),
    (K3 / "subclassed.weights.h5", Keras3WeightsStore),
    (K3 / "nested.k213.weights.h5", Keras3WeightsStore),
    (K2 / "nested.weights.h5", Keras3WeightsStore),
    (K3 / "nested.keras", KerasZipStore),
    (K3 / "resnet_small.keras", KerasZipStore),
    (K2 / "functional.keras", KerasZipStore),
    (SHARDED, ShardedStore),
    (K2 / "nested.h5", LegacyH5Store),
    (K2 / "nested_weights.h5", LegacyH5Store),
    (K2 / "many_layers.h5", LegacyH5Store),
    (K3 / "nested.h5", LegacyH5Store),
    (K3 / "resnet_small.h5", LegacyH5Store),
]
IDS = [f"{p.parent.name}/{p.name}" for p, _ in CASES]


# -- h5py's view of the fixtures ------------------------------------------------------
def h5py_datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of the file(s) behind a fixture: '/path' -> values, read by h5py alone."""
    out: dict[str, np.ndarray] = {}

    def collect(f):
        f.visititems(lambda name, obj: out.__setitem__("/" + name, obj[()]) if isinstance(obj, h5py.Dataset)
                     else None)

    if path.suffix == ".keras":
        with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
            collect(f)
    elif path.name.endswith(".weights.json"):
        for shard in sorted(path.parent.glob("*.weights.h5")):
            with h5py.File(shard, "r") as f:
                collect(f)
    else:
        with h5py.File(path, "r") as f:
            collect(f)
    return out


def digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def keras3_layer_of(files: list[h5py.File], location: str) -> tuple[str, str]:
    """(layer path, variable name) of a Keras 3 dataset: real names from each ``vars@name``, else the keys.

    In a sharded file the ``vars`` group holding the name may sit in another shard than the dataset.
    """
    parts = location.strip("/").split("/")
    names, i = [], 0
    while i < len(parts) and parts[i] in ("layers", "_layer_checkpoint_dependencies"):
        group = "/".join(parts[: i + 2]) + "/vars"
        found = [f[group].attrs["name"] for f in files if group in f and "name" in f[group].attrs]
        names.append(found[0] if found else parts[i + 1])
        i += 2
    if not names:  # a subclassed model: its layers are attributes at the root
        names, i = [parts[0]], 1
    return "/".join(names), "/".join(p for p in parts[i:] if p != "vars")


def legacy_layers(f: h5py.File) -> list[tuple[str, list[str]]]:
    """(layer name, its weight_names) as the attributes list them (chunked layer_names0, 1 ... joined)."""
    root = f["model_weights"] if "model_weights" in f else f
    names = list(root.attrs["layer_names"]) if "layer_names" in root.attrs else [
        n for i in range(1000) if f"layer_names{i}" in root.attrs for n in root.attrs[f"layer_names{i}"]]
    out = []
    for name in names:
        name = name.decode() if isinstance(name, bytes) else name
        weights = root[name].attrs.get("weight_names", [])
        out.append((f"{root.name.rstrip('/')}/{name}", [w.decode() if isinstance(w, bytes) else w for w in weights]))
    return out


# -- dispatching ---------------------------------------------------------------------------
@pytest.mark.parametrize("path, store", CASES, ids=IDS)
def test_the_file_name_picks_the_store(path, store):
    assert store_for_path(path) is store
    with open_store(path) as opened:
        assert type(opened) is store


def test_the_readers_formats_pick_the_store():
    assert [store_class(f) for f in ("keras", "weights.h5", "weights.json", "h5", "h5-weights", "json")] == [
        KerasZipStore, Keras3WeightsStore, ShardedStore, LegacyH5Store, LegacyH5Store, None]
    # A Keras 3 layout saved under a plain .h5 name is read as the layout it holds when the format is given.
    with open_store(K3 / "nested.weights.h5", format="weights.h5") as store:
        assert isinstance(store, Keras3WeightsStore)


def test_an_unknown_file_name_is_refused_with_the_endings_it_takes():
    with pytest.raises(InputError, match=r"\.keras.*\.weights\.json.*\.weights\.h5.*\.h5"):
        store_for_path("model.onnx")


# -- listing, reading, checksums -----------------------------------------------------------
@pytest.mark.parametrize("path, store", CASES, ids=IDS)
def test_every_dataset_is_listed_once_with_h5pys_shape_and_dtype(path, store):
    want = h5py_datasets(path)
    with open_store(path) as opened:
        got = list(opened.variables())
    assert sorted(v.location for v in got) == sorted(want)
    for v in got:
        assert v.shape == want[v.location].shape and np.dtype(v.dtype) == want[v.location].dtype, v


@pytest.mark.parametrize("path, store", CASES, ids=IDS)
def test_read_and_checksum_give_h5pys_values(path, store):
    want = h5py_datasets(path)
    with open_store(path) as opened:
        for var, ds in opened.datasets():
            np.testing.assert_array_equal(ds.read(), want[var.location])
            np.testing.assert_array_equal(opened.read(var.location), want[var.location])
            assert opened.checksum(var.location) == digest(want[var.location])


@pytest.mark.parametrize("path", [K3 / "nested.weights.h5", K3 / "resnet_small.keras", SHARDED,
                                  K3 / "subclassed.weights.h5", K3 / "nested.k213.weights.h5"],
                         ids=lambda p: p.name)
def test_keras3_layers_are_named_by_the_vars_name_attribute(path):
    opened = open_store(path)
    with opened:
        got = [(v.layer, v.name, v.position, v.location) for v in opened.variables()]
    files = ([h5py.File(s, "r") for s in sorted(path.parent.glob("*.weights.h5"))] if path == SHARDED else
             [h5py.File(io.BytesIO(zipfile.ZipFile(path).read("model.weights.h5")), "r")] if path.suffix == ".keras"
             else [h5py.File(path, "r")])
    try:
        for layer, name, position, location in got:
            assert (layer, name) == keras3_layer_of(files, location)
            assert position == int(location.rsplit("/", 1)[-1])  # Keras 3 numbers its variables
    finally:
        for f in files:
            f.close()


def test_keras3_nested_models_nest_their_layer_paths():
    with open_store(K3 / "nested.weights.h5") as opened:
        layers = dict(opened.layers())
    assert [v.location for v in layers["base/conv1"]] == ["/layers/functional/layers/conv2d/vars/0",
                                                          "/layers/functional/layers/conv2d/vars/1"]
    assert [v.name for v in layers["base/bn1"]] == ["0", "1", "2", "3"]
    assert "predictions" in layers


@pytest.mark.parametrize("path", [K2 / "nested.h5", K2 / "nested_weights.h5", K3 / "nested.h5",
                                  K2 / "many_layers.h5"], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_legacy_layers_follow_layer_names_and_weight_names(path):
    with h5py.File(path, "r") as f:
        want = legacy_layers(f)
    with open_store(path) as opened:
        got = list(opened.layers())
    assert [layer for layer, _ in got] == [name.rsplit("/", 1)[-1] for name, weights in want if weights]
    by_layer = dict(got)
    for group, weights in want:
        if not weights:
            continue
        variables = by_layer[group.rsplit("/", 1)[-1]]
        assert [v.location for v in variables] == [f"{group}/{w}" for w in weights]
        assert [v.position for v in variables] == list(range(len(weights)))


def test_legacy_variable_names_drop_the_suffix_and_the_scope_in_both_keras_versions():
    for path in (K2 / "nested.h5", K3 / "nested.h5"):  # kernel:0 and head/head_dense/kernel
        with open_store(path) as opened:
            layers = {layer: [v.name for v in group] for layer, group in opened.layers()}
        assert layers["base"][:2] == ["conv1/kernel", "conv1/bias"], path
        assert layers["head"] == ["head_dense/kernel", "head_dense/bias", "head_logits/kernel", "head_logits/bias"]
        assert layers["predictions"] == ["kernel", "bias"]


def test_listing_is_lazy_and_reads_no_tensor_until_asked(monkeypatch):
    from archdiff.store.base import Dataset

    reads = []
    original = Dataset.read
    monkeypatch.setattr(Dataset, "read", lambda self, sel=None: reads.append(self.location) or original(self, sel))
    with open_store(K3 / "resnet_small.weights.h5") as opened:
        listing = opened.datasets()
        assert not reads
        first, ds = next(listing)
        assert not reads
        ds.read()
        assert reads == [first.location]


def test_blocks_give_the_bytes_of_the_whole_in_c_order():
    with open_store(K3 / "resnet_small.weights.h5") as opened:
        var = max(opened.variables(), key=lambda v: int(np.prod(v.shape)))
        ds = opened.dataset(var.location)
        whole = ds.read()
        pieces = list(ds.iter_blocks(budget=1000))
        assert len(pieces) > 1 and all(p.nbytes <= 1000 for p in pieces)
        np.testing.assert_array_equal(np.concatenate([p.reshape(-1) for p in pieces]), whole.reshape(-1))
        assert ds.checksum(budget=1000) == ds.checksum() == digest(whole)
    assert list(blocks((), 4, 10)) == [()]


def test_raw_ranges_point_at_the_datasets_bytes_in_the_file():
    path = K3 / "resnet_small.weights.h5"
    raw = path.read_bytes()
    want = h5py_datasets(path)
    with open_store(path) as opened:
        locations = [v.location for v in opened.variables()]
        ranges = opened.raw_ranges(locations)
    assert len(ranges) == len(locations)
    for location, (offset, size) in zip(locations, ranges):
        assert raw[offset:offset + size] == np.ascontiguousarray(want[location]).tobytes()


def test_the_keras_weights_span_is_the_stored_member():
    path = K3 / "nested.keras"
    offset, size = KerasZipStore.weights_span(path)
    with zipfile.ZipFile(path) as zf:
        assert path.read_bytes()[offset:offset + size] == zf.read("model.weights.h5")


# -- writing ---------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [K3 / "nested.weights.h5", K2 / "nested.h5", K3 / "nested.h5",
                                  K2 / "nested_weights.h5"], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_write_overwrites_one_dataset_in_a_copy(path, tmp_path):
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)
    before = h5py_datasets(copy)
    store = store_for_path(copy)
    with store(copy) as opened:
        var = next(v for v in opened.variables() if len(v.shape) >= 2)
    new = np.arange(int(np.prod(var.shape)), dtype="float64").reshape(var.shape)  # cast to the stored dtype
    with store(copy, mode="r+") as opened:
        opened.write(var.location, new)
        assert opened.checksum(var.location) == digest(new.astype(before[var.location].dtype))
    after = h5py_datasets(copy)
    np.testing.assert_array_equal(after[var.location], new.astype(before[var.location].dtype))
    assert after[var.location].dtype == before[var.location].dtype
    for location, values in before.items():
        if location != var.location:
            np.testing.assert_array_equal(after[location], values)
    assert h5py_datasets(path)[var.location].tobytes() == before[var.location].tobytes()  # the fixture is unchanged


def test_write_refuses_a_read_only_store_and_a_wrong_shape(tmp_path):
    copy = tmp_path / "w.weights.h5"
    shutil.copyfile(K3 / "nested.weights.h5", copy)
    location = "/layers/dense/vars/0"
    with Keras3WeightsStore(copy) as opened:
        with pytest.raises(UsageError, match="read-only"):
            opened.write(location, np.zeros((4, 1)))
    with Keras3WeightsStore(copy, mode="r+") as opened:
        with pytest.raises(UsageError, match=r"shape \(4, 1\).*\(2, 2\)"):
            opened.write(location, np.zeros((2, 2)))
    with h5py.File(copy, "r") as f:
        np.testing.assert_array_equal(f[location][()], h5py_datasets(K3 / "nested.weights.h5")[location])


def test_every_store_can_be_written_sharded_included(tmp_path):
    # Sharded targets are written since issue 13 (tests/test_transfer_sharded.py checks the result in Keras).
    for store in (KerasZipStore, Keras3WeightsStore, LegacyH5Store, ShardedStore):
        assert store.writable
        store.check_writable("x")  # no error
    with pytest.raises(ValueError, match="mode must be"):
        ShardedStore(SHARDED, mode="w")


def test_sharded_companion_files_are_the_shards_and_a_path_in_the_index_is_refused(tmp_path):
    assert ShardedStore.companion_files(str(SHARDED)) == tuple(
        str(p) for p in sorted(SHARDED.parent.glob("*.weights.h5")))
    index = tmp_path / "bad.weights.json"
    index.write_text('{"weight_map": {"layers/dense/vars": "../elsewhere.weights.h5"}}')
    with pytest.raises(UnsafeInputError, match="not a plain file name"):
        ShardedStore(index)


def test_a_keras_zip_opens_read_only_and_compares_rebuilt_members(tmp_path):
    with pytest.raises(ValueError, match="read-only"):
        KerasZipStore(K3 / "nested.keras", mode="r+")
    same = tmp_path / "same.keras"
    shutil.copyfile(K3 / "nested.keras", same)
    KerasZipStore.compare_members(str(K3 / "nested.keras"), str(same), where="out")
    changed = tmp_path / "changed.keras"
    with zipfile.ZipFile(K3 / "nested.keras") as zin, zipfile.ZipFile(changed, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            zout.writestr(info, data + b" " if info.filename == "config.json" else data)
    with pytest.raises(OutputError, match="'config.json' differs"):
        KerasZipStore.compare_members(str(K3 / "nested.keras"), str(changed), where="out")


# -- safety: archdiff.read.hdf5's checks hold for every store ------------------------------
def test_a_soft_link_anywhere_refuses_the_file(tmp_path):
    path = tmp_path / "linked.weights.h5"
    shutil.copyfile(K3 / "nested.weights.h5", path)
    with h5py.File(path, "r+") as f:
        f["layers/elsewhere"] = h5py.SoftLink("/layers/dense")
    with pytest.raises(UnsafeInputError, match="soft link"):
        open_store(path)


def test_a_missing_dataset_is_one_clear_error():
    with open_store(K3 / "nested.weights.h5") as opened:
        assert not opened.has("/layers/nothing/vars/0")
        with pytest.raises(InputError, match="'/layers/nothing/vars/0' is missing"):
            opened.dataset("/layers/nothing/vars/0")
        with pytest.raises(InputError, match="is not a dataset"):
            opened.dataset("/layers/dense/vars")


def test_a_shape_bomb_is_refused_before_reading(tmp_path):
    path = tmp_path / "bomb.weights.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("layers/dense/vars")
        group.attrs["name"] = "dense"
        # 400 MB declared, nothing stored: the chunks are never written.
        group.create_dataset("0", shape=(100_000_000,), dtype="float32", chunks=(1_000_000,), compression="gzip")
    with open_store(path) as opened:
        with pytest.raises(LimitExceededError, match="bomb"):
            opened.dataset("/layers/dense/vars/0")
        with pytest.raises(LimitExceededError, match="bomb"):
            opened.read("/layers/dense/vars/0")
        with pytest.raises(LimitExceededError, match="bomb"):
            list(opened.variables())
    # Opting out (for files already checked, as a transfer's plan checks its inputs) hands the handle out.
    with open_store(path, check_datasets=False) as opened:
        assert opened.dataset("/layers/dense/vars/0").shape == (100_000_000,)


def test_external_storage_is_refused(tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.arange(4, dtype="float32").tobytes())
    path = tmp_path / "external.weights.h5"
    with h5py.File(path, "w") as f:
        group = f.create_group("layers/dense/vars")
        group.attrs["name"] = "dense"
        group.create_dataset("0", shape=(4,), dtype="float32", external=[(str(outside), 0, 16)])
    with open_store(path) as opened:
        with pytest.raises(UnsafeInputError, match="outside the file"):
            opened.read("/layers/dense/vars/0")
