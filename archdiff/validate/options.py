"""What ``archdiff validate`` can be told besides its three paths: :class:`ValidateOptions`.

Options travel in this one frozen dataclass (never in module state); the
report carries them back so that a JSON report says how it was made.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


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
    atol: float = 1e-5
    rtol: float = 1e-5
    compare_batch: int = 8
    finetune: bool = True
    #: A layer name or an ``archdiff layers`` index: ``model.layers[:INDEX]`` are frozen.
    freeze_until: str | None = None
    epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-3
    unfreeze_lr: float | None = None
    unfreeze_epochs: int | None = None
    #: None: the built-in task; a folder of class folders; or an ``.npz`` with x, y.
    data: str | None = None
    #: Pixel scale for ``--data DIR`` images (None: 1/255).
    rescale: float | None = None
    samples: int = 256
    test_samples: int = 512
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = False
    #: With the built-in task, also train from scratch with the same budget.
    scratch: bool = True

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("imports", "maps", "map_files"):
            data[key] = list(data[key])
        return data
