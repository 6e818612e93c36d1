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
