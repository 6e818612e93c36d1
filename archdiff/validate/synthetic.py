"""The built-in synthetic image task: seeded, small, and nothing downloaded.

This module owns the data that ``archdiff validate`` fine-tunes on when no
``--data`` is given, and that ``fixtures/make_demo.py`` pretrains the demo's
source model on. It needs only NumPy.

The images are built from a fixed vocabulary of eight *primitives*: small
patches of an oriented grating (four orientations) tinted warm or cool (two
colours), dropped at a random place on a noisy background. Two tasks share
that vocabulary, so that features learned on one carry over to the other:

* ``"source"`` (pretraining): one primitive per image; the class is which of
  the eight it is.
* ``"target"`` (the transfer task): two different primitives per image; the
  class is which *pair* it is, out of ``n_classes`` pairs chosen (seeded)
  from the 28 possible. A network whose early layers already detect the
  primitives needs only to learn which detectors fire together; one that
  starts from scratch must learn the detectors from few examples as well.

Images are float32 in [0, 1], channels last, of any size of at least
16 x 16 (patch size and grating period scale with the image). Labels are
int32 class indices. The same seed gives the same arrays on every machine.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

#: Grating orientations (radians) and tints of the eight primitives.
ORIENTATIONS = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
TINTS = (
    np.array([1.0, 0.55, 0.1], dtype=np.float32),  # warm
    np.array([0.1, 0.55, 1.0], dtype=np.float32),  # cool
)
N_PRIMITIVES = len(ORIENTATIONS) * len(TINTS)
#: The pairs the target task can use; a task of n classes takes n of them.
ALL_PAIRS = tuple(itertools.combinations(range(N_PRIMITIVES), 2))

#: Seeds mixed into the user's seed so the two tasks and the pair choice differ.
_SOURCE_SALT = 101
_TARGET_SALT = 202
_PAIRS_SALT = 303


@dataclass(frozen=True)
class Task:
    """Arrays of one task: training and held-out test splits."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    #: For the target task: the primitive pair of each class.
    pairs: tuple[tuple[int, int], ...] = ()

    def describe(self) -> dict:
        return {
            "name": self.name,
            "image_shape": list(self.x_train.shape[1:]),
            "classes": self.n_classes,
            "train_samples": int(len(self.x_train)),
            "test_samples": int(len(self.x_test)),
        }


def primitive_name(index: int) -> str:
    orientation = int(round(np.degrees(ORIENTATIONS[index % len(ORIENTATIONS)])))
    tint = ("warm", "cool")[index // len(ORIENTATIONS)]
    return f"{tint}-{orientation}deg"


def target_pairs(n_classes: int, seed: int = 0) -> tuple[tuple[int, int], ...]:
    """The primitive pairs that stand for the target task's classes (seeded)."""
    if not 2 <= n_classes <= len(ALL_PAIRS):
        raise ValueError(f"the built-in target task has 2 to {len(ALL_PAIRS)} classes, not {n_classes}")
    rng = np.random.default_rng([seed, _PAIRS_SALT])
    order = rng.permutation(len(ALL_PAIRS))
    return tuple(ALL_PAIRS[i] for i in order[:n_classes])


def _check_shape(image_shape) -> tuple[int, int, int]:
    if len(image_shape) != 3:
        raise ValueError(f"the built-in task makes images (height, width, channels), not shape {tuple(image_shape)}")
    h, w, c = (int(d) if d is not None else 32 for d in image_shape)
    if h < 16 or w < 16:
        raise ValueError(f"the built-in task needs images of at least 16 x 16, not {h} x {w}")
    if c not in (1, 3):
        raise ValueError(f"the built-in task makes 1- or 3-channel images, not {c}")
    return h, w, c


def _grating(size: int, primitive: int, rng: np.random.Generator) -> np.ndarray:
    """A (size, size, 3) tinted grating patch, values in about [-1, 1]."""
    theta = ORIENTATIONS[primitive % len(ORIENTATIONS)] + rng.normal(0.0, 0.08)
    tint = TINTS[primitive // len(ORIENTATIONS)]
    period = max(3.0, size / 2.6) * rng.uniform(0.9, 1.1)
    phase = rng.uniform(0.0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    wave = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + phase)
    amplitude = rng.uniform(0.7, 1.0)
    return (amplitude * wave)[..., None] * tint[None, None, :]


def _place(canvas: np.ndarray, patch: np.ndarray, taken: list, rng: np.random.Generator) -> None:
    """Add a patch where it overlaps no earlier one (best of a few tries)."""
    h, w = canvas.shape[:2]
    size = patch.shape[0]
    best = None
    for _ in range(12):
        top = int(rng.integers(0, h - size + 1))
        left = int(rng.integers(0, w - size + 1))
        clash = any(abs(top - t) < size and abs(left - l) < size for t, l in taken)
        best = (top, left)
        if not clash:
            break
    top, left = best
    taken.append(best)
    canvas[top:top + size, left:left + size] += patch


def _images(primitive_sets: list[tuple[int, ...]], shape, rng: np.random.Generator) -> np.ndarray:
    h, w, c = shape
    size = max(6, round(min(h, w) * 0.34))
    out = np.empty((len(primitive_sets), h, w, c), dtype=np.float32)
    for i, prims in enumerate(primitive_sets):
        canvas = rng.normal(0.0, 0.35, size=(h, w, 3)).astype(np.float32)
        canvas += rng.normal(0.0, 0.15, size=(1, 1, 3)).astype(np.float32)  # a colour cast per image
        taken: list = []
        for p in prims:
            _place(canvas, _grating(size, p, rng), taken, rng)
        image = 0.5 + 0.3 * canvas
        if c == 1:
            image = image.mean(axis=-1, keepdims=True)
        out[i] = np.clip(image, 0.0, 1.0)
    return out


def make_source(n: int, image_shape=(32, 32, 3), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of the pretraining task: one primitive each, 8 classes."""
    shape = _check_shape(image_shape)
    rng = np.random.default_rng([seed, _SOURCE_SALT])
    labels = rng.integers(0, N_PRIMITIVES, size=n).astype(np.int32)
    return _images([(int(k),) for k in labels], shape, rng), labels


def make_target(n: int, image_shape=(32, 32, 3), n_classes: int = 4, seed: int = 0,
                pairs_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images of the transfer task: a pair of primitives each, ``n_classes`` classes.

    ``pairs_seed`` picks which pairs are the classes; keep it fixed across
    splits so that training and test data describe the same task.
    """
    shape = _check_shape(image_shape)
    pairs = target_pairs(n_classes, pairs_seed)
    rng = np.random.default_rng([seed, _TARGET_SALT])
    labels = rng.integers(0, n_classes, size=n).astype(np.int32)
    sets = []
    for k in labels:
        a, b = pairs[int(k)]
        sets.append((a, b) if rng.random() < 0.5 else (b, a))
    return _images(sets, shape, rng), labels


def source_task(image_shape=(32, 32, 3), n_train: int = 4096, n_test: int = 1024, seed: int = 0) -> Task:
    x, y = make_source(n_train + n_test, image_shape, seed)
    return Task("builtin-source", x[:n_train], y[:n_train], x[n_train:], y[n_train:], N_PRIMITIVES)


def target_task(image_shape=(32, 32, 3), n_classes: int = 4, n_train: int = 256, n_test: int = 512,
                seed: int = 0) -> Task:
    """The transfer task: few training images, a larger test split (same pairs)."""
    x, y = make_target(n_train + n_test, image_shape, n_classes, seed=seed, pairs_seed=seed)
    return Task("builtin-target", x[:n_train], y[:n_train], x[n_train:], y[n_train:], n_classes,
                pairs=target_pairs(n_classes, seed))
