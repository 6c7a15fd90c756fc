"""The job history lists runs oldest slot first, and runs of one slot in the order they started:
a chained job whose trigger ended within the second its slot names must not come first because
its name sorts first (seen in CI once `backup state` got fast enough)."""
from __future__ import annotations

from pathlib import Path

from swarm.crypto.keys import create_key_file
from swarm.repo import Repository
from swarm.storage.memory import MemoryStore


def test_runs_of_one_slot_come_in_the_order_they_started(tmp_path: Path) -> None:
    repo = Repository.init(MemoryStore(), create_key_file(tmp_path / "k"))
    slot = "2026-11-28T01:00:00Z"
    repo.put_job_run({"job": "state", "slot": slot, "outcome": "succeeded", "attempt": 1, "trigger": "external",
                      "started_at": "2026-11-28T01:00:00.100000Z", "ended_at": "2026-11-28T01:00:00.700000Z"})
    repo.put_job_run({"job": "check", "slot": slot, "outcome": "succeeded", "attempt": 1, "trigger": "after:state",
                      "started_at": "2026-11-28T01:00:00.800000Z", "ended_at": "2026-11-28T01:00:00.900000Z"})
    repo.put_job_run({"job": "aaa", "slot": "2026-11-28T00:59:00Z", "outcome": "missed", "attempt": 0})
    assert [r["job"] for r in repo.job_runs()] == ["aaa", "state", "check"]
