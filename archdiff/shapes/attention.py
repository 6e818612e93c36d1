"""Rules of Keras' attention layers: MultiHeadAttention.

The output-shape rule and the weight rule sit side by side here and are
filed together with :func:`archdiff.shapes.registry.register`.
"""
from __future__ import annotations

from archdiff.shapes.helpers import Unknown, as_shape, first_shape, need
from archdiff.shapes.registry import register


def _multi_head_attention(cfg, shapes):
    query = first_shape(shapes)
    out = cfg.get("output_shape")
    if out is None:
        return query
    out = (out,) if isinstance(out, int) else as_shape(out)
    if out is None:
        raise Unknown
    return (*query[:-1], *out)


def _multi_head_attention_weights(cfg, shapes, keras2):
    query = first_shape(shapes)
    value = shapes[1] if len(shapes) > 1 and shapes[1] is not None else query
    key = shapes[2] if len(shapes) > 2 and shapes[2] is not None else value
    heads = int(cfg["num_heads"])
    key_dim = int(cfg["key_dim"])
    value_dim = int(cfg.get("value_dim") or key_dim)
    out_dims = cfg.get("output_shape")
    if out_dims is None:
        out_dims = (need(query[-1]),)
    elif isinstance(out_dims, int):
        out_dims = (out_dims,)
    else:
        out_dims = as_shape(out_dims)
        if out_dims is None:
            raise Unknown
    bias = cfg.get("use_bias", True)
    out = []
    for name, fan_in, size in (("query", query[-1], key_dim), ("key", key[-1], key_dim),
                               ("value", value[-1], value_dim)):
        out.append((f"{name}/kernel", (need(fan_in), heads, size), True))
        if bias:
            out.append((f"{name}/bias", (heads, size), True))
    out.append(("attention_output/kernel", (heads, value_dim, *out_dims), True))
    if bias:
        out.append(("attention_output/bias", tuple(out_dims), True))
    return out


register("MultiHeadAttention", output=_multi_head_attention, weights=_multi_head_attention_weights)
