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
#: operations: MobileNetV3 (hard_sigmoid's ``x + 3`` and ``* (1/6)``) and EfficientNet / EfficientNetV2.
#: ``test_ci_subset_covers_every_operation_model`` (full run) checks the second half against Keras.
CI_KERAS3 = (
    "ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionResNetV2", "InceptionV3",
    "MobileNet", "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large", "NASNetMobile", "ResNet50", "ResNet50V2",
    "VGG16", "Xception",
)
CI_TF_KERAS = CI_KERAS3 + ("RegNetX002", "RegNetY002", "ResNetRS50")

FULL = os.environ.get("ARCHDIFF_ZOO", "").strip().lower() == "all"


#: Families, most specific prefix first.
FAMILIES = ("ConvNeXt", "DenseNet", "EfficientNetV2", "EfficientNet", "InceptionResNetV2", "InceptionV3",
            "MobileNetV3", "MobileNetV2", "MobileNet", "NASNet", "RegNetX", "RegNetY", "ResNetRS", "VGG", "Xception")


def family_of(name: str) -> str:
    if name.startswith("ResNet") and not name.startswith("ResNetRS"):
        return "ResNetV2" if name.endswith("V2") else "ResNet"
    return next(f for f in FAMILIES if name.startswith(f))


def size_of(name: str) -> int:
    return MIN_SIZE.get(name, 32)


def models(flavour: str, *, full: bool | None = None) -> tuple[str, ...]:
    """The models of ``flavour`` ("k3" or "k2") that this run checks."""
    full = FULL if full is None else full
    if flavour == "k3":
        return KERAS3_APPS if full else CI_KERAS3
    return KERAS3_APPS + TF_KERAS_ONLY_APPS if full else CI_TF_KERAS
