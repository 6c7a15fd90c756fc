"""`verify` names each damaged object exactly once, whichever check sees the damage first.

A truncated object used to be reported by the listing (its stored size) and again by the
content pass (its frames), so one damaged object printed two problem lines.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from swarm.crypto.keys import LocalKeyFile
from swarm.repo import Repository
from swarm.repo.format import data_key
from swarm.services.postgres.logical_backup import backup_postgres_logical
from swarm.services.repository.verify import verify_backup
from swarm.storage.local import LocalStore

pytestmark = pytest.mark.integration


def test_truncated_object_is_one_problem_line(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    m = backup_postgres_logical(repo, swarm_db).manifest
    for victim in (max(m.objects, key=lambda o: o.stored_size), next(o for o in m.objects if o.name.endswith(".dat"))):
        path = root / data_key(m.id, victim.name)
        original = path.read_bytes()
        path.write_bytes(original[:-7])
        res = verify_backup(Repository.open(LocalStore(root), kek), m.id)
        assert [p["where"] for p in res.problems] == [victim.name], res.problems
        assert "truncated" in res.problems[0]["problem"] or "differs" in res.problems[0]["problem"]
        path.write_bytes(original)
    assert verify_backup(repo, m.id).ok
