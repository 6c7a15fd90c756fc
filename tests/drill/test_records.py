"""Drill records in the repository (``drills/<id>``, sealed), on a local directory and on SeaweedFS."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from swarm.errors import IntegrityError
from swarm.model.drill import new_drill_id
from swarm.repo import Repository
from swarm.services.drill import last_drill


def test_drill_records_round_trip_sorted_and_damage_reported(repo: Repository) -> None:
    a = new_drill_id(datetime(2026, 1, 1, tzinfo=UTC), "aaaaaa")
    b = new_drill_id(datetime(2026, 1, 2, tzinfo=UTC), "bbbbbb")
    c = new_drill_id(datetime(2026, 1, 3, tzinfo=UTC), "cccccc")
    repo.put_drill(b, {"status": "finished", "verdict": "fail", "rto_s": 3.0})
    repo.put_drill(a, {"status": "finished", "verdict": "pass", "rto_s": 2.0})
    repo.put_drill(c, {"status": "running"})
    assert [d["id"] for d in repo.drills()] == [a, b, c]
    assert repo.get_drill(a) == {"id": a, "status": "finished", "verdict": "pass", "rto_s": 2.0}
    assert repo.get_drill(new_drill_id(datetime(2026, 1, 4, tzinfo=UTC), "dddddd")) is None
    last = last_drill(repo)
    assert last is not None and last["id"] == b  # the newest that finished, not the running one
    with pytest.raises(ValueError):
        repo.put_drill("../backups/x", {})
    # a record sealed for another key is damage, named, not a drill
    raw = repo._store.get(f"drills/{a}.json")
    repo._store.put(f"drills/{b}.json", raw)
    damaged: dict[str, str] = {}
    assert [d["id"] for d in repo.drills(damaged)] == [a, c]
    assert list(damaged) == [f"drills/{b}.json"]
    with pytest.raises(IntegrityError):
        repo.drills()
