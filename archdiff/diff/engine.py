"""Diffing two architectures: the comparison that builds an :class:`~archdiff.diff.result.ArchDiff`.

This module owns comparing. It pairs layers with
:func:`archdiff.diff.matching.match_layers`, compares each pair (class, config,
trainable flag, weight shapes and dtypes, weight values through
:mod:`archdiff.diff.values` where both sides carry weights, where its inputs come from), lists
the layers and edges added and removed, compares the model's inputs, outputs
and parameter totals, and classifies the whole. It never prints:
:mod:`archdiff.diff.render` formats the result.

Every change is made by one of the constructors of :mod:`archdiff.diff.kinds`
and carries its *effect*: one of :data:`~archdiff.diff.kinds.KINDS`; the
records it fills are in :mod:`archdiff.diff.result`.
"""
from __future__ import annotations

from typing import Any, Iterable

from archdiff.diff.canonical import (
    align_defaults,
    class_known,
    class_of,
    normal_config,
    normal_value,
    param_totals,
    same_but_name,
    strict_config,
)
from archdiff.diff.ignore import ignore_matches
from archdiff.diff.kinds import (
    class_changed,
    classify,
    config_changed,
    constructor_changed,
    for_output_layer,
    inputs_changed,
    io_changed,
    model_class_changed,
    model_renamed,
    renamed,
    trainable_changed,
    values_changed,
    weight_changed,
)
from archdiff.diff.matching import match_layers
from archdiff.diff.options import DiffOptions
from archdiff.diff.result import ArchDiff, Change, Edge, IOChange, LayerDiff, LayerEntry, ModelInfo
from archdiff.limits import collector_paused
from archdiff.model import Architecture, Layer
from archdiff.names import canonical_class


# -- comparing one pair --------------------------------------------------------------
class _NotPresent:
    pass


def _dotted(parts: list) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _get(value: Any, parts: list) -> Any:
    for part in parts:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return _NotPresent
    return value


def _scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (list, dict)) for v in value)


#: DeepDiff's ``threshold_to_diff_deeper`` (8.x default): two dicts sharing fewer than this share of their
#: keys are one change as a whole, not a change per key. tests/test_config_diff.py holds the two paths equal.
DIFF_DEEPER = 0.33


def _same_scalar(a: Any, b: Any) -> bool:
    """Equal as DeepDiff sees scalars: one object, or the same type and an equal value (1 and 1.0 differ;
    two NaN objects differ, one NaN object is itself)."""
    return a is b or (type(a) is type(b) and a == b)


def _plain_diff(old: dict, new: dict, parts: list, out: dict) -> bool:
    """DeepDiff's answer for configs of plain dicts, scalars and lists of scalars, without DeepDiff (importing
    it costs 0.09-0.10 s per process). False, with ``out`` unfinished, where DeepDiff must decide: a list
    holding containers, a tuple, a mapping that is not a dict, a key that is not plain text."""
    union = old.keys() | new.keys()
    if len(union) > 1 and len(old.keys() & new.keys()) / len(union) < DIFF_DEEPER:
        out[_dotted(parts)] = (_dotted(parts), old, new, "changed")  # as DeepDiff: too little in common
        return True
    for key in union:
        if type(key) is not str or "." in key or "[" in key:
            return False
        here = [*parts, key]
        path = _dotted(here)
        if key not in new:
            out[path] = (path, old[key], None, "removed")
            continue
        if key not in old:
            out[path] = (path, None, new[key], "added")
            continue
        va, vb = old[key], new[key]
        ta, tb = type(va), type(vb)
        if ta is dict and tb is dict:
            if not _plain_diff(va, vb, here, out):
                return False
        elif ta in (tuple, set) or tb in (tuple, set) or (ta is not tb and (isinstance(va, (dict, list))
                                                               or isinstance(vb, (dict, list)))):
            return False
        elif ta is list:
            if not (_scalar_list(va) and _scalar_list(vb)):
                return False
            if len(va) != len(vb) or not all(map(_same_scalar, va, vb)):
                out[path] = (path, va, vb, "changed")  # a shape reads best whole
        elif isinstance(va, dict):  # one dict subclass on both sides
            return False
        elif not _same_scalar(va, vb):
            out[path] = (path, va, vb, "changed")
    return True


def config_diff(old: dict, new: dict) -> list[tuple[str, Any, Any, str]]:
    """``(path, old, new, op)`` for each difference; short lists of scalars as a whole."""
    if old == new:
        return []
    plain: dict[str, tuple[str, Any, Any, str]] = {}
    if type(old) is dict and type(new) is dict and _plain_diff(old, new, [], plain):
        return [plain[k] for k in sorted(plain)]
    from deepdiff import DeepDiff

    tree = DeepDiff(old, new, view="tree", verbose_level=2)
    out: dict[str, tuple[str, Any, Any, str]] = {}
    for _kind, levels in tree.items():
        for level in levels:
            parts = level.path(output_format="list")
            # A shape or a kernel size reads best as a whole: (3, 3) -> (5, 5).
            for i, part in enumerate(parts):
                if isinstance(part, int):
                    head = parts[:i]
                    va, vb = _get(old, head), _get(new, head)
                    if (_scalar_list(va) or va is _NotPresent) and (_scalar_list(vb) or vb is _NotPresent):
                        parts = head
                    break
            path = _dotted(parts)
            if path in out:
                continue
            va, vb = _get(old, parts), _get(new, parts)
            if va is _NotPresent:
                out[path] = (path, None, vb, "added")
            elif vb is _NotPresent:
                out[path] = (path, va, None, "removed")
            else:
                out[path] = (path, va, vb, "changed")
    return [out[k] for k in sorted(out)]


def _weights_dict(w) -> dict:
    return {"shape": list(w.shape), "dtype": w.dtype}


def _positional(weights) -> bool:
    return all(w.name.isdigit() for w in weights)


def weight_changes(la: Layer, lb: Layer) -> list[Change]:
    wa, wb = la.weights, lb.weights
    if wa is None or wb is None or la.is_model or lb.is_model:
        return []
    shapes_a = [(tuple(w.shape), w.dtype) for w in wa]
    shapes_b = [(tuple(w.shape), w.dtype) for w in wb]
    names_a = [w.name for w in wa]
    names_b = [w.name for w in wb]
    if shapes_a == shapes_b:
        return []  # names aside (Keras 3 files keep variables by position), nothing changed
    out: list[Change] = []
    by_position = (_positional(wa) or _positional(wb) or set(names_a) != set(names_b)) and len(wa) == len(wb)
    if by_position or _positional(wa) or _positional(wb):
        for i in range(max(len(wa), len(wb))):
            x = wa[i] if i < len(wa) else None
            y = wb[i] if i < len(wb) else None
            label = next((w.name for w in (y, x) if w is not None and not w.name.isdigit()), str(i))
            dx = _weights_dict(x) if x is not None else None
            dy = _weights_dict(y) if y is not None else None
            if dx != dy:
                out.append(weight_changed(label, dx, dy))
        return out
    index_b = {w.name: w for w in wb}
    seen = set()
    for w in wa:
        seen.add(w.name)
        other = index_b.get(w.name)
        if other is None:
            out.append(weight_changed(w.name, _weights_dict(w), None))
        elif _weights_dict(w) != _weights_dict(other):
            out.append(weight_changed(w.name, _weights_dict(w), _weights_dict(other)))
    for w in wb:
        if w.name not in seen:
            out.append(weight_changed(w.name, None, _weights_dict(w)))
    return out


# -- the diff ------------------------------------------------------------------------
def diff(a: Architecture, b: Architecture, options: DiffOptions | None = None) -> ArchDiff:
    """Compare two architectures; see the module docstring."""
    options = options or DiffOptions()
    # The work allocates many small objects and frees few: the cyclic collector's full passes
    # over two large models cost more than the diff itself (and grow with the model).
    with collector_paused():
        return _Differ(a, b, options).run()


def _info(arch: Architecture) -> ModelInfo:
    totals = param_totals(arch)
    return ModelInfo(
        path=arch.source.shown, format=arch.source.format, keras_version=arch.source.keras_version,
        dialect=arch.source.dialect, name=arch.name, class_name=arch.class_name,
        has_topology=arch.has_topology, has_weights=arch.has_weights, layers=_layer_count(arch),
        total_params=totals[0] if totals else None, trainable_params=totals[1] if totals else None,
        inputs=tuple(s.to_dict() for s in arch.input_specs),
        outputs=tuple(_output_dict(arch, r) for r in arch.outputs),
        notes=tuple(arch.notes), operations=sum(layer.is_operation for layer in arch.layers),
    )


def _layer_count(arch: Architecture) -> int | None:
    """``len(model.layers)``; None where nothing lists the layers (a constructor config without weights)."""
    return len(arch.keras_layers()) if arch.layers_known else None


def _output_dict(arch: Architecture, ref) -> dict:
    layer = arch.by_path.get(ref.layer)
    shape = None
    if layer is not None and layer.output_shapes and ref.tensor_index < len(layer.output_shapes):
        s = layer.output_shapes[ref.tensor_index]
        shape = list(s) if isinstance(s, tuple) else None
    return {"layer": ref.layer, "node_index": ref.node_index, "tensor_index": ref.tensor_index, "shape": shape}


def _by_inner_name(groups: dict[str, tuple]) -> dict[str, tuple]:
    """A nested model's variables by inner layer name rather than relative path, where the names are unique:
    a Keras 2 weights file names each variable by its own layer only (``conv/kernel:0``), however deep."""
    names = [k.rpartition("/")[2] for k in groups]
    return dict(zip(names, groups.values())) if len(set(names)) == len(names) else groups


def _scope_of(path: str) -> str:
    return path.rpartition("/")[0]


class _Differ:
    def __init__(self, a: Architecture, b: Architecture, options: DiffOptions):
        self.a, self.b, self.options = a, b, options
        self.ignored = 0
        self.noise = 0
        self.notes: list[str] = []
        self.consumer_cache: dict[int, dict[str, list[str]]] = {}

    def run(self) -> ArchDiff:
        a, b, options = self.a, self.b, self.options
        self.topology = a.has_topology and b.has_topology
        self.configs = self.topology  # a subclassed model's layers come from its weights, without configs
        for label, arch in (("A", a), ("B", b)):
            if not arch.has_topology:
                what = (f"a subclassed model ('{arch.class_name}')" if arch.class_name
                        else "a weights-only file")
                self.notes.append(f"{label} is {what}: it has no topology, so layers are compared by name "
                                  "and weight shapes only (no configs, edges, inputs or outputs)")
            # What --build could not do for this pair (archdiff.read.build.alike) belongs in the report.
            self.notes.extend(f"{label}: {n}" for n in arch.notes if n.startswith("--build:"))
        matching = match_layers(a, b, detect_renames=options.detect_renames, rules=options.maps)
        self.matching = matching
        self.notes.extend(matching.notes)

        self.values = self._values(matching)
        self.held_a, self.held_b = self._held_in_groups(matching)
        # A file without a topology (a weights-only file, a subclassed model) cannot record Keras 3
        # operations, which have no variables and are not in model.layers: not removed, not compared.
        for label, arch, other, only, held in (("A", a, b, matching.only_a, self.held_a),
                                               ("B", b, a, matching.only_b, self.held_b)):
            if only and _layer_count(other) is None:  # the other lists no layers: none is added or removed
                held.update(only)
                self.notes.append(f"{label}'s {len(only)} layer(s) are not compared: the other input lists no "
                                  "layers (constructor arguments without weights); its constructor arguments are "
                                  "compared instead")
                continue
            ops = [p for p in only if arch.by_path[p].is_operation]
            if ops and not other.has_topology:
                held.update(ops)
                self.notes.append(f"{label}'s {len(ops)} operation(s) ({', '.join(ops[:3])}"
                                  f"{', ...' if len(ops) > 3 else ''}) are not compared: the other file has "
                                  "no topology, so it cannot record operations")
        matched = tuple(self._pair(p) for p in matching.pairs)
        removed = tuple(self._entry(a, a.by_path[p]) for p in matching.only_a if p not in self.held_a)
        added = tuple(self._entry(b, b.by_path[p]) for p in matching.only_b if p not in self.held_b)
        edges_added: tuple[Edge, ...] = ()
        edges_removed: tuple[Edge, ...] = ()
        io: tuple[IOChange, ...] = ()
        if self.topology:
            edges_added, edges_removed = self._edges()
            io = tuple(self._io())
        model_changes = []
        if a.name != b.name and a.class_name and b.class_name and not self._hidden((), "model.name"):
            model_changes.append(model_renamed(a.name, b.name))
        if a.class_name != b.class_name and a.class_name and b.class_name and (
                not self._hidden((), "model.class_name")):
            same = class_of_name(a.class_name) == class_of_name(b.class_name)
            if not same or options.strict:
                model_changes.append(model_class_changed(a.class_name, b.class_name, cosmetic=same))

        model_changes.extend(self._constructor_changes())

        effects = {c.effect for d in matched for c in d.changes}
        effects.update(c.effect for c in model_changes)
        if added or removed or edges_added or edges_removed:
            effects.add("topology-changing")
        effects.update(c.effect for c in io)
        ordered, classification = classify(effects)
        return ArchDiff(
            a=_info(a), b=_info(b), matching=matching, matched=matched, added=added, removed=removed,
            edges_added=edges_added, edges_removed=edges_removed, io_changes=io,
            compared_topology=self.topology, model_changes=tuple(model_changes), noise_hidden=self.noise,
            ignored=self.ignored, notes=tuple(self.notes), options=options, kinds=ordered,
            classification=classification, order_a=tuple(layer.path for layer in a.layers),
            order_b=tuple(layer.path for layer in b.layers), values=self.values,
            architectures=(a, b),
        )

    # -- filtering -----------------------------------------------------------------
    def _constructor_changes(self) -> list[Change]:
        """The constructor arguments of two models whose configs hold no layers (keras-hub's backbones),
        serialization noise aside (a dtype policy object or its name)."""
        ca, cb = self.a.constructor, self.b.constructor
        if ca is None or cb is None:
            return []
        built = self.a.built is not None and self.b.built is not None
        if built:
            self.notes.append("both are built from constructor arguments, which are compared (model.constructor.*); "
                              "the layers compared are those Keras built from them (--build), and they carry what "
                              "each argument changes")
        else:
            self.notes.append("both are built from constructor arguments, which are compared (model.constructor.*); "
                              "what a changed argument changes in the layers is known only by building the model "
                              "(--build)")
        found = config_diff(normal_value(ca), normal_value(cb))
        return [constructor_changed(p, o, n, op, built=built) for p, o, n, op in found
                if not self._hidden((), f"model.constructor.{p}")]

    def _hidden(self, layer_paths, change_path: str) -> bool:
        if self.options.ignore and ignore_matches(self.options.ignore, layer_paths, change_path):
            self.ignored += 1
            return True
        return False

    def _keep(self, pair_paths, changes: list[Change]) -> list[Change]:
        if not self.options.ignore:
            return changes
        return [c for c in changes if not self._hidden(pair_paths, c.path)]

    # -- one pair ------------------------------------------------------------------
    def _pair(self, pair) -> LayerDiff:
        la, lb = self.a.by_path[pair.a], self.b.by_path[pair.b]
        changes: list[Change] = []
        if la.name != lb.name and pair.how != "key":  # a key is not a name: nothing says the name changed
            changes.append(renamed(la.name, lb.name))
        known = class_known(la.class_name) and class_known(lb.class_name)
        if known and class_of(la) != class_of(lb):
            changes.append(class_changed(la.class_name, lb.class_name))
        elif known and la.class_name != lb.class_name and self.options.strict:
            changes.append(class_changed(la.class_name, lb.class_name, cosmetic=True))
        if self.configs and la.config and lb.config:
            if la.trainable != lb.trainable:
                changes.append(trainable_changed(la.trainable, lb.trainable))
            config = self._config_changes(la, lb)
            if pair.a in {r.layer for r in self.a.outputs} or pair.b in {r.layer for r in self.b.outputs}:
                config = [for_output_layer(c) for c in config]  # what the model's outputs mean: output-changing
            changes.extend(config)
        changes.extend(weight_changes(la, lb))
        if pair.a in self.grouped[0] or pair.b in self.grouped[1]:
            changes.extend(self._grouped_weight_changes(la, lb))
        changes.extend(self._value_changes(pair))
        if self.topology:
            inputs = self._inputs_change(la, lb)
            if inputs is not None:
                changes.append(inputs)
        changes = self._keep((pair.a, pair.b), changes)
        return LayerDiff(pair.a, pair.b, pair.how, pair.evidence, la.class_name, lb.class_name, tuple(changes))

    # -- a nested model kept as one group of variables -----------------------------
    def _held_in_groups(self, matching) -> tuple[set[str], set[str]]:
        """The layers of a nested model that the other file keeps as one group of variables.

        A Keras 2 ``save_weights`` file has no layers inside a nested model: it keeps
        the nested model's variables in one group named after it, each variable
        named by its inner layer (``stem_conv/kernel:0``). Paired with a file that
        knows the nested model, its inner layers are not removed: they are compared
        through that group's variables (:meth:`_grouped_weight_changes`).
        """
        from archdiff.diff.values.compare import variables_by_inner_layer

        held: tuple[set[str], set[str]] = (set(), set())
        #: The nested models (A's, B's) compared through such a group.
        self.grouped: tuple[set[str], set[str]] = (set(), set())
        if "h5-weights" not in (self.a.source.format, self.b.source.format):
            return held
        sides = ((self.a, self.b, 0), (self.b, self.a, 1))
        for pair in matching.pairs:
            paths = (pair.a, pair.b)
            for model_arch, group_arch, i in sides:
                nested, group = model_arch.by_path[paths[i]], group_arch.by_path[paths[1 - i]]
                if not nested.is_model or group.is_model or group_arch.source.format != "h5-weights":
                    continue
                inner = variables_by_inner_layer(group_arch, group)
                if not inner or "" in inner:
                    continue
                held[i].update(d.path for d in model_arch.descendants(nested.path))
                self.grouped[i].add(paths[i])
        for i, found in enumerate(self.grouped):
            if found:
                names = sorted(found)
                more = f" (+{len(names) - 3} more)" if len(names) > 3 else ""
                shown = ", ".join(f"'{n}'" for n in names[:3]) + more
                plural = "s" * (len(names) > 1)
                self.notes.append(f"{'BA'[i]} keeps the variables of {'AB'[i]}'s nested model{plural} {shown} as "
                                  "one group each (a Keras 2 weights file): their layers are compared through "
                                  "those variables, by inner layer")
        return held

    def _grouped_weight_changes(self, la: Layer, lb: Layer) -> list[Change]:
        """Weight changes between a nested model's inner layers and the group of variables that holds them."""
        from dataclasses import replace

        from archdiff.diff.values.compare import variables_by_inner_layer

        ga, gb = (_by_inner_name(variables_by_inner_layer(arch, layer)) for arch, layer in ((self.a, la), (self.b, lb)))
        out: list[Change] = []
        for inner in sorted(set(ga) | set(gb)):
            xa = replace(la, weights=ga.get(inner, ()), is_model=False)
            xb = replace(lb, weights=gb.get(inner, ()), is_model=False)
            out.extend(replace(c, path=f"weights.{inner}/{c.path.removeprefix('weights.')}")
                       for c in weight_changes(xa, xb))
        return out

    # -- weight values -------------------------------------------------------------
    def _values(self, matching):
        """The value comparison of every matched pair, where both sides carry weights and it is asked for."""
        from archdiff.diff.values import compare_values, has_stored_weights

        if self.options.values == "off" or not (has_stored_weights(self.a) and has_stored_weights(self.b)):
            return None
        found = compare_values(self.a, self.b, [(p.a, p.b) for p in matching.pairs], mode=self.options.values)
        self._values_by_pair = {(lv.a, lv.b): lv for lv in found.layers}
        return found

    def _value_changes(self, pair) -> list[Change]:
        if self.values is None:
            return []
        found = self._values_by_pair.get((pair.a, pair.b))
        if found is None:
            return []
        return [values_changed(v.name, v.figures.to_dict() if v.figures is not None else None)
                for v in found.changed]

    def _config_changes(self, la: Layer, lb: Layer) -> list[Change]:
        if la.config == lb.config or (la.name != lb.name and same_but_name(la.config, lb.config)):
            return []
        na, nb = align_defaults(normal_config(la), normal_config(lb))
        if not self.options.strict:
            if na == nb:
                self.noise += 1
                return []
            return [config_changed(p, o, n, op) for p, o, n, op in config_diff(na, nb)]
        substantive = {p for p, *_ in config_diff(na, nb)}
        out = [config_changed(p, o, n, op, cosmetic=p not in substantive)
               for p, o, n, op in config_diff(strict_config(la), strict_config(lb))]
        if la.module != lb.module:
            out.append(config_changed("module", la.module, lb.module, "changed", cosmetic=True))
        return out

    def _inputs_change(self, la: Layer, lb: Layer) -> Change | None:
        if not la.calls and not lb.calls:
            return None
        a2b = self.matching.a_to_b
        mapped = []
        for call in la.calls:
            refs = []
            for ref in call.inputs:
                pa = f"{la.parent}/{ref.layer}" if la.parent else ref.layer
                node = ref.node_index
                if pa in self.a.by_path:
                    pb = a2b.get(pa)
                    refs.append((pb if pb is not None else "\0" + pa, node, ref.tensor_index))
                else:
                    refs.append(("\0implicit", node, ref.tensor_index))
            mapped.append(refs)
        actual = []
        for call in lb.calls:
            refs = []
            for ref in call.inputs:
                pb = f"{lb.parent}/{ref.layer}" if lb.parent else ref.layer
                node = ref.node_index
                refs.append((pb if pb in self.b.by_path else "\0implicit", node, ref.tensor_index))
            actual.append(refs)
        if mapped == actual:
            return None
        return inputs_changed(_call_text(la, self.matching.a_to_b), _call_text(lb))

    def _entry(self, arch: Architecture, layer: Layer) -> LayerEntry:
        inputs = []
        for call in layer.calls:
            for ref in call.inputs:
                if ref.layer not in inputs:
                    inputs.append(ref.layer)
        outputs = []
        prefix = f"{layer.parent}/" if layer.parent else ""
        for other in self._consumers(arch).get(layer.path, ()):
            name = other[len(prefix):] if prefix and other.startswith(prefix) else other
            if name not in outputs:
                outputs.append(name)
        return LayerEntry(layer.path, layer.name, layer.class_name, layer.index, layer.depth, arch.params(layer),
                          tuple(inputs), tuple(outputs))

    def _consumers(self, arch: Architecture) -> dict[str, list[str]]:
        """Layer path -> the paths of the layers it feeds (built once per model)."""
        cache = self.consumer_cache
        key = id(arch)
        if key not in cache:
            out: dict[str, list[str]] = {}
            for layer in arch.layers:
                prefix = f"{layer.parent}/" if layer.parent else ""
                for call in layer.calls:
                    for ref in call.inputs:
                        out.setdefault(prefix + ref.layer, []).append(layer.path)
            cache[key] = out
        return cache[key]

    # -- whole-graph -----------------------------------------------------------------
    def _edge_set(self, arch: Architecture, mapping: dict[str, str] | None) -> dict[tuple, Edge]:
        out: dict[tuple, Edge] = {}
        for layer in arch.layers:
            prefix = f"{layer.parent}/" if layer.parent else ""
            for c, call in enumerate(layer.calls):
                for p, ref in enumerate(call.inputs):
                    source = prefix + ref.layer
                    if mapping is not None:
                        target_key = mapping.get(layer.path, "\0" + layer.path)
                        if source in arch.by_path:
                            source_key = mapping.get(source, "\0" + source)
                        else:  # a Sequential's implicit input: the same wherever its scope went
                            scope = mapping.get(layer.parent, layer.parent) if layer.parent else ""
                            source_key = f"\0implicit:{scope}"
                    else:
                        target_key = layer.path
                        source_key = source if source in arch.by_path else f"\0implicit:{layer.parent}"
                    key = (source_key, target_key, c, p, ref.node_index, ref.tensor_index)
                    out[key] = Edge(source, layer.path, c, p)
        return out

    def _edges(self) -> tuple[tuple[Edge, ...], tuple[Edge, ...]]:
        mapped_a = self._edge_set(self.a, self.matching.a_to_b)
        in_b = self._edge_set(self.b, None)
        added = tuple(e for k, e in in_b.items() if k not in mapped_a)
        removed = tuple(e for k, e in mapped_a.items() if k not in in_b)
        return added, removed

    def _io(self) -> Iterable[IOChange]:
        a, b = self.a, self.b
        a2b = self.matching.a_to_b
        specs_a, specs_b = a.input_specs, b.input_specs
        for i in range(max(len(specs_a), len(specs_b))):
            sa = specs_a[i] if i < len(specs_a) else None
            sb = specs_b[i] if i < len(specs_b) else None
            if sa is None or sb is None:
                yield io_changed("input", i, "added" if sa is None else "removed",
                                 sa.to_dict() if sa else None, sb.to_dict() if sb else None)
                continue
            if sa.shape != sb.shape and sa.shape is not None and sb.shape is not None:
                yield io_changed("input", i, "shape", list(sa.shape), list(sb.shape))
            if sa.dtype != sb.dtype and sa.dtype and sb.dtype:
                yield io_changed("input", i, "dtype", sa.dtype, sb.dtype)
            if sa.name != sb.name and a2b.get(sa.name, sa.name) != sb.name:
                yield io_changed("input", i, "source", sa.name, sb.name)
            elif sa.name != sb.name:
                yield io_changed("input", i, "name", sa.name, sb.name)
        outs_a, outs_b = a.outputs, b.outputs
        for i in range(max(len(outs_a), len(outs_b))):
            ra = outs_a[i] if i < len(outs_a) else None
            rb = outs_b[i] if i < len(outs_b) else None
            if ra is None or rb is None:
                yield io_changed("output", i, "added" if ra is None else "removed",
                                 _output_dict(a, ra) if ra else None, _output_dict(b, rb) if rb else None)
                continue
            da, db = _output_dict(a, ra), _output_dict(b, rb)
            if (a2b.get(ra.layer) != rb.layer or ra.tensor_index != rb.tensor_index
                    or ra.node_index != rb.node_index):
                yield io_changed("output", i, "source", ra.layer, rb.layer)
            elif ra.layer != rb.layer:
                yield io_changed("output", i, "name", ra.layer, rb.layer)
            if da["shape"] is not None and db["shape"] is not None and da["shape"] != db["shape"]:
                yield io_changed("output", i, "shape", da["shape"], db["shape"])


def class_of_name(name: str) -> str:
    return canonical_class(name)


def _call_text(layer: Layer, renames: dict[str, str] | None = None) -> list[str]:
    out = []
    prefix = f"{layer.parent}/" if layer.parent else ""
    for c, call in enumerate(layer.calls):
        for ref in call.inputs:
            text = ref.layer if (ref.node_index, ref.tensor_index) == (0, 0) else \
                f"{ref.layer}[{ref.node_index}][{ref.tensor_index}]"
            if renames is not None:
                now = renames.get(prefix + ref.layer)
                if now is not None and now != prefix + ref.layer:
                    text += f" (now {now})"
            out.append(text if len(layer.calls) == 1 else f"call {c}: {text}")
    return out
