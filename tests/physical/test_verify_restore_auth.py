"""The throwaway copy a physical ``verify --restore-test`` starts lets no other local user in
(issue 10, finding 3): it brings production's roles, whose passwords we do not know, so it
gets no TCP listener and one unix socket in a 0700 directory, with ``local all all trust``.
The attack runs as ``nobody`` while the copy serves the restored rows."""
from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from swarm.services.context import restore_test_env
from swarm.services.postgres import physical_verify
from swarm.services.postgres.physical_backup import backup_postgres_physical
from swarm.services.repository.verify import verify_backup
from swarm.sources.postgres.cluster import LOCKED_DOWN_HBA
from tests.physical.conftest import PhysEnv

pytestmark = pytest.mark.integration


def _psql_as_nobody(bindir: Path, host: str, port: int) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.fail("this attack needs to run as root, to become 'nobody' (CI runs as root)")
    who = pwd.getpwnam("nobody")
    return subprocess.run([str(bindir / "psql"), "-X", "-w", "-A", "-t", "-h", host, "-p", str(port), "-U", "swarm",
                           "-d", "secrets", "-c", "SELECT count(*) FROM cards"], user=who.pw_uid, group=who.pw_gid,
                          extra_groups=[], env={"PATH": "/usr/bin:/bin", "HOME": "/"}, cwd="/", capture_output=True,
                          text=True, timeout=30, check=False)


def test_nobody_cannot_reach_the_physical_restore_test_copy(phys: PhysEnv, tmp_path: Path) -> None:
    c = phys.cluster
    c.psql("CREATE DATABASE secrets")
    c.psql("CREATE TABLE cards AS SELECT g AS id, md5(g::text) AS pan FROM generate_series(1, 500) g",
           dbname="secrets")
    c.psql("CHECKPOINT")
    backup_id = backup_postgres_physical(phys.repo(), phys.url).manifest.id
    seen: dict[str, Any] = {}
    real = physical_verify._check_databases

    def attack(cluster: Any, superuser: str, fail: Any, facts: dict[str, Any]) -> None:
        assert c.bindir is not None
        seen["tcp"] = _psql_as_nobody(c.bindir, "127.0.0.1", cluster.port)
        seen["socket"] = _psql_as_nobody(c.bindir, str(cluster.socket_dir), cluster.port)
        seen["socket_mode"] = stat.S_IMODE(cluster.socket_dir.stat().st_mode)
        seen["hba"] = (cluster.datadir / "pg_hba.conf").read_text()
        seen["ours"] = cluster.psql("SELECT count(*) FROM cards", dbname="secrets")
        real(cluster, superuser, fail, facts)

    mp = pytest.MonkeyPatch()
    mp.setattr(physical_verify, "_check_databases", attack)
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o755)
    try:
        res = verify_backup(phys.repo(), backup_id, restore_test=True, env=restore_test_env(phys.settings),
                            work_dir=str(work))
    finally:
        mp.undo()
    assert res.ok and res.restore_test is not None and res.restore_test.validated, res.problems
    assert seen["ours"] == "500"  # we get in (through the socket)
    for how in ("tcp", "socket"):
        r = seen[how]
        assert r.returncode != 0 and r.stdout.strip() != "500", (how, r.stdout, r.stderr)
    assert "refused" in seen["tcp"].stderr, seen["tcp"].stderr  # no TCP listener at all
    assert "Permission denied" in seen["socket"].stderr, seen["socket"].stderr
    assert seen["socket_mode"] == 0o700 and seen["hba"] == LOCKED_DOWN_HBA
    assert list(work.iterdir()) == []  # the copy, its socket and spool are gone
