"""What differs between tf-keras (Keras 2) and Keras 3 model configs, as data.

The tables :mod:`archdiff.views.upgrade` applies: the classes each Keras has,
the tf-keras classes and TFOpLambda functions that map exactly onto Keras 3
ones, the config keys Keras 3 refuses, and what has no Keras 3 equivalent.
They were read off Keras 3.15 and tf-keras 2.21; ``tests/test_export_keras3.py``
checks the class tables against the installed Kerases and every rule by loading
the rewritten configs in Keras 3.
"""
from __future__ import annotations

#: Written as ``keras_version`` of an upgraded document: the Keras the rewrite targets and is tested with.
TARGET_KERAS_VERSION = "3.15.1"

#: Every layer class of ``keras.layers`` in Keras 3.15 (a tensorflow-marked test checks it against Keras).
KERAS3_LAYERS = frozenset(["Activation", "ActivityRegularization", "AdaptiveAveragePooling1D", "AdaptiveAveragePooling2D", "AdaptiveAveragePooling3D", "AdaptiveMaxPooling1D", "AdaptiveMaxPooling2D", "AdaptiveMaxPooling3D", "Add", "AdditiveAttention", "AlphaDropout", "Attention", "AugMix", "AutoContrast", "Average", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D", "BatchNormalization", "Bidirectional", "CategoryEncoding", "CenterCrop", "Concatenate", "ContrastLimitedAdaptiveHistogramEqualization", "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Convolution1D", "Convolution1DTranspose", "Convolution2D", "Convolution2DTranspose", "Convolution3D", "Convolution3DTranspose", "Cropping1D", "Cropping2D", "Cropping3D", "CutMix", "Dense", "DepthwiseConv1D", "DepthwiseConv2D", "Discretization", "Dot", "Dropout", "ELU", "EinsumDense", "Embedding", "Equalization", "Flatten", "FlaxLayer", "GRU", "GRUCell", "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D", "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "GroupNormalization", "GroupQueryAttention", "HashedCrossing", "Hashing", "Identity", "InputLayer", "IntegerLookup", "JaxLayer", "LSTM", "LSTMCell", "Lambda", "Layer", "LayerNormalization", "LeakyReLU", "Masking", "MaxNumBoundingBoxes", "MaxPool1D", "MaxPool2D", "MaxPool3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "Maximum", "MelSpectrogram", "Minimum", "MixUp", "MultiHeadAttention", "Multiply", "Normalization", "PReLU", "Permute", "Pipeline", "RMSNormalization", "RNN", "RandAugment", "RandomBrightness", "RandomColorDegeneration", "RandomColorJitter", "RandomContrast", "RandomCrop", "RandomElasticTransform", "RandomErasing", "RandomFlip", "RandomGaussianBlur", "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective", "RandomPosterization", "RandomRotation", "RandomSaturation", "RandomSharpness", "RandomShear", "RandomTranslation", "RandomZoom", "ReLU", "RepeatVector", "Rescaling", "Reshape", "Resizing", "ReversibleEmbedding", "STFTSpectrogram", "SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D", "SimpleRNN", "SimpleRNNCell", "Softmax", "Solarization", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "SpectralNormalization", "StackedRNNCells", "StringLookup", "Subtract", "TFSMLayer", "TextVectorization", "TimeDistributed", "TorchModuleWrapper", "UnitNormalization", "UpSampling1D", "UpSampling2D", "UpSampling3D", "Wrapper", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D"])

#: tf-keras layer classes Keras 3 does not have, and why no other class stands in for them.
KERAS2_ONLY_LAYERS = {
    "DenseFeatures": "feature columns do not exist in Keras 3",
    "LocallyConnected1D": "Keras 3 removed locally-connected layers",
    "LocallyConnected2D": "Keras 3 removed locally-connected layers",
    "RandomHeight": "Keras 3 removed it (RandomZoom/Resizing do not resize the same way)",
    "RandomWidth": "Keras 3 removed it (RandomZoom/Resizing do not resize the same way)",
    "ThresholdedReLU": "Keras 3 removed it (ReLU's threshold keeps x == theta, ThresholdedReLU zeroes it)",
    "TensorFlowOpLayer": "a raw TensorFlow graph op has no Keras 3 equivalent",
    "ClassMethod": "a TensorFlow class-method call has no Keras 3 equivalent",
    "InstanceMethod": "a TensorFlow tensor-method call has no Keras 3 equivalent",
    "InstanceProperty": "a TensorFlow tensor-property access has no Keras 3 equivalent",
    "SlicingOpLambda": "tf-keras slicing (x[...]) is not mapped to Keras 3's GetItem",
}

#: tf-keras application classes that Keras 3 ships under the same name with the same config.
APPLICATION_LAYERS = {
    "LayerScale": ("keras.src.applications.convnext", frozenset({"init_values", "projection_dim"})),
    "CustomScaleLayer": ("keras.src.applications.inception_resnet_v2", frozenset({"scale"})),
}

#: TFOpLambda functions that are exactly a Keras 3 operation of two arguments ``(x, y)``.
OPERATORS = {
    "__operators__.add": "Add", "math.add": "Add",
    "math.subtract": "Subtract",
    "math.multiply": "Multiply",
    "math.truediv": "TrueDivide", "__operators__.truediv": "TrueDivide",
}
#: tf-keras TFOpLambda functions of one tensor -> ``(Keras 3 module, operation class)``: the same function
#: (``keras.ops.tanh`` is ``tf.math.tanh`` on TensorFlow), called on the one tensor. tf-keras records
#: ``tf.nn.tanh`` / ``tf.nn.sigmoid`` as their ``tf.math`` names.
UNARY_OPERATORS = {
    "math.tanh": ("keras.src.ops.numpy", "Tanh"),
    "math.abs": ("keras.src.ops.numpy", "Absolute"),
    "math.square": ("keras.src.ops.numpy", "Square"),
    "math.sigmoid": ("keras.src.ops.nn", "Sigmoid"),
    "nn.relu": ("keras.src.ops.nn", "Relu"),
}

_CONV_TRANSPOSE = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "Convolution1DTranspose",
                   "Convolution2DTranspose", "Convolution3DTranspose")
_SEPARABLE = ("SeparableConv1D", "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D")
_RECURRENT = ("RNN", "SimpleRNN", "GRU", "LSTM", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
_RANDOM = ("RandomBrightness", "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation", "RandomTranslation",
           "RandomZoom")
#: In :data:`KEYS_DROPPED`: any value of the key means Keras 3's behaviour.
NO_VALUE = object()

#: Config keys tf-keras writes that Keras 3's class refuses: ``(classes, key, the value that means the same as
#: leaving it out or NO_VALUE for any value, why)``. Any other value is refused, naming the layer.
KEYS_DROPPED = (
    (_CONV_TRANSPOSE + ("DepthwiseConv1D", "DepthwiseConv2D") + _SEPARABLE, "groups", 1,
     "the Conv base class' 'groups', always 1 for these classes"),
    (_SEPARABLE, "kernel_initializer", NO_VALUE, "unused: separable convolutions have depthwise/pointwise kernels"),
    (_SEPARABLE, "kernel_regularizer", NO_VALUE, "unused: separable convolutions have depthwise/pointwise kernels"),
    (_SEPARABLE, "kernel_constraint", NO_VALUE, "unused: separable convolutions have depthwise/pointwise kernels"),
    (_RECURRENT, "time_major", False, "Keras 3 recurrent layers are batch-major only"),
    (("MultiHeadAttention",), "query_shape", NO_VALUE, "build shapes; the layer's calls build it"),
    (("MultiHeadAttention",), "key_shape", NO_VALUE, "build shapes; the layer's calls build it"),
    (("MultiHeadAttention",), "value_shape", NO_VALUE, "build shapes; the layer's calls build it"),
    (("MultiHeadAttention",), "softmax_robust_masking", False, "Keras 3 has only the default masking"),
    (("Discretization", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"), "trainable", NO_VALUE,
     "Keras 3's class takes no 'trainable' and the layer has no weights"),
    (_RANDOM, "rng_type", NO_VALUE, "Keras 3 draws from its own seed generator"),
    (("SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"), "noise_shape", None,
     "spatial dropout fixes its own noise shape"),
)

#: Activation names that mean another function in Keras 3 (there is no Keras 3 name for the tf-keras one).
CHANGED_ACTIVATIONS = {
    "hard_sigmoid": "tf-keras' hard_sigmoid is clip(0.2x + 0.5), Keras 3's is clip(x/6 + 0.5)",
}

#: Config keys holding a whole serialized layer (wrappers, recurrent cells).
LAYER_KEYS = ("layer", "backward_layer", "cell")

#: Keys of every layer config (the rest is what a class adds).
BASE_LAYER_KEYS = frozenset({"name", "trainable", "dtype"})
#: Model classes of either Keras (tf-keras 2.2 wrote `Model`).
MODEL_CLASSES = ("Functional", "Model", "Sequential")
#: Lambda keys Keras 3 does not take (``saving_utils.LAMBDA_DEP_ARGS``).
LAMBDA_KEYS_DROPPED = ("module", "function_type", "output_shape_type", "output_shape_module")
