"""The diff's vocabulary: the kinds of difference, the kinds of change, one constructor per change.

This module owns the fixed sets a diff is written in (in the spirit of nbdime's
``diff_format.py``):

* :data:`KINDS`, the *effect* of a change, from the mildest to the most severe,
  and :data:`CLASSIFICATIONS`, what a whole diff is classified as;
* :data:`CHANGE_KINDS`, what a change of a matched layer is about, with the
  effects each may have (:data:`EFFECTS`), and :data:`OPS`;
* the sides and aspects of an input/output change (:data:`IO_SIDES`, :data:`IO_WHATS`).

Every :class:`~archdiff.diff.result.Change` and
:class:`~archdiff.diff.result.IOChange` is made by one of the small
constructors below, so that a change's effect is decided in one place;
:func:`classify` turns the effects present into the diff's kinds and
classification; :func:`validate_change`, :func:`validate_io_change` and
:func:`validate_diff` check a result against this vocabulary.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from archdiff.diff.result import Change, IOChange
from archdiff.vocabulary import FAIL_ON_SPECIAL as FAIL_ON_SPECIAL  # re-exported
from archdiff.vocabulary import KINDS as KINDS  # re-exported

if TYPE_CHECKING:
    from archdiff.diff.result import ArchDiff

# KINDS (the kinds of difference, mildest first) and FAIL_ON_SPECIAL live in archdiff.vocabulary,
# where the command line's help reads them without importing the diff stage.
#: What a diff can be classified as: identical, or its most severe kind.
CLASSIFICATIONS = ("identical", *KINDS)

#: The change kinds one matched layer can have.
CHANGE_KINDS = ("renamed", "class", "config", "trainable", "weight", "values", "inputs", "constructor")
#: The effects each change kind can have (``class`` is topology-changing only for the model's own class).
EFFECTS = {
    "renamed": ("cosmetic",),
    "class": ("cosmetic", "weights-compatible", "topology-changing"),
    "config": ("cosmetic", "weights-compatible", "output-changing"),
    "trainable": ("weights-compatible",),
    "weight": ("weights-compatible", "weights-breaking"),
    "values": ("values-changed",),
    "inputs": ("topology-changing",),
    # A constructor argument of a model whose config holds no layers (keras-hub's num_layers): what it changes
    # in the layers is known only by building the model, so the most severe effect is assumed.
    "constructor": ("topology-changing", "cosmetic"),
}
#: What happened at a change's path: "added" is absent in A, "removed" absent in B.
OPS = ("changed", "added", "removed")

#: Which of the model's tensors an :class:`IOChange` is about.
IO_SIDES = ("input", "output")
#: What changed about it; only a new name with the same source is cosmetic.
IO_WHATS = ("added", "removed", "name", "shape", "dtype", "source")


# -- one constructor per change ---------------------------------------------------------
def renamed(old: str, new: str) -> Change:
    return Change("renamed", "name", old, new, "changed", "cosmetic")


def class_changed(old: str, new: str, *, cosmetic: bool = False) -> Change:
    """A layer's class: ``cosmetic`` for two spellings of one class (shown with --strict only)."""
    return Change("class", "class_name", old, new, "changed", "cosmetic" if cosmetic else "weights-compatible")


def config_changed(path: str, old: Any, new: Any, op: str, *, cosmetic: bool = False) -> Change:
    return Change("config", path, old, new, op, "cosmetic" if cosmetic else "weights-compatible")


#: Config keys of a layer that produces a model output which say what the output means: its activation
#: (softmax probabilities or logits) and its number of units / filters (classes).
OUTPUT_MEANING_KEYS = ("activation", "units", "filters")


def output_meaning_changed(path: str, old: Any, new: Any, op: str) -> Change:
    """A config change of an output layer that changes what the model's outputs mean (``output-changing``)."""
    return Change("config", path, old, new, op, "output-changing")


def for_output_layer(change: Change) -> Change:
    """``change`` of a layer that produces a model output: output-changing where its key says what outputs mean."""
    if change.kind != "config" or change.effect == "cosmetic":
        return change
    if any(change.path == key or change.path.startswith(key + ".") for key in OUTPUT_MEANING_KEYS):
        return output_meaning_changed(change.path, change.old, change.new, change.op)
    return change


def trainable_changed(old: bool, new: bool) -> Change:
    return Change("trainable", "trainable", old, new, "changed", "weights-compatible")


def weight_changed(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> Change:
    """A variable added, removed, or of another shape (breaking) or dtype (compatible)."""
    op = "added" if old is None else "removed" if new is None else "changed"
    breaking = old is None or new is None or old["shape"] != new["shape"]
    return Change("weight", f"weights.{name}", old, new, op, "weights-breaking" if breaking else "weights-compatible")


def values_changed(name: str, figures: dict[str, Any] | None) -> Change:
    """A variable whose values differ between A and B (same shape); ``figures`` as
    :meth:`archdiff.diff.values.Figures.to_dict` gives them, None where only equality was checked."""
    return Change("values", f"values.{name}", None, figures, "changed", "values-changed")


def inputs_changed(old: list[str], new: list[str]) -> Change:
    return Change("inputs", "inputs", old, new, "changed", "topology-changing")


def model_renamed(old: str, new: str) -> Change:
    """The model's own name."""
    return Change("renamed", "model.name", old, new, "changed", "cosmetic")


def model_class_changed(old: str, new: str, *, cosmetic: bool) -> Change:
    """The model's own class: ``cosmetic`` for two spellings of one class (``Model``, ``Functional``)."""
    return Change("class", "model.class_name", old, new, "changed", "cosmetic" if cosmetic else "topology-changing")


def constructor_changed(path: str, old: Any, new: Any, op: str, *, built: bool = False) -> Change:
    """An argument the model is built from (:attr:`archdiff.model.Architecture.constructor`), at ``path``
    (``num_layers``, ``dtype``, ``layer_norm_epsilon``): its effect on the layers is unknown without building,
    so the most severe is assumed; when both models were built (``--build``), the layers Keras built are
    compared and carry the effect, and the argument itself is ``cosmetic``."""
    effect = "cosmetic" if built else "topology-changing"
    return Change("constructor", f"model.constructor.{path}", old, new, op, effect)


def io_changed(side: str, index: int, what: str, old: Any, new: Any) -> IOChange:
    """A change of input or output ``index``; a new name for the same tensor is cosmetic."""
    return IOChange(side, index, what, old, new, "cosmetic" if what == "name" else "interface-changing")


# -- classifying ------------------------------------------------------------------------------
def classify(effects: Iterable[str]) -> tuple[tuple[str, ...], str]:
    """The kinds present (in :data:`KINDS` order) and the classification, from the effects found.

    Any substantive change of the architecture without a breaking one leaves the weights compatible,
    so ``weights-compatible`` is implied then; the classification is the most
    severe kind, or "identical".
    """
    kinds = set(effects)
    # New values in the same architecture leave it as it was: no architectural kind is implied.
    if kinds - {"cosmetic", "values-changed"} and "weights-breaking" not in kinds:
        kinds.add("weights-compatible")
    ordered = tuple(k for k in KINDS if k in kinds)
    return ordered, ordered[-1] if ordered else "identical"


# -- validating -------------------------------------------------------------------------------
def validate_change(change: Change) -> None:
    """Raise ``ValueError`` saying what is wrong if ``change`` is not written in this vocabulary."""
    if change.kind not in CHANGE_KINDS:
        raise ValueError(f"change kind '{change.kind}' is not one of {', '.join(CHANGE_KINDS)}")
    if change.op not in OPS:
        raise ValueError(f"change op '{change.op}' at '{change.path}' is not one of {', '.join(OPS)}")
    if change.effect not in EFFECTS[change.kind]:
        raise ValueError(f"a '{change.kind}' change at '{change.path}' cannot be '{change.effect}' "
                         f"(expected one of {', '.join(EFFECTS[change.kind])})")
    if not isinstance(change.path, str):  # "" is the config as a whole
        raise ValueError(f"a '{change.kind}' change needs a path, got {change.path!r}")
    if change.op == "added" and change.old is not None or change.op == "removed" and change.new is not None:
        raise ValueError(f"a change '{change.op}' at '{change.path}' has a value on the side it is absent from")


def validate_io_change(change: IOChange) -> None:
    """Raise ``ValueError`` if an input/output change is not written in this vocabulary."""
    if change.side not in IO_SIDES:
        raise ValueError(f"input/output change side '{change.side}' is not one of {', '.join(IO_SIDES)}")
    if change.what not in IO_WHATS:
        raise ValueError(f"{change.side} change '{change.what}' is not one of {', '.join(IO_WHATS)}")
    expected = "cosmetic" if change.what == "name" else "interface-changing"
    if change.effect != expected:
        raise ValueError(f"{change.side} {change.index} '{change.what}' is {change.effect}, expected {expected}")


def validate_diff(d: ArchDiff) -> None:
    """Raise ``ValueError`` unless every change of ``d`` is valid and its kinds follow from them."""
    effects = []
    for layer in d.matched:
        for change in layer.changes:
            validate_change(change)
            effects.append(change.effect)
    for change in d.model_changes:
        validate_change(change)
        if not change.path.startswith("model."):
            raise ValueError(f"model-level change at '{change.path}' is not under 'model.'")
        effects.append(change.effect)
    for io_change in d.io_changes:
        validate_io_change(io_change)
        effects.append(io_change.effect)
    if d.added or d.removed or d.edges_added or d.edges_removed:
        effects.append("topology-changing")
    expected = classify(effects)
    if (d.kinds, d.classification) != expected:
        raise ValueError(f"the diff says kinds {list(d.kinds)} / '{d.classification}', its changes give "
                         f"{list(expected[0])} / '{expected[1]}'")
