"""Safe, read-only access to the HDF5 files Keras writes.

This module owns opening HDF5 (from disk or from inside a ``.keras`` zip,
without extracting it), refusing soft and external links and hard-link
cycles, bounded attribute reads, and the two weight layouts:

* legacy (Keras 2 and Keras 3 ``.h5``): ``layer_names`` / ``weight_names``
  attributes, chunked as ``layer_names0``, ``layer_names1``, ... for large
  models;
* Keras 3 (``.weights.h5``, ``model.weights.h5``, shards): groups keyed by
  auto names, ``layers/<auto>/vars/<position>``, the ``vars`` group carrying
  the layer's real ``name`` (not in files older than Keras 3.x or written by
  tf-keras), ``_layer_checkpoint_dependencies`` instead of ``layers`` in files
  from Keras 2.13-2.15.
"""
from __future__ import annotations

import io
import os
import re
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from .errors import InputError, LimitExceededError, UnsafeInputError

#: Largest attribute archdiff reads (model_config, layer_names ...), in bytes.
MAX_ATTR_BYTES = 256 * 1024 * 1024
#: Deepest group nesting walked in a Keras 3 weights file.
MAX_GROUP_DEPTH = 64
#: Most groups and datasets walked in one file.
MAX_OBJECTS = 2_000_000

_SUFFIX = re.compile(r":\d+$")

#: Variables Keras never trains, by their name (legacy files keep names).
NON_TRAINABLE_NAMES = frozenset(
    {"moving_mean", "moving_variance", "count", "mean", "variance", "seed_generator_state", "iterations"}
)


def _h5py():
    import h5py  # light: no TensorFlow

    return h5py


class ZipMemberFile(io.RawIOBase):
    """A read-only window on one *stored* (uncompressed) member of a zip file.

    h5py reads file-like objects; this lets it read ``model.weights.h5``
    straight from the ``.keras`` archive with no copy.
    """

    def __init__(self, fileobj, offset: int, size: int):
        super().__init__()
        self._f = fileobj
        self._offset = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 0:
            self._pos = pos
        elif whence == 1:
            self._pos += pos
        else:
            self._pos = self._size + pos
        self._pos = max(0, self._pos)
        return self._pos

    def readinto(self, buffer) -> int:
        remaining = self._size - self._pos
        if remaining <= 0:
            return 0
        view = memoryview(buffer)
        want = min(len(view), remaining)
        self._f.seek(self._offset + self._pos)
        got = self._f.readinto(view[:want])
        self._pos += got or 0
        return got or 0


def stored_member_offset(path: str, info: zipfile.ZipInfo) -> int:
    """The byte offset of a stored member's data inside the zip file."""
    with open(path, "rb") as raw:
        raw.seek(info.header_offset)
        header = raw.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise InputError(f"the zip entry '{info.filename}' has a broken local header", path=path)
    name_len = int.from_bytes(header[26:28], "little")
    extra_len = int.from_bytes(header[28:30], "little")
    return info.header_offset + 30 + name_len + extra_len


@contextmanager
def open_h5(source, *, where: str) -> Iterator:
    """Open HDF5 read-only from a path or file object; errors become InputError."""
    h5py = _h5py()
    try:
        handle = h5py.File(source, "r")
    except FileNotFoundError:
        raise InputError("no such file", path=where) from None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"not a readable HDF5 file ({_short(exc)})",
            path=where,
            hint="the file may be truncated or not a Keras .h5; re-save it with model.save()",
        ) from None
    try:
        yield handle
    finally:
        try:
            handle.close()
        except Exception:  # noqa: BLE001 - closing a broken file must not mask the real error
            pass


@contextmanager
def open_zip_member_h5(zip_path: str, zf: zipfile.ZipFile, member: str, *, where: str) -> Iterator:
    """Open an HDF5 member of a zip: in place when stored, else via a bounded temp copy."""
    info = zf.getinfo(member)
    if info.compress_type == zipfile.ZIP_STORED:
        raw = open(zip_path, "rb")
        try:
            window = ZipMemberFile(raw, stored_member_offset(zip_path, info), info.file_size)
            with open_h5(window, where=where) as handle:
                yield handle
        finally:
            raw.close()
        return
    import tempfile

    from .limits import MAX_ZIP_MEMBER_BYTES

    if info.file_size > MAX_ZIP_MEMBER_BYTES:
        raise LimitExceededError(
            f"'{member}' would inflate to {info.file_size} bytes, over archdiff's limit of {MAX_ZIP_MEMBER_BYTES}",
            path=where,
        )
    with tempfile.TemporaryDirectory(prefix="archdiff-") as tmp:
        target = os.path.join(tmp, "weights.h5")
        _copy_bounded(zf, member, target, MAX_ZIP_MEMBER_BYTES, where)
        with open_h5(target, where=where) as handle:
            yield handle


def _copy_bounded(zf: zipfile.ZipFile, member: str, target: str, limit: int, where: str) -> None:
    written = 0
    with zf.open(member) as src, open(target, "wb") as dst:
        while True:
            chunk = src.read(1 << 20)
            if not chunk:
                break
            written += len(chunk)
            if written > limit:
                raise LimitExceededError(f"'{member}' inflates past {limit} bytes", path=where)
            dst.write(chunk)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:160] if text else type(exc).__name__


# -- links and attributes ------------------------------------------------------
def child(group, name: str, *, where: str):
    """``group[name]``, refusing soft and external links."""
    h5py = _h5py()
    try:
        link = group.get(name, getlink=True)
    except (KeyError, OSError, ValueError) as exc:
        raise InputError(f"cannot read HDF5 entry '{group.name}/{name}' ({_short(exc)})", path=where) from None
    if link is None:
        raise InputError(f"HDF5 entry '{group.name}/{name}' is missing", path=where)
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        kind = "an external" if isinstance(link, h5py.ExternalLink) else "a soft"
        raise UnsafeInputError(
            f"HDF5 entry '{group.name}/{name}' is {kind} link; archdiff refuses links in weight files",
            path=where,
            hint="re-save the model with Keras, which writes no links",
        )
    try:
        return group[name]
    except (KeyError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot read HDF5 entry '{group.name}/{name}' ({_short(exc)})", path=where) from None


def keys(group, *, where: str) -> list[str]:
    try:
        return list(group.keys())
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot list HDF5 group '{group.name}' ({_short(exc)})", path=where) from None


def is_group(obj) -> bool:
    return isinstance(obj, _h5py().Group)


def is_dataset(obj) -> bool:
    return isinstance(obj, _h5py().Dataset)


def read_attr(obj, name: str, *, where: str, default=None):
    """One attribute, bounded in size, decoded to str / list[str] / scalar."""
    try:
        if name not in obj.attrs:
            return default
        attr_id = obj.attrs.get_id(name)
        try:
            size = attr_id.get_storage_size()
        except (OSError, RuntimeError, ValueError):
            size = 0  # HDF5 reports an empty attribute's size as an error
        if size > MAX_ATTR_BYTES:
            raise LimitExceededError(
                f"HDF5 attribute '{obj.name}@{name}' holds {size} bytes, over the limit of {MAX_ATTR_BYTES}",
                path=where,
            )
        value = obj.attrs[name]
    except LimitExceededError:
        raise
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise InputError(f"cannot read HDF5 attribute '{obj.name}@{name}' ({_short(exc)})", path=where) from None
    return _decode(value)


def _decode(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def read_name_list(obj, name: str, *, where: str) -> list[str] | None:
    """A list-of-names attribute, joining Keras' chunks ``name0``, ``name1``, ...."""
    value = read_attr(obj, name, where=where)
    if value is None:
        chunks = []
        i = 0
        while True:
            part = read_attr(obj, f"{name}{i}", where=where)
            if part is None:
                break
            chunks.extend(_as_list(part))
            i += 1
        if not i:
            return None
        value = chunks
    names = _as_list(value)
    if not all(isinstance(n, str) for n in names):
        raise InputError(f"HDF5 attribute '{obj.name}@{name}' is not a list of names", path=where)
    return names


def _as_list(value) -> list:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [value]
    if value is None:
        return []
    # An empty attribute is stored as an empty float array by Keras.
    try:
        return list(value)
    except TypeError:
        return [value]


# -- weights -------------------------------------------------------------------
@dataclass
class VarInfo:
    """One stored variable: its name relative to the layer, shape, dtype, location."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    location: str


def dataset_info(ds, name: str, *, where: str) -> VarInfo:
    try:
        shape = tuple(int(d) for d in ds.shape) if ds.shape is not None else ()
        dtype = str(ds.dtype)
    except (OSError, ValueError, RuntimeError, TypeError) as exc:
        raise InputError(f"cannot read HDF5 dataset '{ds.name}' ({_short(exc)})", path=where) from None
    return VarInfo(name, shape, dtype, ds.name)


def strip_suffix(name: str) -> str:
    return _SUFFIX.sub("", name)


def legacy_root(f, *, where: str):
    """The group holding ``layer_names``: ``model_weights`` or the file root."""
    if "model_weights" in f:
        return child(f, "model_weights", where=where)
    return f


def has_legacy_layout(group, *, where: str) -> bool:
    try:
        attrs = group.attrs
        return "layer_names" in attrs or "layer_names0" in attrs
    except (OSError, RuntimeError):
        return False


def read_legacy_weights(root, *, where: str) -> list[tuple[str, list[VarInfo]]]:
    """``[(layer_name, [VarInfo ...]), ...]`` in the file's (Keras') layer order.

    VarInfo names are relative to the layer: ``kernel``, ``d1/kernel`` for a
    nested model's layer ``d1``, suffix ``:0`` dropped.
    """
    names = read_name_list(root, "layer_names", where=where)
    if names is None:
        raise InputError("HDF5 file has no 'layer_names' attribute: not a Keras weights file", path=where)
    result = []
    for layer_name in names:
        group = child(root, layer_name, where=where)
        if not is_group(group):
            raise InputError(f"'{group.name}' should be a group of weights", path=where)
        weight_names = read_name_list(group, "weight_names", where=where) or []
        infos = []
        for weight_name in weight_names:
            ds = _resolve_path(group, weight_name, where=where)
            if not is_dataset(ds):
                raise InputError(f"'{ds.name}' should be a dataset", path=where)
            rel = strip_suffix(weight_name)
            parts = rel.split("/")
            if layer_name in parts[:-1]:
                # "dense/kernel", or with the model's scope: "seq_model/dense/kernel".
                rel = "/".join(parts[parts.index(layer_name) + 1:])
            infos.append(dataset_info(ds, rel, where=where))
        result.append((layer_name, infos))
    return result


def _resolve_path(group, path: str, *, where: str):
    obj = group
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeInputError(f"weight name '{path}' climbs out of its group", path=where)
        obj = child(obj, part, where=where)
    return obj


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
    return any(name in f for name in LAYER_CONTAINERS) or "vars" in f


def scan(f, *, where: str) -> dict[str, str]:
    """Every object in an HDF5 file by path: ``"group"`` or ``"dataset"``.

    One pass in C (H5Lvisit, then H5Ovisit): much faster than walking groups
    from Python. Refuses the whole file if any link is soft or external
    (Keras writes none), and bounds the number of objects. HDF5 itself visits
    each group once, so hard-link cycles cannot loop.
    """
    h5py = _h5py()
    bad: list[tuple[str, int]] = []
    count = [0]

    def on_link(name: bytes, info) -> None | int:
        count[0] += 1
        if count[0] > MAX_OBJECTS:
            return 1  # stop the visit
        if info.type != h5py.h5l.TYPE_HARD:
            bad.append((name.decode("utf-8", "replace"), info.type))
            return 1
        return None

    try:
        f.id.links.visit(on_link, info=True)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the HDF5 file's structure ({_short(exc)})", path=where) from None
    if bad:
        name, kind = bad[0]
        what = "an external" if kind == h5py.h5l.TYPE_EXTERNAL else "a soft"
        raise UnsafeInputError(f"HDF5 entry '/{name}' is {what} link; archdiff refuses links in weight files",
                               path=where, hint="re-save the model with Keras, which writes no links")
    if count[0] > MAX_OBJECTS:
        raise LimitExceededError(f"more than {MAX_OBJECTS} HDF5 objects", path=where)
    kinds: dict[str, str] = {}

    def on_object(name: bytes, info) -> None:
        if info.type == h5py.h5o.TYPE_DATASET:
            kinds[name.decode("utf-8", "replace")] = "dataset"
        elif info.type == h5py.h5o.TYPE_GROUP:
            kinds[name.decode("utf-8", "replace")] = "group"

    try:
        h5py.h5o.visit(f.id, on_object, info=True)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the HDF5 file's structure ({_short(exc)})", path=where) from None
    kinds.pop(".", None)
    return kinds


def _fast_dataset_info(f, path: str, name: str, *, where: str) -> VarInfo:
    h5py = _h5py()
    try:
        dsid = h5py.h5d.open(f.id, path.encode("utf-8"))
        shape = tuple(int(d) for d in (dsid.shape or ()))
        dtype = str(dsid.dtype)
    except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read HDF5 dataset '/{path}' ({_short(exc)})", path=where) from None
    return VarInfo(name, shape, dtype, "/" + path)


_SKIPPED_OBJECTS = frozenset({"optimizer", "metrics", "compile_metrics", "loss", "_tracker"})


def read_keras3_tree(files: list, *, where: str) -> SaveableNode:
    """Merge one or more Keras 3 weights files (shards) into one node tree."""
    root = SaveableNode(key="", path="", real_name=None)
    for f in files:
        kinds = scan(f, where=where)
        for path in sorted(kinds, key=natural_key):
            parts = path.split("/")
            if len(parts) > MAX_GROUP_DEPTH:
                raise LimitExceededError(f"HDF5 groups nest deeper than {MAX_GROUP_DEPTH} levels", path=where)
            _place(f, root, parts, kinds[path], where=where)
    return root


def _place(f, root: SaveableNode, parts: list[str], kind: str, *, where: str) -> None:
    """Put one object of a Keras 3 weights file in the tree by its path."""
    node = root
    i = 0
    while i < len(parts):
        part = parts[i]
        last = i == len(parts) - 1
        if part in LAYER_CONTAINERS:
            if last:
                return
            key = parts[i + 1]
            found = next((n for n in node.layers if n.key == key), None)
            if found is None:
                found = SaveableNode(key, "/".join(parts[: i + 2]), None)
                node.layers.append(found)
            node = found
            i += 2
            continue
        if part == "vars":
            if last:
                if kind == "group" and node.real_name is None:
                    real = read_attr(f["/".join(parts)], "name", where=where)
                    if isinstance(real, str):
                        node.real_name = real
                return
            if kind == "dataset" and i + 2 == len(parts):
                key = parts[i + 1]
                if all(v.name != key for v in node.variables):
                    node.variables.append(_fast_dataset_info(f, "/".join(parts), key, where=where))
            return
        if node is root and part in _SKIPPED_OBJECTS:
            return
        found = node.objects.get(part)
        if found is None:
            found = SaveableNode(part, "/".join(parts[: i + 1]), None)
            node.objects[part] = found
        node = found
        i += 1


def snake_case(class_name: str) -> str:
    """Keras' ``naming.to_snake_case``: the auto-name stem of a class."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()
    return name


def auto_names(class_names: list[str]) -> list[str]:
    """The group key Keras gives each item of a ``layers`` container, in order."""
    used: dict[str, int] = {}
    out = []
    for cls in class_names:
        stem = snake_case(cls)
        if stem in used:
            used[stem] += 1
            out.append(f"{stem}_{used[stem]}")
        else:
            used[stem] = 0
            out.append(stem)
    return out
