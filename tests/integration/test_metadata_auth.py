"""Issue #10, finding 1: manifests, restore points and tombstones are sealed (encrypted and
authenticated under the repository's metadata key), and rollbacks are reported.

Each test performs the attack of the security review against a real logical backup of a real
PostgreSQL database, as someone who can write the repository's storage but has no key."""
from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path

import psycopg
import pytest

from swarm.crypto.keys import LocalKeyFile
from swarm.errors import IntegrityError
from swarm.repo import CatalogueWatch, Repository
from swarm.repo.format import manifest_key, restore_point_key, tombstone_key, wal_key
from swarm.services.postgres.logical_backup import backup_postgres_logical
from swarm.services.repository.catalog import list_backups
from swarm.services.repository.verify import verify_backup
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import create_database, with_dbname
from swarm.storage.local import LocalStore


def _forge(repo: Repository, root: Path, backup_id: str, **source: object) -> None:
    """What an attacker with write access did before: take the manifest's plaintext, change its
    source, recompute the unkeyed checksum (``to_json`` does) and put it back in plain JSON."""
    m = repo.load_manifest(backup_id)
    forged = dataclasses.replace(m, source={**m.source, **source})
    (root / manifest_key(backup_id)).write_bytes(forged.to_json())


def test_forged_database_cannot_redirect_the_restore_test(tmp_path: Path, kek: LocalKeyFile, swarm_db: str,
                                                         pg_cluster: LocalCluster) -> None:
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    m = backup_postgres_logical(repo, swarm_db).manifest
    attacker_db = "attacker_" + secrets.token_hex(4)  # an empty database of someone else's
    create_database(pg_cluster.url("postgres"), attacker_db)
    attacker = with_dbname(pg_cluster.url("postgres"), attacker_db)
    _forge(repo, root, m.id, database=f"x?port={pg_cluster.port}&dbname={attacker_db}")
    res = verify_backup(Repository.open(LocalStore(root), kek), m.id, restore_test=True, work_dir=str(tmp_path))
    assert not res.ok and res.problems[0]["where"] == "manifest"
    assert "cannot be trusted" in res.problems[0]["problem"]
    with psycopg.connect(attacker) as conn:
        tables = conn.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone()
    assert tables == (0,), "decrypted rows were restored into the attacker's database"


def test_dropped_table_with_zero_count_does_not_verify(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    m = backup_postgres_logical(repo, swarm_db).manifest
    table = "public.runs"
    parts = {p["name"] for p in m.source["parallel_tables"][table]["parts"]}
    forged = dataclasses.replace(
        m, objects=tuple(o for o in m.objects if o.name not in parts),
        source={**m.source, "row_counts": {**m.source["row_counts"], table: 0},
                "parallel_tables": {k: v for k, v in m.source["parallel_tables"].items() if k != table}})
    (root / manifest_key(m.id)).write_bytes(forged.to_json())
    for part in parts:
        (root / "data" / m.id / part).unlink()
    res = verify_backup(Repository.open(LocalStore(root), kek), m.id)
    assert not res.ok and res.problems[0]["where"] == "manifest"


def test_sealed_manifest_moved_or_flipped_is_refused(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    a = backup_postgres_logical(repo, swarm_db).manifest
    b = backup_postgres_logical(repo, swarm_db).manifest
    (root / manifest_key(b.id)).write_bytes((root / manifest_key(a.id)).read_bytes())  # a's manifest as b's
    with pytest.raises(IntegrityError, match="fails authentication"):
        repo.load_manifest(b.id)
    assert repo.load_manifest(a.id).id == a.id


def test_repository_does_not_leak_the_schema(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    root = tmp_path / "r"
    repo = Repository.init(LocalStore(root), kek)
    backup_postgres_logical(repo, swarm_db)
    repo.put_restore_point({"name": "before-migration", "lsn": "0/3000028", "time": "2026-01-01T00:00:00Z",
                            "tli": 1})
    leaks = (b"public.runs", b"approvals", b"run_events", b"row_counts", b"127.0.0.1", b"0/3000028")
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not [w for w in leaks if w in data], f"{f.relative_to(root)} leaks {[w for w in leaks if w in data]}"


def _watched(root: Path, kek: LocalKeyFile, home: Path) -> Repository:
    repo = Repository.open(LocalStore(root), kek)
    repo.watch = CatalogueWatch(home / "security")
    return repo


def test_deleted_and_replayed_manifests_are_reported(tmp_path: Path, kek: LocalKeyFile, swarm_db: str) -> None:
    root, home = tmp_path / "r", tmp_path / "home"
    repo = Repository.init(LocalStore(root), kek)
    a = backup_postgres_logical(repo, swarm_db).manifest
    b = backup_postgres_logical(repo, swarm_db).manifest
    c = backup_postgres_logical(repo, swarm_db).manifest
    assert not _watched(root, kek, home).list_backups() == []  # this client has now seen a, b, c
    # prune deletes a (tombstone first); the attacker deletes b's manifest by hand and puts a's back
    saved = (root / manifest_key(a.id)).read_bytes()
    _watched(root, kek, home).delete_backup(a.id, reason="test")
    assert (root / tombstone_key(a.id)).exists()
    (root / manifest_key(b.id)).unlink()
    (root / manifest_key(a.id)).write_bytes(saved)
    repo = _watched(root, kek, home)
    assert [m.id for m in repo.list_backups()] == [c.id]  # the replayed a is not listed as a backup
    kinds = {(f.kind, f.name) for f in repo.rollback}
    assert kinds == {("backup-deleted", b.id), ("backup-replayed", a.id)}
    with pytest.raises(IntegrityError, match="deleted by prune"):
        repo.load_manifest(a.id)
    rows = {r["id"]: r for r in list_backups(_watched(root, kek, home))}
    assert rows[b.id]["rollback"] == "backup-deleted" and rows[a.id]["damaged"]
    res = verify_backup(_watched(root, kek, home), c.id)  # verifying any backup reports it
    assert not res.ok and {p["where"] for p in res.problems} >= {f"catalogue: {a.id}", f"catalogue: {b.id}"}
    # a client that never saw b cannot know (as with borg): a fresh home reports only the replay
    fresh = _watched(root, kek, tmp_path / "other-home")
    fresh.list_backups()
    assert {f.kind for f in fresh.rollback} == {"backup-replayed"}
    # removing the tombstone as well is noticed by the client that saw it
    (root / tombstone_key(a.id)).unlink()
    repo = _watched(root, kek, home)
    repo.list_backups(damaged={})
    assert ("tombstone-deleted", a.id) in {(f.kind, f.name) for f in repo.rollback}
    # an operator who has looked accepts what is there now; the findings stop
    repo.accept_catalogue()
    again = _watched(root, kek, home)
    again.list_backups()
    assert again.rollback == []


def test_restore_point_rolled_back_is_reported(tmp_path: Path, kek: LocalKeyFile) -> None:
    root, home = tmp_path / "r", tmp_path / "home"
    repo = Repository.init(LocalStore(root), kek)
    point = {"name": "before-migration", "lsn": "0/3000028", "time": "2026-01-01T00:00:00Z", "tli": 1}
    repo.put_restore_point(point)
    old = (root / restore_point_key("before-migration")).read_bytes()
    repo.put_restore_point({**point, "lsn": "0/5000000"}, replace=True)
    assert _watched(root, kek, home).list_restore_points()[0]["generation"] == 2
    (root / restore_point_key("before-migration")).write_bytes(old)  # the older record put back
    repo = _watched(root, kek, home)
    assert repo.list_restore_points()[0]["lsn"] == "0/3000028"
    assert [(f.kind, f.name) for f in repo.rollback] == [("restore-point-rolled-back", "before-migration")]


def test_older_partial_wal_put_back_is_refused(tmp_path: Path, kek: LocalKeyFile) -> None:
    root, home = tmp_path / "r", tmp_path / "home"
    repo = _watched_init(root, kek, home)
    repo.bind_cluster("7311", segment_size=16 << 20)
    name = "000000010000000000000003.partial"
    seg = bytearray(16 << 20)
    seg[: 1 << 20] = b"\x01" * (1 << 20)
    repo.put_wal(name, bytes(seg), overwrite=True)
    older = (root / wal_key(name)).read_bytes()
    seg[: 2 << 20] = b"\x01" * (2 << 20)
    repo.put_wal(name, bytes(seg), overwrite=True)  # the stream moved on: 2 MiB of WAL in it
    (root / wal_key(name)).write_bytes(older)  # an attacker puts the 1 MiB copy back
    with pytest.raises(IntegrityError, match="less than the"):
        _watched(root, kek, home).get_wal(name)
    assert _watched(root, kek, tmp_path / "other").get_wal(name)[: 1 << 20] == b"\x01" * (1 << 20)


def _watched_init(root: Path, kek: LocalKeyFile, home: Path) -> Repository:
    repo = Repository.init(LocalStore(root), kek)
    repo.watch = CatalogueWatch(home / "security")
    return repo


def test_manifest_written_in_plain_json_by_a_pre_release_is_refused_until_upgrade(tmp_path: Path,
                                                                                   kek: LocalKeyFile) -> None:
    from swarm.errors import FormatUnsupported
    from swarm.repo.format import CONFIG_KEY

    root = tmp_path / "r"
    Repository.init(LocalStore(root), kek)
    cfg = json.loads((root / CONFIG_KEY).read_text())
    cfg["features"] = ["framed-zstd-aesgcm"]  # a repository of the pre-release version 2
    (root / CONFIG_KEY).write_text(json.dumps(cfg))
    with pytest.raises(FormatUnsupported, match="pre-release"):
        Repository.open(LocalStore(root), kek)
