"""Whole-stack restore of a backup set (issue #11, part 5) into a scratch deployment, against real
services; the production stores are never written."""
from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
import pytest

from swarm.crypto.keys import LocalKeyFile
from swarm.devstack.seaweed import SeaweedServer
from swarm.errors import RefusedError, TargetNotEmpty
from swarm.repo import Repository
from swarm.services.sets.backup import backup_set
from swarm.services.sets.restore import execute_restore_set, plan_restore_set
from swarm.services.state.backup import StateScope
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import with_dbname
from swarm.storage.local import LocalStore
from tests.objects.conftest import get, new_bucket, put


def _prod_state(tmp: Path) -> Path:
    d = tmp / "prod-state"
    (d / "cron").mkdir(parents=True)
    (d / "cron" / "jobs.json").write_text('{"version": 1, "jobs": []}')
    (d / "batch" / "r1").mkdir(parents=True)
    (d / "batch" / "r1" / "status.json").write_text('{"status": "done"}')
    return d


def test_restore_set_into_a_scratch_deployment(tmp_path: Path, kek: LocalKeyFile, swarm_db: str,
                                               pg_cluster: LocalCluster, seaweed: SeaweedServer) -> None:
    prod_bucket = new_bucket(seaweed)
    put(prod_bucket, "pipeline_runs/r1/model.bin", b"weights v1")
    state = _prod_state(tmp_path)
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    s = backup_set(repo, db_url=swarm_db, bucket=prod_bucket, scope=StateScope(state))
    assert s.ok and s.manifest is not None
    put(prod_bucket, "pipeline_runs/r1/model.bin", b"weights v2 (after the set)")
    with psycopg.connect(swarm_db, autocommit=True) as conn:
        runs_before = conn.execute("select count(*) from runs").fetchone()
    scratch_db = with_dbname(swarm_db, "scratch_" + secrets.token_hex(4))
    scratch_bucket = new_bucket(seaweed)
    scratch_state = tmp_path / "scratch-state"
    # the production bucket is refused as a target
    with pytest.raises(RefusedError, match="bucket the set was taken of"):
        plan_restore_set(repo, s.manifest.id, target_db=scratch_db, target_bucket=prod_bucket,
                         target_state=scratch_state, bucket_source=prod_bucket, create=True)
    plan = plan_restore_set(repo, s.manifest.id, target_db=scratch_db, target_bucket=scratch_bucket,
                            target_state=scratch_state, bucket_source=prod_bucket, create=True,
                            production_state=state)
    res = execute_restore_set(repo, plan)
    assert res.ok, res.to_dict()
    assert res.steps == ["postgres", "bucket", "state"]
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("select count(*) from runs").fetchone() == runs_before
    assert get(scratch_bucket, "pipeline_runs/r1/model.bin") == b"weights v1"  # as of T
    assert get(prod_bucket, "pipeline_runs/r1/model.bin") == b"weights v2 (after the set)"  # production untouched
    assert (scratch_state / "batch" / "r1" / "status.json").read_text() == '{"status": "done"}'
    # again into the same targets: refused without --force (nothing is written)
    with pytest.raises(TargetNotEmpty):
        plan_restore_set(repo, s.manifest.id, target_db=scratch_db, target_bucket=scratch_bucket,
                         target_state=scratch_state, bucket_source=prod_bucket)


def test_a_backup_that_is_not_a_set_is_refused(tmp_path: Path, kek: LocalKeyFile, swarm_db: str,
                                              seaweed: SeaweedServer) -> None:
    from swarm.errors import WrongKind
    from swarm.services.postgres.logical_backup import backup_postgres_logical

    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    m = backup_postgres_logical(repo, swarm_db).manifest
    b = new_bucket(seaweed)
    with pytest.raises(WrongKind, match="not a backup set"):
        plan_restore_set(repo, m.id, target_db=swarm_db, target_bucket=b, target_state=tmp_path / "s",
                         bucket_source=b)
