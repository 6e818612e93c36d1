"""Rules of Keras' recurrent layers (LSTM, GRU, SimpleRNN) and the wrappers Bidirectional and TimeDistributed.

Each class's output-shape rule and weight rule sit side by side here and are
filed together with :func:`archdiff.shapes.registry.register`. The wrappers
look up the rules of the layer they wrap through the registry, so they follow
whatever family that layer belongs to.
"""
from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from archdiff.shapes.helpers import Unknown, first_shape, inner_layer, mul_dim, need
from archdiff.shapes.registry import (
    as_shape_list,
    layer_output_shapes,
    raw_weights,
    register,
)

#: recurrent class -> (states returned with ``return_state``, cell variable prefix, gates)
_RNNS = {"LSTM": (2, "lstm_cell", 4), "GRU": (1, "gru_cell", 3), "SimpleRNN": (1, "simple_rnn_cell", 1)}


def _rnn(cfg, shapes, states: int):
    shape = first_shape(shapes)
    if len(shape) != 3:
        raise Unknown
    units = int(cfg["units"])
    out = (shape[0], shape[1], units) if cfg.get("return_sequences") else (shape[0], units)
    if cfg.get("return_state"):
        return [out] + [(shape[0], units)] * states
    return out


def _rnn_weights(cfg, shapes, keras2, class_name):
    _, cell, gates = _RNNS[class_name]
    fan_in = need(first_shape(shapes)[-1])
    units = int(cfg["units"])
    out = [
        (f"{cell}/kernel", (fan_in, gates * units), True),
        (f"{cell}/recurrent_kernel", (units, gates * units), True),
    ]
    if cfg.get("use_bias", True):
        # GRU with reset_after keeps separate input and recurrent biases.
        if class_name == "GRU" and cfg.get("reset_after", True):
            out.append((f"{cell}/bias", (2, gates * units), True))
        else:
            out.append((f"{cell}/bias", (gates * units,), True))
    return out


for _name, (_states, _cell, _gates) in _RNNS.items():
    register(_name, output=partial(_rnn, states=_states), weights=partial(_rnn_weights, class_name=_name))


# -- Bidirectional -----------------------------------------------------------------
def _bidirectional(cfg, shapes):
    inner_class, inner_cfg = inner_layer(cfg)
    out = as_shape_list(layer_output_shapes(inner_class, inner_cfg, shapes))
    if out is None:
        raise Unknown
    output, states = out[0], out[1:]
    mode = cfg.get("merge_mode", "concat")
    if mode == "concat":
        outputs = [(*output[:-1], mul_dim(output[-1], 2))]
    elif mode is None:
        outputs = [output, output]
    elif mode in ("sum", "mul", "ave"):
        outputs = [output]
    else:
        raise Unknown
    # Keras lists the merged output(s), then the forward states, then the backward ones.
    return outputs + states + states


def _bidirectional_weights(cfg, shapes, keras2):
    inner_class, inner_cfg = inner_layer(cfg)
    base = str(inner_cfg.get("name", "")).removeprefix("forward_")
    forward = f"forward_{base}"
    backward_class, backward_cfg = inner_class, inner_cfg
    if isinstance(cfg.get("backward_layer"), Mapping):
        backward_class, backward_cfg = inner_layer(cfg, "backward_layer")
        backward = str(backward_cfg.get("name"))
    else:
        backward = f"backward_{base.removeprefix('backward_')}"
    out = []
    for prefix, klass, conf in ((forward, inner_class, inner_cfg), (backward, backward_class, backward_cfg)):
        specs = raw_weights(klass, conf, shapes, keras2)
        out += [(f"{prefix}/{spec[0]}", *spec[1:]) for spec in specs]
    return out


register("Bidirectional", output=_bidirectional, weights=_bidirectional_weights)


# -- TimeDistributed -----------------------------------------------------------------
def _time_distributed(cfg, shapes):
    shape = first_shape(shapes)
    inner_class, inner_cfg = inner_layer(cfg)
    out = as_shape_list(layer_output_shapes(inner_class, inner_cfg, [(shape[0], *shape[2:])]))
    if not out or len(out) != 1:
        raise Unknown
    return (shape[0], shape[1], *out[0][1:])


def _time_distributed_weights(cfg, shapes, keras2):
    shape = first_shape(shapes)
    inner_class, inner_cfg = inner_layer(cfg)
    specs = raw_weights(inner_class, inner_cfg, [(shape[0], *shape[2:])], keras2)
    if keras2:
        return specs  # tf-keras builds the inner variables in the wrapper's own scope
    return [(f"{inner_cfg.get('name')}/{spec[0]}", *spec[1:]) for spec in specs]


register("TimeDistributed", output=_time_distributed, weights=_time_distributed_weights)
