"""`restore stack --at T` (issue #11, part 5): PostgreSQL by point-in-time recovery, the bucket from
its version history, the newest state snapshot at or before T, then the cross-store check; against
a real primary archiving WAL, a real SeaweedFS bucket and a real state directory."""
from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from swarm.clock import parse_iso
from swarm.devstack.seaweed import SeaweedServer
from swarm.platform.schema import apply_migrations
from swarm.platform.seed import seed_database, seed_objects, seed_state_dir
from swarm.services.check.stack import check_stack
from swarm.services.context import server_access
from swarm.services.postgres.physical_backup import backup_postgres_physical
from swarm.services.sets.stack import execute_restore_stack, plan_restore_stack
from swarm.services.state.backup import StateScope, backup_state
from swarm.sources.objects import BucketConfig
from swarm.sources.objects.bucket import Bucket
from swarm.sources.postgres.cluster import LocalCluster
from swarm.storage.s3 import make_client
from tests.physical.conftest import PhysEnv, make_env
from tests.physical.test_pitr import wait_archived


@pytest.fixture(scope="module")
def penv(services_dir: Path) -> Iterator[PhysEnv]:
    env = make_env(services_dir / f"stack-{secrets.token_hex(3)}", archive_timeout=5)
    yield env
    env.cluster.destroy()


def test_restore_stack_at_a_time_before_the_accident(penv: PhysEnv, seaweed: SeaweedServer, tmp_path: Path) -> None:
    url = penv.url
    apply_migrations(url)
    _, runs = seed_database(url, runs=4, size_mb=0.05, seed=9)
    client = make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    name = "stk-" + secrets.token_hex(5)
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    cfg = BucketConfig(name, seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    seed_objects(client, name, runs, model_kb=4, workers=2, db_url=url)
    state = tmp_path / "state"
    seed_state_dir(state, runs)
    repo = penv.repo()
    backup_postgres_physical(repo, url)
    backup_state(repo, StateScope(state))
    time.sleep(1.1)
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                           "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')").fetchone()
    assert row is not None
    at = parse_iso(row[0])
    time.sleep(1.1)
    victim = runs[0]["id"]
    with psycopg.connect(url, autocommit=True) as conn:  # the accident, after T, in all three stores
        conn.execute("DELETE FROM runs WHERE id = %s", (victim,))
    for o in client.list_objects_v2(Bucket=name, Prefix=f"pipeline_runs/{victim}/").get("Contents", []):
        client.delete_object(Bucket=name, Key=o["Key"])
    shutil.rmtree(state / "batch" / victim, ignore_errors=True)
    wait_archived(penv)
    scratch = "scr-" + secrets.token_hex(5)
    client.create_bucket(Bucket=scratch)
    target_cfg = BucketConfig(scratch, seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    datadir = penv.root / f"stack-restored-{secrets.token_hex(3)}"
    plan = plan_restore_stack(repo, at, datadir=datadir, target_bucket=Bucket(target_cfg),
                              target_state=tmp_path / "scratch-state", bucket_source=Bucket(cfg), primary_url=url,
                              production_state=state)
    assert plan.state_lag_s > 0
    res = execute_restore_stack(repo, plan, server_access(penv.settings), dbname="postgres",
                                check=lambda db: check_stack(db, target_cfg, tmp_path / "scratch-state").to_dict())
    restored = LocalCluster(datadir.parent, port=res.postgres["port"], pgdata=datadir)
    try:
        assert res.ok, res.to_dict()
        assert res.steps == ["postgres", "bucket", "state", "integrity"] and res.integrity and res.integrity["ok"]
        with psycopg.connect(restored.url("postgres")) as conn:
            assert conn.execute("SELECT count(*) FROM runs WHERE id = %s", (victim,)).fetchone() == (1,)
        assert (tmp_path / "scratch-state" / "batch" / victim).is_dir()
    finally:
        restored.destroy()
