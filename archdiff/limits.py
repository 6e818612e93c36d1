"""archdiff's documented caps on what it reads from an untrusted file.

Each cap, when exceeded, raises LimitExceededError with a clear message, so
a hostile file fails fast instead of eating memory. They are constants, not
settings: change them here (and in the README's "Limits" table) if a real
model needs more. Every cap archdiff applies to input lives in this module,
and so do the cyclic collector's settings while a command reads and compares
(:data:`GC_THRESHOLDS`, :func:`collector_paused`), which big inputs make costly.
"""
from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Bytes read from one text member of a .keras zip (config.json, metadata.json),
#: from a .json / .yaml file, or from one HDF5 attribute (model_config). The
#: largest Keras application's config is about 2 MB; parsed, a hostile config
#: can take about 25 times its size in memory, so this also bounds memory.
MAX_CONFIG_BYTES = 64 * 1024 * 1024
#: Bytes a compressed zip member may inflate to when it must be copied out.
MAX_ZIP_MEMBER_BYTES = 64 * 1024 * 1024 * 1024
#: A compressed zip member that declares more than ZIP_BOMB_FLOOR_BYTES and
#: more than ZIP_MAX_EXPANSION times its compressed size is a decompression
#: bomb (Keras stores members uncompressed; deflate cannot exceed ~1032:1).
ZIP_BOMB_FLOOR_BYTES = 256 * 1024 * 1024
ZIP_MAX_EXPANSION = 100
#: Members in a .keras zip.
MAX_ZIP_MEMBERS = 100_000
#: Nesting depth of JSON / YAML documents (a model nested in a model adds about
#: three levels; Python code that walks a config recursively stays well inside
#: the interpreter's recursion limit).
MAX_DOCUMENT_DEPTH = 200
#: Nodes (mappings, sequences, scalars) a YAML document may hold, and may
#: expand to with anchors and aliases: stops "billion laughs", and bounds the
#: memory PyYAML spends on the document (about 300 bytes a node).
MAX_YAML_NODES = 1_000_000
#: An HDF5 dataset that declares more than DATASET_BOMB_FLOOR_BYTES and more
#: than DATASET_MAX_EXPANSION times the bytes it stores (a huge shape with
#: nothing allocated, or a compression bomb) is refused, as Keras refuses it.
DATASET_BOMB_FLOOR_BYTES = 256 * 1024 * 1024
DATASET_MAX_EXPANSION = 1000
#: Bytes copied from a stream (stdin, a pipe, a FIFO) or a git blob into a temporary file to read it.
MAX_STREAM_BYTES = 16 * 1024 * 1024 * 1024
#: Largest HDF5 attribute archdiff reads (model_config, layer_names ...), in bytes.
MAX_ATTR_BYTES = MAX_CONFIG_BYTES
#: Deepest group nesting walked in a Keras 3 weights file.
MAX_GROUP_DEPTH = 64
#: Most groups and datasets walked in one HDF5 file.
MAX_OBJECTS = 2_000_000
#: Nested models deeper than this are refused (a config is untrusted input).
MAX_MODEL_DEPTH = 64
#: Layers in one model, all scopes together.
MAX_LAYERS = 1_000_000

#: The cyclic collector's thresholds while a command (or a reader child) runs. A command builds hundreds of
#: thousands of small, acyclic objects (a 10,000-layer pair: about 3 million) and frees few; at Python's
#: default (700) each full pass walks all of them, and they took a third of a 10,000-layer diff
#: (bench/bench_diff.py). Cycles are still collected, less often.
GC_THRESHOLDS = (50_000, 20, 100)


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off while a block builds a large acyclic structure (a read, a diff), as it was after.

    Even at :data:`GC_THRESHOLDS` each object a read makes is walked once as young and once more before it is
    old (a 10,000-layer pair: about 6 million walks, a fifth of its diff); the objects a read or a diff makes
    hold no cycles, so nothing is left for the collector to find. Reference counting still frees everything.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
