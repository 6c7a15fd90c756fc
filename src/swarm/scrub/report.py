"""What was redacted, where - never the values.

:class:`ScrubReport` counts redactions per entity type and per normalized JSON
path (array indexes as ``[*]``; ``$`` for free text; a JSON document held in a
string continues the path of that string, e.g. ``$.text.messages[*].content``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ScrubReport"]


@dataclass
class ScrubReport:
    """Redaction counts; mutable, shared by one :class:`~swarm.scrub.Scrubber`."""

    by_type: Counter[str] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    by_path_type: Counter[tuple[str, str]] = field(default_factory=Counter)
    documents: int = 0

    def add(self, typ: str, path: str, n: int = 1) -> None:
        """Count ``n`` redactions of ``typ`` at ``path``."""
        # dict.get instead of ``+=``: Counter's __missing__ is a Python call on every new key
        bt, bp, bpt = self.by_type, self.by_path, self.by_path_type
        bt[typ] = bt.get(typ, 0) + n
        bp[path] = bp.get(path, 0) + n
        k = (path, typ)
        bpt[k] = bpt.get(k, 0) + n

    @property
    def total(self) -> int:
        return sum(self.by_type.values())

    def merge(self, other: ScrubReport) -> None:
        """Add another report's counts into this one."""
        self.by_type.update(other.by_type)
        self.by_path.update(other.by_path)
        self.by_path_type.update(other.by_path_type)
        self.documents += other.documents

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: totals, per type, per path (with per-type detail)."""
        paths: dict[str, dict[str, int]] = {}
        for (path, typ), n in sorted(self.by_path_type.items()):
            paths.setdefault(path, {})[typ] = n
        return {
            "total": self.total,
            "documents": self.documents,
            "by_type": dict(sorted(self.by_type.items())),
            "by_path": {p: {"total": self.by_path[p], "by_type": t} for p, t in paths.items()},
        }
