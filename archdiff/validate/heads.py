"""What each output of the target is trained with: its kind, loss and metric, chosen from the output layer.

Fine-tuning (check 4) handles any number of inputs and outputs. For each
output this module decides, from the layer that produces it and its units
(or from ``--loss [OUTPUT:]NAME``), what the output is:

| output layer | kind | loss |
| --- | --- | --- |
| softmax (``Dense(activation="softmax")``, ``Softmax``) | classes | sparse categorical cross-entropy |
| sigmoid | binary (or multi-label) | binary cross-entropy |
| one linear unit (the guide's ``Dense(1)``) | binary, logits | ``BinaryCrossentropy(from_logits=True)`` |
| several linear units | classes, logits | sparse categorical cross-entropy from logits |
| any other activation (relu, tanh ...) | regression | mean squared error |

and, whatever the layer, an output whose given targets (``--data``) are
not whole numbers is a regression (mean squared error). The report says, per
output, what was chosen and why. Plain data and Keras objects made on demand
(:func:`keras_loss`, :func:`keras_metric`); no training here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from archdiff.errors import UsageError

BINARY = "binary"
CLASSES = "classes"
REGRESSION = "regression"

#: ``--loss`` names: (kind, from_logits).
LOSSES = {
    "binary_crossentropy": (BINARY, False),
    "binary_crossentropy_from_logits": (BINARY, True),
    "sparse_categorical_crossentropy": (CLASSES, False),
    "sparse_categorical_crossentropy_from_logits": (CLASSES, True),
    "mse": (REGRESSION, False),
    "mean_squared_error": (REGRESSION, False),
    "mae": (REGRESSION, False),
    "mean_absolute_error": (REGRESSION, False),
}


@dataclass(frozen=True)
class Head:
    """One output: what it predicts, the loss it is trained with, and why."""

    name: str
    units: int
    kind: str
    loss: str
    from_logits: bool
    why: str

    @property
    def loss_label(self) -> str:
        return self.loss + (" (from logits)" if self.from_logits else "")

    @property
    def classes(self) -> int:
        """Classes of its labels: 2 for a binary head, the units for a classifier, 0 for a regression."""
        if self.kind == BINARY:
            return 2
        return self.units if self.kind == CLASSES else 0

    def to_dict(self) -> dict:
        return {"output": self.name, "units": self.units, "kind": self.kind, "loss": self.loss,
                "from_logits": self.from_logits, "why": self.why}


def check_loss_name(name: str) -> str:
    if name not in LOSSES:
        raise UsageError(f"--loss '{name}' is not one of {', '.join(LOSSES)}")
    return name


def _activation(layer) -> str | None:
    if layer is None:
        return None
    if layer.class_name == "Softmax":
        return "softmax"
    activation = layer.config.get("activation")
    if isinstance(activation, dict):
        activation = activation.get("config") if isinstance(activation.get("config"), str) else \
            activation.get("class_name")
    return str(activation).lower() if activation else "linear"


def _whole_numbers(values) -> bool:
    y = np.asarray(values)
    if np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        return True
    try:
        return bool(np.all(np.equal(np.mod(y, 1), 0)))
    except TypeError:
        return False


def choose_heads(target, outputs: list[tuple[str, int]], losses=(), targets: dict | None = None,
                 layers: dict | None = None) -> list[Head]:
    """A :class:`Head` per output ``(name, units)``; ``losses`` from ``--loss``; ``targets`` from ``--data``;
    ``layers``: the layer computing an output that is named otherwise (a dict key)."""
    given = dict(losses)
    unknown = sorted(k for k in given if k and k not in {n for n, _ in outputs})
    if unknown:
        raise UsageError(f"--loss names output(s) {', '.join(map(repr, unknown))} the model does not have",
                         hint="the outputs are " + ", ".join(n for n, _ in outputs))
    heads = []
    for name, units in outputs:
        chosen = given.get(name, given.get(""))
        if chosen:
            kind, logits = LOSSES[check_loss_name(chosen)]
            heads.append(Head(name, units, kind, chosen.replace("_from_logits", ""), logits, f"--loss {chosen}"))
            continue
        layer = target.by_path.get((layers or {}).get(name, name)) if target is not None else None
        activation = _activation(layer)
        y = (targets or {}).get(name)
        if y is not None and not _whole_numbers(y):
            heads.append(Head(name, units, REGRESSION, "mse", False, "its targets are not whole numbers: a regression"))
        elif activation == "softmax":
            heads.append(Head(name, units, CLASSES, "sparse_categorical_crossentropy", False, "a softmax output"))
        elif activation == "sigmoid":
            heads.append(Head(name, units, BINARY, "binary_crossentropy", False, "a sigmoid output"))
        elif activation in ("linear", None) and units == 1:
            heads.append(Head(name, units, BINARY, "binary_crossentropy", True,
                              "one linear unit: logits of a binary task, as the Keras transfer-learning guide's "
                              "Dense(1) with BinaryCrossentropy(from_logits=True)"))
        elif activation in ("linear", None):
            heads.append(Head(name, units, CLASSES, "sparse_categorical_crossentropy", True,
                              f"{units} linear units: logits of {units} classes"))
        else:
            heads.append(Head(name, units, REGRESSION, "mse", False,
                              f"a {activation} output is not a probability or logits: a regression"))
    return heads


def keras_loss(keras, head: Head):
    if head.kind == BINARY:
        return keras.losses.BinaryCrossentropy(from_logits=head.from_logits)
    if head.kind == CLASSES:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=head.from_logits)
    if head.loss in ("mae", "mean_absolute_error"):
        return keras.losses.MeanAbsoluteError()
    return keras.losses.MeanSquaredError()


def keras_metric(keras, head: Head):
    if head.kind == BINARY:
        # On logits the decision boundary is 0, not 0.5.
        return keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if head.from_logits else 0.5)
    if head.kind == CLASSES:
        return keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    return keras.metrics.MeanAbsoluteError(name="mae")


def metric_name(heads: list[Head]) -> str:
    return "accuracy" if any(h.kind != REGRESSION for h in heads) else "mae"


def random_targets(head: Head, shape: tuple, n: int, rng: np.random.Generator) -> np.ndarray:
    """Seeded targets for a head (labels for a classifier, 0/1 for a binary head, normal values for a regression)."""
    per_sample = tuple(int(d) for d in shape[1:] if d is not None)
    if head.kind == CLASSES:
        return rng.integers(0, max(2, head.units), size=(n,) + per_sample[:-1]).astype("int32")
    if head.kind == BINARY:
        return rng.integers(0, 2, size=(n,) + per_sample).astype("float32")
    return rng.normal(0.0, 1.0, size=(n,) + per_sample).astype("float32")
