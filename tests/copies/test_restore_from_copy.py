"""Region loss: a primary archives WAL into its repository; `repo copy` copies the repository to a
``file://`` copy with its own key file and to an S3 copy (SeaweedFS, the primary's key); then the
primary repository directory is deleted entirely and everything comes back from the copy alone:
a logical backup, a PITR to the newest copied WAL, a state snapshot. A damaged object on the copy
is found by `verify --repo NAME`."""
from __future__ import annotations

import json
import secrets
import shutil
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import tomli_w

from swarm.config import load_settings
from swarm.crypto.keys import create_key_file
from swarm.devstack.seaweed import SeaweedServer
from swarm.model.targets import RecoveryTarget
from swarm.repo.format import data_key, wal_key
from swarm.services.context import open_repository, server_access
from swarm.services.postgres.pitr import execute_pitr, plan_pitr
from swarm.sources.postgres.cluster import LocalCluster, hand_to_server_user
from swarm.sources.postgres.conn import with_dbname
from swarm.storage.s3 import make_client
from tests.physical.conftest import PhysEnv, make_env

pytestmark = pytest.mark.integration


@dataclass
class Region:
    env: PhysEnv
    far_dir: Path
    logical: str = ""
    physical: str = ""
    state: str = ""
    newest_wal: str = ""
    copy_json: dict[str, object] = field(default_factory=dict)
    restored: list[LocalCluster] = field(default_factory=list)


def archived(env: PhysEnv, timeout: float = 30) -> str:
    seg = env.cluster.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    env.cluster.psql("SELECT pg_switch_wal()")
    repo = env.repo()
    deadline = time.monotonic() + timeout
    while repo._store.stat(wal_key(seg)) is None:
        assert time.monotonic() < deadline, f"{seg} was not archived in {timeout} s"
        time.sleep(0.2)
    return seg


@pytest.fixture(scope="module")
def region(services_dir: Path, seaweed: SeaweedServer) -> Iterator[Region]:
    env = make_env(services_dir / f"copies-{secrets.token_hex(3)}")
    far = env.root / "far"
    far.mkdir()
    hand_to_server_user(far)  # the restored server's restore_command reads WAL from the copy
    far_key = create_key_file(env.root / "keys" / "far.key")
    bucket = "copy-" + secrets.token_hex(5)
    make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key).create_bucket(Bucket=bucket)
    doc = tomllib.loads(env.config.read_text())
    doc["repository"]["copies"] = [
        {"name": "far", "url": f"file://{far}", "key": f"file://{far_key.path}"},
        {"name": "cloud", "url": f"s3://{bucket}/swarm", "s3_endpoint": seaweed.endpoint,
         "s3_access_key": seaweed.access_key, "s3_secret_key": seaweed.secret_key},
    ]
    env.config.write_text(tomli_w.dumps(doc))
    r = Region(env, far)
    c = env.cluster
    c.psql("CREATE TABLE sentinel (id serial PRIMARY KEY, label text NOT NULL)")
    c.psql("INSERT INTO sentinel (label) VALUES ('before-backups')")
    r.logical = json.loads(env.cli("admin", "backup", "postgres", "--db-url", env.url, "--json").stdout)["id"]
    r.physical = json.loads(env.cli("admin", "backup", "postgres", "--physical", "--db-url", env.url,
                                    "--json").stdout)["id"]
    state_dir = env.root / "home"
    (state_dir / "cron").mkdir(parents=True, exist_ok=True)
    (state_dir / "cron" / "jobs.json").write_text('{"jobs": [{"id": "nightly"}]}\n')
    r.state = json.loads(env.cli("admin", "backup", "state", "--json").stdout)["id"]
    c.psql("INSERT INTO sentinel (label) VALUES ('after-backups')")
    r.newest_wal = archived(env)
    yield r
    for rc in r.restored:
        rc.destroy()
    env.cluster.destroy()


def test_copy_then_lose_the_primary_region(region: Region, tmp_path: Path) -> None:
    env = region.env
    out = json.loads(env.cli("admin", "repo", "copy", "--json").stdout)
    assert out["ok"] and {c["name"] for c in out["copies"]} == {"far", "cloud"}
    far = next(c for c in out["copies"] if c["name"] == "far")
    assert far["result"]["rewrap"] is True and far["result"]["problems"] == {}
    assert set(far["result"]["copied_backups"]) == {region.logical, region.physical, region.state}
    # incremental: a second run copies no backup and no data; the running primary may have archived a
    # segment since (archive_timeout), and that segment is all it may copy
    again = json.loads(env.cli("admin", "repo", "copy", "--to", "far", "--json").stdout)["copies"][0]["result"]
    assert again["copied_backups"] == [] and set(again["totals"]) <= {"wal"}, again["totals"]
    assert again["already_copied"] == 3  # the logical, physical and state backups
    # the region is lost: the primary server and its repository are gone
    env.cluster.stop()
    shutil.rmtree(env.repo_dir)
    r = env.cli("admin", "backups", "list", "--json", check=False)
    assert r.returncode != 0  # the primary repository is gone
    for name in ("far", "cloud"):
        listed = json.loads(env.cli("--repo", name, "admin", "backups", "list", "--json").stdout)
        ids = {b["id"] for b in (listed["backups"] if isinstance(listed, dict) else listed)}
        assert {region.logical, region.physical, region.state} <= ids, name
    # logical backup from the copy
    db = "from_copy_" + secrets.token_hex(3)
    target = with_dbname(env.url, db)
    env.cluster.start()
    try:
        env.cli("--repo", "far", "admin", "restore", "postgres", region.logical, "--target-db", target, "--create")
        assert env.cluster.psql("SELECT string_agg(label, ',' ORDER BY id) FROM sentinel", dbname=db) == \
            "before-backups"
    finally:
        env.cluster.stop()
    # state snapshot from the copy
    dest = tmp_path / "state"
    env.cli("--repo", "far", "admin", "restore", "state", region.state, "--target-state", str(dest))
    assert json.loads((dest / "cron" / "jobs.json").read_text()) == {"jobs": [{"id": "nightly"}]}
    # PITR to the newest copied WAL, from the copy alone (its own key; the server user reads the copy)
    settings = load_settings(env.config, copy="far")
    repo = open_repository(settings)
    assert repo.has_wal(region.newest_wal)
    restores = env.root / "restores"
    restores.mkdir(exist_ok=True)
    restores.chmod(0o755)
    datadir = restores / f"pitr-{secrets.token_hex(3)}"
    plan = plan_pitr(repo, RecoveryTarget("latest"), datadir, start=True)
    assert plan.to_dict()["backup_id"] == region.physical
    res = execute_pitr(repo, plan, server_access(settings), bindir=settings.pg_bindir, archive=False, timeout=120)
    rc = LocalCluster(datadir.parent, port=res.port or 0, pgdata=datadir)
    region.restored.append(rc)
    assert rc.psql("SELECT string_agg(label, ',' ORDER BY id) FROM sentinel") == "before-backups,after-backups"


def test_verify_on_the_copy_finds_a_damaged_object(region: Region) -> None:
    env = region.env
    env.cli("admin", "repo", "copy", "--to", "far", check=False)  # no-op when the first test ran
    repo = open_repository(load_settings(env.config, copy="far"))
    m = repo.load_manifest(region.logical)
    name = m.objects[0].name
    path = region.far_dir / data_key(m.id, name)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x40
    path.write_bytes(bytes(raw))
    r = env.cli("--repo", "far", "admin", "verify", m.id, "--json", check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert name in r.stdout
    # the primary's key does not open the copy that has its own key
    bad = env.cli("admin", "backups", "list", "--json", check=False,
                  config=_with_env_repo(env, region.far_dir))
    assert bad.returncode == 4 and json.loads(bad.stdout)["error"] == "key-mismatch"


def _with_env_repo(env: PhysEnv, far: Path) -> Path:
    """A config without copies whose primary is the far copy's place (opened with the primary's key)."""
    doc = tomllib.loads(env.config.read_text())
    doc["repository"].pop("copies")
    doc["repository"]["url"] = f"file://{far}"
    p = env.root / "env-repo.toml"
    p.write_text(tomli_w.dumps(doc))
    return p
