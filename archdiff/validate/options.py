"""What ``archdiff validate`` can be told besides its three paths: :class:`ValidateOptions`, and the budgets.

Options travel in this one frozen dataclass (never in module state); the
report carries them back so that a JSON report says how it was made.

A **budget** (``--budget quick|standard|full``) is a named set of defaults
for the options that cost time and memory (:data:`BUDGETS`); an option given
explicitly wins over its budget's value. ``standard`` is what validate always
did; ``quick`` fits a ResNet50-sized port into a minute on two CPU cores
(fewer, smaller batches; no from-scratch baseline); ``full`` trains longer,
compares a larger batch and adds the guide's unfrozen second stage.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from archdiff.errors import UsageError
from archdiff.validate.comparator import ELEMENTWISE, Tolerances

#: The four checks, by the names ``--allow-skip`` takes (and the optional ones that appear when asked for).
CHECKS = ("rebuild", "weights_arrived", "outputs", "finetune")
OPTIONAL_CHECKS = ("reference", "backends")

#: Each budget's values for the options that cost time and memory.
BUDGETS: dict[str, dict] = {
    "quick": {"epochs": 2, "batch_size": 8, "samples": 16, "test_samples": 16, "compare_batch": 2,
              "scratch": False, "unfreeze_lr": None},
    "standard": {"epochs": 4, "batch_size": 32, "samples": 256, "test_samples": 512, "compare_batch": 8,
                 "scratch": True, "unfreeze_lr": None},
    "full": {"epochs": 8, "batch_size": 32, "samples": 1024, "test_samples": 1024, "compare_batch": 32,
             "scratch": True, "unfreeze_lr": 1e-5},
}


@dataclass(frozen=True)
class ValidateOptions:
    """Everything ``archdiff validate`` can be told, besides the three paths."""

    imports: tuple[str, ...] = ()
    unsafe: bool = False
    #: Renames as ``archdiff transfer`` takes them: ``OLD=NEW`` or ``re:PATTERN=REPLACEMENT``.
    maps: tuple[str, ...] = ()
    map_files: tuple[str, ...] = ()
    #: "name": pair layers by name (and ``maps``); "auto": the diff's matching.
    match: str = "name"
    #: The default tolerances and error statistic of every output comparison (Polygraphy's).
    atol: float = 1e-5
    rtol: float = 1e-5
    check_error_stat: str = ELEMENTWISE
    #: Per-output overrides: ``((output_name, value), ...)``.
    output_atol: tuple[tuple[str, float], ...] = ()
    output_rtol: tuple[tuple[str, float], ...] = ()
    output_error_stat: tuple[tuple[str, str], ...] = ()
    compare_batch: int = 8
    #: ``--reference ref.npz``: compare the model's outputs with those saved there.
    reference: str | None = None
    #: ``--save-reference ref.npz``: save the seeded inputs and the model's outputs there.
    save_reference: str | None = None
    finetune: bool = True
    #: A layer name or an ``archdiff layers`` index: ``model.layers[:INDEX]`` are frozen.
    freeze_until: str | None = None
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3
    unfreeze_lr: float | None = None
    unfreeze_epochs: int | None = None
    #: None: the built-in task; a folder of class folders; or an ``.npz`` with x, y (or named inputs/targets).
    data: str | None = None
    #: Pixel scale for ``--data DIR`` images (None: 1/255).
    rescale: float | None = None
    #: ``--loss [OUTPUT:]NAME``: the loss per output (default: chosen from the output layer).
    loss: tuple[tuple[str, str], ...] = ()
    samples: int = 256
    test_samples: int = 512
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = False
    #: With the built-in task, also train from scratch with the same budget.
    scratch: bool = True
    #: The Keras backend to run on (None: Keras' own choice, KERAS_BACKEND).
    backend: str | None = None
    #: ``--backends a,b``: validate on each (one process each) and compare their outputs.
    backends: tuple[str, ...] = ()
    #: Checks whose skipping is accepted (else a skipped check makes the exit code 1); "all" accepts any.
    allow_skip: tuple[str, ...] = ()
    budget: str = "standard"

    @property
    def tolerances(self) -> Tolerances:
        return Tolerances(atol=(("", self.atol),) + tuple(self.output_atol),
                          rtol=(("", self.rtol),) + tuple(self.output_rtol),
                          check_error_stat=(("", self.check_error_stat),) + tuple(self.output_error_stat))

    def skip_allowed(self, check: str) -> bool:
        return "all" in self.allow_skip or check in self.allow_skip

    @classmethod
    def for_budget(cls, budget: str = "standard", **given) -> "ValidateOptions":
        """Options with a budget's values, then whatever is ``given`` (None values are left to the budget)."""
        if budget not in BUDGETS:
            raise UsageError(f"--budget '{budget}' is not one of {', '.join(BUDGETS)}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise TypeError(f"unknown options: {unknown}")
        values = {**BUDGETS[budget], **{k: v for k, v in given.items() if v is not None}}
        return cls(budget=budget, **values)

    def with_changes(self, **changes) -> "ValidateOptions":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("imports", "maps", "map_files", "backends", "allow_skip"):
            data[key] = list(data[key])
        for key in ("output_atol", "output_rtol", "output_error_stat", "loss"):
            data[key] = {name: value for name, value in data[key]}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ValidateOptions":
        """The inverse of :meth:`to_dict` (what a per-backend worker process is given)."""
        values = dict(data)
        for key in ("imports", "maps", "map_files", "backends", "allow_skip"):
            values[key] = tuple(values.get(key) or ())
        for key in ("output_atol", "output_rtol", "output_error_stat", "loss"):
            values[key] = tuple((k, v) for k, v in (values.get(key) or {}).items())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})
