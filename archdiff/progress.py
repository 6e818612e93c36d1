"""A small progress bar for long work (bytes copied, epochs trained), shown on a terminal only.

When the stream is not a terminal (piped, redirected, in CI) or
``ARCHDIFF_NO_PROGRESS`` is set, every method is a no-op, so output that
tools read stays clean. Updates are throttled to a few per second. The label
and details are shown through :func:`archdiff.safetext.visible`.
"""
from __future__ import annotations

import os
import sys
import time

from archdiff.safetext import visible
from archdiff.textfmt import human_bytes


class Progress:
    """``Progress(total, label)``; ``advance(n)``; ``close()`` (also a context manager).

    ``unit`` is ``"bytes"`` (sizes and a rate are shown) or the name of what
    is counted (``"epochs"``: ``2/4 epochs``); ``advance(n, detail=...)``
    shows a short detail after the count, such as the last loss.
    """

    #: Seconds between redraws.
    INTERVAL = 0.1
    WIDTH = 30

    def __init__(self, total: int, label: str, *, stream=None, enabled: bool | None = None, unit: str = "bytes"):
        self.total = max(0, int(total))
        # The label names a file: escaped once (archdiff.safetext), since the bar is written to a terminal.
        self.label = visible(label)
        self.unit = unit
        self.detail = ""
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = self._is_terminal(self.stream) and not os.environ.get("ARCHDIFF_NO_PROGRESS")
        self.enabled = bool(enabled) and self.total > 0
        self.done = 0
        self._last = 0.0
        self._start = time.monotonic()
        self._drawn = False

    @staticmethod
    def _is_terminal(stream) -> bool:
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    def advance(self, n: int, *, detail: str = "") -> None:
        self.done += int(n)
        self.detail = visible(detail)
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self.INTERVAL or self.done >= self.total:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        filled = int(round(fraction * self.WIDTH))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        elapsed = max(now - self._start, 1e-9)
        rate = self.done / elapsed
        if self.unit == "bytes":
            text = (f"\r{self.label} [{bar}] {fraction * 100:5.1f}% "
                    f"{human_bytes(self.done)} / {human_bytes(self.total)}  {human_bytes(int(rate))}/s")
        else:
            # A detail can be shorter than the last one: clear the rest of the line.
            text = f"\r{self.label} [{bar}] {self.done}/{self.total} {self.unit}  {self.detail}\033[K"
        try:
            self.stream.write(text)
            self.stream.flush()
            self._drawn = True
        except (OSError, ValueError):
            self.enabled = False

    def close(self) -> None:
        if self.enabled and self._drawn:
            try:
                self.stream.write("\r\033[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class StageProgress:
    """One line per stage of a multi-stage job, with an estimate of the time left; on a terminal only.

    ``StageProgress([("rebuild", 1.0), ("outputs", 2.0), ...], "archdiff validate")``: each stage has a
    relative cost. ``start(name)`` writes ``archdiff validate [2/4] outputs: 3.1 s so far, about 6 s left``;
    the estimate scales the time the finished stages took by the cost still ahead (none before the first
    stage ends). Like :class:`Progress`, quiet when the stream is not a terminal or ``ARCHDIFF_NO_PROGRESS``
    is set; ``seconds`` records what each stage took, shown or not.
    """

    def __init__(self, stages, label: str, *, stream=None, enabled: bool | None = None, clock=time.monotonic):
        self.stages = [(str(name), max(float(cost), 1e-6)) for name, cost in stages]
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            enabled = Progress._is_terminal(self.stream) and not os.environ.get("ARCHDIFF_NO_PROGRESS")
        self.enabled = bool(enabled)
        self._clock = clock
        self._start = clock()
        self._current: str | None = None
        self._current_start = self._start
        self.seconds: dict[str, float] = {}

    def estimate_left(self) -> float | None:
        """Seconds still ahead, from the pace of the stages done so far (None before one is done)."""
        done_cost = sum(cost for name, cost in self.stages if name in self.seconds)
        if done_cost <= 0:
            return None
        left_cost = sum(cost for name, cost in self.stages if name not in self.seconds)
        return sum(self.seconds.values()) / done_cost * left_cost

    def line(self, name: str) -> str:
        names = [n for n, _ in self.stages]
        position = names.index(name) + 1 if name in names else len(names)
        elapsed = self._clock() - self._start
        left = self.estimate_left()
        ahead = "estimating the time left" if left is None else f"about {left:.0f} s left"
        return f"{self.label} [{position}/{len(names)}] {name}: {elapsed:.1f} s so far, {ahead}"

    def start(self, name: str) -> None:
        self.finish()
        self._current, self._current_start = name, self._clock()
        if self.enabled:
            try:
                self.stream.write(self.line(name) + "\n")
                self.stream.flush()
            except (OSError, ValueError):
                self.enabled = False

    def finish(self) -> None:
        if self._current is not None:
            self.seconds[self._current] = round(self._clock() - self._current_start, 3)
            self._current = None
