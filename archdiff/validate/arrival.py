"""Check 2, weights arrived: every paired variable of the live model equals the source file's, bit for bit.

The live values are those Keras loaded from OUT into the rebuilt target;
the stored values are read from the source *file* with h5py (not through
Keras). A variable that differs is named, and so is what it holds instead,
where that is something known: another variable of the same layer
(swapped), another layer's (shifted), or the target's own initial value
(not transferred).
"""
from __future__ import annotations

from contextlib import ExitStack

import numpy as np

from archdiff.errors import ArchdiffError
from archdiff.model import Architecture
from archdiff.validate.live import FileValues, digest, layer_vars, live_layers, max_abs, pair_variables, same_bits
from archdiff.validate.report import ARRIVED, FAIL, FAILED, PASS, SKIPPED, LayerArrival, VariableResult, WeightsCheck

#: What ``holds`` says of a variable that kept the target's own value.
OWN_INITIAL_VALUE = "target's own initial value"


def check_weights(model, target: Architecture, source: Architecture, pairs: dict[str, str], *,
                  target_values: Architecture | None = None) -> WeightsCheck:
    """Compare every paired variable of the live model bitwise with the source file's value.

    ``target_values``: the target's own file, where its initial values are
    known, so that a variable left untransferred can be recognized.
    """
    if not source.has_weights:
        return WeightsCheck(status=SKIPPED, reason="the source file holds no weights")
    live = live_layers(model)
    arrivals: list[LayerArrival] = []
    not_transferred: list[dict] = []
    used_sources: set[str] = set()
    with ExitStack() as stack:
        values = stack.enter_context(FileValues(source))
        own = None
        if target_values is not None and target_values.has_weights:
            try:
                own = stack.enter_context(FileValues(target_values))
            except ArchdiffError:
                own = None
        where_from = _SourceIndex(source, values)

        for layer in target.layers:
            if layer.is_model or not layer.weights:
                continue
            keras_layer = live.get(layer.path)
            if keras_layer is None:
                not_transferred.append({"layer": layer.path, "reason": "not found in the rebuilt model"})
                continue
            src_path = pairs.get(layer.path)
            if src_path is None:
                not_transferred.append({"layer": layer.path, "reason": "the source has no layer of this name"})
                continue
            src = source.by_path[src_path]
            if not src.weights:
                not_transferred.append({"layer": layer.path, "reason": f"source layer '{src_path}' has no weights"})
                continue
            paired, problem = pair_variables(layer_vars(keras_layer), src.weights)
            if paired is None:
                not_transferred.append({"layer": layer.path, "reason": f"does not fit '{src_path}': {problem}"})
                continue
            used_sources.add(src_path)
            own_specs = None
            if own is not None:
                own_layer = target_values.by_path.get(layer.path)
                if own_layer is not None and own_layer.weights:
                    own_pairs, _ = pair_variables(layer_vars(keras_layer), own_layer.weights)
                    if own_pairs:
                        own_specs = {name: spec for name, _, spec in own_pairs}
            variables = []
            for name, var, spec in paired:
                live_value = np.asarray(var.numpy())
                stored = values.read(spec)
                equal, cast_from = same_bits(live_value, stored)
                diff = holds = None
                if not equal:
                    diff = max_abs(live_value, stored)
                    holds = _what_it_holds(live_value, where_from, src_path, spec.name, own,
                                           own_specs.get(name) if own_specs else None)
                variables.append(VariableResult(name=name, source_name=spec.name, shape=tuple(live_value.shape),
                                                dtype=str(live_value.dtype), equal=equal, max_abs_diff=diff,
                                                holds=holds, cast_from=cast_from))
            arrivals.append(_arrival(layer.path, src_path, tuple(variables)))
    unused_source = tuple(layer.path for layer in source.layers
                          if layer.weights and not layer.is_model and layer.path not in used_sources)
    checked = sum(len(a.variables) for a in arrivals)
    equal_count = sum(1 for a in arrivals for v in a.variables if v.equal)
    failures = [a.message for a in arrivals if a.status == FAILED]
    if not arrivals:
        status = FAIL
        reason = "no layer of the target takes weights from the source: nothing was transferred"
        failures.append("no transferred layer: the target shares no layer with weights of the same shapes "
                        "with the source (use --map OLD=NEW or --match auto for renamed layers)")
    elif failures:
        status = FAIL
        reason = f"{len(failures)} of {len(arrivals)} transferred layers do not hold the source's values"
    else:
        status = PASS
        reason = f"{equal_count} variables in {len(arrivals)} layers equal the source's, bit for bit"
    return WeightsCheck(status=status, reason=reason, layers=tuple(arrivals), not_transferred=tuple(not_transferred),
                        unused_source=unused_source, checked_variables=checked, equal_variables=equal_count,
                        failures=tuple(failures))


class _SourceIndex:
    """Which source variables hold a given value (by digest); built on first use, since most checks pass."""

    def __init__(self, source: Architecture, values: FileValues):
        self.source, self.values = source, values
        self._index: dict[tuple, list[tuple[str, str]]] | None = None

    def __call__(self, value: np.ndarray) -> list[tuple[str, str]]:
        if self._index is None:
            self._index = {}
            for layer in self.source.layers:
                for spec in layer.weights or ():
                    self._index.setdefault(digest(self.values.read(spec)), []).append((layer.path, spec.name))
        return self._index.get(digest(value), [])


def _arrival(target_path: str, src_path: str, variables: tuple[VariableResult, ...]) -> LayerArrival:
    if all(v.equal for v in variables):
        return LayerArrival(target=target_path, source=src_path, status=ARRIVED, variables=variables)
    return LayerArrival(target=target_path, source=src_path, status=FAILED, variables=variables,
                        message=_arrival_message(target_path, src_path, variables))


def _what_it_holds(value, where_from: _SourceIndex, src_path, src_name, own, own_spec) -> str | None:
    matches = where_from(value)
    same_layer = [m for m in matches if m[0] == src_path and m[1] != src_name]
    if same_layer:
        return f"{same_layer[0][0]}:{same_layer[0][1]}"
    others = [m for m in matches if m[0] != src_path]
    if others:
        return f"{others[0][0]}:{others[0][1]}"
    if own is not None and own_spec is not None:
        try:
            if same_bits(value, own.read(own_spec))[0]:
                return OWN_INITIAL_VALUE
        except ArchdiffError:
            pass
    return None


def _arrival_message(layer: str, source: str, variables: tuple[VariableResult, ...]) -> str:
    """One sentence for a layer whose values did not arrive: swapped, shifted, not transferred, or differing."""
    bad = [v for v in variables if not v.equal]
    holds = [v.holds for v in bad]
    in_layer = [v for v in bad if v.holds and v.holds.startswith(source + ":")]
    if len(in_layer) >= 2 and len(in_layer) == len(bad):
        parts = ", ".join(f"'{v.name}' holds the source's '{v.holds.split(':', 1)[1]}'" for v in in_layer)
        return f"layer '{layer}': variables are swapped: {parts}"
    other_layers = {h.split(":", 1)[0] for h in holds if h and ":" in h and not h.startswith(source + ":")}
    if len(other_layers) == 1 and all(v.holds for v in bad):
        other = other_layers.pop()
        names = ", ".join(v.name for v in bad)
        return f"layer '{layer}' holds the weights of source layer '{other}' ({names}), not those of '{source}'"
    parts = []
    for v in bad:
        if v.holds == OWN_INITIAL_VALUE:
            parts.append(f"'{v.name}' was not transferred (it still holds the target's own initial value)")
        elif v.holds:
            parts.append(f"'{v.name}' holds the source's '{v.holds}' instead of '{source}:{v.source_name}'")
        else:
            diff = "" if v.max_abs_diff is None else f" (max |diff| {v.max_abs_diff:.3g})"
            parts.append(f"'{v.name}' differs from the source's '{v.source_name}'{diff}")
    return f"layer '{layer}': " + "; ".join(parts)
