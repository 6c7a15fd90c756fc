"""Against the real cluster: a query the server refuses is a typed SourceError naming what the
server said, with a hint (never a psycopg traceback); a logical restore prints a URL to point
swarm at that carries no password; a damaged COPY part names its table."""
from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest

from swarm.crypto.keys import LocalKeyFile
from swarm.errors import SourceError
from swarm.repo import Repository
from swarm.repo.format import data_key
from swarm.services.postgres.logical_backup import backup_postgres_logical
from swarm.services.postgres.logical_restore import execute_restore, plan_restore
from swarm.services.repository.verify import verify_backup
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import connect, server_facts, with_dbname
from swarm.sources.postgres.wal import switch_wal
from swarm.storage.local import LocalStore
from swarm.ui.views import postgres as pg_view
from swarm.ui.views import verify as verify_view
from tests.conftest import new_database

pytestmark = pytest.mark.integration

ROLE = "swarm_no_privileges"
ROLE_PASSWORD = "np-" + secrets.token_hex(8)


@pytest.fixture
def unprivileged_url(pg_cluster: LocalCluster) -> str:
    """A role that may log in and nothing more; pg_control_system() is revoked from PUBLIC
    for the test's duration (as a hardened server would have it)."""
    admin = pg_cluster.url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {ROLE}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{ROLE_PASSWORD}'")
        conn.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
    try:
        yield f"postgresql://{ROLE}:{ROLE_PASSWORD}@{pg_cluster.host}:{pg_cluster.port}/postgres"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("GRANT EXECUTE ON FUNCTION pg_control_system() TO PUBLIC")
            conn.execute(f"DROP ROLE IF EXISTS {ROLE}")


def test_a_refused_query_is_a_source_error_with_the_servers_message(unprivileged_url: str) -> None:
    with connect(unprivileged_url) as conn, pytest.raises(SourceError) as info:
        server_facts(conn)
    err = info.value
    assert "permission denied" in err.message and "pg_control_system" in err.message, err.message
    assert err.hint and "privilege" in err.hint
    assert isinstance(err.__cause__, psycopg.errors.InsufficientPrivilege)


def test_a_refused_query_inside_connect_is_translated(unprivileged_url: str) -> None:
    with pytest.raises(SourceError) as info:
        with connect(unprivileged_url) as conn:
            conn.execute("SELECT * FROM pg_control_system()")
    assert "permission denied" in info.value.message and info.value.hint
    with pytest.raises(SourceError) as info:
        switch_wal(unprivileged_url)  # wal.py's helpers run their queries inside connect()
    assert "pg_switch_wal" in info.value.message and isinstance(info.value.__cause__, psycopg.Error)


def test_restore_prints_a_url_without_any_password(tmp_path: Path, kek: LocalKeyFile, pg_cluster: LocalCluster,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    db = new_database(pg_cluster, runs=3, size_mb=0.2)
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    m = backup_postgres_logical(repo, db).manifest
    target = with_dbname(pg_cluster.url(), "pw_" + m.id[-6:])  # carries the cluster's password
    secret = pg_cluster.password
    res = execute_restore(repo, plan_restore(repo, m.id, target, create=True))
    d = res.to_dict()
    assert secret not in d["swarm_db_url"] and "***" not in d["swarm_db_url"], d["swarm_db_url"]
    assert d["swarm_db_url"] == target.replace(f":{secret}@", "@")
    assert d["swarm_db_url_password_omitted"] is True
    pg_view.logical_restore(res, m.id, as_json=False)
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "SWARM_DB_URL" in ln)
    assert "***" not in line and secret not in line and "add the password, or use PGPASSFILE" in line


def test_a_damaged_copy_part_names_its_table(tmp_path: Path, kek: LocalKeyFile, pg_cluster: LocalCluster,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    db = new_database(pg_cluster, runs=20, size_mb=3)
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    m = backup_postgres_logical(repo, db, jobs=2, large_table_bytes=64 << 10).manifest
    events = m.source["parallel_tables"]["public.run_events"]["parts"]
    assert len(events) >= 2
    first = events[0]["name"]
    path = tmp_path / "r" / data_key(m.id, first)
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))
    res = verify_backup(repo, m.id)
    assert not res.ok
    [p] = [p for p in res.problems if p["where"] == first]
    assert p["table"] == "public.run_events" and p["rows"].startswith("from page 0 to "), p
    verify_view.verify_result(res, m.id, as_json=False)
    assert f"{first} (public.run_events, rows from page 0 to " in capsys.readouterr().out
