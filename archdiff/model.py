"""The Architecture data model: plain, immutable records of a Keras model.

Readers build these; graph, diff, transfer and the renderers consume them.
Layers are kept flat, in the order Keras lists them: every layer of the
top-level model in ``model.layers`` order, and right after a nested model its
own layers (``path`` tells them apart: ``xception/block1_conv1``).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Union

#: A tensor shape as Keras writes it: dimensions, None where unknown (the batch).
Shape = tuple[Union[int, None], ...]

#: Layer classes that are models themselves (their config holds ``layers``).
MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})


@dataclass(frozen=True)
class TensorRef:
    """A tensor produced by a layer: ``(layer, node_index, tensor_index)``.

    ``layer`` is a layer name in the scope of the model that holds the call.
    """

    layer: str
    node_index: int = 0
    tensor_index: int = 0

    def to_list(self) -> list[Any]:
        return [self.layer, self.node_index, self.tensor_index]


@dataclass(frozen=True)
class Call:
    """One call of a layer (a Keras inbound node): the tensors it received."""

    inputs: tuple[TensorRef, ...]
    #: Shapes of the received tensors where the config records them (Keras 3).
    input_shapes: tuple[Shape | None, ...] = ()


@dataclass(frozen=True)
class WeightSpec:
    """One variable of a layer as stored in a weights file.

    ``name`` is the variable's name relative to its layer (``kernel``,
    ``forward_lstm/lstm_cell/kernel``) or its position (``0``, ``1``) where the
    file keeps no names. ``location`` is the HDF5 dataset path.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    trainable: bool = True
    location: str | None = None

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "trainable": self.trainable,
        }


@dataclass(frozen=True)
class Layer:
    """One layer, as it appears in its model's ``layers``."""

    name: str
    #: ``name`` prefixed by the names of the models that hold it.
    path: str
    class_name: str
    #: Position in its own model's ``layers`` (Keras' index); None where it is not in ``model.layers``
    #: (a Keras 3 operation) or cannot be known (a weights-only Keras 3 file).
    index: int | None
    #: 0 for the top-level model's layers, 1 inside a nested model, ...
    depth: int
    #: Path of the model holding this layer ("" for the top level).
    parent: str = ""
    config: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    module: str | None = None
    calls: tuple[Call, ...] = ()
    #: The layer's own variables; None where the input has no weights.
    #: Nested models keep theirs on their layers, not here.
    weights: tuple[WeightSpec, ...] | None = None
    #: Keras' ``layer.trainable``; None where the input does not record it (a weights-only file).
    trainable: bool | None = True
    #: One shape per output tensor, where known.
    output_shapes: tuple[Shape, ...] | None = None
    is_model: bool = False
    #: A Keras 3 operation on symbolic tensors (``x + y``, ``keras.ops.*``): a node of the graph with no
    #: variables, which Keras' ``model.layers`` does not list.
    is_operation: bool = False
    #: The file names this layer only by Keras' key, not by its name: a Keras 3 weights-only file keys each
    #: layer by class in snake case + per-class order in its model's layers (``reshape_1``), and the real name
    #: is missing where the writer did not record it (``vars`` without a text ``name``). ``name`` is that key.
    key_only: bool = False
    #: For a nested model: its inputs and outputs in its own scope.
    model_inputs: tuple[TensorRef, ...] = ()
    model_outputs: tuple[TensorRef, ...] = ()

    @property
    def own_params(self) -> int | None:
        if self.weights is None:
            return None
        return sum(w.size for w in self.weights)

    @property
    def output_shape(self) -> Shape | list[Shape] | None:
        """The output shape as Keras prints it: one shape, or a list of them."""
        if not self.output_shapes:
            return None
        if len(self.output_shapes) == 1:
            return self.output_shapes[0]
        return list(self.output_shapes)


@dataclass(frozen=True)
class InputSpec:
    """A model input: its name, shape and dtype where the config says."""

    name: str
    shape: Shape | None
    dtype: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": None if self.shape is None else list(self.shape), "dtype": self.dtype}


@dataclass(frozen=True)
class Source:
    """Where an Architecture came from."""

    path: str
    format: str
    keras_version: str | None = None
    backend: str | None = None
    #: "keras3" or "keras2": the config dialect, where there is a config.
    dialect: str | None = None
    #: What the user named when ``path`` is archdiff's copy of it: ``<stdin>``, ``HEAD~1:models/m.keras``,
    #: ``/dev/fd/63``. Reports show it; readers and writers open ``path``.
    label: str | None = None

    @property
    def shown(self) -> str:
        """The name reports give this input."""
        return self.label or self.path


@dataclass(frozen=True)
class ParamCounts:
    """``count_params()`` and the trainable split; the split is None where the input cannot tell it.

    A weights-only file records every variable but not which layers were frozen
    (``layer.trainable``), so its split is unknown; ``non_trainable_at_least``
    then counts the variables that are never trainable (BatchNormalization's
    moving statistics), a figure the file does determine.
    """

    total: int
    trainable: int | None
    non_trainable: int | None
    non_trainable_at_least: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_params": self.total,
            "trainable_params": self.trainable,
            "non_trainable_params": self.non_trainable,
        }


@dataclass(frozen=True)
class Architecture:
    """A Keras model as archdiff sees it."""

    name: str
    #: Sequential, Functional, a subclass' name, or None for a weights-only file.
    class_name: str | None
    layers: tuple[Layer, ...]
    source: Source
    inputs: tuple[TensorRef, ...] = ()
    outputs: tuple[TensorRef, ...] = ()
    #: False for weights-only files and subclassed models.
    has_topology: bool = True
    #: Whether per-layer weight specs were read from HDF5 data.
    has_weights: bool = False
    #: The serialized model config (``{"class_name":..., "config":...}``).
    config: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    #: Plain-language notes on what could not be known.
    notes: tuple[str, ...] = ()
    #: The top-level model's inputs: name, shape, dtype.
    input_specs: tuple[InputSpec, ...] = ()
    #: For a constructor-config model read with ``--build`` (:mod:`archdiff.read.build`): what built it (its
    #: class and module, the Keras and keras-hub versions, the backend, whether the build came from the cache
    #: and where that is). None for a model read from its file alone.
    built: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    # -- lookups -------------------------------------------------------------
    @cached_property
    def by_path(self) -> dict[str, Layer]:
        return {layer.path: layer for layer in self.layers}

    def layer(self, path: str) -> Layer:
        return self.by_path[path]

    def top_level(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.depth == 0]

    @cached_property
    def constructor(self) -> dict[str, Any] | None:
        """The arguments Keras builds this model from, for a model whose config holds no layers.

        A subclassed model's ``get_config()`` (keras-hub's backbones and tasks:
        ``{"vocabulary_size": 30522, "num_layers": 12, ...}``) records what its
        constructor is called with, not its layers: Keras' layer order, classes
        and connections follow from these arguments only by building the model.
        The model's own name is left out (it is reported as the name). None for a
        model whose config lists its layers, and for a weights-only file. A model read with ``--build`` keeps
        its constructor's arguments beside the layers Keras built from them.
        """
        if (self.has_topology and self.built is None) or not self.class_name or not isinstance(self.config, Mapping):
            return None
        config = self.config.get("config")
        if not isinstance(config, Mapping):
            return None
        return {str(k): v for k, v in config.items() if k != "name"}

    @property
    def constructor_module(self) -> str | None:
        """The module a constructor-config model's class comes from (``keras_hub.src.models.bert...``)."""
        module = self.config.get("module") if self.constructor is not None and self.config else None
        return module if isinstance(module, str) else None

    @property
    def layers_known(self) -> bool:
        """Whether the input lists its layers at all: a constructor config without weights lists none, so its
        layer count is unknown (not 0)."""
        return self.has_topology or self.has_weights or bool(self.layers)

    def keras_layers(self) -> list[Layer]:
        """The layers Keras lists in ``model.layers`` (and in nested models' ``layers``): operations left out."""
        return [layer for layer in self.layers if not layer.is_operation]

    def children(self, path: str) -> list[Layer]:
        return [layer for layer in self.layers if layer.parent == path]

    def descendants(self, path: str) -> Iterator[Layer]:
        prefix = path + "/"
        return (layer for layer in self.layers if layer.path.startswith(prefix))

    # -- parameters ----------------------------------------------------------
    def params(self, layer: Layer) -> int | None:
        """Parameters of a layer, a nested model's being the sum of its layers."""
        if not layer.is_model:
            return layer.own_params
        total = 0
        for child in self.descendants(layer.path):
            if child.is_model:
                continue
            if child.own_params is None:
                return None
            total += child.own_params
        return total

    def effectively_trainable(self, layer: Layer) -> bool | None:
        """A layer trains only if it and every model holding it are trainable; None when not recorded."""
        flags = [layer.trainable]
        parent = layer.parent
        while parent:
            holder = self.by_path.get(parent)
            if holder is None:
                break
            flags.append(holder.trainable)
            parent = holder.parent
        if any(flag is False for flag in flags):
            return False
        if any(flag is None for flag in flags):
            return None
        return True

    def param_counts(self) -> ParamCounts | None:
        """Totals as ``count_params()`` and the trainable split give them.

        None where the input holds no weights to count.
        """
        if not self.has_weights:
            return None
        total = trainable = by_nature = 0
        known = True
        for layer in self.layers:
            if layer.is_model or layer.weights is None:
                continue
            on = self.effectively_trainable(layer)
            known = known and on is not None
            for w in layer.weights:
                total += w.size
                if not w.trainable:
                    by_nature += w.size
                if on and w.trainable:
                    trainable += w.size
        if not known:
            return ParamCounts(total, None, None, non_trainable_at_least=by_nature)
        return ParamCounts(total, trainable, total - trainable, non_trainable_at_least=by_nature)

    # -- display: a REPL's one line, IPython's text, Jupyter's table (archdiff.views.notebook owns them) -------
    def __repr__(self) -> str:
        from archdiff.views.notebook import model_repr

        return model_repr(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        from archdiff.views.notebook import model_pretty

        model_pretty(self, p, cycle)

    def _repr_html_(self) -> str:
        from archdiff.views.notebook import model_html

        return model_html(self)
