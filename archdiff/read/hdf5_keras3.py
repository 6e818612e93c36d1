"""Reading the Keras 3 weights layout into a tree of saveables.

Keras 3 keys each layer's group by its object's auto name
(``layers/conv2d_5/vars/0``), the ``vars`` group carrying the layer's real
``name``; nested models nest; shards merge into one tree. Every object is
first listed by :func:`archdiff.read.hdf5.scan`, which refused links and
cycles.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from archdiff.errors import InputError, LimitExceededError
from archdiff.limits import MAX_ATTR_BYTES, MAX_GROUP_DEPTH
from archdiff.read.hdf5 import VarInfo, _decode, _fast_dataset_info, _h5py, _short, check_layer_name, scan
from archdiff.read.hdf5_lite import LiteFile


@dataclass
class SaveableNode:
    """One object in a Keras 3 weights file: a layer, a model, or a sub-object."""

    key: str
    path: str
    real_name: str | None
    variables: list[VarInfo] = field(default_factory=list)
    #: Items of a ``layers`` container, in the file's key order.
    layers: list["SaveableNode"] = field(default_factory=list)
    #: Other sub-objects (a wrapped layer, an RNN cell, attention projections).
    objects: dict[str, "SaveableNode"] = field(default_factory=dict)
    #: ``layers`` by key, so that placing an object is a lookup, not a scan.
    layer_index: dict[str, "SaveableNode"] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_model(self) -> bool:
        return bool(self.layers)

    def all_variables(self, prefix: str = "") -> list[VarInfo]:
        """Own variables, then sub-objects' with their relative path in the name."""
        out = [VarInfo(prefix + v.name, v.shape, v.dtype, v.location) for v in self.variables]
        for key in sorted(self.objects, key=natural_key):
            out.extend(self.objects[key].all_variables(f"{prefix}{key}/"))
        return out


def natural_key(text: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


LAYER_CONTAINERS = ("layers", "_layer_checkpoint_dependencies")


def has_keras3_layout(f) -> bool:
    try:
        return any(name in f for name in LAYER_CONTAINERS) or "vars" in f
    except (OSError, RuntimeError, ValueError, KeyError):
        return False


def _vars_name(f, path: str, *, where: str):
    """The ``name`` attribute of a ``vars`` group, read with h5py's low-level API.

    ``scan`` has already refused links, so the group is opened directly; this
    runs once per layer, and the high-level path costs several times more.
    """
    h5py = _h5py()
    import numpy

    try:
        gid = h5py.h5g.open(f.id, path.encode("utf-8"))
        if not h5py.h5a.exists(gid, b"name"):
            return None
        aid = h5py.h5a.open(gid, b"name")
        try:
            size = aid.get_storage_size()
        except (OSError, RuntimeError, ValueError):
            size = 0
        if size > MAX_ATTR_BYTES:
            raise LimitExceededError(f"HDF5 attribute '/{path}@name' holds {size} bytes, over the limit of "
                                     f"{MAX_ATTR_BYTES}", path=where)
        buf = numpy.empty(aid.shape, dtype=aid.dtype)
        aid.read(buf)
    except LimitExceededError:
        raise
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise InputError(f"cannot read HDF5 attribute '/{path}@name' ({_short(exc)})", path=where) from None
    return _decode(buf[()] if buf.shape == () else buf)


def _dataset_info(f, path: str, key: str, *, where: str) -> VarInfo:
    if isinstance(f, LiteFile):
        shape, dtype = f.dataset(path)
        return VarInfo(key, shape, dtype, "/" + path)
    return _fast_dataset_info(f, path, key, where=where)


_SKIPPED_OBJECTS = frozenset({"optimizer", "metrics", "compile_metrics", "loss", "_tracker"})


def read_keras3_tree(files: list, *, where: str) -> SaveableNode:
    """Merge one or more Keras 3 weights files (shards) into one node tree.

    Each file is an open h5py file or a :class:`~archdiff.read.hdf5_lite.LiteFile`, which raises
    :class:`~archdiff.read.hdf5_lite.Decline` where h5py must read it instead.
    """
    root = SaveableNode(key="", path="", real_name=None)
    for f in files:
        kinds = f.kinds() if isinstance(f, LiteFile) else scan(f, where=where)
        for path in sorted(kinds, key=natural_key):
            parts = path.split("/")
            if len(parts) > MAX_GROUP_DEPTH:
                raise LimitExceededError(f"HDF5 groups nest deeper than {MAX_GROUP_DEPTH} levels", path=where)
            _place(f, root, parts, kinds[path], where=where)
    _check_unique_names(root, where)
    return root


def _check_unique_names(node: SaveableNode, where: str) -> None:
    """Two layers of one model may not carry the same real name (weights are matched by it)."""
    stack = [node]
    while stack:
        item = stack.pop()
        seen: dict[str, str] = {}
        for layer in item.layers:
            if layer.real_name is not None:
                if layer.real_name in seen:
                    raise InputError(f"HDF5 groups '/{seen[layer.real_name]}' and '/{layer.path}' both hold the "
                                     f"layer '{layer.real_name}'", path=where,
                                     hint="Keras names each layer once; the file is corrupt or was not written by Keras")
                seen[layer.real_name] = layer.path
            stack.append(layer)


def _place(f, root: SaveableNode, parts: list[str], kind: str, *, where: str) -> None:
    """Put one object of a Keras 3 weights file in the tree by its path."""
    node = root
    i = 0
    while i < len(parts):
        part = parts[i]
        last = i == len(parts) - 1
        if part in LAYER_CONTAINERS:
            if last:
                if kind != "group":
                    raise InputError(f"HDF5 entry '/{'/'.join(parts)}' should be a group of layers", path=where)
                return
            key = parts[i + 1]
            found = node.layer_index.get(key)
            if found is None:
                found = SaveableNode(key, "/".join(parts[: i + 2]), None)
                node.layers.append(found)
                node.layer_index[key] = found
            node = found
            i += 2
            continue
        if part == "vars":
            if last:
                if kind == "group" and node.real_name is None:
                    group = "/".join(parts)
                    real = f.vars_name(group) if isinstance(f, LiteFile) else _vars_name(f, group, where=where)
                    if isinstance(real, str):
                        check_layer_name(real, f"/{'/'.join(parts)}@name", where=where, keras3=True)
                        node.real_name = real
                return
            if kind == "dataset" and i + 2 == len(parts):
                key = parts[i + 1]
                if all(v.name != key for v in node.variables):
                    node.variables.append(_dataset_info(f, "/".join(parts), key, where=where))
            return
        if node is root and part in _SKIPPED_OBJECTS:
            return
        found = node.objects.get(part)
        if found is None:
            found = SaveableNode(part, "/".join(parts[: i + 1]), None)
            node.objects[part] = found
        node = found
        i += 1
