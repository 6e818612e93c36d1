"""Which zoo models exist, at what input size, and which of them CI runs.

``ARCHDIFF_ZOO=all`` (``make test-zoo``) runs every model; otherwise the
fixed CI subset runs: every family once at its smallest size, plus every model
whose graph holds Keras 3 operations (``x + y``, ``keras.ops``).
"""
from __future__ import annotations

import os

#: keras.applications of Keras 3.15 (tf_keras.applications holds these too).
KERAS3_APPS = (
    "ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge",
    "DenseNet121", "DenseNet169", "DenseNet201",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5",
    "EfficientNetB6", "EfficientNetB7",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2S",
    "EfficientNetV2M", "EfficientNetV2L",
    "InceptionResNetV2", "InceptionV3",
    "MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large",
    "NASNetMobile", "NASNetLarge",
    "ResNet50", "ResNet101", "ResNet152", "ResNet50V2", "ResNet101V2", "ResNet152V2",
    "VGG16", "VGG19", "Xception",
)
#: Only in tf_keras.applications.
TF_KERAS_ONLY_APPS = tuple(f"RegNet{k}{n}" for k in "XY" for n in (
    "002", "004", "006", "008", "016", "032", "040", "064", "080", "120", "160", "320")) + tuple(
    f"ResNetRS{n}" for n in (50, 101, 152, 200, 270, 350, 420))

#: The smallest input each accepts (``obtain_input_shape``'s min_size); 32 for the rest.
MIN_SIZE = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}

#: CI's fixed part: every family at its smallest size, and (Keras 3) every model whose graph holds
#: operations: MobileNetV3 (hard_sigmoid's ``x + 3`` and ``* (1/6)``) and ConvNeXt (below).
#: ``test_ci_subset_covers_every_operation_model`` (full run) checks the second half against Keras.
CI_KERAS3 = (
    "ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionResNetV2", "InceptionV3",
    "MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "NASNetMobile", "ResNet50", "ResNet50V2",
    "VGG16", "Xception",
)
#: The other Keras 3 models with operations (ConvNeXt's residual ``x + layer_scale(...)``): too large for every
#: CI run in every format (ConvNeXtXLarge holds 350 M parameters), so CI reads their ``to_json()`` only.
CI_KERAS3_JSON = ("ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge")
#: The suffix of a model that is built and checked as ``to_json()`` only.
JSON_ONLY = "@json"
#: tf-keras in CI: the families only tf-keras has (RegNetX, RegNetY, ResNetRS) and the models whose Keras 2 files
#: are unlike the others: MobileNetV3 ('Conv/BatchNorm' names, TFOpLambda), ConvNeXt (a nested Sequential stem),
#: InceptionResNetV2 ('Custom>CustomScaleLayer'), EfficientNet (Normalization), ResNet50 (the common case).
#: Every other tf-keras model runs in ``make test-zoo``.
CI_TF_KERAS = ("ConvNeXtTiny", "EfficientNetB0", "InceptionResNetV2", "MobileNetV3Small", "MobileNetV3Large",
               "ResNet50", "RegNetX002", "RegNetY002", "ResNetRS50")

#: CI transfers (the most expensive check: three copies of every file) only these: MobileNetV3Small (operations;
#: tf-keras' 'Conv/BatchNorm' names), EfficientNetB0 (Normalization's integer count), ConvNeXtTiny (tf-keras
#: nests a Sequential stem).
CI_TRANSFER = ("MobileNetV3Small", "EfficientNetB0", "ConvNeXtTiny")

#: CI exports to Keras 3 (``archdiff export`` of a tf-keras .h5, loaded by Keras 3) only these: the Keras 2
#: files that need rewriting the most (TFOpLambda, '/' in names, LayerScale, 'Custom>CustomScaleLayer').
CI_EXPORT = ("MobileNetV3Small", "ConvNeXtTiny", "InceptionResNetV2", "RegNetY002", "ResNet50")

FULL = os.environ.get("ARCHDIFF_ZOO", "").strip().lower() == "all"


#: Families, most specific prefix first.
FAMILIES = ("ConvNeXt", "DenseNet", "EfficientNetV2", "EfficientNet", "InceptionResNetV2", "InceptionV3",
            "MobileNetV3", "MobileNetV2", "MobileNet", "NASNet", "RegNetX", "RegNetY", "ResNetRS", "VGG", "Xception")


def family_of(name: str) -> str:
    if name.startswith("ResNet") and not name.startswith("ResNetRS"):
        return "ResNetV2" if name.endswith("V2") else "ResNet"
    return next(f for f in FAMILIES if name.startswith(f))


def size_of(name: str) -> int:
    return MIN_SIZE.get(name.removesuffix(JSON_ONLY), 32)


def models(flavour: str, *, full: bool | None = None) -> tuple[str, ...]:
    """The models of ``flavour`` ("k3" or "k2") that this run checks."""
    full = FULL if full is None else full
    if flavour == "k3":
        return KERAS3_APPS if full else CI_KERAS3 + tuple(n + JSON_ONLY for n in CI_KERAS3_JSON)
    return KERAS3_APPS + TF_KERAS_ONLY_APPS if full else CI_TF_KERAS
