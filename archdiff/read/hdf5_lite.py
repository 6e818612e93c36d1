"""The HDF5 metadata of a Keras 3 weights file read in Python, without h5py or numpy, or declined.

h5py and numpy take longer to import (about 80 ms) than a ResNet's whole
weights tree takes to read, and ``layers`` or ``diff --topology-only`` need
none of the weights' values, only the tree: groups, each dataset's shape and
dtype, and each ``vars`` group's ``name`` attribute. This module reads that
from the bytes of the files h5py writes by default (what Keras 3 saves:
superblock version 0, groups as symbol tables, version 1 object headers,
contiguous or compact datasets, small attributes), and **declines**
(:class:`Decline`, then :func:`open_lite` returns None) on anything else or
anything odd: another superblock, new-style groups, soft links, chunked or
filtered or external storage, shared messages, a type other than plain
little-endian integers and IEEE floats, an object reached twice, a count or
a size out of bounds, a signature or a field that does not check out. A
declined file is read by h5py in the supervised child exactly as before, and
so gets libhdf5's answer and archdiff's refusals of it (links, cycles, bombs,
corrupt heaps) with their own error lines.

So this reader never refuses a file and never answers where h5py would not:
it either gives what the h5py-based reader gives (tests/test_hdf5_lite.py
compares the two on every fixture, on files built with h5py to hold what it
declines, and on a corpus of damaged files) or steps aside. Every loop is bounded by the file's
size and archdiff's limits, so no input can make it run long.

Spec: HDF5 File Format Specification version 3.0, sections II (superblock),
III.A-C (B-trees version 1, symbol table nodes, local heaps), III.E (global
heap), IV.A (object headers) and IV.A.2 (messages).
"""
from __future__ import annotations

import os
import struct
from collections.abc import Callable

from archdiff.errors import InputError
from archdiff.limits import (
    DATASET_BOMB_FLOOR_BYTES,
    DATASET_MAX_EXPANSION,
    MAX_ATTR_BYTES,
    MAX_GROUP_DEPTH,
    MAX_OBJECTS,
)
from archdiff.read.hdf5_heaps import check_heap_regions

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_UNDEFINED = 0xFFFFFFFFFFFFFFFF

# Object header message types (spec IV.A.2).
_NIL, _DATASPACE, _DATATYPE, _FILL, _LAYOUT = 0x00, 0x01, 0x03, 0x05, 0x08
_ATTRIBUTE, _CONTINUATION, _SYMBOL_TABLE = 0x0C, 0x10, 0x11
#: The messages h5py writes in a Keras 3 weights file, and no others: padding, the fill value (checked as
#: libhdf5 would read it, then not needed), a dataset's shape, type and storage, attributes, the
#: continuation of a header, a group's symbol table.
#: Each with the flags h5py's writes carry (constant: the datatype and the fill value), and no others:
#: libhdf5 refuses some combinations of flags ("bad flag combination for message") and acts on others.
_KNOWN = {_NIL: 0, _FILL: 1, _DATASPACE: 0, _DATATYPE: 1, _LAYOUT: 0, _ATTRIBUTE: 0, _CONTINUATION: 0,
          _SYMBOL_TABLE: 0}

#: Continuation blocks of one object header, and bytes of one header in all.
_MAX_HEADER_BLOCKS = 64
_MAX_HEADER_BYTES = 1 << 20
#: Bytes of one group's local heap (its members' names).
_MAX_HEAP_BYTES = 64 * 1024 * 1024


#: The 1-byte unsigned integer type a variable-length string's characters have (class 0, version 1).
_CHAR = bytes.fromhex("10000000" "01000000" "00000800")


class Decline(Exception):
    """The file holds something this reader does not read: h5py reads it instead."""


def _ieee(size: int) -> tuple[int, int, int, int, int] | None:
    """(sign location, exponent location, exponent size, mantissa size, bias) of an IEEE float of ``size``."""
    return {2: (15, 10, 5, 10, 15), 4: (31, 23, 8, 23, 127), 8: (63, 52, 11, 52, 1023)}.get(size)


class LiteFile:
    """One HDF5 file's tree, read from ``read(offset, n)`` over ``size`` bytes; raises Decline.

    The same answers as :mod:`archdiff.read.hdf5`'s h5py-based ``scan``,
    ``_fast_dataset_info`` and ``_vars_name`` give: :meth:`kinds`,
    :meth:`dataset` and :meth:`vars_name`.
    """

    def __init__(self, read: Callable[[int, int], bytes], size: int, *, bare_root: bool = False):
        """``bare_root``: decline at once where the root group has attributes (a Keras 2 or legacy file,
        ``layer_names``/``model_config``), before the tree is walked."""
        self._raw = read
        self.size = size
        self._bare_root = bare_root
        self._headers: dict[str, list[tuple[int, bytes]]] = {}
        self._kinds: dict[str, str] = {}
        #: path -> (shape, dtype as numpy names it, item size, bytes stored, offset of contiguous data or None)
        self._datasets: dict[str, tuple[tuple[int, ...], str, int, int, int | None]] = {}
        #: path -> the bytes of a compact dataset (its data sits in its layout message)
        self._compact: dict[str, bytes] = {}
        self._collections: dict[int, bytes] = {}
        #: What each address read holds: libhdf5 refuses one address read as two kinds ("ring type mismatch").
        self._claims: dict[int, str] = {0: "superblock"}
        self._superblock()
        self._walk()
        # Every group's ``name`` now, while the file is open: the answers are plain data after this.
        self._names = {path: self._name_attribute(messages) for path, messages in self._headers.items()
                       if path not in self._datasets}

    # -- bytes -------------------------------------------------------------------
    def _claim(self, address: int, kind: str) -> None:
        if self._claims.setdefault(address, kind) != kind:
            raise Decline

    def read_up_to(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer at the end), for the global heap check."""
        n = max(0, min(n, self.size - offset))
        return self._raw(offset, n) if n else b""

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise Decline
        data = self._raw(offset, n)
        if len(data) != n:
            raise Decline
        return data

    def _superblock(self) -> None:
        head = self.read(0, 56)
        if head[:8] != _SIGNATURE or head[8] != 0 or head[13] != 8 or head[14] != 8:
            raise Decline  # version 0 with 8-byte offsets and lengths only (what h5py writes by default)
        if head[9] != 0 or head[10] != 0 or head[12] != 0:
            raise Decline
        leaf_k, node_k, flags = struct.unpack_from("<HHI", head, 16)
        if flags or not leaf_k or not node_k:
            raise Decline  # status flags (a file open for writing) or ranks libhdf5 refuses
        self._leaf_k, self._node_k = leaf_k, node_k
        base, extension, eof, driver = struct.unpack_from("<QQQQ", head, 24)
        # libhdf5 reads the free-space address of a version 0 superblock as an extension's, which must not be.
        if base != 0 or extension != _UNDEFINED or driver != _UNDEFINED or eof > self.size or eof < 96:
            raise Decline  # a user block, a driver block, or a truncated file: libhdf5's to judge
        self.size = eof  # libhdf5 reads nothing past the end the superblock declares
        entry = self.read(56, 40)
        _name, header, cache, _reserved = struct.unpack_from("<QQII", entry)
        if cache not in (0, 1):
            raise Decline
        self._root = header
        self._root_cache = struct.unpack_from("<QQ", entry, 24) if cache == 1 else None

    # -- object headers ----------------------------------------------------------
    def _messages(self, address: int) -> tuple[int, list[tuple[int, bytes]]]:
        """(reference count, [(type, data)]) of a version 1 object header."""
        self._claim(address, "object header")
        prefix = self.read(address, 16)
        version, _, count, refs, size = struct.unpack_from("<BBHII", prefix)
        if version != 1:
            raise Decline
        blocks = [(address + 16, size)]
        out: list[tuple[int, bytes]] = []
        total = 0
        seen = 0
        while blocks:
            start, length = blocks.pop(0)
            total += length
            seen += 1
            if seen > _MAX_HEADER_BLOCKS or total > _MAX_HEADER_BYTES:
                raise Decline
            block = self.read(start, length)
            at = 0
            while at < length:  # messages tile every block, as libhdf5 requires
                if at + 8 > length or len(out) >= count:
                    raise Decline
                kind, n, flags = struct.unpack_from("<HHB", block, at)
                at += 8
                if at + n > length or n % 8:
                    raise Decline
                if _KNOWN.get(kind) != flags:
                    raise Decline  # another message, or shared (stored elsewhere), or flagged otherwise
                data = block[at:at + n]
                at += n
                if kind == _CONTINUATION:
                    if n < 16:
                        raise Decline
                    more, size = struct.unpack_from("<QQ", data)
                    if size < 8:
                        raise Decline  # a block too small for one message
                    self._claim(more, "continuation")
                    blocks.append((more, size))
                elif kind == _FILL:
                    _fill_value(data)
                out.append((kind, data))
        if len(out) != count:
            raise Decline
        return refs, out

    # -- groups ------------------------------------------------------------------
    def _walk(self) -> None:
        visited = {self._root}
        pending = [(self._root, "", 0, self._root_cache)]
        objects = 0
        while pending:
            address, path, depth, cached = pending.pop()
            refs, messages = self._messages(address)
            if refs != 1:
                raise Decline  # an object with two names (hard links); the h5py reader refuses it
            self._headers[path] = messages
            if not path and self._bare_root and any(kind == _ATTRIBUTE for kind, _ in messages):
                raise Decline
            tables = [data for kind, data in messages if kind == _SYMBOL_TABLE]
            if path and not tables:
                if cached is not None:
                    raise Decline  # a dataset's entry caching a group's tables
                self._kinds[path] = "dataset"
                self._datasets[path] = self._dataset(messages, path)
                continue
            if path:
                self._kinds[path] = "group"
            if len(tables) != 1 or len(tables[0]) < 16 or depth > MAX_GROUP_DEPTH + 1:
                raise Decline
            btree, heap = struct.unpack_from("<QQ", tables[0])
            if cached is not None and tuple(cached) != (btree, heap):
                raise Decline  # the parent's entry and the group's header disagree on where its members are
            names = self._heap(heap)
            for name_offset, child, child_cache in self._btree_entries(btree, names):
                objects += 1
                if objects > MAX_OBJECTS or child in visited:
                    raise Decline
                visited.add(child)
                end = names.find(b"\0", name_offset)
                if end < 0 or name_offset >= len(names):
                    raise Decline
                try:
                    name = names[name_offset:end].decode("utf-8")
                except UnicodeDecodeError:
                    raise Decline from None
                if not name or "/" in name or name in (".", ".."):
                    raise Decline
                pending.append((child, f"{path}/{name}" if path else name, depth + 1, child_cache))

    def _heap(self, address: int) -> bytes:
        self._claim(address, "local heap")
        head = self.read(address, 32)
        if head[:4] != b"HEAP" or head[4] != 0:
            raise Decline
        size, free, data = struct.unpack_from("<QQQ", head, 8)
        if size > _MAX_HEAP_BYTES:
            raise Decline
        if data != address + 32:  # a data block apart from its heap's header is an entry of its own
            self._claim(data, "local heap data")
        names = self.read(data, size)
        # The free list, checked as libhdf5 reads it (H5HL__fl_deserialize): every block inside the segment,
        # no next offset of 0, and an end (H5HL_FREE_NULL, 1) within as many steps as blocks fit.
        seen = 0
        while free != 1:
            seen += 1
            if free + 16 > size or seen > size // 16 + 1:
                raise Decline
            at = free
            free, length = struct.unpack_from("<QQ", names, at)
            if free == 0 or at + length > size:
                raise Decline
        return names

    def _btree_entries(self, address: int, names: bytes) -> list[tuple[int, int, tuple[int, int] | None]]:
        """(name offset, object header address, cached tables) of every member, from a group's version 1
        B-tree, checked as libhdf5's lookups by name rely on it: each key a name in the heap, each child's
        names above its left key and up to its right key, each leaf's names in order, levels descending by
        one, siblings within the tree (spec III.A.1; H5G__node_cmp3, H5G__node_found)."""
        out: list[tuple[int, int, tuple[int, int] | None]] = []
        # (node, level its parent expects or None, left bound, right bound): bounds are names (bytes) or None.
        nodes: list[tuple[int, int | None, bytes | None, bytes | None]] = [(address, None, None, None)]
        seen: set[int] = set()
        by_level: dict[int, set[int]] = {}
        siblings: list[tuple[int, int, int]] = []
        while nodes:
            node, expected, low, high = nodes.pop()
            if node in seen or len(seen) > MAX_OBJECTS:
                raise Decline
            seen.add(node)
            level, left, right, keys, children = self._node(node, expected, names)
            by_level.setdefault(level, set()).add(node)
            siblings.append((level, left, right))
            _check_keys(keys, low, high)
            used = len(children)
            if level > 0:
                for i in reversed(range(used)):
                    nodes.append((children[i], level - 1, keys[i], keys[i + 1]))
                continue
            for i, child in enumerate(children):
                out.extend(self._leaf(child, names, keys[i], keys[i + 1]))
        for level, left, right in siblings:
            for sibling in (left, right):
                if sibling != _UNDEFINED and sibling not in by_level.get(level, ()):
                    raise Decline
        return out

    def _node(self, node: int, expected: int | None, names: bytes) -> tuple[int, int, int, list[bytes], list[int]]:
        """One B-tree node: (level, left sibling, right sibling, keys as names, children)."""
        # libhdf5 reads a whole node (its size set by the superblock's rank), whatever it holds.
        self._claim(node, "B-tree node")
        head = self.read(node, 24 + 32 * self._node_k + 8)
        if head[:4] != b"TREE" or head[4] != 0:
            raise Decline
        level, used = head[5], struct.unpack_from("<H", head, 6)[0]
        if used > 2 * self._node_k:
            raise Decline  # more entries than a node of this file holds
        if (expected is not None and level != expected) or (used == 0 and (expected is not None or level)):
            raise Decline  # a level out of step, or an empty node that is not a leaf (an empty group's root)
        left, right = struct.unpack_from("<QQ", head, 8)
        body = head[24:24 + 8 + used * 16]  # key, (child, key) * used
        keys = [_name_at(names, struct.unpack_from("<Q", body, i * 16)[0]) for i in range(used + 1)]
        children = [struct.unpack_from("<Q", body, 8 + i * 16)[0] for i in range(used)]
        return level, left, right, keys, children

    def _leaf(self, address: int, names: bytes, low: bytes,
              high: bytes) -> list[tuple[int, int, tuple[int, int] | None]]:
        """A symbol table node's members, their names in order, above ``low`` and up to ``high``."""
        entries = self._symbols(address)
        previous = low
        for entry in entries:
            name = _name_at(names, entry[0])
            if name <= previous or name > high:
                raise Decline  # out of order: libhdf5's lookup by name would miss it
            previous = name
        return entries

    def _symbols(self, address: int) -> list[tuple[int, int, tuple[int, int] | None]]:
        self._claim(address, "symbol table node")
        node = self.read(address, 8 + 80 * self._leaf_k)  # a whole node, as libhdf5 reads it
        if node[:4] != b"SNOD" or node[4] != 1:
            raise Decline
        count = struct.unpack_from("<H", node, 6)[0]
        if count > 2 * self._leaf_k:
            raise Decline  # more symbols than a node of this file holds
        body = node[8:8 + count * 40]
        out = []
        for i in range(count):
            name, header, cache, _ = struct.unpack_from("<QQII", body, i * 40)
            if cache not in (0, 1):
                raise Decline  # 2: a soft link
            out.append((name, header, struct.unpack_from("<QQ", body, i * 40 + 24) if cache == 1 else None))
        return out

    # -- datasets ----------------------------------------------------------------
    def _dataset(self, messages, path: str) -> tuple[tuple[int, ...], str, int, int, int | None]:
        """(shape, dtype as numpy names it, item size, bytes stored, offset of contiguous data or None)."""
        found = {kind: data for kind, data in messages if kind in (_DATASPACE, _DATATYPE, _LAYOUT)}
        if len(found) != 3 or sum(1 for kind, _ in messages if kind in found) != 3:
            raise Decline
        shape = _dataspace(found[_DATASPACE])
        dtype, itemsize = _numeric_type(found[_DATATYPE])
        declared = itemsize
        for d in shape:
            declared *= d
        layout = found[_LAYOUT]
        if layout[0] != 3:
            raise Decline
        if layout[1] == 1:  # contiguous
            address, stored = struct.unpack_from("<QQ", layout, 2)
            if address == _UNDEFINED:
                if declared:
                    raise Decline  # never written: h5py's business
                return shape, dtype, itemsize, 0, None
            if stored != declared or address + stored > self.size:
                raise Decline
            return shape, dtype, itemsize, stored, address
        if layout[1] == 0:  # compact: the data sits in the header
            (stored,) = struct.unpack_from("<H", layout, 2)
            if stored != declared or len(layout) < 4 + stored:
                raise Decline
            self._compact[path] = layout[4:4 + stored]
            return shape, dtype, itemsize, stored, None
        raise Decline  # chunked or virtual

    def kinds(self) -> dict[str, str]:
        """Every group and dataset by its path (as h5py's ``scan`` lists them)."""
        return dict(self._kinds)

    def extents(self) -> list[tuple[int, int]]:
        """Where the contiguous datasets' data lies, sorted: the rest of the file is metadata."""
        return sorted((offset, offset + stored) for _, _, _, stored, offset in self._datasets.values()
                      if offset is not None)

    def dataset(self, path: str) -> tuple[tuple[int, ...], str]:
        """A dataset's shape and dtype; Decline where h5py's checks would have more to say."""
        shape, dtype, declared, stored, _ = self._datasets[path]
        for d in shape:
            declared *= d
        if declared > DATASET_BOMB_FLOOR_BYTES and declared > DATASET_MAX_EXPANSION * stored:
            raise Decline  # the h5py reader refuses it, with its figures
        return shape, dtype

    def data(self, path: str) -> tuple[tuple[int, ...], str, int | None, bytes | None] | None:
        """Where a dataset's values lie: ``(shape, dtype, offset of its contiguous bytes, its compact bytes)``
        (both None: no element, or never written), in C order and little-endian; None: no such dataset."""
        found = self._datasets.get(path)
        if found is None:
            return None
        shape, dtype, _, stored, offset = found
        return shape, dtype, offset if stored else None, self._compact.get(path) if stored else None

    # -- attributes --------------------------------------------------------------
    def vars_name(self, path: str) -> str | None:
        """A group's ``name`` attribute (a variable-length string), None where it has none."""
        if path not in self._names:
            raise Decline
        return self._names[path]

    def _name_attribute(self, messages) -> str | None:
        found = None
        for kind, data in messages:
            if kind != _ATTRIBUTE:
                continue
            name, value = self._attribute(data)
            if name == "name":
                if found is not None:
                    raise Decline  # two attributes of one name
                found = value
        return found

    def root_attributes(self) -> bool:
        """Whether the root group has attributes (``model_config``, ``layer_names``: not a Keras 3 file)."""
        return any(kind == _ATTRIBUTE for kind, _ in self._headers.get("", ()))

    def _attribute(self, data: bytes) -> tuple[str, str | None]:
        if len(data) < 8:
            raise Decline
        version, flags, name_size, type_size, space_size = struct.unpack_from("<BBHHH", data)
        if version == 1:
            at, pad = 8, 8
        elif version in (2, 3):
            if flags:
                raise Decline  # a shared datatype or dataspace
            at, pad = (8, 1) if version == 2 else (9, 1)
        else:
            raise Decline

        def take(n: int) -> bytes:
            nonlocal at
            if at + n > len(data):
                raise Decline
            piece = data[at:at + n]
            at += (n + pad - 1) // pad * pad
            return piece

        raw_name = take(name_size)
        if not raw_name.endswith(b"\0"):
            raise Decline
        try:
            name = raw_name[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise Decline from None
        if name != "name":
            raise Decline  # Keras writes no other attribute on a group of a weights file
        datatype = take(type_size)
        space = take(space_size)
        if space[:4] not in (b"\x01\x00\x00\x00", b"\x02\x00\x00\x00") or _dataspace(space) != ():
            raise Decline  # a name that is not one string
        # A variable-length string (class 9, version 1) of UTF-8 or ASCII, 16-byte handles, over the 1-byte
        # unsigned characters libhdf5 writes for it: exactly these bytes, or h5py reads it.
        if (type_size != 20 or datatype[0] != 0x19 or datatype[1] & 0x0F != 1 or datatype[1] >> 4 > 2
                or datatype[2] not in (0, 1) or datatype[3] or datatype[4:8] != b"\x10\x00\x00\x00"
                or datatype[8:20] != _CHAR):
            raise Decline
        if at + 16 > len(data) or (at + 16 + 7) // 8 * 8 < len(data):
            raise Decline
        length, collection, index = struct.unpack_from("<IQI", data, at)
        return name, self._global_string(collection, index, length)

    def _global_string(self, collection: int, index: int, length: int) -> str:
        data = self._collections.get(collection)
        if data is None:
            self._claim(collection, "global heap")
            head = self.read(collection, 16)
            if head[:4] != b"GCOL" or head[4] != 1:
                raise Decline
            (size,) = struct.unpack_from("<Q", head, 8)
            if size > MAX_ATTR_BYTES + 4096 or size < 16 or len(self._collections) > MAX_OBJECTS:
                raise Decline
            data = self._collections[collection] = self.read(collection, size)
        size = len(data)
        at = 16
        while at + 16 <= size:
            number, _refs, _, n = struct.unpack_from("<HHIQ", data, at)
            if number == 0:
                break  # free space: the rest of the collection
            if number == index:
                if n != length or at + 16 + n > size:
                    raise Decline
                try:
                    return data[at + 16:at + 16 + n].decode("utf-8")
                except UnicodeDecodeError:
                    raise Decline from None
            at += 16 + (n + 7) // 8 * 8
        raise Decline


def _check_keys(keys: list[bytes], low: bytes | None, high: bytes | None) -> None:
    """A B-tree node's keys in order, within the bounds its parent's keys set."""
    if low is not None and keys[0] < low or high is not None and keys[-1] > high:
        raise Decline
    if any(later < earlier for earlier, later in zip(keys, keys[1:])):
        raise Decline


def _name_at(names: bytes, offset: int) -> bytes:
    """The NUL-terminated name at ``offset`` of a local heap's data (bytes: libhdf5 compares them with strcmp)."""
    end = names.find(b"\0", offset)
    if offset >= len(names) or end < 0:
        raise Decline
    return names[offset:end]


def _fill_value(data: bytes) -> None:
    """A fill value message of version 2 (what libhdf5 writes for h5py by default), checked field by field."""
    if len(data) < 4 or data[0] != 2 or data[1] not in (1, 2, 3) or data[2] not in (0, 1, 2) or data[3] > 1:
        raise Decline
    if data[3]:
        if len(data) < 8:
            raise Decline
        (size,) = struct.unpack_from("<I", data, 4)
        if 8 + size > len(data):
            raise Decline


def _dataspace(data: bytes) -> tuple[int, ...]:
    if len(data) < 8:
        raise Decline
    version, rank, flags = data[0], data[1], data[2]
    if version == 1:
        if flags & ~0x01:
            raise Decline  # a permutation index
        at = 8
    elif version == 2:
        if data[3] == 2:
            raise Decline  # a null dataspace
        at = 4
    else:
        raise Decline
    has_max = flags & 0x01
    if rank > 32 or at + rank * 8 * (2 if has_max else 1) > len(data):
        raise Decline
    dims = struct.unpack_from(f"<{rank}Q", data, at)
    if has_max:
        limits = struct.unpack_from(f"<{rank}Q", data, at + rank * 8)
        if any(top != _UNDEFINED and top < d for d, top in zip(dims, limits)):
            raise Decline  # a maximum below the size: libhdf5 refuses it
    return tuple(dims)


def _numeric_type(data: bytes) -> tuple[str, int]:
    """The dtype as numpy names it (``float32``, ``int64``) and its size; Decline for any other type."""
    if len(data) < 12:
        raise Decline
    cls, version, bits0, bits1, bits2 = data[0] & 0x0F, data[0] >> 4, data[1], data[2], data[3]
    (size,) = struct.unpack_from("<I", data, 4)
    if version != 1 or bits2:
        raise Decline
    offset, precision = struct.unpack_from("<HH", data, 8)
    if offset != 0 or precision != size * 8:
        raise Decline
    if cls == 0:  # fixed-point
        if bits0 & ~0x08 or bits1 or size not in (1, 2, 4, 8):
            raise Decline  # big-endian or padded
        return ("int" if bits0 & 0x08 else "uint") + str(size * 8), size
    if cls == 1:  # floating point
        ieee = _ieee(size)
        if ieee is None or len(data) < 20:
            raise Decline
        exp_at, exp_size, mant_at, mant_size = data[12], data[13], data[14], data[15]
        (bias,) = struct.unpack_from("<I", data, 16)
        # Little-endian, no padding, the mantissa's leading bit implied (0x20): IEEE 754 as numpy writes it.
        if bits0 != 0x20 or (bits1, exp_at, exp_size, mant_size, bias) != ieee or mant_at:
            raise Decline  # big-endian, VAX, or not IEEE
        return f"float{size * 8}", size
    raise Decline


def enabled() -> bool:
    """Whether this reader is tried first (``ARCHDIFF_LITE_HDF5``, default on)."""
    return os.environ.get("ARCHDIFF_LITE_HDF5", "1") not in ("0", "false", "no")


def open_lite(path: str, *, offset: int = 0, size: int | None = None, bare_root: bool = False) -> LiteFile | None:
    """The tree of the HDF5 file at ``path`` (or of the ``size`` bytes at ``offset``: a stored zip member),
    or None where this reader declines it (``bare_root``: as :class:`LiteFile`). ``ARCHDIFF_LITE_HDF5=0``
    declines every file: h5py reads them all, as before this reader."""
    if not enabled():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return lite_from_fd(fd, offset=offset, size=size, where=path, bare_root=bare_root)
    finally:
        os.close(fd)


def lite_from_fd(fd: int, *, offset: int = 0, size: int | None = None, where: str,
                 bare_root: bool = False) -> LiteFile | None:
    """As :func:`open_lite`, over a file descriptor the caller keeps open (and closes)."""
    total = os.fstat(fd).st_size
    length = total - offset if size is None else size
    if offset < 0 or length < 0 or offset + length > total:
        return None

    def read(at: int, n: int) -> bytes:
        return os.pread(fd, n, offset + at)

    try:
        lite = LiteFile(read, length, bare_root=bare_root)
        # The h5py reader refuses a corrupt global heap (hdf5_heaps): so is it declined here, and refused there.
        check_heap_regions(lite.read_up_to, lite.size, lite.extents(), where=where)
        return lite
    except (Decline, InputError, struct.error, IndexError, ValueError, OverflowError, MemoryError,
            RecursionError, OSError):
        return None
