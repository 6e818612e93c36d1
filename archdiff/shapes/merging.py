"""Rules of Keras' merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot.

Each class's output-shape rule and weight rule (none: merging holds no
variables) are filed together with :func:`archdiff.shapes.registry.register`.
"""
from __future__ import annotations

from archdiff.shapes.helpers import Unknown, norm_axis
from archdiff.shapes.registry import no_weights, register


def _elementwise(shape1, shape2):
    """Keras' merge-layer broadcast of two shapes without their batch dims."""
    if shape1 is None or shape2 is None:
        return None
    if len(shape1) < len(shape2):
        shape1, shape2 = shape2, shape1
    if not shape2:
        return tuple(shape1)
    out = list(shape1[: len(shape1) - len(shape2)])
    for i, j in zip(shape1[len(shape1) - len(shape2):], shape2):
        if i is None or j is None:
            out.append(None)
        elif i == 1:
            out.append(j)
        elif j == 1 or i == j:
            out.append(i)
        else:
            raise Unknown
    return tuple(out)


def _merge(cfg, shapes):
    if not shapes or any(s is None for s in shapes):
        raise Unknown
    out = tuple(shapes[0][1:])
    for s in shapes[1:]:
        out = _elementwise(out, tuple(s[1:]))
    batches = {s[0] for s in shapes} - {None}
    batch = batches.pop() if len(batches) == 1 else None
    return (batch, *out)


register(("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"), output=_merge, weights=no_weights)


def _concatenate(cfg, shapes):
    if not shapes or any(s is None for s in shapes):
        raise Unknown
    out = list(shapes[0])
    axis = norm_axis(cfg.get("axis", -1), len(out))
    for s in shapes[1:]:
        if len(s) != len(out):
            raise Unknown
        if out[axis] is None or s[axis] is None:
            out[axis] = None
            break
        out[axis] += s[axis]
    return tuple(out)


register("Concatenate", output=_concatenate, weights=no_weights)


def _dot(cfg, shapes):
    if len(shapes) != 2 or any(s is None for s in shapes):
        raise Unknown
    a, b = list(shapes[0]), list(shapes[1])
    axes = cfg.get("axes")
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [norm_axis(axes[0], len(a)), norm_axis(axes[1], len(b))]
    a.pop(axes[0])
    b.pop(axes[1])
    b.pop(0)
    out = a + b
    return tuple(out + [1] if len(out) == 1 else out)


register("Dot", output=_dot, weights=no_weights)
