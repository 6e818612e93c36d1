"""Random Keras models for the oracle: Hypothesis strategies of recipes, and the builder.

A recipe is plain data (so Hypothesis shrinks it and prints it readably): the
inputs, then steps that each make one tensor from earlier ones, then the
outputs. Every tensor is ``(batch, WIDTH)`` so that any step fits any
tensor. Steps cover what users write: layers with auto or explicit names,
a layer called twice (shared), Keras 3 operations (``x + y``, ``x * 2``,
``keras.ops.*``), a nested Sequential or Functional model, BatchNormalization
(non-trainable variables), a frozen layer, and Concatenate. A Sequential recipe
(``{"sequential": [...]}``) is a stack of layers, nested Sequentials included.
Both build with Keras 3 (``keras``) and with tf-keras (``tf_keras``), where
operations are TensorFlow functions on Keras tensors (``TFOpLambda`` layers).
Holds no tests.
"""
from __future__ import annotations

from hypothesis import strategies as st

WIDTH = 4
#: Explicit names are drawn from these (each used once per model); the rest are Keras' auto names.
NAMES = ("alpha", "beta", "gamma", "delta", "conv1_conv", "dense_7", "batch_normalization_9", "head", "add_3")

STEPS = ("dense", "shared", "bn", "frozen", "op_add", "op_scale", "op_fn", "concat", "nested_seq",
         "nested_fn", "add_layer")
NAMED = ("dense", "bn", "frozen", "concat", "nested_seq", "nested_fn", "add_layer")
OP_FNS = ("relu", "tanh", "sigmoid", "abs", "square")


@st.composite
def recipes(draw, max_steps: int = 8) -> dict:
    n_inputs = draw(st.integers(1, 2))
    steps = []
    n_tensors = n_inputs
    names = iter(draw(st.permutations(NAMES)))
    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from(STEPS))
        # The newest tensor first, so that most steps reach the outputs (Keras drops the rest).
        step = {"kind": kind, "args": [n_tensors - 1, draw(st.integers(0, n_tensors - 1))]}
        if kind in NAMED and draw(st.booleans()):
            step["name"] = next(names, None)
        if kind == "op_fn":
            step["fn"] = draw(st.sampled_from(OP_FNS))
        steps.append(step)
        n_tensors += 1
    # The newest tensor, and maybe another one made by a step.
    outputs = [n_tensors - 1] + draw(st.lists(st.integers(n_inputs, n_tensors - 2), max_size=1)
                                     if n_tensors - 2 >= n_inputs else st.just([]))
    return {"inputs": n_inputs, "steps": steps, "outputs": outputs}


SEQUENTIAL_STEPS = ("dense", "bn", "frozen", "dropout", "activation", "nested_seq")
SEQUENTIAL_NAMED = ("dense", "bn", "frozen", "dropout", "nested_seq")


@st.composite
def sequential_recipes(draw, max_steps: int = 6) -> dict:
    names = iter(draw(st.permutations(NAMES)))
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        step = {"kind": draw(st.sampled_from(SEQUENTIAL_STEPS))}
        if step["kind"] in SEQUENTIAL_NAMED and draw(st.booleans()):
            step["name"] = next(names, None)
        if step["kind"] == "activation":
            step["fn"] = draw(st.sampled_from(OP_FNS[:3]))
        steps.append(step)
    return {"sequential": steps, "name": draw(st.sampled_from([None, "stack", "alpha"]))}


def _ops(keras):
    """``(op_fn(name, x), nested-model class name)`` for Keras 3, or for tf-keras (TensorFlow functions)."""
    if hasattr(keras, "ops"):
        return lambda fn, x: getattr(keras.ops, fn)(x)
    import tensorflow as tf

    fns = {"relu": tf.nn.relu, "tanh": tf.math.tanh, "sigmoid": tf.math.sigmoid, "abs": tf.math.abs,
           "square": tf.math.square}
    return lambda fn, x: fns[fn](x)


def build(keras, recipe: dict):
    """The model a recipe describes, with ``keras`` (Keras 3) or ``tf_keras``."""
    if "sequential" in recipe:
        return build_sequential(keras, recipe)
    layers, op_fn = keras.layers, _ops(keras)
    tensors = [keras.Input((WIDTH,), name=f"in_{i}" if i else None) for i in range(recipe["inputs"])]
    inputs = list(tensors)
    dense_layers = []
    for step in recipe["steps"]:
        a, b = (tensors[i] for i in step["args"])
        name, kind = step.get("name"), step["kind"]
        if kind == "dense":
            layer = layers.Dense(WIDTH, name=name)
            dense_layers.append(layer)
            out = layer(a)
        elif kind == "shared":
            # A layer called again on another tensor (one node, two calls); a new one if none exists yet.
            if not dense_layers:
                dense_layers.append(layers.Dense(WIDTH))
            out = dense_layers[0](a)
        elif kind == "bn":
            out = layers.BatchNormalization(name=name)(a)
        elif kind == "frozen":
            layer = layers.Dense(WIDTH, name=name)
            layer.trainable = False
            out = layer(a)
        elif kind == "op_add":
            out = a + b
        elif kind == "op_scale":
            out = a * 2.0
        elif kind == "op_fn":
            out = op_fn(step["fn"], a)
        elif kind == "concat":
            out = layers.Dense(WIDTH)(layers.Concatenate(name=name)([a, b]))
        elif kind == "add_layer":
            out = layers.Add(name=name)([a, b])
        elif kind == "nested_seq":
            out = keras.Sequential([keras.Input((WIDTH,)), layers.Dense(WIDTH), layers.BatchNormalization()],
                                   name=name)(a)
        else:  # nested_fn: a Functional model with an operation inside, called as a layer
            x = inner_in = keras.Input((WIDTH,))
            x = layers.Dense(WIDTH)(x)
            out = keras.Model(inner_in, x + inner_in, name=name)(a)
        tensors.append(out)
    outputs = [tensors[i] for i in recipe["outputs"]]
    return keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0])


def build_sequential(keras, recipe: dict):
    """The Sequential model of a ``{"sequential": [...]}`` recipe."""
    layers = keras.layers
    stack = [keras.Input((WIDTH,))]
    for step in recipe["sequential"]:
        name, kind = step.get("name"), step["kind"]
        if kind == "dense":
            stack.append(layers.Dense(WIDTH, name=name))
        elif kind == "bn":
            stack.append(layers.BatchNormalization(name=name))
        elif kind == "frozen":
            layer = layers.Dense(WIDTH, name=name)
            layer.trainable = False
            stack.append(layer)
        elif kind == "dropout":
            stack.append(layers.Dropout(0.25, name=name))
        elif kind == "activation":
            stack.append(layers.Activation(step["fn"]))
        else:  # nested_seq
            stack.append(keras.Sequential([keras.Input((WIDTH,)), layers.Dense(WIDTH),
                                           layers.BatchNormalization()], name=name))
    return keras.Sequential(stack, name=recipe.get("name"))
