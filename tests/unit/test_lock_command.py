"""The lock record names what runs, never an option's value: a --db-url password must not reach the
repository (issue 10, finding 5)."""
from __future__ import annotations

import sys

import pytest

from swarm.repo import locks


@pytest.mark.parametrize("argv,expected", [
    (["/usr/bin/swarm", "admin", "backup", "postgres", "--db-url", "postgresql://u:hunter2@h/db"],
     "swarm admin backup postgres"),
    (["swarm", "--config", "/etc/swarm.toml", "admin", "backup", "postgres", "--db-url=postgresql://u:hunter2@h/db"],
     "swarm admin backup postgres"),
    (["swarm", "admin", "wal", "push", "/var/lib/pg/pg_wal/000000010000000000000003"], "swarm admin wal push"),
    (["swarm", "admin", "backup", "postgres", "--jobs", "2", "--db-url", "postgresql://u:hunter2@h/db"],
     "swarm admin backup postgres"),
])
def test_lock_command_holds_no_option_values(monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: str) -> None:
    monkeypatch.setattr(sys, "argv", argv)
    assert locks._argv_command() == expected
    assert "hunter2" not in locks._argv_command()
