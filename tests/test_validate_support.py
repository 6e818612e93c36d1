"""Tiny Keras 3 models and transferred weight files for the validate tests (helpers, no tests here).

Everything is small (16 x 16 images, 8 filters) so that rebuilding and a few
training steps take well under a second each. Every source variable gets a
distinct seeded value, so a value found in the wrong place can be traced to
where it came from.
"""
from __future__ import annotations

import numpy as np

IMAGE = (16, 16, 3)
SOURCE_CLASSES = 6
TARGET_CLASSES = 3


def block(keras, x, i: int, filters: int = 8):
    L = keras.layers
    x = L.Conv2D(filters, 3, padding="same", name=f"conv{i}")(x)
    x = L.BatchNormalization(momentum=0.9, name=f"bn{i}")(x)
    return L.ReLU(name=f"relu{i}")(x)


def source_model(keras, image=IMAGE):
    """conv1 (3->8), conv2 and conv3 (8->8, the same shapes), a 6-way head."""
    L = keras.layers
    inputs = keras.Input(image, name="image")
    x = block(keras, inputs, 1)
    x = block(keras, x, 2)
    x = L.MaxPooling2D(name="pool")(x)
    x = block(keras, x, 3)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(SOURCE_CLASSES, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="tiny_source")


def target_model(keras, image=IMAGE):
    """The source's body, block 4 added, a new 3-way head."""
    L = keras.layers
    inputs = keras.Input(image, name="image")
    x = block(keras, inputs, 1)
    x = block(keras, x, 2)
    x = L.MaxPooling2D(name="pool")(x)
    x = block(keras, x, 3)
    x = block(keras, x, 4)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(TARGET_CLASSES, activation="softmax", name="new_head")(x)
    return keras.Model(inputs, outputs, name="tiny_target")


def randomize(model, seed: int = 0) -> None:
    """Distinct, sane values for every variable (BatchNormalization variances stay positive)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for var in layer.weights:
            name = var.name
            shape = tuple(var.shape)
            if name in ("gamma", "moving_variance"):
                value = rng.uniform(0.8, 1.2, shape)
            elif name in ("beta", "moving_mean", "bias"):
                value = rng.normal(0.0, 0.05, shape)
            else:
                value = rng.normal(0.0, 0.25, shape)
            var.assign(value.astype("float32"))


def transfer_by_name(keras, source, target, *, skip=()) -> None:
    """What a correct transfer does: every same-named layer's weights, set layer by layer (Keras 3)."""
    for layer in target.layers:
        if layer.name in skip or not layer.weights:
            continue
        try:
            src = source.get_layer(layer.name)
        except ValueError:
            continue
        if [tuple(w.shape) for w in src.weights] == [tuple(w.shape) for w in layer.weights]:
            layer.set_weights(src.get_weights())


def make_files(keras, folder, *, target_image=IMAGE):
    """source.keras (randomized), target.keras (fresh), good.weights.h5 (a correct transfer), bad ones."""
    keras.utils.set_random_seed(1)
    source = source_model(keras)
    randomize(source, seed=7)
    source.save(folder / "source.keras")
    keras.utils.set_random_seed(2)
    target = target_model(keras, image=target_image)
    target.save(folder / "target.keras")
    initial = [layer.get_weights() for layer in target.layers]

    transfer_by_name(keras, source, target)
    target.save_weights(folder / "good.weights.h5")
    target.save(folder / "good.keras")

    # Two variables swapped inside one layer: bn2's gamma and beta (same shape).
    bn = target.get_layer("bn2")
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([beta, gamma, mean, var])
    target.save_weights(folder / "swapped.weights.h5")
    bn.set_weights([gamma, beta, mean, var])

    # A layer given another layer's weights of the same shape: conv3 holds the source's conv2.
    conv3 = target.get_layer("conv3")
    good_conv3 = conv3.get_weights()
    conv3.set_weights(source.get_layer("conv2").get_weights())
    target.save_weights(folder / "shifted.weights.h5")
    conv3.set_weights(good_conv3)

    # A layer the transfer forgot: conv1 keeps the target's own initial values.
    conv1 = target.get_layer("conv1")
    good_conv1 = conv1.get_weights()
    conv1.set_weights(initial[[layer.name for layer in target.layers].index("conv1")])
    target.save_weights(folder / "forgot.weights.h5")
    conv1.set_weights(good_conv1)
    return folder


def fast_options(**changes):
    """Options that keep a fine-tune to a few dozen milliseconds of training."""
    from archdiff.validate import ValidateOptions

    base = dict(epochs=3, batch_size=32, samples=96, test_samples=64, learning_rate=3e-3, seed=0,
                device="cpu")
    base.update(changes)
    return ValidateOptions(**base)
