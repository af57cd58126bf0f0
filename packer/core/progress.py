"""How stages tell the caller what they are doing, without printing: a small callback protocol."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def start(self, stage: str, detail: str = "") -> None:
        """A long step begins (the CLI shows a spinner or a line)."""

    def done(self, stage: str, summary: str, seconds: float) -> None:
        """A stage finished: one line for the user."""

    def note(self, message: str) -> None:
        """Something the user should know that is not an error (a fallback, a warning)."""

    def progress(self, stage: str, current: float, total: float | None, unit: str) -> None:
        """How far a long step is (bytes downloaded, MB packed); shown only on a terminal."""


class NullReporter:
    def start(self, stage: str, detail: str = "") -> None:
        pass

    def done(self, stage: str, summary: str, seconds: float) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def progress(self, stage: str, current: float, total: float | None, unit: str) -> None:
        pass


def plural(count: int, noun: str) -> str:
    """'1 module', '2 modules': progress lines and reports count things in words."""
    return f"{count} {noun}{'' if count == 1 else 's'}"
