"""Logical PostgreSQL backup → verify → restore against the real cluster, on file:// and s3://,
and every fault the issue names: wrong key, damaged objects, pg_dump killed, server stopped,
a second backup while one runs, an unreachable repository."""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest

from swarm.crypto.keys import LocalKeyFile, create_key_file
from swarm.errors import IntegrityError, KeyError_, LockedError, RefusedError, SourceError, UnavailableError
from swarm.repo import Repository
from swarm.repo.format import data_key, dek_key, manifest_key
from swarm.services.postgres.logical_backup import backup_postgres_logical
from swarm.services.postgres.logical_restore import execute_restore, plan_restore
from swarm.services.repository.verify import verify_backup
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import connect, count_rows, with_dbname
from swarm.storage.factory import S3Options, open_store
from swarm.storage.local import LocalStore
from tests.conftest import new_database

pytestmark = pytest.mark.integration


def test_backup_verify_restore_roundtrip(repo: Repository, swarm_db: str, pg_cluster: LocalCluster) -> None:
    with connect(swarm_db) as conn:
        before = count_rows(conn)
    res = backup_postgres_logical(repo, swarm_db, jobs=2)
    m = res.manifest
    assert m.source["row_counts"] == before
    assert m.source["system_identifier"] and m.source["server_version"].startswith("15")
    assert before["public.run_events"] > 100
    assert [b.id for b in repo.list_backups()] == [m.id]
    assert any(o.name == "pgdump/toc.dat" for o in m.objects)

    v = verify_backup(repo, m.id, restore_test=True)
    assert v.ok, v.problems
    assert v.toc_entries and v.toc_entries > 8
    assert v.restore_test is not None and v.restore_test.validated

    target = with_dbname(pg_cluster.url(), "restored_" + m.id[-6:] + ("s3" if "s3" in repo.url else "f"))
    plan = plan_restore(repo, m.id, target, create=True)
    out = execute_restore(repo, plan)
    assert out.validated
    assert out.to_dict()["tables"]["public.run_events"] == {"expected": before["public.run_events"],
                                                            "restored": before["public.run_events"]}
    with connect(target) as conn:
        payload = conn.execute("SELECT payload FROM run_events ORDER BY id LIMIT 1").fetchone()
    assert payload is not None and isinstance(payload[0], dict)


@pytest.mark.parametrize("large_table_bytes", [1 << 40, 64 << 10], ids=["one-part-per-table", "parallel-parts"])
def test_counts_are_from_the_dump_snapshot(tmp_path: Path, kek: LocalKeyFile, pg_cluster: LocalCluster,
                                           large_table_bytes: int) -> None:
    """Rows inserted while the backup runs are in neither the dump nor the manifest's counts,
    whether a table is copied whole or in parallel page-range parts."""
    db = new_database(pg_cluster, runs=20, size_mb=3)
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    stop = threading.Event()
    run_id = psycopg.connect(db).execute("SELECT id FROM runs LIMIT 1").fetchone()[0]  # type: ignore[index]

    def writer() -> None:
        with psycopg.connect(db, autocommit=True) as conn:
            seq = 10**6
            while not stop.is_set():
                seq += 1
                conn.execute("INSERT INTO feature_flags (key) VALUES (%s)", (f"f{time.monotonic_ns()}",))
                conn.execute("INSERT INTO run_events (run_id, seq, ts, type, payload) VALUES "
                             "(%s, %s, now(), 'metric', '{}')", (run_id, seq))

    t = threading.Thread(target=writer)
    t.start()
    try:
        m = backup_postgres_logical(repo, db, jobs=2, large_table_bytes=large_table_bytes).manifest
    finally:
        stop.set()
        t.join()
    events = m.source["parallel_tables"]["public.run_events"]["parts"]
    if large_table_bytes < 1 << 30:
        assert len(events) >= 2
    else:
        assert len(events) == 1 and events[0]["first_page"] == 0 and events[0]["end_page"] is None
    # every table's rows are COPY parts; pg_dump's directory holds the schema only
    assert set(m.source["parallel_tables"]) == set(m.source["row_counts"])
    assert [o.name for o in m.objects if o.name.startswith("pgdump/")] == ["pgdump/toc.dat"]
    target = with_dbname(pg_cluster.url(), "snap_" + m.id[-6:])
    out = execute_restore(repo, plan_restore(repo, m.id, target, create=True))
    assert out.validated, out.comparison.mismatches
    assert verify_backup(repo, m.id, restore_test=True).ok
    # forced restore over the (now changed) source: parts and dump land again, counts hold
    with connect(target) as conn:
        conn.execute("DELETE FROM approvals")
    assert execute_restore(repo, plan_restore(repo, m.id, target, force=True)).validated


def test_restore_refuses_non_empty_target_unless_forced(repo: Repository, swarm_db: str) -> None:
    m = backup_postgres_logical(repo, swarm_db).manifest
    with pytest.raises(RefusedError, match="not empty"):
        plan_restore(repo, m.id, swarm_db)
    with connect(swarm_db) as conn:
        conn.execute("DELETE FROM approvals")
    out = execute_restore(repo, plan_restore(repo, m.id, swarm_db, force=True))
    assert out.validated


def test_restore_into_missing_database_needs_create(repo: Repository, swarm_db: str, pg_cluster: LocalCluster) -> None:
    from swarm.errors import NotFoundError

    m = backup_postgres_logical(repo, swarm_db).manifest
    with pytest.raises(NotFoundError, match="does not exist") as err:
        plan_restore(repo, m.id, with_dbname(pg_cluster.url(), "does_not_exist"))
    assert "--create" in (err.value.hint or "")


def test_wrong_or_missing_key_writes_nothing(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    store = LocalStore(tmp_path / "r")
    Repository.init(store, kek)
    before = sorted(i.key for i in store.list(""))
    other = create_key_file(tmp_path / "other.key")
    with pytest.raises(KeyError_) as err:
        Repository.open(store, other)
    assert kek.key_id in err.value.message and other.key_id in err.value.message
    assert sorted(i.key for i in store.list("")) == before

    from swarm.config import load_settings
    from swarm.services.context import open_repository

    s = load_settings(repo=f"file://{tmp_path / 'r'}", key_url=str(tmp_path / "missing.key"))
    with pytest.raises(KeyError_, match="does not exist"):
        open_repository(s, create=True)
    assert sorted(i.key for i in store.list("")) == before


def test_every_flipped_byte_is_named_by_verify(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    m = backup_postgres_logical(repo, swarm_db).manifest
    assert verify_backup(repo, m.id).ok
    for entry in m.objects:
        path = root / data_key(m.id, entry.name)
        original = path.read_bytes()
        for offset in (0, len(original) // 2, len(original) - 1):
            damaged = bytearray(original)
            damaged[offset] ^= 0x01
            path.write_bytes(bytes(damaged))
            res = verify_backup(Repository.open(LocalStore(root), kek), m.id)
            assert not res.ok
            assert [p["where"] for p in res.problems] == [entry.name], res.problems
        path.write_bytes(original)
    assert verify_backup(repo, m.id).ok


def test_flipped_byte_in_a_parallel_part_is_named(tmp_path: Path, kek: LocalKeyFile, pg_cluster: LocalCluster) -> None:
    db = new_database(pg_cluster, runs=20, size_mb=2)
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    m = backup_postgres_logical(repo, db, large_table_bytes=64 << 10).manifest
    parts = [o for o in m.objects if o.name.startswith("tables/")]
    assert len(parts) >= 2
    path = root / data_key(m.id, parts[1].name)
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 3] ^= 0x10
    path.write_bytes(bytes(damaged))
    res = verify_backup(repo, m.id)
    assert [p["where"] for p in res.problems] == [parts[1].name]
    with pytest.raises(IntegrityError, match=parts[1].name.replace(".", r"\.")):
        execute_restore(repo, plan_restore(repo, m.id, with_dbname(pg_cluster.url(), "dmg_" + m.id[-6:]),
                                           create=True))


def test_truncated_deleted_and_foreign_objects(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    m = backup_postgres_logical(repo, swarm_db).manifest
    victim = max(m.objects, key=lambda o: o.stored_size)
    path = root / data_key(m.id, victim.name)
    path.write_bytes(path.read_bytes()[:-100])
    (root / data_key(m.id, "pgdump/9999.dat")).write_bytes(b"planted")
    (root / data_key(m.id, "pgdump/toc.dat")).unlink()
    res = verify_backup(repo, m.id)
    where = {p["where"]: p["problem"] for p in res.problems}
    assert "truncated" in where[victim.name] or "differs" in where[victim.name]
    assert "missing" in where["pgdump/toc.dat"]
    assert "not listed" in where["pgdump/9999.dat"]


def test_damaged_manifest_and_data_key(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    m = backup_postgres_logical(repo, swarm_db).manifest
    mpath = root / manifest_key(m.id)
    good = mpath.read_bytes()
    second = backup_postgres_logical(repo, swarm_db).manifest
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01  # one flipped bit in the sealed manifest
    mpath.write_bytes(bytes(bad))
    res = verify_backup(Repository.open(LocalStore(root), kek), m.id)
    assert not res.ok and res.problems[0]["where"] == "manifest"
    # one damaged manifest does not hide the healthy backups
    from swarm.services.repository.catalog import list_backups

    rows = {r["id"]: r for r in list_backups(Repository.open(LocalStore(root), kek))}
    assert rows[m.id]["damaged"] and "fails authentication" in rows[m.id]["problem"]
    assert not rows[second.id].get("damaged") and rows[second.id]["tables"] >= 8
    with pytest.raises(IntegrityError):
        Repository.open(LocalStore(root), kek).list_backups()
    mpath.write_bytes(good)
    kpath = root / dek_key(m.dek_id)
    kpath.write_bytes(kpath.read_bytes().replace(b'"wrapped": "', b'"wrapped": "AAAA'))
    res = verify_backup(Repository.open(LocalStore(root), kek), m.id)
    assert not res.ok and all("data key" in p["problem"] for p in res.problems)
    with pytest.raises(IntegrityError):
        execute_restore(Repository.open(LocalStore(root), kek),
                        plan_restore(Repository.open(LocalStore(root), kek), m.id, swarm_db, force=True))


def _blocked_backup(tmp_path: Path, kek: LocalKeyFile, cluster: LocalCluster, db: str, action) -> BaseException:  # type: ignore[no-untyped-def]
    """Start a backup that blocks behind an ACCESS EXCLUSIVE lock, run ``action``, return the error."""
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    locker = psycopg.connect(db)
    locker.execute("LOCK TABLE run_events IN ACCESS EXCLUSIVE MODE")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            backup_postgres_logical(repo, db, jobs=2)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 30
    pids: list[int] = []
    while time.monotonic() < deadline and not pids:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _is_pg_dump(int(p))]
        time.sleep(0.05)
    assert pids, "pg_dump did not start"
    action(pids, locker)
    t.join(60)
    assert not t.is_alive()
    try:
        locker.close()
    except psycopg.Error:
        pass
    assert errors, "the backup should have failed"
    assert repo.list_backups() == []
    assert list(repo._store.list("data/")) == []
    return errors[0]


def _is_pg_dump(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"pg_dump")
    except OSError:
        return False


def test_pg_dump_killed_mid_backup(tmp_path: Path, kek: LocalKeyFile, pg_cluster: LocalCluster) -> None:
    db = new_database(pg_cluster)

    def kill(pids: list[int], locker: psycopg.Connection) -> None:  # type: ignore[type-arg]
        for p in pids:
            os.kill(p, signal.SIGKILL)
        time.sleep(0.3)
        locker.rollback()

    err = _blocked_backup(tmp_path, kek, pg_cluster, db, kill)
    assert isinstance(err, SourceError) and "pg_dump failed" in err.message


def test_server_stopped_mid_backup(tmp_path: Path, kek: LocalKeyFile, services_dir: Path) -> None:
    cluster = LocalCluster(services_dir / "pg-dies")
    cluster.init(fast=True)
    cluster.start()
    try:
        db = new_database(cluster)

        def stop(pids: list[int], locker: psycopg.Connection) -> None:  # type: ignore[type-arg]
            cluster.stop("immediate")

        err = _blocked_backup(tmp_path, kek, cluster, db, stop)
        assert isinstance(err, SourceError | UnavailableError)
    finally:
        cluster.destroy()


def test_second_backup_while_one_runs_names_the_holder(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    with repo.lock("backup-postgres", command="swarm admin backup postgres --jobs 4"):
        with pytest.raises(LockedError) as err:
            backup_postgres_logical(repo, swarm_db)
    assert f"pid {os.getpid()}" in err.value.message and "--jobs 4" in err.value.message
    assert repo.list_backups() == []
    backup_postgres_logical(repo, swarm_db)  # the lock is free again


def test_unreachable_repository_is_a_clear_error(kek: LocalKeyFile) -> None:
    from swarm.sources.netutil import free_port

    store = open_store("s3://backups/swarm", S3Options(endpoint=f"http://127.0.0.1:{free_port()}",
                                                      access_key="a", secret_key="b"))
    t0 = time.monotonic()
    with pytest.raises(UnavailableError) as err:
        Repository.open(store, kek, create=True)
    assert "cannot reach" in err.value.message and "attempts" in err.value.message
    assert time.monotonic() - t0 < 60


def test_wrong_s3_credentials_are_a_clear_error(seaweed, kek: LocalKeyFile, bucket: str) -> None:  # type: ignore[no-untyped-def]
    from swarm.errors import ConfigError

    store = open_store(f"s3://{bucket}/x", S3Options(endpoint=seaweed.endpoint, access_key=seaweed.access_key,
                                                     secret_key="wrong"))
    with pytest.raises(ConfigError, match="access denied"):
        Repository.open(store, kek, create=True)
