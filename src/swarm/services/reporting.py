"""Progress reporting, injected by callers (the CLI renders it; tests collect it)."""
from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def stage(self, name: str) -> None:
        """A new step begins (``dumping``, ``uploading``...)."""
        ...

    def total(self, n: int) -> None:
        """The current step will process ``n`` units (bytes)."""
        ...

    def advance(self, n: int) -> None: ...


class NullReporter:
    def stage(self, name: str) -> None:
        pass

    def total(self, n: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


class RecordingReporter:
    def __init__(self) -> None:
        self.stages: list[str] = []
        self.done = 0

    def stage(self, name: str) -> None:
        self.stages.append(name)

    def total(self, n: int) -> None:
        pass

    def advance(self, n: int) -> None:
        self.done += n
