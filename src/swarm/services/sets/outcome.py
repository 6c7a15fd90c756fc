"""What a restore of the three stores did: shared by ``restore set`` and ``restore stack``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(kw_only=True)
class StoresOutcome:
    """The per-store results of one whole-deployment restore.

    ``ok`` holds when PostgreSQL reached ``postgres_done`` (``validated`` for a logical restore,
    ``started`` for a PITR), the bucket and state restores finished, and the cross-store check,
    when one ran, passed.
    """

    postgres_done: ClassVar[str] = "validated"

    postgres: dict[str, Any] = field(default_factory=dict)
    bucket: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    integrity: dict[str, Any] | None = None
    steps: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (bool(self.postgres.get(self.postgres_done)) and bool(self.bucket.get("ok")) and bool(self.state)
                and (self.integrity is None or bool(self.integrity.get("ok"))))

    def stores_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": self.steps, "postgres": self.postgres, "bucket": self.bucket,
                "state": self.state, "integrity": self.integrity, "timings": self.timings}
