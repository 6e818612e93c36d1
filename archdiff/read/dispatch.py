"""One entry point, :func:`load`, that reads any model input into an Architecture.

This module owns picking the reader by file type and content; one module per
on-disk layout does the reading (``keras_zip``, ``legacy_h5``, ``keras3_h5``,
``documents``, ``factory``) and ``assemble`` joins a config with its weights. Supported inputs:
``.keras`` zips, legacy full-model ``.h5``/``.hdf5`` (Keras 2 and 3), Keras 3
``.weights.h5`` (also sharded: ``*.weights.json`` + shards, and the Keras
2.13-2.15 layout), Keras 2 weights-only ``.h5``, ``.json`` (``to_json`` or
``get_config``), ``.yaml``/``.yml`` (safe loader only), and a Python factory
``package.module:callable`` (the one reader that imports TensorFlow).
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import replace
from typing import Any, Mapping

from archdiff.errors import ArchdiffError, InputError, UnsupportedFormatError
from archdiff.limits import collector_paused
from archdiff.model import Architecture
from archdiff.read.assemble import name_positional_weights
from archdiff.read.contain import contained, start
from archdiff.read.documents import from_config_document, read_json_file, read_yaml_file
from archdiff.read.inputs import looks_like_git_spec, resolve
from archdiff.read.keras3_h5 import read_sharded
from archdiff.read.keras_zip import read_keras_zip
from archdiff.read.legacy_h5 import read_h5
from archdiff.read.preset import is_preset, read_preset
from archdiff.read.sniff import HDF5, JSON, YAML, ZIP, choose_reader, format_from_name

SUPPORTED = (
    ".keras, .h5/.hdf5 (full model or weights), .weights.h5, .weights.json (sharded), "
    ".json (to_json or get_config), .yaml/.yml, a keras-hub preset folder, or package.module:callable"
)

_FACTORY_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load(spec: str | os.PathLike, *, factory_kwargs: Mapping[str, Any] | None = None,
         infer_shapes: bool = True, input_format: str | None = None, build: bool = False,
         imports: tuple[str, ...] = ()) -> Architecture:
    """Read a model file or factory spec into an :class:`Architecture`.

    ``factory_kwargs`` are passed to a ``module:callable`` factory.
    ``infer_shapes`` fills output shapes (and, for config-only inputs, weight
    specs) from the configs where the file does not record them. ``-``
    (stdin), pipes, FIFOs and git ``REV:PATH`` specs are read through a bounded
    temporary copy (:mod:`archdiff.read.inputs`); ``input_format`` names their
    format when the content should not decide.
    """
    text = os.fspath(spec)
    label = None
    if text == "-" or looks_like_git_spec(text) or os.path.exists(text):
        text, label = resolve(text, input_format)
    if not os.path.lexists(text) and _FACTORY_SPEC.match(text):
        from archdiff.read.factory import load_factory

        arch = load_factory(text, dict(factory_kwargs or {}))
    elif _plain_json(text):
        # No C library reads a JSON config (the json module's parser is bounded here by size and depth), so
        # nothing can crash or hang out of Python's reach: read here, without a child to start and the
        # Architecture to pickle back (a third of a 10,000-layer diff).
        with collector_paused():
            arch = _load_json_here(text)
    else:
        # The file's metadata is read in a supervised child: a libhdf5 crash or hang there is one error line.
        arch = contained(_load_path, text)
    if infer_shapes and arch.has_topology:
        with collector_paused():
            arch = _infer(arch)
            if arch.has_weights:
                arch = name_positional_weights(arch)
    if build and arch.constructor is not None:
        from archdiff.read.build import build as build_model

        arch = build_model(arch, imports=imports)
    elif build and not arch.has_topology:
        arch = replace(arch, notes=arch.notes + ("--build: this input holds no config to build from (weights "
                                                 "only): read as it is",))
    if label is not None:
        arch = replace(arch, source=replace(arch.source, label=label))
    return arch


def prefetch(spec: str | os.PathLike) -> bool:
    """Start reading the model file ``spec`` in its supervised child now, beside whatever this process does next.

    A later ``load(spec)`` collects the answer (a diff or a transfer reads its
    second input while the first is read: two cores instead of one). Only a
    regular file or folder that ``load`` would hand to the child as it is:
    streams, git specs, factories and plain JSON (read in this process) are
    left to ``load``. Returns whether a read was started.
    """
    text = os.fspath(spec)
    if text == "-" or looks_like_git_spec(text):
        return False
    try:
        mode = os.stat(text).st_mode
    except (OSError, ValueError):
        return False
    if stat.S_ISDIR(mode) or (stat.S_ISREG(mode) and not _plain_json(text)):
        return start(_load_path, text)
    return False


def _plain_json(path: str) -> bool:
    """Whether ``path`` is a regular file archdiff reads as JSON (by name and content, as ``_load_path`` will).
    Anything else, or a file that cannot be told, goes to the supervised child, which says what is wrong."""
    if format_from_name(path) not in (JSON, None):  # .keras, .h5, .yaml: the child sniffs it, once
        return False
    try:
        return stat.S_ISREG(os.stat(path).st_mode) and choose_reader(path) == JSON
    except (OSError, ArchdiffError):
        return False


def _load_json_here(path: str) -> Architecture:
    """A JSON config read in this process; a sharded weights index (whose shards are HDF5) in the child."""
    try:
        document = read_json_file(path)
        if isinstance(document, dict) and "weight_map" in document:
            return contained(_load_path, path)
        return from_config_document(document, path=path, fmt="json")
    except RecursionError:  # as the child reports it (read.contain)
        raise InputError("the file nests too deeply to read", path=path) from None
    except MemoryError:
        raise InputError("reading the file needs more memory than this machine has", path=path,
                         hint="the file may be corrupt") from None


def _infer(arch: Architecture) -> Architecture:
    from archdiff import shapes

    try:
        return shapes.infer(arch)
    except RecursionError:
        return arch


def _load_path(path: str) -> Architecture:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("no such file", path=path, hint=f"give a model file: {SUPPORTED}") from None
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror})", path=path) from None
    if stat.S_ISDIR(st.st_mode):
        if is_preset(path):  # keras-hub's save_to_preset: config.json, metadata.json, model.weights.h5
            return read_preset(path)
        raise InputError(
            "this is a directory, not a model file",
            path=path,
            hint="a TensorFlow SavedModel directory is not supported (a keras-hub preset folder holds config.json); "
                 "save with model.save('model.keras')",
        )
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file", path=path)
    fmt = choose_reader(path)
    if fmt == ZIP:
        return read_keras_zip(path)
    if fmt == HDF5:
        return read_h5(path)
    if fmt == JSON:
        document = read_json_file(path)
        if isinstance(document, dict) and "weight_map" in document:
            return read_sharded(path, document)
        return from_config_document(document, path=path, fmt="json")
    if fmt == YAML:
        document = read_yaml_file(path)
        return from_config_document(document, path=path, fmt="yaml")
    raise UnsupportedFormatError(f"unknown model file type '{os.path.splitext(path)[1] or path}'",
                                 path=path, hint=f"archdiff reads {SUPPORTED}")
