"""One entry point, :func:`load`, that reads any model input into an Architecture.

This module owns picking the reader by file type and content, and combining
a config (topology) with the weight specs read from HDF5. Supported inputs:
``.keras`` zips, legacy full-model ``.h5``/``.hdf5`` (Keras 2 and 3), Keras 3
``.weights.h5`` (also sharded: ``*.weights.json`` + shards, and the Keras
2.13-2.15 layout), Keras 2 weights-only ``.h5``, ``.json`` (``to_json`` or
``get_config``), ``.yaml``/``.yml`` (safe loader only), and a Python factory
``package.module:callable`` (the one reader that imports TensorFlow).
"""
from __future__ import annotations

import json
import os
import re
import stat
import zipfile
import zlib
from dataclasses import replace
from typing import Any, Mapping

from archdiff.read import hdf5 as h5
from archdiff.read.config import ParsedConfig, parse
from archdiff.errors import InputError, LimitExceededError, UnsafeInputError, UnsupportedFormatError
from archdiff.limits import MAX_CONFIG_BYTES, MAX_DOCUMENT_DEPTH, MAX_YAML_NODES, MAX_ZIP_MEMBERS
from archdiff.model import Architecture, Layer, Source, WeightSpec

SUPPORTED = (
    ".keras, .h5/.hdf5 (full model or weights), .weights.h5, .weights.json (sharded), "
    ".json (to_json or get_config), .yaml/.yml, or package.module:callable"
)

_FACTORY_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def load(spec: str | os.PathLike, *, factory_kwargs: Mapping[str, Any] | None = None,
         infer_shapes: bool = True) -> Architecture:
    """Read a model file or factory spec into an :class:`Architecture`.

    ``factory_kwargs`` are passed to a ``module:callable`` factory.
    ``infer_shapes`` fills output shapes (and, for config-only inputs, weight
    specs) from the configs where the file does not record them.
    """
    text = os.fspath(spec)
    if not os.path.lexists(text) and _FACTORY_SPEC.match(text):
        from archdiff.read.factory import load_factory

        arch = load_factory(text, dict(factory_kwargs or {}))
    else:
        arch = _load_path(text)
    if infer_shapes and arch.has_topology:
        arch = _infer(arch)
        if arch.has_weights:
            arch = name_positional_weights(arch)
    return arch


def _infer(arch: Architecture) -> Architecture:
    from archdiff.shapes import infer

    try:
        return infer(arch)
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
        raise InputError(
            "this is a directory, not a model file",
            path=path,
            hint="a TensorFlow SavedModel directory is not supported; save with model.save('model.keras')",
        )
    if not stat.S_ISREG(st.st_mode):
        raise InputError("not a regular file", path=path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(8)
    except OSError as exc:
        raise InputError(f"cannot read the file ({exc.strerror})", path=path) from None

    lower = path.lower()
    if magic.startswith(b"PK\x03\x04") or (lower.endswith(".keras") and magic[:2] == b"PK"):
        return read_keras_zip(path)
    if magic == b"\x89HDF\r\n\x1a\n":
        return read_h5(path)
    if lower.endswith(".keras"):
        raise InputError("a .keras file must be a zip archive, and this one is not",
                         path=path, hint="the file may be truncated; save it again with model.save()")
    if lower.endswith((".h5", ".hdf5")):
        raise InputError("not an HDF5 file (bad signature)", path=path,
                         hint="the file may be truncated or mislabelled")
    if lower.endswith(".json"):
        document = read_json_file(path)
        if isinstance(document, dict) and "weight_map" in document:
            return read_sharded(path, document)
        return from_config_document(document, path=path, fmt="json")
    if lower.endswith((".yaml", ".yml")):
        document = read_yaml_file(path)
        return from_config_document(document, path=path, fmt="yaml")
    raise UnsupportedFormatError(f"unknown model file type '{os.path.splitext(path)[1] or path}'",
                                 path=path, hint=f"archdiff reads {SUPPORTED}")


# -- text documents -------------------------------------------------------------
def _read_bounded(path: str) -> bytes:
    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise LimitExceededError(f"the file holds {size} bytes, over archdiff's limit of {MAX_CONFIG_BYTES} for a config",
                                 path=path)
    with open(path, "rb") as fh:
        return fh.read()


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def parse_json_bytes(data: bytes, *, where: str) -> Any:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=where, hint="a model config is JSON in UTF-8") from None
    try:
        document = json.loads(text)
    except RecursionError:
        raise LimitExceededError("the JSON nests too deeply to be a model config", path=where) from None
    except ValueError as exc:
        raise InputError(f"not valid JSON ({' '.join(str(exc).split())[:200]})", path=where) from None
    check_document(document, where=where, surrogates=bool(_SURROGATE_ESCAPE.search(text)))
    return document


def check_document(document: Any, *, where: str, surrogates: bool = True) -> None:
    """Refuse a parsed JSON/YAML document nested deeper than MAX_DOCUMENT_DEPTH, or holding
    text that is not Unicode (a lone surrogate, which JSON's \\uD800 escapes can make).

    Walks the containers level by level, without recursion; the code that
    consumes configs recurses, and stays within Python's limit thanks to this
    bound.
    """
    containers = (dict, list)
    level = [document] if type(document) in containers else []
    depth = 1
    while level:
        if depth > MAX_DOCUMENT_DEPTH:
            raise LimitExceededError(f"the document nests deeper than {MAX_DOCUMENT_DEPTH} levels", path=where,
                                     hint="no Keras model config nests this deeply")
        below: list = []
        for obj in level:
            below += [v for v in (obj.values() if type(obj) is dict else obj) if type(v) in containers]
        level = below
        depth += 1
    if surrogates:
        _check_surrogates(document, where)


def _check_surrogates(document: Any, where: str) -> None:
    stack = [document]
    while stack:
        obj = stack.pop()
        if isinstance(obj, str):
            _check_text(obj, where)
        elif isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list):
            stack.extend(obj)


def _check_text(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"the text {text.encode('utf-8', 'backslashreplace').decode('ascii')[:80]!r} holds a lone "
                         "surrogate: it is not valid Unicode", path=where,
                         hint="a \\uD800-\\uDFFF escape must be half of a pair; the file is corrupt") from None


def read_json_file(path: str) -> Any:
    return parse_json_bytes(_read_bounded(path), where=path)


def read_yaml_file(path: str) -> Any:
    return parse_yaml_text(_read_bounded(path), where=path)


def _yaml_loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class Loader(base):  # type: ignore[misc, valid-type]
        """Safe YAML that builds JSON's types only, plus old Keras' ``!!python/tuple`` read as a plain list."""

    def _tuple(loader, node):
        return loader.construct_sequence(node)

    def _as_text(loader, node):
        # An unquoted 2024-01-01 is a name or a value as written, not a date.
        return loader.construct_scalar(node)

    def _refuse(loader, node):
        raise yaml.constructor.ConstructorError(
            None, None, f"a YAML {node.tag.rsplit(':', 1)[-1]} value is not part of a Keras config", node.start_mark)

    Loader.add_constructor("tag:yaml.org,2002:python/tuple", _tuple)
    Loader.add_constructor("tag:yaml.org,2002:timestamp", _as_text)
    for tag in ("binary", "set", "omap", "pairs"):
        Loader.add_constructor(f"tag:yaml.org,2002:{tag}", _refuse)
    return yaml, Loader


def parse_yaml_text(data: bytes, *, where: str) -> Any:
    yaml, Loader = _yaml_loader()
    try:
        _check_yaml_events(Loader, data, where)
        loader = Loader(data)
        try:
            node = loader.get_single_node()
            if node is None:
                raise InputError("the YAML document is empty", path=where)
            _check_yaml_size(node, where)
            document = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.constructor.ConstructorError as exc:
        problem = " ".join(str(getattr(exc, "problem", "") or exc).split())[:160]
        if "tag" in problem:
            raise UnsafeInputError(
                f"the YAML uses a tag archdiff will not construct ({problem})",
                path=where,
                hint="archdiff loads YAML safely only; python/object tags could run code",
            ) from None
        raise InputError(f"the YAML holds something a model config cannot ({problem})", path=where) from None
    except RecursionError:
        raise LimitExceededError("the YAML nests too deeply to be a model config", path=where) from None
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({' '.join(str(exc).split())[:200]})", path=where) from None
    except (ValueError, OverflowError, TypeError) as exc:
        # A scalar PyYAML cannot convert: an integer of more than 4,300 digits, say.
        raise InputError(f"the YAML holds a value archdiff cannot read ({' '.join(str(exc).split())[:160]})",
                         path=where) from None
    check_document(document, where=where)
    return document


def _check_yaml_events(Loader, data: bytes, where: str) -> None:
    """Depth and node count, from the event stream, before anything is composed.

    libyaml's composer recurses in C (a deep document crashes the process) and
    builds a Python object per node: both are bounded here first.
    """
    import yaml

    loader = Loader(data)
    try:
        depth = 0
        nodes = 0
        while True:
            event = loader.get_event()
            if event is None or isinstance(event, yaml.StreamEndEvent):
                break
            if isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                nodes += 1
                if depth > MAX_DOCUMENT_DEPTH:
                    raise LimitExceededError(f"the YAML nests deeper than {MAX_DOCUMENT_DEPTH} levels", path=where,
                                             hint="no Keras model config nests this deeply")
            elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
            elif isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                nodes += 1
            if nodes > MAX_YAML_NODES:
                raise LimitExceededError(f"the YAML holds more than {MAX_YAML_NODES} nodes", path=where,
                                         hint="no Keras model config is this large")
    finally:
        loader.dispose()


def _check_yaml_size(root, where: str) -> None:
    """Count the nodes the document expands to, aliases included, without expanding it."""
    import yaml

    sizes: dict[int, int] = {}
    stack = [(root, 0, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if key in sizes and not done:
            continue
        if depth > MAX_DOCUMENT_DEPTH:
            raise LimitExceededError(f"the YAML nests deeper than {MAX_DOCUMENT_DEPTH} levels", path=where)
        if isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        else:
            sizes[key] = 1
            continue
        if done:
            total = 1 + sum(sizes.get(id(k), 1) for k in kids)
            sizes[key] = min(total, MAX_YAML_NODES + 1)
            continue
        sizes[key] = -1  # in progress: a self-reference counts once
        stack.append((node, depth, True))
        for k in kids:
            if id(k) not in sizes:
                stack.append((k, depth + 1, False))
    if sizes.get(id(root), 0) > MAX_YAML_NODES:
        raise LimitExceededError(
            f"the YAML expands to more than {MAX_YAML_NODES} nodes (anchors and aliases included)",
            path=where,
            hint="this looks like a 'billion laughs' document, not a model",
        )


def from_config_document(document: Any, *, path: str, fmt: str) -> Architecture:
    parsed = parse(document, where=path)
    return _architecture(parsed, path=path, fmt=fmt, weights=None)


# -- .keras -----------------------------------------------------------------------
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
            with h5.open_zip_member_h5(path, zf, "model.weights.h5", where=f"{path}:model.weights.h5") as f:
                tree = h5.read_keras3_tree([f], where=f"{path}:model.weights.h5")
            return _architecture(parsed, path=path, fmt="keras", weights=("keras3", tree))
        if "model.weights.json" in names:
            raise InputError("sharded weights inside a .keras zip are not read yet", path=path,
                             hint="save the weights unsharded, or pass the .weights.json file itself")
        return _architecture(parsed, path=path, fmt="keras", weights=None)


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


# -- .h5 --------------------------------------------------------------------------
def read_h5(path: str) -> Architecture:
    with h5.open_h5(path, where=path) as f:
        if not h5.has_keras3_layout(f):
            # Keras 3 trees are scanned as they are read; check the legacy layouts file-wide too.
            h5.scan(f, where=path)
        config_text = h5.read_attr(f, "model_config", where=path)
        if config_text is not None:
            if not isinstance(config_text, str):
                raise InputError("the 'model_config' attribute is not text", path=path)
            document = parse_json_bytes(config_text.encode("utf-8", "surrogatepass"), where=f"{path}@model_config")
            parsed = parse(document, where=f"{path}@model_config")
            version = h5.read_attr(f, "keras_version", where=path)
            backend = h5.read_attr(f, "backend", where=path)
            if isinstance(version, str):
                parsed = replace(parsed, keras_version=version,
                                 dialect="keras2" if version.startswith("2.") else "keras3")
            if isinstance(backend, str):
                parsed = replace(parsed, backend=backend)
            weights = None
            if "model_weights" in f:
                root = h5.legacy_root(f, where=path)
                weights = ("legacy", h5.read_legacy_weights(root, where=path))
            return _architecture(parsed, path=path, fmt="h5", weights=weights)
        if h5.has_legacy_layout(f, where=path):
            entries = h5.read_legacy_weights(f, where=path)
            version = h5.read_attr(f, "keras_version", where=path)
            return _weights_only_legacy(entries, path=path, version=version if isinstance(version, str) else None)
        if h5.has_keras3_layout(f):
            tree = h5.read_keras3_tree([f], where=path)
            return _weights_only_keras3(tree, path=path, fmt="weights.h5")
    raise InputError("HDF5 file holds neither a Keras model nor Keras weights", path=path,
                     hint="expected 'model_config', 'layer_names' or a 'layers' group")


def read_sharded(path: str, index: Mapping) -> Architecture:
    """Keras 3 sharded weights: the ``.weights.json`` index and its shard files."""
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict):
        raise InputError("'weight_map' is not a mapping", path=path)
    shard_names: list[str] = []
    for value in weight_map.values():
        for name in value if isinstance(value, list) else [value]:
            if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
                raise UnsafeInputError(f"shard name {name!r} is not a plain file name", path=path)
            if name not in shard_names:
                shard_names.append(name)
    folder = os.path.dirname(os.path.abspath(path))
    from contextlib import ExitStack

    with ExitStack() as stack:
        files = []
        for name in shard_names:
            shard_path = os.path.join(folder, name)
            if not os.path.isfile(shard_path):
                raise InputError(f"shard '{name}' named in the index is missing", path=path)
            files.append(stack.enter_context(h5.open_h5(shard_path, where=shard_path)))
        tree = h5.read_keras3_tree(files, where=path)
    return _weights_only_keras3(tree, path=path, fmt="weights.json")


# -- assembling -------------------------------------------------------------------
def _architecture(parsed: ParsedConfig, *, path: str, fmt: str, weights) -> Architecture:
    source = Source(path=path, format=fmt, keras_version=parsed.keras_version,
                    backend=parsed.backend, dialect=parsed.dialect)
    notes: list[str] = []
    layers = list(parsed.layers)
    has_weights = False
    if not parsed.has_topology:
        notes.append(f"'{parsed.class_name}' is a subclassed model: its config holds no layers, "
                     "so the topology is unknown; its layers are listed from its weights")
        if weights is not None and weights[0] == "keras3":
            sub = _weights_only_keras3(weights[1], path=path, fmt=fmt)
            return replace(sub, name=parsed.name, class_name=parsed.class_name, config=parsed.serialized,
                           source=source, notes=tuple(notes) + sub.notes[1:])
        if weights is not None and weights[0] == "legacy":
            sub = _weights_only_legacy(weights[1], path=path, version=parsed.keras_version)
            return replace(sub, name=parsed.name, class_name=parsed.class_name, config=parsed.serialized,
                           source=source, notes=tuple(notes))
    elif weights is not None:
        kind, data = weights
        if kind == "legacy":
            layers, missing = attach_legacy(layers, data)
        else:
            layers, missing = attach_keras3(layers, data, top_class=parsed.class_name)
        has_weights = True
        if missing:
            notes.append("no weights found in the file for: " + ", ".join(missing[:10])
                         + (f" and {len(missing) - 10} more" if len(missing) > 10 else ""))
    return Architecture(
        name=parsed.name, class_name=parsed.class_name, layers=tuple(layers), source=source,
        inputs=parsed.inputs, outputs=parsed.outputs, has_topology=parsed.has_topology,
        has_weights=has_weights, config=parsed.serialized, notes=tuple(notes),
        input_specs=parsed.input_specs,
    )


def _spec(info: h5.VarInfo, *, trainable: bool | None = None) -> WeightSpec:
    leaf = info.name.rsplit("/", 1)[-1]
    if trainable is None:
        trainable = leaf not in h5.NON_TRAINABLE_NAMES
    return WeightSpec(name=info.name, shape=info.shape, dtype=info.dtype, trainable=trainable,
                      location=info.location)


def attach_legacy(layers: list[Layer], entries) -> tuple[list[Layer], list[str]]:
    """Give each layer the variables a legacy file lists under its name."""
    by_path = {layer.path: i for i, layer in enumerate(layers)}
    children: dict[str, set[str]] = {}
    for layer in layers:
        children.setdefault(layer.parent, set()).add(layer.name)
    collected: dict[str, list[WeightSpec]] = {}
    for layer_name, infos in entries:
        if layer_name not in by_path:
            continue
        for info in infos:
            target, rel = _descend(layer_name, info.name, layers, by_path, children)
            collected.setdefault(target, []).append(_spec(h5.VarInfo(rel, info.shape, info.dtype, info.location)))
    out = []
    missing = []
    present = {name for name, _ in entries}
    for layer in layers:
        if layer.is_model:
            out.append(replace(layer, weights=()))
            continue
        specs = collected.get(layer.path)
        if specs is None:
            top = layer.path.split("/", 1)[0]
            if top not in present:
                missing.append(layer.path)
            specs = []
        out.append(replace(layer, weights=tuple(specs)))
    return out, missing


def _descend(path: str, rel: str, layers, by_path, children) -> tuple[str, str]:
    """Walk a variable's relative name down into nested models."""
    while layers[by_path[path]].is_model:
        parts = rel.split("/")
        name = layers[by_path[path]].name
        if len(parts) > 1 and parts[0] == name and parts[1] in children.get(path, ()):
            parts = parts[1:]
        if len(parts) > 1 and parts[0] in children.get(path, ()):
            path = f"{path}/{parts[0]}"
            rel = "/".join(parts[1:])
        else:
            break
    return path, rel


def attach_keras3(layers: list[Layer], tree: h5.SaveableNode, *, top_class: str) -> tuple[list[Layer], list[str]]:
    """Give each layer its variables from a Keras 3 weights tree."""
    assigned: dict[str, h5.SaveableNode] = {}

    def match(scope: str, node: h5.SaveableNode) -> None:
        members = [layer for layer in layers if layer.parent == scope]
        by_real = {n.real_name: n for n in node.layers if n.real_name}
        by_key = {n.key: n for n in node.layers}
        # Keras walks model.layers: a Sequential's omits its InputLayer, as ours does.
        autos = h5.auto_names([m.class_name if not m.is_model else _saved_class(m.class_name) for m in members])
        for member, auto in zip(members, autos):
            found = by_real.get(member.name) if by_real else None
            if found is None and not by_real:
                found = by_key.get(auto)
            if found is None:
                continue
            assigned[member.path] = found
            if member.is_model:
                match(member.path, found)

    match("", tree)
    out = []
    missing = []
    for layer in layers:
        if layer.is_model:
            out.append(replace(layer, weights=()))
            continue
        node = assigned.get(layer.path)
        if node is None:
            missing.append(layer.path)
            out.append(replace(layer, weights=()))
            continue
        out.append(replace(layer, weights=tuple(_spec(v) for v in node.all_variables())))
    return out, missing


def _saved_class(class_name: str) -> str:
    # A Keras 2 "Model" config is rebuilt (and saved) by Keras 3 as Functional.
    return "Functional" if class_name == "Model" else class_name


def name_positional_weights(arch: Architecture) -> Architecture:
    """Keras 3 files keep a layer's variables by position (0, 1, ...): name them.

    The names, order and trainable flags come from the variables Keras creates
    for the layer's class and config on the shapes it receives; they are used
    only where the count and every shape agree with the file.
    """
    from archdiff.shapes import layer_weights

    layers = list(arch.layers)
    changed = False
    for i, layer in enumerate(layers):
        if not layer.weights or not all(w.name.isdigit() for w in layer.weights):
            continue
        try:
            expected = layer_weights(layer.class_name, dict(layer.config), _input_shapes(arch, layer),
                                     dialect=arch.source.dialect)
        except Exception:  # noqa: BLE001 - naming is a nicety; positions stay when it fails
            expected = None
        if not expected or len(expected) != len(layer.weights):
            continue
        if any(tuple(e.shape) != tuple(w.shape) for e, w in zip(expected, layer.weights)):
            continue
        layers[i] = replace(layer, weights=tuple(
            replace(w, name=e.name, trainable=e.trainable) for w, e in zip(layer.weights, expected)))
        changed = True
    return replace(arch, layers=tuple(layers)) if changed else arch


def _input_shapes(arch: Architecture, layer: Layer) -> list:
    """The shapes a layer's first call receives, from its producers' output shapes."""
    if not layer.calls:
        return [None]
    call = layer.calls[0]
    if call.input_shapes:
        return list(call.input_shapes)
    specs = {s.name: s.shape for s in arch.input_specs}
    out = []
    for ref in call.inputs:
        producer = arch.by_path.get(f"{layer.parent}/{ref.layer}" if layer.parent else ref.layer)
        if producer is not None and producer.output_shapes and ref.tensor_index < len(producer.output_shapes):
            out.append(producer.output_shapes[ref.tensor_index])
        elif not layer.parent and ref.layer in specs:
            out.append(specs[ref.layer])
        elif layer.parent and producer is None and layer.parent in arch.by_path:
            # A nested Sequential's implicit input: what its model receives.
            holder = _input_shapes(arch, arch.by_path[layer.parent])
            out.append(holder[0] if holder else None)
        else:
            out.append(None)
    return out


def _weights_only_legacy(entries, *, path: str, version: str | None) -> Architecture:
    layers = []
    for index, (name, infos) in enumerate(entries):
        layers.append(Layer(name=name, path=name, class_name="?", index=index, depth=0,
                            weights=tuple(_spec(i) for i in infos)))
    source = Source(path=path, format="h5-weights", keras_version=version,
                    dialect="keras2" if (version or "2.").startswith("2.") else "keras3")
    return Architecture(
        name=os.path.basename(path), class_name=None, layers=tuple(layers), source=source,
        has_topology=False, has_weights=True,
        notes=("weights-only file: the topology is unknown (layers, their order and weights are from the file; "
               "classes and connections are not recorded)",),
    )


def _weights_only_keras3(tree: h5.SaveableNode, *, path: str, fmt: str) -> Architecture:
    layers: list[Layer] = []

    def add(node: h5.SaveableNode, parent: str, depth: int) -> None:
        names = [item.real_name or item.key for item in node.layers]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise InputError(f"two layers of the weights file are called '{twice}' (one by its name, one by "
                             "Keras' auto name)", path=path,
                             hint="the file is corrupt or was not written by Keras")
        for index, item in enumerate(node.layers):
            name = item.real_name or item.key
            full = f"{parent}/{name}" if parent else name
            stem = re.sub(r"_\d+$", "", item.key)
            layers.append(Layer(
                name=name, path=full, class_name=f"?{stem}", index=index, depth=depth, parent=parent,
                weights=() if item.is_model else tuple(_spec(v) for v in item.all_variables()),
                is_model=item.is_model,
            ))
            if item.is_model:
                add(item, full, depth + 1)

    keyed_by_class = bool(tree.layers)
    if not tree.layers and tree.objects:
        # A subclassed model: Keras saves its layers under their attribute names.
        tree = h5.SaveableNode(tree.key, tree.path, tree.real_name, tree.variables,
                               layers=[tree.objects[k] for k in sorted(tree.objects, key=h5.natural_key)])
    add(tree, "", 0)
    notes = ["weights-only file: the topology is unknown (Keras 3 keys weights by class and order, so layer "
             "order and classes are not recorded)"]
    if keyed_by_class and not _has_real_names(tree):
        notes.append("the file holds no layer names (written by tf-keras or Keras 2.13-2.15): layers are shown "
                     "by Keras' auto names, class in snake case + order, e.g. dense_1")
    source = Source(path=path, format=fmt, dialect="keras3")
    return Architecture(
        name=tree.real_name or os.path.basename(path), class_name=None, layers=tuple(layers), source=source,
        has_topology=False, has_weights=True,
        notes=tuple(notes),
    )


def _has_real_names(node: h5.SaveableNode) -> bool:
    return any(item.real_name or _has_real_names(item) for item in node.layers)
