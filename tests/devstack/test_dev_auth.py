"""The dev stack's PostgreSQL authenticates (issue 10, finding 3): a stack made by a version
that trusted every local user is refused with the way out, before anything is touched; the
file of ports and credentials is private."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from swarm.devstack.stack import DevStack
from swarm.errors import ConfigError
from swarm.sources.postgres.cluster import DATADIR_PASSWORD_FILE, PASSWORD_FILE, LocalCluster


def test_up_refuses_a_stack_whose_cluster_trusts_every_local_user(tmp_path: Path) -> None:
    home = tmp_path / ".swarm"
    stack = DevStack(home)
    old = LocalCluster(stack.paths.pg)
    old.init(fast=True)
    try:
        # what an older version left: a cluster with no password (pg_hba.conf said trust)
        (stack.paths.pg / PASSWORD_FILE).unlink()
        (old.datadir / DATADIR_PASSWORD_FILE).unlink()
        with pytest.raises(ConfigError) as info:
            stack.up()
        assert "every local user" in info.value.message
        assert "swarm dev down --purge" in (info.value.hint or "") and "swarm dev up" in (info.value.hint or "")
        assert not (home / "keys").exists() and not stack.paths.repo.exists()  # nothing was touched
        assert not old.is_running()
    finally:
        old.destroy()  # also its relocated directory under /var/tmp/swarm-pg, when we are root
        stack.down(purge=True)
    assert not stack.paths.pg.exists()


def test_stack_file_is_private(tmp_path: Path) -> None:
    stack = DevStack(tmp_path / ".swarm")
    stack._save({"pg_port": 5432})
    stack._save({"pg_port": 5433})  # rewritten in place, still 0600
    assert stat.S_IMODE(stack.paths.stack_file.stat().st_mode) == 0o600
    assert stack._load() == {"pg_port": 5433}
