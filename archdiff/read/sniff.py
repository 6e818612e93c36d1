"""Which reader a file gets: by its name, as Keras decides, checked against its content.

Keras picks the reader from the file name (``saving_api.load_model``:
``.keras`` and ``zipfile.is_zipfile`` -> the zip; ``.h5``/``.hdf5`` -> HDF5;
``load_weights``: ``.weights.h5`` -> Keras 3 weights). A file can be valid as
two formats at once (a zip hidden in an HDF5 user block, an HDF5 file stored
at an aligned offset inside a zip): a reviewer must never be shown a model
that Keras would not load from that file, so such a file is refused, and a
file whose content contradicts its name is refused with the name Keras would
need. Only a name archdiff does not know is read by content.
"""
from __future__ import annotations

import os
import zipfile

from archdiff.errors import InputError

ZIP = "zip"
HDF5 = "hdf5"
JSON = "json"
YAML = "yaml"

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_LOCAL_HEADER = b"PK\x03\x04"


def format_from_name(path: str) -> str | None:
    """The format Keras (or archdiff, for JSON/YAML) reads a file of this name as; None when unknown."""
    lower = path.lower()
    if lower.endswith(".keras"):
        return ZIP
    if lower.endswith((".h5", ".hdf5")):
        return HDF5
    if lower.endswith(".json"):
        return JSON
    if lower.endswith((".yaml", ".yml")):
        return YAML
    return None


def hdf5_superblock_offsets(fh, size: int) -> list[int]:
    """Where HDF5 would find a superblock: offset 0, 512, 1024, 2048, ... (the HDF5 spec's user-block rule)."""
    found = []
    offset = 0
    while offset + len(_HDF5_SIGNATURE) <= size:
        fh.seek(offset)
        if fh.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
            found.append(offset)
        offset = 512 if offset == 0 else offset * 2
    return found


def _stored_member_starts(path: str) -> set[int]:
    """File offsets where each stored zip member's data begins (an HDF5 file stored in a .keras zip)."""
    starts = set()
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as raw:
            for info in zf.infolist()[:100_000]:
                if info.compress_type != zipfile.ZIP_STORED:
                    continue
                raw.seek(info.header_offset)
                header = raw.read(30)
                if len(header) < 30 or header[:4] != _ZIP_LOCAL_HEADER:
                    continue
                name_len = int.from_bytes(header[26:28], "little")
                extra_len = int.from_bytes(header[28:30], "little")
                starts.add(info.header_offset + 30 + name_len + extra_len)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return set()
    return starts


def choose_reader(path: str) -> str | None:
    """The format to read ``path`` as (ZIP, HDF5, JSON, YAML), or None when neither name nor content says.

    Raises InputError when the content contradicts the name Keras goes by, or
    when the file is both a zip and an HDF5 file in a way Keras and another
    reader would see as two different files.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            head = fh.read(8)
            superblocks = hdf5_superblock_offsets(fh, size)
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror})", path=path) from None
    try:
        is_zip = zipfile.is_zipfile(path)
    except OSError:
        is_zip = False
    by_name = format_from_name(path)
    if superblocks and is_zip:
        # An HDF5 weights file stored in a .keras zip starts exactly where its member's data does;
        # HDF5 found anywhere else is a second file hiding in the same bytes.
        embedded = _stored_member_starts(path)
        if not (by_name == ZIP and all(offset in embedded for offset in superblocks)):
            where = ", ".join(str(o) for o in superblocks[:4])
            raise InputError(
                f"the file is both a zip archive and an HDF5 file (HDF5 superblock at byte {where}): Keras reads it "
                f"as {'a .keras zip' if by_name == ZIP else 'HDF5' if by_name == HDF5 else 'either'} by its name, "
                "other readers see a different model", path=path,
                hint="refusing a file that two readers see differently; save the model again with model.save()")
    if by_name == ZIP:
        if not is_zip:
            what = "an HDF5 file" if superblocks else "not a zip archive"
            raise InputError(f"a .keras file must be a zip archive, and this one is {what}", path=path,
                             hint="Keras will not load it as .keras: rename an HDF5 model to .h5, or save it again "
                                  "with model.save('model.keras')" if superblocks else
                                  "the file may be truncated; save it again with model.save()")
        return ZIP
    if by_name == HDF5:
        if not superblocks:
            if is_zip or head.startswith(_ZIP_LOCAL_HEADER):
                raise InputError("this .h5 file is a zip archive (a .keras model?), which Keras would not load as "
                                 "HDF5", path=path, hint="rename it to .keras if it is one")
            raise InputError("not an HDF5 file (bad signature)", path=path,
                             hint="the file may be truncated or mislabelled")
        return HDF5
    if by_name in (JSON, YAML):
        if superblocks or head.startswith(_ZIP_LOCAL_HEADER):
            raise InputError(f"this .{by_name} file holds binary data ({'HDF5' if superblocks else 'a zip'}), "
                             "not a text config", path=path,
                             hint="give the model's to_json() text, or the file under its own name")
        return by_name
    # A name archdiff does not know: read by content, as before, but only when it is unambiguous.
    if head.startswith(_ZIP_LOCAL_HEADER):
        return ZIP
    if superblocks:
        return HDF5
    return None
