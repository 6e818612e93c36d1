"""Canonical forms of layer configs and models: serialization noise removed.

This module owns what counts as *noise* when two configs are compared (the
same model saved by tf-keras and by Keras 3, or as ``.keras`` / ``.h5`` /
``.json``, must compare equal) and the stable text form that
``archdiff textconv`` prints for git.

Three views of a layer config:

* :func:`strict_config` - the config as written, minus what archdiff reports
  elsewhere (``name``: renames; ``trainable``: its own change kind; a nested
  model's ``layers``/``input_layers``/``output_layers``: its child layers).
* :func:`normal_config` - the strict view with noise removed: ``module``,
  ``registered_name``, ``shared_object_id``, ``build_config``,
  ``build_input_shape``; a ``DTypePolicy`` object becomes its name;
  Keras 2's ``batch_input_shape`` becomes ``batch_shape``; an ``axis`` of
  one element becomes a number and a negative axis a positive one where the
  rank is known.
* :func:`signature_config` - the normal view with keys dropped that hold
  ``None`` or a known default value: what a layer *is*, used for hashing.

:func:`align_defaults` then drops, pair by pair, the keys one side writes
with a default value and the other side leaves out (Keras 3.15 added
``input_axes``/``output_axes: null`` to initializers; Keras 3 writes
``renorm: false`` for BatchNormalization, Keras 2 does not).
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Mapping

from archdiff.model import MODEL_CLASSES, Architecture, Layer
from archdiff.names import CLASS_ALIASES, canonical_class, snake_case  # noqa: F401 (re-exported)
from archdiff.safetext import has_hidden, visible

#: Keys removed at any depth by default: bookkeeping, not architecture.
NOISE_KEYS = frozenset({"shared_object_id", "build_config", "compile_config", "module", "registered_name"})
#: Keys removed at the top of a layer config by default.
LAYER_NOISE_KEYS = frozenset({"build_input_shape"})
#: Keys never part of a config comparison: they are reported as their own change kinds.
REPORTED_ELSEWHERE = frozenset({"name", "trainable"})
#: A nested model's structure: compared through its child layers, not as config.
MODEL_STRUCTURE_KEYS = frozenset({"layers", "input_layers", "output_layers"})
#: Keys renamed between dialects (Keras 2 name -> Keras 3 name).
RENAMED_KEYS = {"batch_input_shape": "batch_shape"}
#: Values a Keras version writes for a key that another version leaves out.
#: A key present on one side only with this value (or None) is noise.
KNOWN_DEFAULTS: Mapping[str, Any] = {
    "activity_regularizer": None,
    "quantization_config": None,
    "input_axes": None,
    "output_axes": None,
    "lora_rank": None,
    "lora_alpha": None,
    "renorm": False,
    "renorm_clipping": None,
    "renorm_momentum": 0.99,
    "synchronized": False,
    "optional": False,
    "sparse": False,
    "ragged": False,
    "dtype": "float32",
    "trainable": True,
    "gradient_checkpointing": False,
}
#: Serialized dtype policies (Keras 3 objects, Keras 2 mixed-precision policies).
POLICY_CLASSES = frozenset({"DTypePolicy", "FloatDTypePolicy", "Policy"})
_MISSING = object()


def class_of(layer: Layer) -> str:
    return canonical_class(layer.class_name)


def class_known(class_name: str) -> bool:
    """Weights-only files do not record classes (``?`` or ``?dense``)."""
    return not class_name.startswith("?")


def same_but_name(ca: Mapping, cb: Mapping) -> bool:
    """Two raw configs equal but for ``name``: a fast path before normalizing."""
    if len(ca) != len(cb):
        return False
    for key, value in ca.items():
        if key != "name" and (key not in cb or cb[key] != value):
            return False
    return True


# -- single-sided views ----------------------------------------------------------
def _rank(layer: Layer) -> int | None:
    shapes = layer.output_shapes
    if shapes and len(shapes) == 1 and isinstance(shapes[0], tuple):
        return len(shapes[0])
    return None


def _top_level(layer: Layer, *, drop: frozenset) -> dict:
    drop = drop | (MODEL_STRUCTURE_KEYS if layer.is_model or layer.class_name in MODEL_CLASSES else frozenset())
    return {k: v for k, v in layer.config.items() if k not in drop}


def strict_config(layer: Layer) -> dict:
    """The config as written, minus keys reported as other change kinds."""
    return _plain(_top_level(layer, drop=REPORTED_ELSEWHERE))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def normal_config(layer: Layer) -> dict:
    """The config with serialization noise removed (see the module docstring)."""
    top = _top_level(layer, drop=REPORTED_ELSEWHERE | LAYER_NOISE_KEYS)
    out = _normalize(top)
    axis = out.get("axis", _MISSING)
    if axis is not _MISSING:
        out["axis"] = _normal_axis(axis, _rank(layer))
    return out


def _normal_axis(axis: Any, rank: int | None) -> Any:
    if isinstance(axis, list) and len(axis) == 1:
        axis = axis[0]
    if type(axis) is int and axis < 0 and rank is not None and -rank <= axis:
        return rank + axis
    if isinstance(axis, list) and rank is not None:
        return [rank + a if type(a) is int and -rank <= a < 0 else a for a in axis]
    return axis


def _normalize(value: Any) -> Any:
    if isinstance(value, dict):
        if isinstance(value.get("class_name"), str) and value["class_name"] in POLICY_CLASSES:
            inner = value.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                return inner["name"]
        out = {}
        for key, item in value.items():
            if key in NOISE_KEYS:
                continue
            out[RENAMED_KEYS.get(key, key)] = _normalize(item)
        return out
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    return value


def normal_value(value: Any) -> Any:
    """A config value with serialization noise removed (a dtype policy object as its name, noise keys dropped)."""
    return _normalize(value)


def _is_default(key: str, value: Any) -> bool:
    if value is None:
        return True
    default = KNOWN_DEFAULTS.get(key, _MISSING)
    return default is not _MISSING and type(default) is type(value) and default == value


def _drop_defaults(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_defaults(v) for k, v in value.items() if not _is_default(k, v)}
    if isinstance(value, list):
        return [_drop_defaults(v) for v in value]
    return value


def signature_config(layer: Layer) -> dict:
    """What a layer is, name aside: the normal config without default-valued keys."""
    return _drop_defaults(normal_config(layer))


def align_defaults(a: Any, b: Any) -> tuple[Any, Any]:
    """Drop keys one side holds with a default value and the other side lacks."""
    if isinstance(a, dict) and isinstance(b, dict):
        out_a, out_b = {}, {}
        for key, value in a.items():
            if key in b:
                out_a[key], out_b[key] = align_defaults(value, b[key])
            elif not _is_default(key, value):
                out_a[key] = value
        for key, value in b.items():
            if key not in a and not _is_default(key, value):
                out_b[key] = value
        return out_a, out_b
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = [align_defaults(x, y) for x, y in zip(a, b)]
        return [p[0] for p in pairs], [p[1] for p in pairs]
    return a, b


def dumps(value: Any) -> str:
    """Compact, key-sorted JSON: the canonical spelling of a value."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)


# -- Keras auto names ----------------------------------------------------------------
#: Auto-name stems Keras uses besides the snake-cased class name.
_EXTRA_STEMS = {
    "InputLayer": ("input",),
    "Functional": ("model", "functional"),
    "Model": ("model", "functional"),
}



#: For weights-only files that do not record classes: the auto-name stems of layers that hold weights.
WEIGHTED_STEMS = frozenset({
    "dense", "einsum_dense", "embedding", "conv1d", "conv2d", "conv3d", "conv1d_transpose", "conv2d_transpose",
    "conv3d_transpose", "depthwise_conv1d", "depthwise_conv2d", "separable_conv1d", "separable_conv2d",
    "batch_normalization", "layer_normalization", "group_normalization", "unit_normalization",
    "spectral_normalization", "normalization", "lstm", "gru", "simple_rnn", "conv_lstm1d", "conv_lstm2d",
    "conv_lstm3d", "bidirectional", "time_distributed", "multi_head_attention", "prelu", "p_re_lu",
    "sequential", "functional", "model",
})


@lru_cache(maxsize=4096)
def auto_stems(class_name: str) -> tuple[str, ...]:
    if class_name == "?":
        return tuple(WEIGHTED_STEMS)
    stem = class_name[1:] if class_name.startswith("?") else snake_case(class_name)
    return (stem, *_EXTRA_STEMS.get(class_name, ()))


_AUTO_CACHE: dict[tuple[str, str], bool] = {}


@lru_cache(maxsize=4096)
def _stem_set(class_name: str) -> frozenset:
    return frozenset(auto_stems(class_name))


def is_auto_name(name: str, class_name: str) -> bool:
    """Whether ``name`` looks like one Keras made up (``dense``, ``dense_7``, ``input_1``).

    Auto names shift when a layer of the same class is added earlier, so a
    name shared by two models is weak evidence when both are auto names.
    """
    key = (name, class_name)
    hit = _AUTO_CACHE.get(key)
    if hit is None:
        base = name
        head, sep, tail = name.rpartition("_")
        if sep and tail.isdigit():
            base = head
        hit = base in _stem_set(class_name)
        if len(_AUTO_CACHE) < 1_000_000:
            _AUTO_CACHE[key] = hit
    return hit


# -- the textconv form -------------------------------------------------------------
def _shape(shape) -> str:
    from archdiff.views import shape_text

    return shape_text(shape)


def _flatten(value: Any, prefix: str, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out.append((prefix, value))


def text_form(arch: Architecture, values: dict[str, str] | None = None) -> str:
    """A stable text form of a model for ``git diff``: one fact per line, noise removed.

    No paths, dates or file formats, so the same model always gives the same
    text; no layer indices, so inserting a layer changes only its own lines
    and its neighbours' ``inputs``. Names, classes and keys from the file go
    through :func:`archdiff.safetext.visible` and values are JSON with every
    hidden character as a ``\\u`` escape (:func:`_json_visible`), so no name
    can start a line of its own or hide from the reviewer.

    ``values`` (layer path -> a short digest of its weight values, from
    :func:`archdiff.diff.values.layer_digests`) adds one ``values:`` line per
    layer with weights, equal across formats and Keras versions for equal
    values, so ``git diff`` of a retrained file shows exactly the retrained layers.
    """
    v = visible
    lines = ["# archdiff textconv: the architecture of a Keras model (noise removed; see docs/diff.md)"]
    lines.append(f"model: {v(arch.name)} ({v(arch.class_name or 'weights only')})")
    if not arch.has_topology:
        lines.append("topology: unknown (" + ("subclassed model" if arch.class_name else "weights-only file")
                     + "); layers listed from the weights")
    for key, value in (arch.constructor or {}).items():  # what a constructor-config model is built from
        lines.append(f"constructor {v(key)}: {json_visible(dumps(normal_value(value)))}")
    for spec in arch.input_specs:
        lines.append(f"input {v(spec.name)}: shape {_shape(spec.shape)} dtype {v(spec.dtype)}")
    for ref in arch.outputs:
        layer = arch.by_path.get(ref.layer)
        shape = ""
        if layer is not None and layer.output_shapes and ref.tensor_index < len(layer.output_shapes):
            shape = f": shape {_shape(layer.output_shapes[ref.tensor_index])}"
        lines.append(f"output {v(ref.layer)}[{ref.node_index}][{ref.tensor_index}]{shape}")
    counts = param_totals(arch)
    if counts is not None and counts[1] is None:
        lines.append(f"params: total {counts[0]:,} trainable ? non-trainable ?")
    elif counts is not None:
        lines.append(f"params: total {counts[0]:,} trainable {counts[1]:,} non-trainable {counts[0] - counts[1]:,}")
    for layer in arch.layers:
        lines.append("")
        lines.append(f"layer {v(layer.path)} ({v(layer.class_name)})")
        for call_index, call in enumerate(layer.calls):
            label = "inputs" if len(layer.calls) == 1 else f"inputs[{call_index}]"
            refs = ", ".join(v(_ref_text(r)) for r in call.inputs)
            lines.append(f"  {label}: {refs}")
        if layer.output_shapes:
            lines.append(f"  output: {_shape(layer.output_shape)}")
        if layer.trainable is False:  # None: not recorded (a weights-only file), not frozen
            lines.append("  trainable: false")
        if layer.weights:
            for w in layer.weights:
                flag = "" if w.trainable else " non-trainable"
                lines.append(f"  weight {v(w.name)}: {_shape(tuple(w.shape))} {v(w.dtype)}{flag}")
            if values is not None and layer.path in values:
                lines.append(f"  values: sha256:{values[layer.path]}")
        if layer.config:
            flat: list[tuple[str, Any]] = []
            _flatten(signature_config(layer), "", flat)
            for key, value in flat:
                if key:
                    lines.append(f"  {v(key)}: {json_visible(dumps(value))}")
    return "\n".join(lines) + "\n"


def json_visible(text: str) -> str:
    """JSON text with every hidden character (bidi, zero-width, separators) as a JSON ``\\u`` escape.

    ``dumps`` keeps non-ASCII letters readable (``ensure_ascii=False``) and
    escapes control characters itself; the invisible rest can only sit inside
    a JSON string, where a ``\\uXXXX`` escape means the same character.
    """
    if text.isascii():
        return text
    out = []
    for ch in text:
        if has_hidden(ch):
            code = ord(ch)
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def _ref_text(ref) -> str:
    if ref.node_index == 0 and ref.tensor_index == 0:
        return ref.layer
    return f"{ref.layer}[{ref.node_index}][{ref.tensor_index}]"


def param_totals(arch: Architecture) -> tuple[int, int] | None:
    """``(total, trainable)`` where every layer's weights are known, else None.

    Unlike :meth:`Architecture.param_counts` this also counts weights inferred
    from a config-only input (``.json``), so that a ``.json`` compares with a
    ``.keras`` of the same model.
    """
    counts = arch.param_counts()
    if counts is not None:
        return counts.total, counts.trainable
    if not arch.layers_known:
        return None  # a constructor config without weights: no layer is known, so no count is
    total = trainable = 0
    for layer in arch.layers:
        if layer.is_model:
            continue
        if layer.weights is None:
            return None
        on = arch.effectively_trainable(layer)
        for w in layer.weights:
            total += w.size
            if on and w.trainable:
                trainable += w.size
    return total, trainable
