"""Keras' naming rules, in one place: class aliases, snake case and auto names.

Keras names a layer it was given no name for after its class in snake case
plus a counter (``Conv2D`` -> ``conv2d``, ``conv2d_1``, ...), and Keras 3
keys weight-file groups the same way. A Keras 2 ``Model`` config is what
Keras 3 calls ``Functional``. The reader, the diff, transfer and validate all
need these rules; they live here so they cannot drift apart.
"""
from __future__ import annotations

import re

#: Class names that mean the same thing in both dialects.
CLASS_ALIASES = {"Model": "Functional"}

_NON_WORD = re.compile(r"\W+")
_SNAKE_1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile(r"([a-z])([A-Z])")


#: Where Keras 3 serializes operations on symbolic tensors (``x + y``, ``keras.ops.mean``): not layers.
OPERATION_MODULE_PREFIXES = ("keras.src.ops.", "keras.ops.")


def is_operation_module(module: str | None) -> bool:
    """Whether a config entry's ``module`` is a Keras 3 operation's, which ``model.layers`` leaves out."""
    return module is not None and (module + ".").startswith(OPERATION_MODULE_PREFIXES)


def canonical_class(class_name: str) -> str:
    """The Keras 3 name of a class (``Model`` -> ``Functional``), other names unchanged."""
    return CLASS_ALIASES.get(class_name, class_name)


def registered_class(class_name: str) -> str:
    """The class a config entry names, as ``type(layer).__name__`` shows it: tf-keras writes a registered
    serializable's ``package>Name`` (``Custom>CustomScaleLayer`` in InceptionResNetV2's ``.h5``) where its
    ``to_json()`` writes ``CustomScaleLayer``; Keras' registered name is ``package>`` + the class' own name."""
    package, sep, name = class_name.rpartition(">")
    return name if sep and package and name else class_name


def same_class(a: str, b: str) -> bool:
    """Whether two class names mean one class in Keras 3 (``Model`` and ``Functional`` do)."""
    return canonical_class(a) == canonical_class(b)


def snake_case(class_name: str) -> str:
    """Keras' ``naming.to_snake_case``: ``Conv2D`` -> ``conv2d``, ``BatchNormalization`` -> ``batch_normalization``."""
    name = _NON_WORD.sub("", class_name)
    name = _SNAKE_1.sub(r"\1_\2", name)
    return _SNAKE_2.sub(r"\1_\2", name).lower()


def auto_names(class_names: list[str]) -> list[str]:
    """The group key Keras 3 gives each item of a ``layers`` container, in order (``dense``, ``dense_1``, ...)."""
    used: dict[str, int] = {}
    out = []
    for cls in class_names:
        stem = snake_case(cls)
        if stem in used:
            used[stem] += 1
            out.append(f"{stem}_{used[stem]}")
        else:
            used[stem] = 0
            out.append(stem)
    return out
