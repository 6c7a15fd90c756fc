"""Backup sets (issue #11, part 4): PostgreSQL, the bucket and the state directory at one point T,
against a real PostgreSQL, a real SeaweedFS bucket and a real directory."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg

from swarm.crypto.keys import LocalKeyFile
from swarm.devstack.seaweed import SeaweedServer
from swarm.model.sources import Kind
from swarm.repo import Repository
from swarm.services.repository.catalog import list_backups
from swarm.services.sets.backup import backup_set
from swarm.services.state.backup import StateScope
from swarm.sources.objects.bucket import Bucket
from swarm.storage.local import LocalStore
from tests.objects.conftest import new_bucket, put


class WriteAfterT:
    """A reporter that writes one object once the set has fixed T (when its bucket part starts)."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self.done = False

    def stage(self, text: str) -> None:
        if text.startswith("backup set: the bucket") and not self.done:
            time.sleep(1.1)  # last-modified has a 1 s granularity
            put(self.bucket, "pipeline_runs/late/model.bin", b"written after T")
            self.done = True

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def _state(tmp: Path) -> Path:
    d = tmp / "state"
    (d / "cron").mkdir(parents=True)
    (d / "cron" / "jobs.json").write_text('{"version": 1, "jobs": []}')
    (d / "batch" / "r1").mkdir(parents=True)
    (d / "batch" / "r1" / "status.json").write_text('{"status": "done"}')
    return d


def test_a_set_pins_the_three_stores_at_one_point(tmp_path: Path, kek: LocalKeyFile, swarm_db: str,
                                                   seaweed: SeaweedServer) -> None:
    bucket = new_bucket(seaweed)
    put(bucket, "pipeline_runs/r1/model.bin", b"weights")
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    res = backup_set(repo, db_url=swarm_db, bucket=bucket, scope=StateScope(_state(tmp_path)),
                     reporter=WriteAfterT(bucket))  # type: ignore[arg-type]
    assert res.ok and res.manifest is not None, res.failed
    m = repo.load_manifest(res.manifest.id)
    assert m.kind == Kind.SET
    parts = m.source["parts"]
    assert {repo.load_manifest(i).kind for i in parts.values()} == {"pg-logical", "objects", "state"}
    objs = repo.load_manifest(parts["objects"])
    assert objs.source["at"] == m.source["at"]  # the bucket as of T, not as of its own start
    inventory = b"".join(repo.read_object(objs, "inventory.jsonl")).decode()
    assert "pipeline_runs/r1/model.bin" in inventory and "pipeline_runs/late/" not in inventory
    with psycopg.connect(swarm_db) as conn:
        pipelines = conn.execute("select count(*) from pipelines").fetchone()
    assert pipelines is not None and m.source["figures"]["pipelines_total"] == pipelines[0] > 0
    assert m.source["figures"]["row_counts"] == repo.load_manifest(parts["postgres"]).source["row_counts"]
    # the set references its parts whole: their own objects and data keys are in its refs
    assert m.refs is not None and {r.backup_id for r in m.refs.objects} >= {parts["postgres"], parts["objects"]}
    rows = {r["id"]: r for r in list_backups(repo)}
    assert rows[m.id]["parts"] == parts and rows[m.id]["at"] == m.source["at"]


def test_a_failed_part_leaves_no_set_and_names_the_part(tmp_path: Path, kek: LocalKeyFile, swarm_db: str,
                                                        seaweed: SeaweedServer) -> None:
    bucket = new_bucket(seaweed)
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    res = backup_set(repo, db_url=swarm_db, bucket=bucket, scope=StateScope(tmp_path / "no-such-state"))
    assert not res.ok and res.manifest is None and set(res.failed) == {"state"}
    assert "does not exist" in res.failed["state"]
    kinds = sorted(m.kind for m in repo.list_backups())
    assert kinds == ["objects", "pg-logical"]  # the parts taken stay as ordinary backups; no set


def test_unversioned_bucket_fails_the_objects_part(tmp_path: Path, kek: LocalKeyFile, swarm_db: str,
                                                    seaweed: SeaweedServer) -> None:
    bucket = new_bucket(seaweed, versioned=False)
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    res = backup_set(repo, db_url=swarm_db, bucket=bucket, scope=StateScope(_state(tmp_path)))
    assert set(res.failed) == {"objects"} and "version" in res.failed["objects"].lower()
    assert [m.kind for m in repo.list_backups()] == ["pg-logical"]

