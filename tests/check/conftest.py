"""Fixtures for the cross-store check: a seeded deployment (database, bucket, state directory) on
the session's real PostgreSQL and SeaweedFS, and the real ``swarm`` command pointed at it."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from swarm.devstack.seaweed import SeaweedServer
from swarm.platform.schema import apply_migrations
from swarm.platform.seed import seed_database, seed_objects, seed_state_dir
from swarm.sources.objects import BucketConfig
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import create_database, with_dbname
from swarm.storage.s3 import make_client

SWARM = [sys.executable, "-m", "swarm.cli.main"]


@dataclass
class Deployment:
    db_url: str
    bucket: BucketConfig
    state: Path
    home: Path
    run_rows: list[dict[str, Any]]
    client: Any = field(repr=False)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG", "AWS_"))}
        env.update(SWARM_HOME=str(self.home), SWARM_DB_URL=self.db_url, SWARM_OBJECTS_BUCKET=self.bucket.bucket,
                   SWARM_OBJECTS_ENDPOINT=self.bucket.endpoint or "", SWARM_OBJECTS_ACCESS_KEY=self.bucket.access_key
                   or "", SWARM_OBJECTS_SECRET_KEY=self.bucket.secret_key or "", SWARM_STATE_DIR=str(self.state),
                   SWARM_PROGRESS_INTERVAL="0")
        return env

    def cli(self, *args: str, **env: str) -> tuple[int, str, str, Any]:
        """Run ``swarm`` as a subprocess; (exit code, stdout, stderr, parsed JSON stdout or None)."""
        r = subprocess.run([*SWARM, *args], capture_output=True, text=True, env={**self.env, **env}, timeout=300,
                           check=False)
        data = json.loads(r.stdout) if "--json" in args and r.stdout.strip() else None
        return r.returncode, r.stdout, r.stderr, data

    def keys(self) -> list[str]:
        resp = self.client.list_objects_v2(Bucket=self.bucket.bucket, Prefix="pipeline_runs/")
        return sorted(o["Key"] for o in resp.get("Contents", []))


def new_deployment(cluster: LocalCluster, server: SeaweedServer, root: Path, *, runs: int = 4) -> Deployment:
    name = "ck_" + secrets.token_hex(4)
    create_database(cluster.url("postgres"), name)
    url = with_dbname(cluster.url("postgres"), name)
    apply_migrations(url)
    _, run_rows = seed_database(url, runs=runs, size_mb=0.1, seed=5)
    client = make_client(server.endpoint, server.access_key, server.secret_key)
    bucket = "ck-" + secrets.token_hex(5)
    client.create_bucket(Bucket=bucket)
    seed_objects(client, bucket, run_rows, model_kb=8, workers=4, db_url=url)
    state = root / "state"
    seed_state_dir(state, run_rows)
    home = root / "home"
    home.mkdir(exist_ok=True)
    return Deployment(url, BucketConfig(bucket, server.endpoint, server.access_key, server.secret_key), state, home,
                      run_rows, client)


@pytest.fixture
def deployment(pg_cluster: LocalCluster, seaweed: SeaweedServer, tmp_path: Path) -> Deployment:
    return new_deployment(pg_cluster, seaweed, tmp_path)
