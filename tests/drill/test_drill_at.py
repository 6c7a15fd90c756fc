"""`swarm admin drill --at T`: a point in time, by PITR into a local scratch cluster, against a real
primary archiving WAL. A T outside the recoverable window is refused before provisioning."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarm.devstack.seaweed import SeaweedServer
from swarm.platform.schema import apply_migrations
from swarm.platform.seed import seed_database, seed_objects, seed_state_dir
from swarm.services.postgres.physical_backup import backup_postgres_physical
from swarm.services.state.backup import StateScope, backup_state
from swarm.storage.s3 import make_client
from tests.physical.conftest import SWARM, PhysEnv, make_env
from tests.physical.test_pitr import wait_archived


@pytest.fixture(scope="module")
def penv(services_dir: Path) -> Iterator[PhysEnv]:
    env = make_env(services_dir / f"drill-at-{secrets.token_hex(3)}", archive_timeout=5)
    yield env
    env.cluster.destroy()


def _drill(penv: PhysEnv, env: dict[str, str], *args: str) -> tuple[int, Any, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG", "AWS_"))}
    r = subprocess.run([*SWARM, "--config", str(penv.config), "admin", "drill", *args, "--json"], capture_output=True,
                       text=True, env={**base, **env}, timeout=300, check=False)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr


def test_drill_at_now_and_a_time_outside_the_window(penv: PhysEnv, seaweed: SeaweedServer, tmp_path: Path) -> None:
    url = penv.url
    apply_migrations(url)
    _, runs = seed_database(url, runs=3, size_mb=0.05, seed=4)
    client = make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    name = "dat-" + secrets.token_hex(5)
    client.create_bucket(Bucket=name)
    client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    seed_objects(client, name, runs, model_kb=4, workers=2, db_url=url)
    state = tmp_path / "state"
    seed_state_dir(state, runs)
    repo = penv.repo()
    m = backup_postgres_physical(repo, url).manifest
    backup_state(repo, StateScope(state))
    home = penv.root / f"home-{secrets.token_hex(3)}"
    home.mkdir()
    env = {"SWARM_HOME": str(home), "SWARM_DB_URL": url, "SWARM_OBJECTS_BUCKET": name,
           "SWARM_OBJECTS_ENDPOINT": seaweed.endpoint, "SWARM_OBJECTS_ACCESS_KEY": seaweed.access_key,
           "SWARM_OBJECTS_SECRET_KEY": seaweed.secret_key, "SWARM_STATE_DIR": str(state),
           "SWARM_PROGRESS_INTERVAL": "0"}
    # before the oldest backup's end: refused, naming the window, nothing provisioned
    rc, out, err = _drill(penv, env, "--at", "2001-01-01T00:00:00Z")
    assert rc == 8 and out["error"] == "target-out-of-range", (err, out)
    assert m.physical.stop_time[:16] in out.get("hint", "") + json.dumps(out.get("details", {})), out
    assert not (home / "drills").exists() or not any((home / "drills").iterdir())
    wait_archived(penv)
    rc, out, err = _drill(penv, env, "--at", "now", "--tier", "team")
    assert rc == 0, (err, json.dumps({k: out[k] for k in ("error", "reasons", "checks", "phases")}, indent=1))
    assert out["verdict"] == "pass" and out["source"]["at"] == "now"
    assert out["checks"]["api_pipelines"]["ok"] and out["checks"]["integrity"]["ok"]
    assert out["rpo_s"] >= 0 and out["recovery_point"]
    assert not any((home / "drills").iterdir())
