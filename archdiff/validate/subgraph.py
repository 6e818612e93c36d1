"""Pairing the layers of target and source, and the sub-graph both models share from their inputs.

:func:`pair_layers` says which target layer corresponds to which source
layer (by path, the transfer's ``--map`` rules, or the diff's matching),
independently of the transfer's own plan. :func:`shared_subgraph` grows,
from the inputs, the paired top-level layers that compute the same thing
(same class and config, every input shared, weights transferred), and
:func:`sub_config` cuts such a part out of a serialized model so that it
can be rebuilt on its own (check 3 runs it; :mod:`archdiff.validate.outputs`).
"""
from __future__ import annotations

from dataclasses import dataclass

from archdiff.errors import UsageError
from archdiff.model import Architecture
from archdiff.names import same_class
from archdiff.validate.rebuilding import entry_name, strip_versions

#: Config keys that do not change what a layer computes (or are spelled
#: differently by Keras 2 and 3): left out when deciding two layers are the same.
_IGNORED_CONFIG_KEYS = frozenset({
    "name", "trainable", "dtype", "build_config", "compile_config", "registered_name", "module", "seed",
    "synchronized", "autocast", "batch_input_shape", "batch_shape", "input_shape", "input_dim",
})
_IGNORED_CONFIG_SUFFIXES = ("_initializer", "_regularizer", "_constraint")


def map_rules(maps=(), map_files=()) -> list:
    """``--map`` / ``--map-file`` rules, parsed exactly as ``archdiff transfer`` parses them."""
    from archdiff.transfer import load_map_file, parse_map_rule

    rules = [parse_map_rule(text, "--map") for text in maps]
    for path in map_files:
        rules.extend(load_map_file(path))
    return rules


def pair_layers(source: Architecture, target: Architecture, *, maps=(), map_files=(),
                match: str = "name") -> dict[str, str]:
    """``{target_path: source_path}`` for the layers the target shares with the source.

    Independent of the transfer's own plan on purpose: a transfer that paired
    the wrong layers must not be able to vouch for itself. Renames use the
    transfer's rule syntax (``OLD=NEW``, ``re:PATTERN=REPLACEMENT``).
    """
    if match not in ("name", "auto"):
        raise UsageError(f"--match '{match}' is not one of name, auto")
    pairs: dict[str, str] = {}
    if match == "auto":
        try:
            from archdiff.diff.matching import match_layers
        except ImportError:
            raise UsageError("--match auto needs the diff's layer matching (archdiff.matching), which this "
                             "installation lacks", hint="use --match name with --map OLD=NEW") from None
        for pair in match_layers(source, target).pairs:
            a = getattr(pair, "a", None) or getattr(pair, "a_path", None)
            b = getattr(pair, "b", None) or getattr(pair, "b_path", None)
            if a in source.by_path and b in target.by_path:
                pairs[b] = a
    rules = map_rules(maps, map_files) if (maps or map_files) else []
    # Where each source layer lands in the target under the user's renames (the first rule that applies).
    renamed: dict[str, str] = {}
    for layer in source.layers:
        for rule in rules:
            new = rule.apply(layer.path)
            if new is not None:
                renamed[new] = layer.path
                break
    moved = set(renamed.values()) | set(pairs.values())
    for layer in target.layers:
        if layer.path in pairs:
            continue
        if layer.path in renamed:
            pairs[layer.path] = renamed[layer.path]
        elif layer.path in source.by_path and layer.path not in moved:
            # Same path (nested models included), as archdiff transfer pairs them.
            pairs[layer.path] = layer.path
    return pairs


def _ignored_key(key: str) -> bool:
    return key in _IGNORED_CONFIG_KEYS or key.endswith(_IGNORED_CONFIG_SUFFIXES)


def _normal(value):
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        items = [_normal(v) for v in value]
        return items
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items() if not _ignored_key(k) and k != "inbound_nodes"}
    return value


def config_differences(a: dict, b: dict) -> list[str]:
    """Keys (present in both) whose values differ in a way that changes what the layer computes."""
    diffs = []
    for key in sorted(set(a) & set(b)):
        if _ignored_key(key):
            continue
        va, vb = _normal(a[key]), _normal(b[key])
        if key == "axis":
            va = va[0] if isinstance(va, list) and len(va) == 1 else va
            vb = vb[0] if isinstance(vb, list) and len(vb) == 1 else vb
        if va != vb:
            diffs.append(f"{key}: {_short(va)} vs {_short(vb)}")
    return diffs


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class SharedGraph:
    """The shared sub-graph from the inputs: target layer names and their source counterparts."""

    #: target input name -> source input name
    inputs: dict[str, str]
    #: target layer name -> source layer name (non-input layers, top level)
    layers: dict[str, str]
    #: ordered frontier refs on the target side: (name, node_index, tensor_index)
    frontier: list[tuple[str, int, int]]
    excluded: list[dict]


def shared_subgraph(target: Architecture, source: Architecture, pairs: dict[str, str],
                    not_transferred: dict[str, str] | None = None) -> SharedGraph:
    """Paired top-level layers whose inputs are all shared, grown from the models' inputs.

    A layer whose weights were not transferred (``not_transferred``: path ->
    why) cannot compute what the source's does, so it is not shared.
    """
    not_transferred = not_transferred or {}
    t_inputs = [r.layer for r in target.inputs]
    s_inputs = [r.layer for r in source.inputs]
    inputs: dict[str, str] = {}
    for i, name in enumerate(t_inputs):
        counterpart = pairs.get(name)
        if counterpart in s_inputs:
            inputs[name] = counterpart
        elif name in s_inputs:
            inputs[name] = name
        elif i < len(s_inputs) and len(t_inputs) == len(s_inputs):
            inputs[name] = s_inputs[i]
    top = [layer for layer in target.layers if layer.depth == 0]
    src_top = {layer.name: layer for layer in source.layers if layer.depth == 0}
    shared: dict[str, str] = {}
    excluded: list[dict] = []

    def mapped(ref) -> tuple | None:
        if ref.layer in inputs:
            return (inputs[ref.layer], ref.node_index, ref.tensor_index)
        if ref.layer in shared:
            return (shared[ref.layer], ref.node_index, ref.tensor_index)
        return None

    for layer in top:
        if layer.name in inputs or layer.class_name == "InputLayer":
            continue
        src_path = pairs.get(layer.path)
        if src_path is None or src_path not in src_top:
            continue
        src = src_top[src_path]
        reason = None
        if not same_class(src.class_name, layer.class_name):
            reason = f"class {layer.class_name} in the target, {src.class_name} in the source"
        elif len(src.calls) != len(layer.calls):
            reason = f"called {len(layer.calls)} time(s) in the target, {len(src.calls)} in the source"
        else:
            for call, src_call in zip(layer.calls, src.calls):
                refs = [mapped(r) for r in call.inputs]
                if any(r is None for r in refs):
                    missing = [r.layer for r, m in zip(call.inputs, refs) if m is None]
                    reason = f"its input {', '.join(repr(m) for m in missing)} is not shared"
                    break
                if refs != [(r.layer, r.node_index, r.tensor_index) for r in src_call.inputs]:
                    reason = "its inputs come from different layers in the source"
                    break
            if reason is None:
                diffs = config_differences(dict(layer.config), dict(src.config))
                if diffs:
                    reason = "config differs: " + "; ".join(diffs[:3])
        if reason is None and layer.path in not_transferred:
            reason = f"its weights were not transferred ({not_transferred[layer.path]})"
        if reason is None and layer.is_model:
            inner_t = [x for x in target.descendants(layer.path) if not x.is_model]
            inner_s = {x.path[len(src.path):]: x for x in source.descendants(src.path)}
            for x in inner_t:
                other = inner_s.get(x.path[len(layer.path):])
                if other is None or other.class_name != x.class_name:
                    reason = f"its layer '{x.path}' has no counterpart in '{src.path}'"
                    break
                if x.path in not_transferred:
                    reason = f"the weights of its layer '{x.path}' were not transferred ({not_transferred[x.path]})"
                    break
        if reason is None:
            shared[layer.name] = src.name
        else:
            excluded.append({"layer": layer.path, "reason": reason})

    consumers: dict[str, set[str]] = {}
    for layer in top:
        for call in layer.calls:
            for ref in call.inputs:
                consumers.setdefault(ref.layer, set()).add(layer.name)
    outputs = {r.layer for r in target.outputs}
    frontier = []
    for layer in top:
        if layer.name not in shared:
            continue
        users = consumers.get(layer.name, set())
        if layer.name in outputs or not users or any(u not in shared for u in users):
            for node in range(max(1, len(layer.calls))):
                count = len(layer.output_shapes) if layer.output_shapes and len(layer.calls) <= 1 else 1
                for t in range(count):
                    frontier.append((layer.name, node, t))
    return SharedGraph(inputs=inputs, layers=shared, frontier=frontier, excluded=excluded)


def _set_input_shape(config: dict, shape: tuple) -> None:
    keys = [k for k in ("batch_shape", "batch_input_shape") if k in config]
    if not keys and "input_shape" in config:
        config["input_shape"] = list(shape[1:])
        return
    for key in keys or ["batch_shape"]:
        config[key] = list(shape)


def sub_config(serialized: dict, keep: set[str], inputs: list[str], outputs: list[tuple[str, int, int]],
               input_shapes: dict[str, tuple]) -> dict:
    """A model config holding only ``keep`` (plus its inputs), with the given outputs and input shapes."""
    doc = strip_versions(serialized)
    config = doc["config"]
    entries = config.get("layers") or []
    if doc.get("class_name") == "Sequential" or "input_layers" not in config:
        last = outputs[-1][0] if outputs else None
        kept = []
        for entry in entries:
            name = entry_name(entry)
            inner = entry.get("config") or {}
            if entry.get("class_name") == "InputLayer":
                if inputs and inputs[0] in input_shapes:
                    _set_input_shape(inner, input_shapes[inputs[0]])
                kept.append(entry)
                continue
            if not kept or all(e.get("class_name") == "InputLayer" for e in kept):
                # Keras 2 style: the first layer declares the input.
                for key in ("batch_input_shape", "batch_shape", "input_shape"):
                    if key in inner and inputs and inputs[0] in input_shapes:
                        _set_input_shape(inner, input_shapes[inputs[0]])
                        break
            kept.append(entry)
            if name == last:
                break
        config["layers"] = kept
        config.pop("build_input_shape", None)
        return doc
    kept = []
    for entry in entries:
        name = entry_name(entry)
        if entry.get("class_name") == "InputLayer" and name in inputs:
            if name in input_shapes:
                _set_input_shape(entry["config"], input_shapes[name])
            kept.append(entry)
        elif name in keep:
            kept.append(entry)
    config["layers"] = kept
    config["input_layers"] = [[name, 0, 0] for name in inputs]
    config["output_layers"] = [list(ref) for ref in outputs]
    return doc
