"""Freezing recipes: what ``--freeze-until NAME|INDEX`` freezes, the parameter split after, the code, a copy.

The everyday question "which index do I freeze up to, to train from
``conv5_block1_1_conv`` on?" ends in code: ``for layer in
model.layers[:143]: layer.trainable = False``. :func:`plan_freeze` answers it
from a model file without TensorFlow: the recipe is the Keras
fine-tuning guide's (every layer made trainable, then the layers before the
named one frozen), so after it exactly the listed layers are frozen whatever
the file recorded. The snippet makes every layer trainable one by one,
because on the TensorFlow backend ``model.trainable = True`` does nothing
(not even to the layers inside) when the model already says ``True``. Indices follow ``model.layers`` (Keras 3 operations such as
``x + y`` are not layers and take no index, :attr:`archdiff.model.Layer.is_operation`).
A layer inside a nested model (``xception/block14_sepconv1``, or its bare name
where it is unique) freezes the top-level layers before the nested model and,
inside it, the layers before the named one: the snippet reaches into the
inner model with ``get_layer``.

:class:`FreezePlan` holds the layers with weights that would be frozen and
those left trainable, the parameter split before and after, and renders a
ready-to-paste snippet for Keras 3 or tf-keras (:meth:`FreezePlan.snippet`).
:func:`write_frozen` writes a copy of the model file (``.keras``, legacy
``.h5``, ``.json``) whose config carries exactly those ``trainable`` flags,
atomically (:mod:`archdiff.output`), so Keras loads it frozen as listed.
"""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

from archdiff.errors import InputError, TopologyUnknownError, UsageError
from archdiff.model import MODEL_CLASSES, Architecture, Layer

#: The snippet flavours: Keras 3 (``import keras``) and Keras 2 as tf-keras (``import tf_keras``).
FLAVOURS = ("keras", "tf-keras")

#: Model files :func:`write_frozen` rewrites (the config is where ``trainable`` lives).
WRITABLE = (".keras", ".h5", ".hdf5", ".json")


@dataclass(frozen=True)
class FreezeStep:
    """Inside the model at ``scope`` (``""``: the top level), ``layers[:index]`` are frozen."""

    scope: str
    index: int
    #: How many layers the scope's ``model.layers`` has, and the one at ``index`` (None past the end).
    count: int
    first_trainable: str | None

    def to_dict(self) -> dict:
        return {"model": self.scope, "index": self.index, "layers": self.count,
                "first_trainable": self.first_trainable}


@dataclass(frozen=True)
class FreezeRow:
    """A layer with weights, and whether the recipe freezes it."""

    path: str
    index: int | None
    class_name: str
    params: int
    trainable_params: int
    #: The indices from the top: ``(1, 4)`` is ``model.layers[1].layers[4]``.
    indices: tuple[int, ...] = ()

    @property
    def index_text(self) -> str:
        return ".".join(str(i) for i in self.indices) if self.indices else "?"

    def to_dict(self) -> dict:
        return {"path": self.path, "index": self.index, "indices": list(self.indices), "class_name": self.class_name,
                "params": self.params, "trainable_params": self.trainable_params}


@dataclass(frozen=True)
class FreezePlan:
    """The recipe for ``--freeze-until``: steps, frozen and trainable layers, parameter split, snippets."""

    model: str
    source: str
    dialect: str | None
    until: str
    #: The layer that is the first to train (its path), or None when every layer is frozen.
    first_trainable: str | None
    steps: tuple[FreezeStep, ...]
    frozen: tuple[FreezeRow, ...]
    trainable: tuple[FreezeRow, ...]
    #: Every layer path the recipe leaves with ``trainable = False`` (weightless ones and nested layers too).
    frozen_paths: frozenset = frozenset()
    total_params: int = 0
    #: The split before (as the file records it; None where it does not) and after the recipe.
    trainable_before: int | None = None
    trainable_after: int = 0

    @property
    def non_trainable_after(self) -> int:
        return self.total_params - self.trainable_after

    def to_dict(self) -> dict:
        return {
            "model": self.model, "source": self.source, "until": self.until,
            "first_trainable": self.first_trainable, "steps": [s.to_dict() for s in self.steps],
            "frozen": [r.to_dict() for r in self.frozen], "trainable": [r.to_dict() for r in self.trainable],
            "params": {"total": self.total_params, "trainable_before": self.trainable_before,
                       "trainable": self.trainable_after, "non_trainable": self.non_trainable_after},
            "snippets": {flavour: self.snippet(flavour) for flavour in FLAVOURS},
        }

    # -- the code ----------------------------------------------------------------------
    def snippet(self, flavour: str = "keras", path: str | None = None) -> str:
        """Python that freezes exactly :attr:`frozen` on the model (``flavour``: Keras 3 or tf-keras).

        ``path``: the file the snippet loads (default: the file planned from).
        """
        if flavour not in FLAVOURS:
            raise UsageError(f"unknown snippet flavour '{flavour}'", hint=f"use {' or '.join(FLAVOURS)}")
        lines = []
        if flavour == "keras":
            lines.append("import keras")
        else:
            lines.append("import tf_keras as keras  # TensorFlow 2.16+ with tf-keras; before: from tensorflow import keras")
        lines.append("")
        lines.append(self._load_line(flavour, path or self.source))
        lines.append("")
        lines.append("")
        lines.append("def unfreeze(layer):")
        lines.append("    # Every layer, nested ones too: Keras skips setting a flag to the value it has,")
        lines.append("    # and with it the layers inside.")
        lines.append("    layer.trainable = True")
        lines.append("    for inner_layer in getattr(layer, \"layers\", ()):")
        lines.append("        unfreeze(inner_layer)")
        lines.append("")
        lines.append("")
        lines.append("unfreeze(model)  # then freeze what comes before the first layer to train")
        holder = "model"
        for depth, step in enumerate(self.steps):
            if step.scope:
                var = "inner" if len(self.steps) == 2 else f"inner_{depth}"
                lines.append(f"{var} = {holder}.get_layer({step.scope.rsplit('/', 1)[-1]!r})")
                holder = var
            if step.index:
                lines.append(f"for layer in {holder}.layers[:{step.index}]:")
                lines.append("    layer.trainable = False")
            if step.first_trainable is not None:
                lines.append(f"assert {holder}.layers[{step.index}].name == {step.first_trainable!r}")
            else:
                lines.append(f"assert len({holder}.layers) == {step.count}")
        lines.append("# then compile the model: Keras applies a change of trainable when it compiles")
        return "\n".join(lines) + "\n"

    def _load_line(self, flavour: str, path: str) -> str:
        lower = path.lower()
        if lower.endswith(".json"):
            return f"model = keras.models.model_from_json(open({path!r}).read())"
        readable = lower.endswith((".h5", ".hdf5")) or (lower.endswith(".keras") and (
            (flavour == "keras") == (self.dialect != "keras2")))
        if readable:
            return f"model = keras.models.load_model({path!r})"
        return f"model = ...  # the model ({os.path.basename(path)} is not a file {flavour} loads)"


# -- planning -------------------------------------------------------------------------
def _scope_layers(arch: Architecture, scope: str) -> list[Layer]:
    """``model.layers`` of the model at ``scope``: its children in order, operations left out."""
    return [layer for layer in arch.layers if layer.parent == scope and not layer.is_operation]


def resolve_until(arch: Architecture, spec: str) -> str | int:
    """``--freeze-until`` as a layer path, or as an index into the top-level ``model.layers``."""
    text = str(spec).strip()
    top = _scope_layers(arch, "")
    if text.lstrip("-").isdigit():
        index = int(text)
        if not 0 <= index <= len(top):
            raise UsageError(f"--freeze-until {index} is out of range: model.layers has indices 0..{len(top) - 1} "
                             f"({len(top)} freezes every layer)", hint="see the indices with `archdiff layers MODEL`")
        return index
    by_path = arch.by_path
    if text in by_path:
        layer = by_path[text]
    else:
        named = [layer for layer in arch.layers if layer.name == text]
        if len(named) > 1:
            raise UsageError(f"--freeze-until '{text}': several layers have this name: "
                             + ", ".join(layer.path for layer in named[:6]), hint="give the layer's path")
        if not named:
            close = difflib.get_close_matches(text, [layer.path for layer in arch.layers], n=3)
            raise UsageError(f"--freeze-until '{text}': no layer has this name or path",
                             hint=(f"did you mean {', '.join(close)}? " if close else "")
                             + "see the names and indices with `archdiff layers MODEL`")
        layer = named[0]
    if layer.is_operation:
        raise UsageError(f"--freeze-until '{text}' is a Keras 3 operation, which model.layers does not list "
                         "(it has no index and no weights)", hint="name the layer it feeds or follows")
    return layer.path


def plan_freeze(arch: Architecture, spec: str) -> FreezePlan:
    """The recipe for ``--freeze-until spec`` on ``arch`` (see the module docstring)."""
    if not arch.has_topology:
        raise TopologyUnknownError(
            "freezing needs model.layers in order, and this file holds no architecture "
            f"({'a subclassed model' if arch.class_name else 'weights only'})", path=arch.source.path,
            hint=("add --build: Keras builds it from the constructor arguments its config holds and gives "
                  "model.layers in order" if arch.constructor is not None
                  else "give the model file (.keras, .h5 full model or .json)"))
    until = resolve_until(arch, spec)
    steps: list[FreezeStep] = []
    if isinstance(until, int):
        top = _scope_layers(arch, "")
        first = top[until].path if until < len(top) else None
        steps.append(FreezeStep("", until, len(top), top[until].name if first else None))
    else:
        first = until
        chain = []
        path = until
        while True:
            layer = arch.by_path[path]
            chain.append(layer)
            if not layer.parent:
                break
            path = layer.parent
        for layer in reversed(chain):
            siblings = _scope_layers(arch, layer.parent)
            steps.append(FreezeStep(layer.parent, siblings.index(layer), len(siblings), layer.name))
    frozen_paths: set[str] = set()
    for step in steps:
        for layer in _scope_layers(arch, step.scope)[:step.index]:
            frozen_paths.add(layer.path)
            if layer.is_model:
                frozen_paths.update(d.path for d in arch.descendants(layer.path) if not d.is_operation)
    frozen_rows, trainable_rows = [], []
    total = after = 0
    for layer in arch.layers:
        if layer.is_model or not layer.weights:
            continue
        params = sum(w.size for w in layer.weights)
        total += params
        is_frozen = layer.path in frozen_paths
        trains = 0 if is_frozen else sum(w.size for w in layer.weights if _trains_by_nature(w))
        after += trains
        row = FreezeRow(layer.path, layer.index, layer.class_name, params, trains, _indices(arch, layer))
        (frozen_rows if is_frozen else trainable_rows).append(row)
    counts = arch.param_counts()
    return FreezePlan(
        model=arch.name, source=arch.source.path, dialect=arch.source.dialect, until=str(spec),
        first_trainable=first, steps=tuple(steps), frozen=tuple(frozen_rows), trainable=tuple(trainable_rows),
        frozen_paths=frozenset(frozen_paths), total_params=total,
        trainable_before=counts.trainable if counts is not None else None, trainable_after=after)


def _trains_by_nature(weight) -> bool:
    """Whether a variable trains when its layer does: not BatchNormalization's statistics and the like.

    The file's own flag says what the file recorded (a frozen layer's are all
    off), so the name decides (:data:`archdiff.read.hdf5.NON_TRAINABLE_NAMES`);
    a variable known only by its position counts as trainable.
    """
    from archdiff.read.hdf5 import NON_TRAINABLE_NAMES

    leaf = weight.name.rsplit("/", 1)[-1]
    if leaf.isdigit():
        return True
    return leaf not in NON_TRAINABLE_NAMES


def _indices(arch: Architecture, layer: Layer) -> tuple[int, ...]:
    out = []
    while True:
        if layer.index is None:
            return ()
        out.append(layer.index)
        if not layer.parent:
            return tuple(reversed(out))
        layer = arch.by_path[layer.parent]


# -- the copy -------------------------------------------------------------------------
def _entries(config: dict, parent: str = "") -> Iterator[tuple[str, dict, dict]]:
    """``(path, entry, layer config)`` of every layer of a serialized model, named as archdiff's reader names them."""
    entries = config.get("layers")
    if not isinstance(entries, list):
        return
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            continue
        layer_config = entry["config"]
        name = entry.get("name", layer_config.get("name"))
        if not isinstance(name, str) or not name:
            name = f"{str(entry.get('class_name', '')).lower()}_{position}"
        path = f"{parent}/{name}" if parent else name
        yield path, entry, layer_config
        if entry.get("class_name") in MODEL_CLASSES and isinstance(layer_config.get("layers"), list):
            yield from _entries(layer_config, path)


def set_trainable_flags(serialized: dict, plan: FreezePlan, arch: Architecture) -> int:
    """Give every layer of ``serialized`` (a ``{"class_name", "config"}`` model) the recipe's flag; the count set.

    A layer's ``trainable`` is written where its config has the key, or where
    it is a layer that takes one (not an InputLayer, not an operation).
    """
    config = serialized.get("config")
    if not isinstance(config, dict):
        raise InputError("the model config has no 'config' mapping", path=plan.source)
    if "trainable" in config:
        config["trainable"] = True
    count = 0
    for path, entry, layer_config in _entries(config):
        layer = arch.by_path.get(path)
        if layer is None or layer.is_operation:
            continue
        if "trainable" not in layer_config and entry.get("class_name") == "InputLayer":
            continue
        layer_config["trainable"] = path not in plan.frozen_paths
        count += 1
    return count


def write_frozen(arch: Architecture, plan: FreezePlan, out: str) -> None:
    """Write a copy of ``arch``'s file at ``out`` whose config carries the recipe's ``trainable`` flags.

    ``.keras``: ``config.json`` replaced, every other member byte for byte;
    legacy ``.h5``: a copy with the ``model_config`` attribute rewritten, and each
    nested model's ``weight_names`` put in the order Keras loads it with the new
    flags (the datasets untouched); ``.json``: the document rewritten. OUT must have the input's
    suffix (Keras picks the loader by name) and is written beside itself and
    renamed into place.
    """
    from archdiff.output import atomic_path, refuse_overwriting_inputs

    source = arch.source.path
    lower, out_lower = source.lower(), out.lower()
    refuse_overwriting_inputs(out, [source])
    kind = next((s for s in WRITABLE if lower.endswith(s)), None)
    if kind is None or lower.endswith(".weights.h5"):
        raise UsageError(f"-o writes a copy of a .keras, .h5 or .json model file, and '{os.path.basename(source)}' "
                         "is not one", hint="export the model as JSON first: archdiff export MODEL -o model.json")
    family = {".hdf5": ".h5"}.get(kind, kind)
    if not (out_lower.endswith(family) or (family == ".h5" and out_lower.endswith(".hdf5"))) or \
            out_lower.endswith(".weights.h5"):
        raise UsageError(f"the output '{out}' does not end with {family}, but it is written as a copy of "
                         f"{os.path.basename(source)}", hint="Keras picks the loader by the file name; name OUT alike")
    if family == ".keras":
        _write_keras(arch, plan, source, out, atomic_path)
    elif family == ".h5":
        _write_h5(arch, plan, source, out, atomic_path)
    else:
        _write_json(arch, plan, source, out, atomic_path)


def _serialized(document: Any, where: str) -> dict:
    from archdiff.read.config import unwrap

    serialized, _, _ = unwrap(document, where=where)
    return serialized


def _write_keras(arch, plan, source, out, atomic_path) -> None:
    import tempfile
    import zipfile

    from archdiff.limits import MAX_CONFIG_BYTES
    from archdiff.read import parse_json_bytes
    from archdiff.transfer.write import rebuild_keras_zip

    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            raise InputError(f"config.json holds {info.file_size} bytes, over the limit of {MAX_CONFIG_BYTES}",
                             path=source)
        document = parse_json_bytes(zf.read(info), where=f"{source}:config.json")
    set_trainable_flags(_serialized(document, source), plan, arch)
    folder = os.path.dirname(os.path.abspath(out)) or "."
    with atomic_path(out) as tmp, tempfile.NamedTemporaryFile("w", dir=folder, prefix=".config.",
                                                              suffix=".json.tmp", encoding="utf-8") as cfg:
        cfg.write(json.dumps(document))
        cfg.flush()
        rebuild_keras_zip(source, {"config.json": cfg.name}, tmp)


def _natural(arch: Architecture, model_path: str) -> list:
    """The variables of a nested model as Keras orders ``model.weights``: each layer's, in layer order.

    A layer's own come trainable-by-nature first, as Keras creates them
    (BatchNormalization: gamma, beta, then the moving statistics).
    """
    out = []
    for layer in arch.descendants(model_path):
        if layer.is_model or layer.is_operation or not layer.weights:
            continue
        ws = list(layer.weights)
        out.extend([(layer.path, w) for w in ws if _trains_by_nature(w)]
                   + [(layer.path, w) for w in ws if not _trains_by_nature(w)])
    return out


def _legacy_order(arch: Architecture, model: Layer, frozen: set) -> list[str]:
    """The dataset locations of a nested model's variables in the order a legacy ``.h5`` loads them.

    Keras writes and reads a layer's variables as ``trainable_weights +
    non_trainable_weights``; for a nested model that order depends on which of
    its layers are frozen (a frozen model lists all of them in ``model.weights``
    order). Both Keras 3 and tf-keras do so.
    """
    natural = _natural(arch, model.path)
    if model.path in frozen:
        return [w.location for _, w in natural]
    trains = [w.location for path, w in natural if path not in frozen and _trains_by_nature(w)]
    rest = [w.location for path, w in natural if path in frozen or not _trains_by_nature(w)]
    return trains + rest


def _reorder_nested_weights(f, arch: Architecture, plan: FreezePlan, where: str) -> None:
    """Rewrite each nested model's ``weight_names`` in the order Keras will load it with the new flags.

    The order the file has is first checked to be the one its own flags give;
    where it is not (a layer whose variables Keras creates in another order),
    the copy is refused rather than risk weights loaded into the wrong variables.
    """
    import numpy as np

    root = f["model_weights"] if "model_weights" in f else f
    before = {layer.path for layer in arch.layers if arch.effectively_trainable(layer) is False}
    for model in arch.layers:
        if not model.is_model or model.parent or model.name not in root:
            continue
        group = root[model.name]
        if "weight_names" not in group.attrs:
            if any(k.startswith("weight_names") for k in group.attrs):
                raise UsageError(f"the nested model '{model.name}' lists its weights in chunked attributes, "
                                 "which this copy cannot reorder", path=where,
                                 hint="write the copy as .keras (save the model as .keras first)")
            continue
        stored = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
        prefix = group.name.rstrip("/") + "/"

        def names(locations):
            return [loc[len(prefix):] if loc and loc.startswith(prefix) else None for loc in locations]

        if names(_legacy_order(arch, model, before)) != stored:
            raise UsageError(f"the order of the nested model '{model.name}''s weights in the .h5 is not the one "
                             "archdiff can recompute, so a copy with other trainable flags could load weights "
                             "into the wrong variables", path=where, hint="write the copy as .keras")
        new = names(_legacy_order(arch, model, set(plan.frozen_paths)))
        if new != stored:
            old = group.attrs["weight_names"]
            values = [n.encode("utf-8") for n in new] if len(old) and isinstance(old[0], bytes) else new
            group.attrs.modify("weight_names", np.array(values, dtype=old.dtype))


def _write_h5(arch, plan, source, out, atomic_path) -> None:
    import shutil

    import numpy as np

    from archdiff.read import hdf5 as h5
    from archdiff.read import parse_json_bytes

    with h5.open_h5(source, where=source) as f:
        raw = f.attrs.get("model_config")
    if raw is None:
        raise TopologyUnknownError("the .h5 file holds no model_config (weights only)", path=source,
                                   hint="give the full model file")
    as_bytes = isinstance(raw, (bytes, np.bytes_))
    document = parse_json_bytes(bytes(raw) if as_bytes else str(raw).encode("utf-8"), where=f"{source}:model_config")
    set_trainable_flags(_serialized(document, source), plan, arch)
    text = json.dumps(document)
    with atomic_path(out) as tmp:
        shutil.copyfile(source, tmp)
        with h5._h5py().File(tmp, "r+") as f:
            # Keras 2 writes bytes, Keras 3 text: keep what the file had, so its own Keras reads it as before.
            del f.attrs["model_config"]
            f.attrs["model_config"] = text.encode("utf-8") if as_bytes else text
            _reorder_nested_weights(f, arch, plan, out)


def _write_json(arch, plan, source, out, atomic_path) -> None:
    from archdiff.read import read_json_file

    document = read_json_file(source)
    set_trainable_flags(_serialized(document, source), plan, arch)
    with atomic_path(out) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(document))
            fh.flush()
            os.fsync(fh.fileno())


# -- the report -----------------------------------------------------------------------
def render_freeze_text(plan: FreezePlan, flavours: tuple[str, ...] = FLAVOURS, path: str | None = None) -> str:
    """The recipe for people: the index, the frozen and trainable layers with weights, the split, the code."""
    from archdiff.safetext import visible
    from archdiff.textfmt import count, table

    where = " -> ".join(f"{visible(s.scope) + '.' if s.scope else ''}layers[{s.index}]" for s in plan.steps)
    head = (f"freeze until {visible(plan.first_trainable)} ({where}): it and every layer after it train"
            if plan.first_trainable else f"freeze every layer ({where})")
    out = [head, ""]

    def rows(items):
        return [[r.index_text, visible(r.path), visible(r.class_name), count(r.params)] for r in items]

    for title, items in ((f"frozen, with weights ({len(plan.frozen)})", plan.frozen),
                         (f"left trainable, with weights ({len(plan.trainable)})", plan.trainable)):
        out.append(f"{title}:")
        out.append(table(["index", "layer", "class", "params"], rows(items), align="lllr") if items else "  (none)")
        out.append("")
    before = ("" if plan.trainable_before is None else
              f" (before: {count(plan.trainable_before)} trainable)")
    out.append(f"params after freezing: {count(plan.total_params)} total, {count(plan.trainable_after)} trainable, "
               f"{count(plan.non_trainable_after)} non-trainable{before}")
    for flavour in flavours:
        out.append("")
        out.append(f"# {'Keras 3' if flavour == 'keras' else 'tf-keras (Keras 2)'}")
        out.append(visible_code(plan.snippet(flavour, path)).rstrip("\n"))
    return "\n".join(out) + "\n"


def visible_code(code: str) -> str:
    """A snippet line by line through :func:`archdiff.safetext.visible` (names are Python literals already)."""
    from archdiff.safetext import visible

    return "\n".join(visible(line) for line in code.split("\n"))
