"""The ``.keras`` zip: ``config.json``, ``metadata.json`` and ``model.weights.h5`` read in place.

Entries are bounded (count, size, compression method) before anything is
inflated; the weights are read from inside the zip without extracting it.
"""
from __future__ import annotations

import zipfile
import zlib
from dataclasses import replace

from archdiff.errors import InputError, LimitExceededError
from archdiff.limits import MAX_CONFIG_BYTES, MAX_ZIP_MEMBERS
from archdiff.model import Architecture
from archdiff.read import hdf5 as h5
from archdiff.read.assemble import architecture
from archdiff.read.config import parse
from archdiff.read.documents import parse_json_bytes
from archdiff.read.hdf5_lite import Decline, open_lite


def read_keras_zip(path: str) -> Architecture:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"not a readable .keras zip ({exc})", path=path,
                         hint="the file may be truncated; save it again with model.save('model.keras')") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise LimitExceededError(f"the zip holds {len(infos)} entries, over the limit of {MAX_ZIP_MEMBERS}", path=path)
        names = {i.filename for i in infos}
        for member in ("config.json", "metadata.json", "model.weights.h5", "model.weights.json"):
            if sum(1 for i in infos if i.filename == member) > 1:
                raise InputError(f"the zip holds two entries named '{member}'", path=path,
                                 hint="readers disagree on which one counts; save the model again with model.save()")
        if "config.json" not in names:
            raise InputError("the .keras zip has no config.json", path=path,
                             hint="a .keras file is written by model.save('model.keras')")
        config = parse_json_bytes(_zip_read(zf, "config.json", path), where=f"{path}:config.json")
        metadata = {}
        if "metadata.json" in names:
            meta = parse_json_bytes(_zip_read(zf, "metadata.json", path), where=f"{path}:metadata.json")
            metadata = meta if isinstance(meta, dict) else {}
        parsed = parse(config, where=f"{path}:config.json")
        version = metadata.get("keras_version") if isinstance(metadata.get("keras_version"), str) else None
        if version:
            parsed = replace(parsed, keras_version=version,
                             dialect="keras2" if version.startswith("2.") else "keras3")
        if "model.weights.h5" in names:
            where = f"{path}:model.weights.h5"
            tree = _lite_tree(path, zf, where)
            if tree is None:
                with h5.open_zip_member_h5(path, zf, "model.weights.h5", where=where) as f:
                    tree = h5.read_keras3_tree([f], where=where)
            return architecture(parsed, path=path, fmt="keras", weights=("keras3", tree))
        if "model.weights.json" in names:
            raise InputError("sharded weights inside a .keras zip are not read yet", path=path,
                             hint="save the weights unsharded, or pass the .weights.json file itself")
        return architecture(parsed, path=path, fmt="keras", weights=None)


def _lite_tree(path: str, zf: zipfile.ZipFile, where: str) -> h5.SaveableNode | None:
    """The weights tree read without h5py (:mod:`archdiff.read.hdf5_lite`), or None where h5py must read it."""
    info = zf.getinfo("model.weights.h5")
    h5.check_zip_member(info, where=where)
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    lite = open_lite(path, offset=h5.stored_member_offset(path, info), size=info.file_size)
    if lite is None:
        return None
    try:
        return h5.read_keras3_tree([lite], where=where)
    except Decline:
        return None


def _zip_read(zf: zipfile.ZipFile, member: str, path: str) -> bytes:
    info = zf.getinfo(member)
    h5.check_zip_member(info, where=path)
    if info.file_size > MAX_CONFIG_BYTES:
        raise LimitExceededError(f"'{member}' would inflate to {info.file_size} bytes, over the limit of {MAX_CONFIG_BYTES}",
                                 path=path)
    try:
        with zf.open(member) as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError, zlib.error) as exc:
        raise InputError(f"cannot read '{member}' from the zip ({' '.join(str(exc).split())[:160]})", path=path,
                         hint="the file may be truncated or corrupt; save the model again with model.save()") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise LimitExceededError(f"'{member}' inflates past {MAX_CONFIG_BYTES} bytes", path=path)
    return data
