"""Safe, read-only access to the HDF5 files Keras writes.

This module owns opening HDF5 (from disk or from inside a ``.keras`` zip,
without extracting it), refusing soft and external links and hard-link
cycles, bounded attribute reads, dataset checks, and the legacy weight layout
(the global-heap check is in ``hdf5_heaps``, the Keras 3 tree in ``hdf5_keras3``):

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
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from archdiff.errors import InputError, LimitExceededError, UnsafeInputError
from archdiff.limits import (
    DATASET_BOMB_FLOOR_BYTES,
    DATASET_MAX_EXPANSION,
    MAX_ATTR_BYTES,
    MAX_OBJECTS,
    MAX_ZIP_MEMBER_BYTES,
    ZIP_BOMB_FLOOR_BYTES,
    ZIP_MAX_EXPANSION,
)
from archdiff.names import auto_names, snake_case  # noqa: F401 (Keras 3 group keys; re-exported)
from archdiff.read.hdf5_heaps import check_global_heaps

_SUFFIX = re.compile(r":\d+$")

#: Variables Keras never trains, by their name (legacy files keep names).
NON_TRAINABLE_NAMES = frozenset(
    {"moving_mean", "moving_variance", "count", "mean", "variance", "seed_generator_state", "iterations"}
)


def _h5py():
    import h5py  # light: no TensorFlow

    return h5py


def preload(*, h5py: bool = True) -> None:
    """Import h5py and numpy (or numpy alone: ``h5py=False``) now, in this process, before the inputs are read.

    The readers read each file in a supervised child forked from this process
    (:mod:`archdiff.read.contain`). A child forked after h5py is imported
    inherits it; one forked before imports it again (about 0.1 s with numpy),
    so a command that reads two HDF5-bearing files, or that needs h5py itself
    afterwards (a transfer writes with it), imports it once here instead.
    """
    import numpy  # noqa: F401

    if h5py:
        import h5py as _  # noqa: F401


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
    check_zip_member(info, where=where)
    if info.compress_type == zipfile.ZIP_STORED:
        raw = open(zip_path, "rb")
        try:
            window = ZipMemberFile(raw, stored_member_offset(zip_path, info), info.file_size)
            with open_h5(window, where=where) as handle:
                handle.archdiff_raw = window  # for check_global_heaps: the bytes HDF5 reads
                yield handle
        finally:
            raw.close()
        return
    import tempfile

    if info.file_size > MAX_ZIP_MEMBER_BYTES:
        raise LimitExceededError(
            f"'{member}' would inflate to {info.file_size} bytes, over archdiff's limit of {MAX_ZIP_MEMBER_BYTES}",
            path=where,
        )
    if info.file_size > ZIP_BOMB_FLOOR_BYTES and info.file_size > ZIP_MAX_EXPANSION * max(info.compress_size, 1):
        raise LimitExceededError(
            f"'{member}' would inflate from {info.compress_size} to {info.file_size} bytes, over {ZIP_MAX_EXPANSION} "
            "times its stored size: a decompression bomb, not a Keras file",
            path=where, hint="Keras stores .keras members uncompressed; save the model again with model.save()")
    with tempfile.TemporaryDirectory(prefix="archdiff-") as tmp:
        target = os.path.join(tmp, "weights.h5")
        _copy_bounded(zf, member, target, MAX_ZIP_MEMBER_BYTES, where)
        with open_h5(target, where=where) as handle:
            yield handle


#: Compression methods archdiff inflates: Keras writes members stored; zip tools deflate.
#: zipfile inflates bzip2 and LZMA without a bound on the output of one read.
READABLE_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}


def check_zip_member(info: zipfile.ZipInfo, *, where: str) -> None:
    """Refuse a member archdiff cannot read safely: encrypted, or compressed other than deflate."""
    if info.flag_bits & 0x1:
        raise InputError(f"the zip entry '{info.filename}' is encrypted", path=where,
                         hint="Keras never encrypts .keras files; save the model again with model.save()")
    if info.compress_type not in READABLE_ZIP_METHODS:
        names = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}
        method = names.get(info.compress_type, f"method {info.compress_type}")
        raise InputError(f"the zip entry '{info.filename}' is compressed with {method}; archdiff reads stored "
                         "or deflated entries only", path=where,
                         hint="Keras stores .keras entries uncompressed; save the model again with model.save()")


def _copy_bounded(zf: zipfile.ZipFile, member: str, target: str, limit: int, where: str) -> None:
    try:
        _copy_member(zf, member, target, limit, where)
    except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError, zlib.error) as exc:
        raise InputError(f"cannot inflate '{member}' from the zip ({_short(exc)})", path=where,
                         hint="the file may be truncated or corrupt; save the model again with model.save()") from None


def _copy_member(zf: zipfile.ZipFile, member: str, target: str, limit: int, where: str) -> None:
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
def _entry(group, name: str) -> str:
    return f"{group.name.rstrip('/')}/{name}"


def child(group, name: str, *, where: str):
    """``group[name]``, refusing soft and external links."""
    h5py = _h5py()
    try:
        link = group.get(name, getlink=True)
    except (KeyError, OSError, ValueError, RuntimeError, TypeError) as exc:
        raise InputError(f"cannot read HDF5 entry '{_entry(group, name)}' ({_short(exc)})", path=where) from None
    if link is None:
        raise InputError(f"HDF5 entry '{_entry(group, name)}' is missing", path=where)
    if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
        kind = "an external" if isinstance(link, h5py.ExternalLink) else "a soft"
        raise UnsafeInputError(
            f"HDF5 entry '{_entry(group, name)}' is {kind} link; archdiff refuses links in weight files",
            path=where,
            hint="re-save the model with Keras, which writes no links",
        )
    try:
        return group[name]
    except (KeyError, OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot read HDF5 entry '{_entry(group, name)}' ({_short(exc)})", path=where) from None


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


def _is_numeric(dtype) -> bool:
    if dtype.names is not None or dtype.subdtype is not None:
        return False
    if dtype.kind in "biufc":
        return True
    # bfloat16 and float8 variables: Keras stores them as 2- and 1-byte opaque values.
    return dtype.kind == "V" and dtype.itemsize in (1, 2)


def check_dataset(dsid, location: str, shape: tuple[int, ...], dtype, *, where: str) -> None:
    """Refuse a dataset that is not a plain array of numbers stored in this file."""
    h5py = _h5py()
    if not _is_numeric(dtype):
        raise InputError(f"HDF5 dataset '{location}' holds {_dtype_words(dtype)}, not numbers; "
                         "a weight is an array of numbers", path=where,
                         hint="the file was not written by Keras, or is corrupt")
    try:
        dcpl = dsid.get_create_plist()
        layout = dcpl.get_layout()
        external = dcpl.get_external_count() if layout == h5py.h5d.CONTIGUOUS else 0
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read HDF5 dataset '{location}' ({_short(exc)})", path=where) from None
    if external:
        raise UnsafeInputError(f"HDF5 dataset '{location}' keeps its data outside the file (external storage); "
                               "archdiff reads weights only from the file itself", path=where,
                               hint="Keras never writes external storage; save the model again with Keras")
    if layout == getattr(h5py.h5d, "VIRTUAL", -1):
        raise UnsafeInputError(f"HDF5 dataset '{location}' is a virtual dataset mapping data from other files; "
                               "archdiff reads weights only from the file itself", path=where,
                               hint="Keras never writes virtual datasets; save the model again with Keras")
    declared = dtype.itemsize
    for d in shape:
        declared *= d
    if declared > DATASET_BOMB_FLOOR_BYTES:
        try:
            stored = dsid.get_storage_size()
        except (OSError, RuntimeError, ValueError):
            stored = 0
        if declared > DATASET_MAX_EXPANSION * stored:
            raise LimitExceededError(
                f"HDF5 dataset '{location}' declares {declared} bytes {list(shape)} but stores {stored}: "
                f"over {DATASET_MAX_EXPANSION} times what it holds, a shape or compression bomb",
                path=where, hint="Keras writes every weight in full; this file was not written by Keras")


def _dtype_words(dtype) -> str:
    if dtype.names is not None:
        return "records (a compound type)"
    if dtype.kind in "SUO" or _h5py().check_string_dtype(dtype) is not None:
        return "text"
    if dtype.kind == "V":
        return f"opaque {dtype.itemsize}-byte values"
    return f"values of type {dtype}"


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


def check_layer_name(name: str, attribute: str, *, where: str, keras3: bool = False) -> None:
    """A layer name read from a weights file must be a name, not a path: Keras writes no others."""
    problem = None
    if name in ("", ".", ".."):
        problem = "is not a name"
    elif "\0" in name:
        problem = "holds a NUL character"
    elif name.startswith("/") or (keras3 and "/" in name):
        problem = "holds '/', which Keras does not allow in a layer name"
    if problem:
        raise InputError(f"the layer name {name!r} in '{attribute}' {problem}", path=where,
                         hint="the file is corrupt or was not written by Keras")


def read_legacy_weights(root, *, where: str) -> list[tuple[str, list[VarInfo]]]:
    """``[(layer_name, [VarInfo ...]), ...]`` in the file's (Keras') layer order.

    VarInfo names are relative to the layer: ``kernel``, ``d1/kernel`` for a
    nested model's layer ``d1``, suffix ``:0`` dropped.
    """
    names = read_name_list(root, "layer_names", where=where)
    if names is None:
        raise InputError("HDF5 file has no 'layer_names' attribute: not a Keras weights file", path=where)
    # One C-level pass refuses links anywhere and tells groups from datasets,
    # so the loop below opens each dataset once instead of walking to it.
    kinds = scan(root.file, where=where)
    base = root.name.strip("/")
    result = []
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise InputError(f"'{root.name}@layer_names' lists the layer '{twice}' twice", path=where,
                         hint="Keras names each layer once; the file is corrupt or was not written by Keras")
    listed = set(names)
    for layer_name in names:
        check_layer_name(layer_name, f"{root.name}@layer_names", where=where)
        group_path = f"{base}/{layer_name}" if base else layer_name
        if kinds.get(group_path) != "group":
            raise InputError(f"'/{group_path}' named in layer_names should be a group of weights", path=where)
        group = child(root, layer_name, where=where)
        weight_names = read_name_list(group, "weight_names", where=where) or []
        infos = []
        for weight_name in weight_names:
            parts = [p for p in weight_name.split("/") if p not in ("", ".")]
            if ".." in parts:
                raise UnsafeInputError(f"weight name '{weight_name}' climbs out of its group", path=where)
            path = "/".join([group_path, *parts])
            if kinds.get(path) != "dataset":
                raise InputError(f"'/{path}' named in weight_names should be a dataset", path=where)
            rel = strip_suffix(weight_name)
            rel_parts = rel.split("/")
            if layer_name in rel_parts[:-1]:
                # "dense/kernel", or with the model's scope: "seq_model/dense/kernel".
                rel = "/".join(rel_parts[rel_parts.index(layer_name) + 1:])
            infos.append(_fast_dataset_info(root.file, path, rel, where=where))
        result.append((layer_name, infos))
    _check_slash_names(result, listed, root_name=root.name, where=where)
    return result


def _check_slash_names(layers: list[tuple[str, list[VarInfo]]], listed: set[str], *, root_name: str,
                       where: str) -> None:
    """A Keras 2 layer name may hold '/' (tf-keras' MobileNetV3 names a layer ``Conv/BatchNorm`` beside its
    ``Conv``, and Keras loads the file: HDF5 nests the group). Refuse it only where the path is truly two
    layers: ``a/b`` beside a nested model ``a`` that has a layer ``b`` (its variables are named ``b/...``)."""
    variables = dict(layers)
    for layer_name, _ in layers:
        scope, _, rest = layer_name.partition("/")
        if not rest or scope not in listed:
            continue
        # The longest listed prefix is the layer whose group this name nests in ("a/b/c" beside "a/b").
        if any(v.name.startswith(rest + "/") for v in variables.get(scope, ())):
            raise InputError(f"'{root_name}@layer_names' lists '{layer_name}' beside the layer '{scope}': the name "
                             f"reads as the layer '{rest}' inside '{scope}'", path=where,
                             hint="the file is corrupt or was not written by Keras")


def scan(f, *, where: str) -> dict[str, str]:
    """Every object in an HDF5 file by path: ``"group"`` or ``"dataset"``.

    One pass in C (H5Lvisit, then H5Ovisit): much faster than walking groups
    from Python. Refuses the whole file if any link is soft or external, if
    any object has two names (hard links: the only way to make a cycle), or if
    a name is not UTF-8 (Keras writes none of these), and bounds the number of
    objects. HDF5 itself visits each group once, so cycles cannot loop.
    """
    h5py = _h5py()
    bad: list[tuple[str, int]] = []
    undecodable: list[bytes] = []
    count = [0]

    def on_link(name: bytes, info) -> None | int:
        count[0] += 1
        if count[0] > MAX_OBJECTS:
            return 1  # stop the visit
        if info.type != h5py.h5l.TYPE_HARD:
            bad.append((name.decode("utf-8", "replace"), info.type))
            return 1
        try:
            name.decode("utf-8")
        except UnicodeDecodeError:
            undecodable.append(name)
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
    if undecodable:
        raise InputError(f"HDF5 entry name {undecodable[0]!r} is not UTF-8 text", path=where,
                         hint="Keras names groups after layers, in UTF-8; the file is corrupt or not from Keras")
    if count[0] > MAX_OBJECTS:
        raise LimitExceededError(f"more than {MAX_OBJECTS} HDF5 objects", path=where)
    kinds: dict[str, str] = {}
    shared: list[str] = []

    def on_object(name: bytes, info) -> None:
        text = name.decode("utf-8", "replace")
        if info.rc > 1:
            shared.append(text)
        if info.type == h5py.h5o.TYPE_DATASET:
            kinds[text] = "dataset"
        elif info.type == h5py.h5o.TYPE_GROUP:
            kinds[text] = "group"

    try:
        h5py.h5o.visit(f.id, on_object, info=True)
    except (RuntimeError, OSError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read the HDF5 file's structure ({_short(exc)})", path=where) from None
    if shared:
        raise UnsafeInputError(
            f"HDF5 object '/{shared[0].lstrip('./') or ''}' has more than one name (hard links, which can make a "
            "cycle); archdiff refuses linked objects in weight files",
            path=where, hint="Keras writes each group and dataset once; re-save the model with Keras")
    kinds.pop(".", None)
    check_global_heaps(f, kinds, where=where)
    return kinds


def _fast_dataset_info(f, path: str, name: str, *, where: str) -> VarInfo:
    h5py = _h5py()
    try:
        dsid = h5py.h5d.open(f.id, path.encode("utf-8"))
        shape = tuple(int(d) for d in (dsid.shape or ()))
        dtype = dsid.dtype
    except (KeyError, OSError, RuntimeError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read HDF5 dataset '/{path}' ({_short(exc)})", path=where) from None
    check_dataset(dsid, "/" + path, shape, dtype, where=where)
    return VarInfo(name, shape, str(dtype), "/" + path)


# The Keras 3 layout's reader lives in its own module; these names stay importable from here.
from archdiff.read.hdf5_keras3 import LAYER_CONTAINERS, SaveableNode, has_keras3_layout, natural_key, read_keras3_tree  # noqa: E402,F401
