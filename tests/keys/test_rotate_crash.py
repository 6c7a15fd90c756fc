"""Rotation file → KMS killed at every write, then rerun: it converges and every (real, pg_dump)
backup verifies and restores with the new key alone (the old one retired); and a real `backup
postgres` and `wal push` running while `keys rotate` runs lose nothing: afterwards every backup
verifies and restores, and every pushed WAL segment comes back byte for byte, with the old key
retired."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import tomli_w

from swarm.crypto.keys import create_key_file
from swarm.crypto.providers import load_provider
from swarm.errors import KeyMismatch
from swarm.repo import Repository
from swarm.repo import rotate as rot
from swarm.services.postgres.logical_backup import backup_postgres_logical
from swarm.services.postgres.logical_restore import execute_restore, plan_restore
from swarm.services.repository.verify import verify_backup
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import with_dbname
from swarm.storage.memory import MemoryStore
from tests.keys.conftest import KmsKey
from tests.keys.test_rotate import data_objects
from tests.physical.conftest import SWARM, PhysEnv, make_env
from tests.unit.test_repo_upgrade import DyingStore, Killed


def test_file_to_kms_killed_at_every_write_then_rerun_converges(kms_key: KmsKey, tmp_path: Path,
                                                                 pg_cluster: LocalCluster, swarm_db: str) -> None:
    """Real logical backups (pg_dump of a seeded database), the rotation killed before each of its
    writes in turn; after every kill the old key still reads everything, the rerun converges, the old
    key is retired, and every backup verifies with the new key alone; the last round also restores
    each backup into a new database and checks its row counts."""
    create_key_file(tmp_path / "old.key")
    old = load_provider(f"file://{tmp_path / 'old.key'}")
    base = MemoryStore()
    repo = Repository.init(base, old)
    ids = [backup_postgres_logical(repo, swarm_db, jobs=1).manifest.id for _ in range(2)]
    repo.dedup_key()
    repo.wal_keys()
    data = data_objects(base)
    total = len(rot.wrapped_files(base)) + 2  # the feature flag, each key file, the config
    for die_at in range(1, total + 1):
        store = MemoryStore()
        for i in base.list(""):
            store.put(i.key, base.get(i.key))
        dying = DyingStore(store, die_at)
        with pytest.raises(Killed):
            rot.rotate(dying, old, load_provider(kms_key.url()))  # type: ignore[arg-type]
        assert dying.puts == die_at
        for bid in ids:  # after the kill, the old key still reads everything
            assert verify_backup(Repository.open(store, old), bid).ok
        again = rot.rotate(store, old, load_provider(kms_key.url()))  # the rerun, a fresh process's provider
        assert again.files == len(rot.wrapped_files(store))
        st = rot.status(store)
        assert st["rotation_complete"] and st["primary"] == "awskms:" + kms_key.arn
        rot.retire(store, load_provider(kms_key.url()), old.key_id)
        with pytest.raises(KeyMismatch):
            Repository.open(store, old)
        new_repo = Repository.open(store, load_provider(kms_key.url()))
        for bid in ids:
            result = verify_backup(new_repo, bid)
            assert result.ok, result.problems
        assert new_repo.wal_keys().private is not None
        assert data_objects(store) == data  # no data rewritten
    for bid in ids:  # the last round's repository, new key only: restore and compare row counts
        target = with_dbname(pg_cluster.url("postgres"), "rot_" + bid[-6:].lower())
        out = execute_restore(new_repo, plan_restore(new_repo, bid, target, create=True))
        assert out.validated, out.to_dict()


def _config(env: PhysEnv, name: str, key_url: str, db: str) -> Path:
    doc = {"repository": {"url": f"file://{env.repo_dir}", "key": key_url}, "database": {"url": db}}
    path = env.root / name
    path.write_text(tomli_w.dumps(doc))
    return path


def test_backup_and_wal_push_during_rotation_lose_nothing(kms_key: KmsKey, services_dir: Path,
                                                          tmp_path: Path) -> None:
    env = make_env(services_dir / f"rotate-live-{time.monotonic_ns()}", archive_timeout=60)
    try:
        env.cluster.psql("CREATE DATABASE app")
        env.cluster.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 200000) g",
                         dbname="app")
        db = env.cluster.url("app")
        old_url = env.settings.key_url
        assert old_url is not None
        old_cfg = _config(env, "old.toml", old_url, db)
        new_cfg = _config(env, "new.toml", kms_key.url(), db)
        first = json.loads(env.cli("admin", "backup", "postgres", "--json", config=old_cfg).stdout)["id"]

        # WAL segments to push by hand (with the old key's config) while the rotation runs
        segments = []
        for _ in range(4):
            env.cluster.psql("INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g; SELECT pg_switch_wal()",
                             dbname="app")
        current = env.cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        for line in env.cluster.psql("SELECT name FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$' "
                                     "ORDER BY name").split():
            if line < current:  # complete segments only
                segments.append(line)
        segments = segments[-4:]
        spool = tmp_path / "spool"
        spool.mkdir()
        originals = {}
        for name in segments:
            src = env.cluster.datadir / "pg_wal" / name
            originals[name] = src.read_bytes()
            (spool / name).write_bytes(originals[name])

        def start(*args: str, config: Path) -> subprocess.Popen[str]:
            import os
            e = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
            e["SWARM_HOME"] = str(env.root / "home")
            return subprocess.Popen([*SWARM, "--config", str(config), *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=e)

        backup = start("admin", "backup", "postgres", "--json", config=old_cfg)
        pushes = [start("admin", "wal", "push", str(spool / n), config=old_cfg) for n in segments]
        rotations = []
        while backup.poll() is None or len(rotations) < 2:  # rotate while the backup runs (and once after)
            rotations.append(env.cli("admin", "keys", "rotate", "--to", kms_key.url(), "--json", config=old_cfg))
        out, err = backup.communicate(timeout=300)
        assert backup.returncode == 0, out + err
        during = json.loads(out)["id"]
        for p in pushes:
            o, e = p.communicate(timeout=120)
            assert p.returncode == 0, o + e
        assert any(json.loads(r.stdout)["config_updated"] for r in rotations)

        # a rerun converges (rewrapping a data key the backup may have wrapped after the last pass)
        env.cli("admin", "keys", "rotate", "--to", kms_key.url(), config=old_cfg)
        st = json.loads(env.cli("admin", "keys", "status", "--json", config=new_cfg).stdout)
        assert st["rotation_complete"] and sorted(st["backups"]) == sorted([first, during])
        for bid in (first, during):
            env.cli("admin", "verify", bid, config=new_cfg)
        old_id = json.loads(rotations[0].stdout)["from_key"]
        env.cli("admin", "keys", "retire", old_id, config=new_cfg)
        r = env.cli("admin", "backups", "list", config=old_cfg, check=False)
        assert r.returncode == 4  # the old key no longer opens the repository

        # everything restores with the new key alone
        for bid in (first, during):
            env.cli("admin", "verify", bid, config=new_cfg)
            target = f"restored_{bid[-6:].lower()}"
            env.cli("admin", "restore", "postgres", bid, "--target-db", env.cluster.url(target), "--create",
                    config=new_cfg)
            assert int(env.cluster.psql("SELECT count(*) FROM t", dbname=target).strip()) >= 200000
        for name, data in originals.items():
            dest = tmp_path / f"fetched-{name}"
            env.cli("admin", "wal", "fetch", name, str(dest), config=new_cfg)
            assert dest.read_bytes() == data, name
    finally:
        env.cluster.destroy()
