"""Rules of Keras' core layers: inputs, Dense, Embedding, activations and regularization.

Each class's output-shape rule and weight rule sit side by side here and are
filed together with :func:`archdiff.shapes.registry.register`.
"""
from __future__ import annotations

from archdiff.shapes.helpers import as_shape, first_shape, lora_specs, need, same_shape
from archdiff.shapes.registry import no_weights, register


# -- InputLayer ----------------------------------------------------------------
def _input_layer(cfg, shapes):
    shape = as_shape(cfg.get("batch_shape")) or as_shape(cfg.get("batch_input_shape"))
    if shape is None and as_shape(cfg.get("shape")) is not None:
        shape = (cfg.get("batch_size"), *as_shape(cfg["shape"]))
    if shape is None:
        return first_shape(shapes)
    return shape


register("InputLayer", output=_input_layer, weights=no_weights)


# -- Dense ---------------------------------------------------------------------
def _dense(cfg, shapes):
    shape = first_shape(shapes)
    return (*shape[:-1], int(cfg["units"]))


def _dense_weights(cfg, shapes, keras2):
    units = int(cfg["units"])
    fan_in = need(first_shape(shapes)[-1])
    lora = lora_specs(cfg, fan_in, units, "lora_kernel")
    out = [("kernel", (fan_in, units), not lora)]
    if cfg.get("use_bias", True):
        out.append(("bias", (units,), True))
    return out + lora


register("Dense", output=_dense, weights=_dense_weights)


# -- Embedding -----------------------------------------------------------------
def _embedding(cfg, shapes):
    shape = first_shape(shapes)
    length = cfg.get("input_length")
    # Keras 2 fills an unknown sequence length from `input_length`.
    if isinstance(length, int) and len(shape) == 2 and shape[1] is None:
        shape = (shape[0], length)
    return (*shape, int(cfg["output_dim"]))


def _embedding_weights(cfg, shapes, keras2):
    rows, cols = int(cfg["input_dim"]), int(cfg["output_dim"])
    lora = lora_specs(cfg, rows, cols, "lora_embeddings")
    return [("embeddings", (rows, cols), not lora)] + lora


register("Embedding", output=_embedding, weights=_embedding_weights)


# -- activations ---------------------------------------------------------------
register(("Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "ThresholdedReLU"),
         output=same_shape, weights=no_weights)


def _prelu_weights(cfg, shapes, keras2):
    param = list(first_shape(shapes)[1:])
    for axis in cfg.get("shared_axes") or ():
        param[int(axis) - 1] = 1
    for d in param:
        need(d)
    return [("alpha", tuple(param), True)]


register("PReLU", output=same_shape, weights=_prelu_weights)


# -- regularization, masking, identity -----------------------------------------
register(("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
          "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
          "Masking", "Identity"),
         output=same_shape, weights=no_weights)


# -- layers of keras.applications (same name and config in tf-keras and Keras 3) ---
def _layer_scale_weights(cfg, shapes, keras2):
    return [("gamma", (need(cfg.get("projection_dim")),), True)]


# ConvNeXt's LayerScale scales its input by a learned vector; InceptionResNetV2's
# CustomScaleLayer returns inputs[0] + inputs[1] * scale.
register("LayerScale", output=same_shape, weights=_layer_scale_weights)
register("CustomScaleLayer", output=same_shape, weights=no_weights)
