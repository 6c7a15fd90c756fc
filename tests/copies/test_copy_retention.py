"""A copy with a shorter retention than the primary: `swarm --repo far admin prune` removes on the copy
what the copy's own policy drops (the primary keeps it), and never what the copy's kept backups
need: afterwards every backup the copy keeps verifies and restores from the copy alone (a logical
backup, a state snapshot, a base backup replayed with the copy's WAL), with the primary repository
moved away."""
from __future__ import annotations

import json
import secrets
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from swarm.config import load_settings
from swarm.crypto.keys import create_key_file
from swarm.model.targets import RecoveryTarget
from swarm.services.context import open_repository, server_access
from swarm.services.postgres.pitr import execute_pitr, plan_pitr
from swarm.sources.postgres.cluster import LocalCluster, hand_to_server_user
from swarm.sources.postgres.conn import with_dbname
from tests.physical.conftest import PhysEnv, make_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(services_dir: Path) -> Iterator[PhysEnv]:
    e = make_env(services_dir / f"copyret-{secrets.token_hex(3)}")
    yield e
    e.cluster.destroy()


def test_a_shorter_policy_on_the_copy_keeps_what_its_backups_need(env: PhysEnv, tmp_path: Path) -> None:
    far = env.root / "far"
    far.mkdir()
    hand_to_server_user(far)  # the restored server's restore_command reads WAL from the copy
    far_key = create_key_file(env.root / "keys" / "far.key")
    doc = tomllib.loads(env.config.read_text())
    short = {"keep_last": 1}
    doc["repository"]["copies"] = [{"name": "far", "url": f"file://{far}", "key": f"file://{far_key.path}",
                                    "retention": {"pg-logical": short, "pg-physical": short, "state": short,
                                                  "wal": {"window": "1h"}}}]
    env.config.write_text(tomli_w.dumps(doc))
    c = env.cluster
    c.psql("CREATE TABLE sentinel (id serial PRIMARY KEY, label text NOT NULL)")
    state_dir = env.root / "home"
    (state_dir / "cron").mkdir(parents=True, exist_ok=True)
    ids: dict[str, list[str]] = {"pg-logical": [], "pg-physical": [], "state": []}
    for n in range(2):
        c.psql(f"INSERT INTO sentinel (label) VALUES ('round-{n}')")
        (state_dir / "cron" / "jobs.json").write_text(json.dumps({"jobs": [{"id": f"job-{n}"}]}) + "\n")
        ids["pg-logical"].append(json.loads(env.cli("admin", "backup", "postgres", "--db-url", env.url,
                                                    "--json").stdout)["id"])
        ids["pg-physical"].append(json.loads(env.cli("admin", "backup", "postgres", "--physical", "--db-url",
                                                     env.url, "--json").stdout)["id"])
        ids["state"].append(json.loads(env.cli("admin", "backup", "state", "--json").stdout)["id"])
    c.psql("INSERT INTO sentinel (label) VALUES ('after-backups')")
    c.psql("SELECT pg_switch_wal()")
    env.cli("admin", "wal", "status")  # (archiving is asynchronous; the copy takes what is there)
    assert json.loads(env.cli("admin", "repo", "copy", "--json").stdout)["ok"]

    pruned = json.loads(env.cli("--repo", "far", "admin", "prune", "--json").stdout)
    assert sorted(pruned["removed_backups"]) == sorted(v[0] for v in ids.values())
    kept = {k: v[1] for k, v in ids.items()}
    # the primary's own policy (the top-level defaults) keeps everything
    primary_ids = {b["id"] for b in json.loads(env.cli("admin", "backups", "list", "--json").stdout)}
    assert {i for v in ids.values() for i in v} <= primary_ids
    # the region is lost: only the copy is left
    env.repo_dir.rename(env.root / "repo-gone")
    listed = json.loads(env.cli("--repo", "far", "admin", "backups", "list", "--json").stdout)
    assert {b["id"] for b in listed} == set(kept.values())
    for backup_id in kept.values():
        r = env.cli("--repo", "far", "admin", "verify", backup_id, "--json", check=False)
        assert r.returncode == 0, r.stdout + r.stderr
    db = "copy_kept_" + secrets.token_hex(3)
    env.cli("--repo", "far", "admin", "restore", "postgres", kept["pg-logical"], "--target-db",
            with_dbname(env.url, db), "--create")
    assert c.psql("SELECT string_agg(label, ',' ORDER BY id) FROM sentinel", dbname=db) == "round-0,round-1"
    dest = tmp_path / "state"
    env.cli("--repo", "far", "admin", "restore", "state", kept["state"], "--target-state", str(dest))
    assert json.loads((dest / "cron" / "jobs.json").read_text()) == {"jobs": [{"id": "job-1"}]}
    # the kept base backup replays with the WAL the copy kept, from the copy alone
    c.stop()
    settings = load_settings(env.config, copy="far")
    repo = open_repository(settings)
    restores = env.root / "restores"
    restores.mkdir(exist_ok=True)
    restores.chmod(0o755)
    datadir = restores / f"pitr-{secrets.token_hex(3)}"
    plan = plan_pitr(repo, RecoveryTarget("latest"), datadir, start=True)
    assert plan.to_dict()["backup_id"] == kept["pg-physical"]
    res = execute_pitr(repo, plan, server_access(settings), bindir=settings.pg_bindir, archive=False, timeout=120)
    rc = LocalCluster(datadir.parent, port=res.port or 0, pgdata=datadir)
    try:
        assert rc.psql("SELECT string_agg(label, ',' ORDER BY id) FROM sentinel").startswith("round-0,round-1")
    finally:
        rc.destroy()
        env.repo_dir.parent.joinpath("repo-gone").rename(env.repo_dir)
