"""The one exception hierarchy of archdiff.

Every error a user can cause derives from :class:`ArchdiffError`; the CLI turns
it into one line on stderr and exit code 2. Messages say what happened, where,
what was expected and what to do.
"""
from __future__ import annotations

from typing import Any


class ArchdiffError(Exception):
    """Base of every error archdiff raises on purpose."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None):
        self.message = message
        self.path = path
        self.hint = hint
        super().__init__(self.one_line())

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross a process boundary (archdiff.read.contain): keep the path and the hint.
        return _rebuild, (type(self), self.message, self.path, self.hint)

    def one_line(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}: ")
        parts.append(self.message.rstrip("."))
        if self.hint:
            parts.append(f"; {self.hint.rstrip('.')}")
        text = "".join(parts)
        # One line, whatever the pieces held (file names can hold newlines).
        return " ".join(text.split()) + "."


def _rebuild(cls: type[ArchdiffError], message: str, path: str | None, hint: str | None) -> ArchdiffError:
    return cls(message, path=path, hint=hint)


class InputError(ArchdiffError):
    """A file or spec could not be read as a model: missing, unknown, broken."""


class UnsupportedFormatError(InputError):
    """The input is not one of the formats archdiff reads."""


class UnsafeInputError(InputError):
    """The input asks for something archdiff refuses to do (links, code, tags)."""


class LimitExceededError(InputError):
    """The input exceeds one of archdiff's documented reading limits."""


class NotConvertibleError(InputError):
    """A Keras 2 config holds something with no exact Keras 3 equivalent (export's keras3 dialect)."""


class TopologyUnknownError(ArchdiffError):
    """The operation needs a model's topology and the input has none."""


class MissingDependencyError(ArchdiffError):
    """An optional dependency (TensorFlow) is needed and missing."""


class UsageError(ArchdiffError):
    """Command-line or API arguments that do not fit together."""


class OutputError(ArchdiffError):
    """An output file could not be written."""
