"""A physical backup while WAL archiving is broken fails quickly and says why, instead of hanging.

Archiving is broken the way a new user broke it: the repository is not writable by the server
user that runs ``archive_command``. Two cases: the archiver has not failed yet when the backup
starts (pg_basebackup then waits for its WAL: the watch must end it after --wal-wait-timeout and
end the walsender too), and it has (refused before anything is streamed).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.sources.postgres.cluster import hand_to_server_user, running_as_root
from tests.physical.conftest import PhysEnv, make_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broken(services_dir: Path) -> Iterator[PhysEnv]:
    env = make_env(services_dir / "phys-archive-failing")
    env.cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    yield env
    hand_to_server_user(env.repo_dir, recursive=True)
    env.cluster.destroy()


def _break_repository(env: PhysEnv) -> None:
    """The server user can no longer write the repository (root owns it, 0755)."""
    for dirpath, _dirs, files in os.walk(env.repo_dir):
        for n in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            if running_as_root():
                os.chown(n, 0, 0)
            else:
                os.chmod(n, 0o555 if os.path.isdir(n) else 0o444)


def _walsenders(env: PhysEnv) -> int:
    return int(env.cluster.psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'"))


def test_backup_waiting_for_broken_archiving_fails_after_the_timeout(broken: PhysEnv) -> None:
    env = broken
    r = env.cli("admin", "backup", "postgres", "--physical", "--db-url", env.url, check=False, timeout=90)
    assert r.returncode == 0, (r.stderr, env.cluster.logfile.read_text()[-3000:])  # archiving works: a good backup
    _break_repository(env)
    env.cluster.psql("SELECT pg_stat_reset_shared('archiver')")  # no failure recorded yet
    t0 = time.monotonic()
    r = env.cli("admin", "backup", "postgres", "--physical", "--db-url", env.url, "--wal-wait-timeout", "3",
                "--json", check=False, timeout=120)
    elapsed = time.monotonic() - t0
    assert r.returncode == 10, (r.returncode, r.stdout, r.stderr, env.cluster.logfile.read_text()[-3000:])
    err = json.loads(r.stdout)
    assert err["error"] == "archive-failing" and "within 3 s" in err["message"]
    assert elapsed < 45, elapsed
    segment = err["details"]["segment"]
    assert segment and segment in err["message"]
    if running_as_root():
        assert f"cannot write {env.repo_dir}" in err["hint"] or "cannot enter" in err["hint"]
        assert "outside /root" not in err["hint"]
    deadline = time.monotonic() + 10
    while _walsenders(env) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _walsenders(env) == 0, "the walsender was left waiting for archiving"
    listed = json.loads(env.cli("admin", "backups", "list", "--json").stdout)
    assert len([b for b in listed if b.get("kind") == "pg-physical"]) == 1  # only the good one


def test_backup_refused_at_once_while_archiving_fails(broken: PhysEnv) -> None:
    env = broken
    env.cluster.psql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 30
    while int(env.cluster.psql("SELECT failed_count FROM pg_stat_archiver")) == 0:
        assert time.monotonic() < deadline, "archive_command never failed"
        time.sleep(0.3)
    t0 = time.monotonic()
    r = env.cli("admin", "backup", "postgres", "--physical", "--db-url", env.url, "--json", check=False)
    assert time.monotonic() - t0 < 15
    assert r.returncode == 10, (r.stdout, r.stderr)
    err = json.loads(r.stdout)
    last_failed = env.cluster.psql("SELECT last_failed_wal FROM pg_stat_archiver")
    assert err["error"] == "archive-failing" and last_failed in err["message"]
    assert "would wait for it for ever" in err["message"]
    # the cause, in the server's (or wal push's) own words
    assert "The server says:" in err["hint"], err["hint"]
    # human output: message and hint on stderr
    r = env.cli("admin", "backup", "postgres", "--physical", "--db-url", env.url, check=False)
    assert r.returncode == 10 and "WAL archiving is failing" in r.stderr


def test_wal_status_is_not_ok_while_archiving_fails(broken: PhysEnv) -> None:
    r = broken.cli("admin", "wal", "status", "--db-url", broken.url, "--json", check=False)
    assert r.returncode == 1, r.stdout
    out = json.loads(r.stdout)
    assert not out["ok"] and out["server"]["archiver"]["failing"]
    assert any("archive_command is failing" in p for p in out["problems"])
    r = broken.cli("admin", "wal", "status", "--db-url", broken.url, check=False)
    assert r.returncode == 1 and "NOT OK" in r.stdout and "archive_command is failing" in r.stdout
    # repaired: the archiver catches up and the status is OK again
    hand_to_server_user(broken.repo_dir, recursive=True)
    broken.cluster.psql("CREATE TABLE after_repair AS SELECT 1 AS x")
    broken.cluster.psql("SELECT pg_switch_wal()")  # a new .ready file wakes the archiver at once
    deadline = time.monotonic() + 90
    while True:
        r = broken.cli("admin", "wal", "status", "--db-url", broken.url, "--json", check=False)
        if r.returncode == 0:
            break
        assert time.monotonic() < deadline, r.stdout
        time.sleep(1)
    assert json.loads(r.stdout)["ok"]


def test_restore_point_is_refused_while_archiving_fails(services_dir: Path) -> None:
    """A restore point made while archive_command fails would be recorded but unreachable (trial D3)."""
    env = make_env(services_dir / "phys-rp-failing")
    try:
        _break_repository(env)
        env.cluster.psql("CREATE TABLE t AS SELECT 1 AS x")
        env.cluster.psql("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 30
        while int(env.cluster.psql("SELECT failed_count FROM pg_stat_archiver")) == 0:
            assert time.monotonic() < deadline, "archive_command never failed"
            time.sleep(0.3)
        r = env.cli("admin", "restore-point", "before-migration", "--db-url", env.url, "--json", check=False)
        assert r.returncode == 10, (r.stdout, r.stderr)
        err = json.loads(r.stdout)
        assert err["error"] == "archive-failing" and "restore point made now could not be recovered" in err["message"]
        hand_to_server_user(env.repo_dir, recursive=True)
        listed = json.loads(env.cli("admin", "restore-points", "--json").stdout)["restore_points"]
        assert listed == []
    finally:
        hand_to_server_user(env.repo_dir, recursive=True)
        env.cluster.destroy()
