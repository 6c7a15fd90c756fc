"""Copy the repository to its copies (``swarm admin repo copy``) and measure how far each lags.

``copy_repository`` copies to each target in turn; a target that fails (unreachable, wrong key,
another repository there) is reported in its outcome and the others still run. Each copy is
incremental and resumable (``swarm.repo.copy``): running it again after an interruption, or every
``interval`` seconds with ``follow``, converges. It holds the source's shared lock and the
copy's while it writes, so it runs beside backups and ``wal push``, and prune of either side waits
for it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from swarm.errors import SwarmError
from swarm.repo import Repository
from swarm.repo.copy import CopyLag, CopyResult, CopyTarget, copy_lag, execute_copy, plan_copy
from swarm.services.reporting import NullReporter, Reporter

DEFAULT_WAL_INTERVAL = 60.0  # seconds between rounds of `repo copy --follow` (the wal_interval)


@dataclass
class CopyOutcome:
    """What one round did for one copy: its result, or the error that stopped it."""

    name: str
    url: str
    result: CopyResult | None = None
    error: SwarmError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and not self.result.problems

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "ok": self.ok,
                "result": self.result.to_dict() if self.result else None,
                "error": self.error.to_dict() if self.error else None}


@dataclass
class CopyRun:
    rounds: int = 0
    outcomes: list[CopyOutcome] = field(default_factory=list)  # of the last round

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "rounds": self.rounds, "copies": [o.to_dict() for o in self.outcomes]}


def copy_once(source: Repository, targets: list[CopyTarget], *, dry_run: bool = False,
              reporter: Reporter | None = None) -> list[CopyOutcome]:
    """One incremental copy to each target (``dry_run``: plans only, writes nothing, takes no lock)."""
    reporter = reporter or NullReporter()
    out = []
    for t in targets:
        o = CopyOutcome(t.name, t.store.url)
        try:
            reporter.stage(f"planning the copy to {t.name}")
            plan = plan_copy(source, t.name, t.store, t.kek)
            if dry_run:
                o.result = CopyResult(plan, dry_run=True)
            else:
                reporter.stage(f"copying to {t.name}")
                reporter.total(plan.bytes)
                o.result = execute_copy(source, plan, t.store, t.kek, on_item=lambda i: reporter.advance(i.size))
        except SwarmError as exc:
            o.error = exc
        out.append(o)
    return out


def copy_repository(source: Repository, targets: list[CopyTarget], *, dry_run: bool = False,
                    follow: bool = False, interval: float = DEFAULT_WAL_INTERVAL, rounds: int | None = None,
                    reporter: Reporter | None = None, sleep: Callable[[float], None] = time.sleep,
                    on_round: Callable[[list[CopyOutcome]], None] | None = None) -> CopyRun:
    """Copy to every target once, or with ``follow`` every ``interval`` seconds (WAL reaches the copies
    within an interval of being archived) until interrupted or ``rounds`` rounds have run. Each round
    copies what the copy lacks: new WAL, new backups, records. ``on_round`` sees each round's outcomes."""
    run = CopyRun()
    while True:
        started = time.monotonic()
        run.outcomes = copy_once(source, targets, dry_run=dry_run, reporter=reporter)
        run.rounds += 1
        if on_round:
            on_round(run.outcomes)
        if not follow or dry_run or (rounds is not None and run.rounds >= rounds):
            return run
        sleep(max(0.0, interval - (time.monotonic() - started)))


def copy_lags(source: Repository, targets: list[CopyTarget], *, interval: float = DEFAULT_WAL_INTERVAL,
              now: datetime | None = None) -> list[CopyLag]:
    """Each copy's lag behind ``source`` (its own RPO): newest WAL on each side, seconds behind, what it
    lacks, and a level (WARNING past 2 intervals, CRITICAL past 10 or never copied). Listings only.
    A copy that cannot be listed is CRITICAL with ``lag_seconds`` None. For ``swarm admin status`` and
    the ``swarm_repo_copy_lag_seconds{copy}`` metric."""
    out = []
    for t in targets:
        try:
            out.append(copy_lag(source, t.name, t.store, interval=interval, now=now))
        except SwarmError:
            out.append(CopyLag(t.name, None, None, None, 0, [], "CRITICAL"))
    return out
