"""`swarm admin backup set` and `restore set` through the real command: a seeded deployment (rows,
run_artefacts, objects, state) backed up at one point and restored into a scratch deployment whose
three stores then agree (`integrity`)."""
from __future__ import annotations

import secrets
from pathlib import Path

import psycopg

from swarm.crypto.keys import create_key_file
from swarm.devstack.seaweed import SeaweedServer
from swarm.platform.schema import apply_migrations
from swarm.platform.seed import seed_database, seed_objects, seed_state_dir
from swarm.sources.objects import BucketConfig
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import create_database, with_dbname
from swarm.storage.s3 import make_client
from tests.check.conftest import Deployment


def _versioned_deployment(cluster: LocalCluster, server: SeaweedServer, root: Path) -> Deployment:
    name = "set_" + secrets.token_hex(4)
    create_database(cluster.url("postgres"), name)
    url = with_dbname(cluster.url("postgres"), name)
    apply_migrations(url)
    _, run_rows = seed_database(url, runs=4, size_mb=0.1, seed=5)
    client = make_client(server.endpoint, server.access_key, server.secret_key)
    bucket = "set-" + secrets.token_hex(5)
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    seed_objects(client, bucket, run_rows, model_kb=8, workers=4, db_url=url)
    state = root / "state"
    seed_state_dir(state, run_rows)
    home = root / "home"
    home.mkdir(exist_ok=True)
    return Deployment(url, BucketConfig(bucket, server.endpoint, server.access_key, server.secret_key), state, home,
                      run_rows, client)


def test_backup_set_then_restore_set_into_scratch_agrees(pg_cluster: LocalCluster, seaweed: SeaweedServer,
                                                         tmp_path: Path) -> None:
    d = _versioned_deployment(pg_cluster, seaweed, tmp_path)
    key = create_key_file(tmp_path / "keys" / "repo.key")
    env = {"SWARM_BACKUP_REPO": f"file://{tmp_path / 'repo'}", "SWARM_KEY_URL": f"file://{key.path}"}
    rc, _, err, out = d.cli("admin", "backup", "set", "--json", **env)
    assert rc == 0, err
    set_id = out["id"]
    assert set(out["parts"]) == {"postgres", "objects", "state"} and out["figures"]["pipelines_total"] > 0
    rc, _, err, rows = d.cli("admin", "backups", "list", "--json", **env)
    listed = {r["id"]: r for r in rows}
    assert listed[set_id]["kind"] == "set" and listed[set_id]["parts"] == out["parts"]
    # the production bucket is refused as a target (exit 8), nothing written
    scratch_db = with_dbname(pg_cluster.url("postgres"), "scratch_" + secrets.token_hex(4))
    rc, _, err, data = d.cli("admin", "restore", "set", set_id, "--target-db", scratch_db, "--target-bucket",
                             d.bucket.bucket, "--target-state", str(tmp_path / "scratch-state"), "--create", "--json",
                             **env)
    assert rc == 8 and data["error"], err
    scratch_bucket = "scr-" + secrets.token_hex(5)
    d.client.create_bucket(Bucket=scratch_bucket)
    args = ["admin", "restore", "set", set_id, "--target-db", scratch_db, "--target-bucket", scratch_bucket,
            "--target-state", str(tmp_path / "scratch-state"), "--create"]
    rc, _, err, plan = d.cli(*args, "--dry-run", "--json", **env)
    assert rc == 0 and plan["plan"]["set"] == set_id, err
    rc, _, err, res = d.cli(*args, "--json", **env)
    assert rc == 0, err
    assert res["ok"] and res["steps"] == ["postgres", "bucket", "state", "integrity"]
    assert res["integrity"]["ok"] and res["integrity"]["checked"], res["integrity"]
    with psycopg.connect(scratch_db) as conn:
        row = conn.execute("select count(*) from run_artefacts").fetchone()
    assert row is not None and row[0] > 0
