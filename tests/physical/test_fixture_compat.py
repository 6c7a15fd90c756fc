"""Backups written before issue 16 (block compression, restore engines) stay readable.

``tests/fixtures/compat-repo`` was written once by the code as it stood before that work
(``tests/fixtures/make_compat_repo.py``) and is never regenerated: a logical backup of
database ``compat`` and a physical backup of its cluster, with the WAL archived after it.
Each is verified and restored here with today's code; the physical one to "latest", which
replays rows (``after-base``) that exist only in the archived WAL.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import tomli_w

from swarm.config import Settings, load_settings
from swarm.model.targets import RecoveryTarget
from swarm.repo import rebuild
from swarm.services.context import open_repository, server_access
from swarm.services.postgres.logical_restore import execute_restore, plan_restore
from swarm.services.postgres.pitr import execute_pitr, plan_pitr
from swarm.services.repository.verify import verify_backup
from swarm.sources.postgres.cluster import LocalCluster, hand_to_server_user
from swarm.sources.postgres.conn import connect, with_dbname

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "compat-repo"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())


@pytest.fixture(scope="module")
def compat(services_dir: Path) -> Settings:
    """A writable copy of the fixture (locks are taken in it), reachable by the server user."""
    base = services_dir / "compat"
    base.mkdir()
    base.chmod(0o755)
    repo_dir = base / "repo"
    shutil.copytree(FIXTURE / "repo", repo_dir)
    (repo_dir / "locks" / "repository").mkdir(parents=True, exist_ok=True)  # git keeps no empty directory
    hand_to_server_user(repo_dir, recursive=True)
    key = base / "repo.key"
    shutil.copy(FIXTURE / "repo.key", key)
    key.chmod(0o600)
    config = base / "swarm.toml"
    config.write_text(tomli_w.dumps({"repository": {"url": f"file://{repo_dir}", "key": f"file://{key}"}}))
    os.environ.setdefault("SWARM_HOME", str(base / "home"))
    return load_settings(config)


def test_fixture_is_small() -> None:
    total = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert total < 2 << 20, total


def test_both_backups_verify(compat: Settings) -> None:
    repo = open_repository(compat)
    for backup_id in (EXPECTED["logical"], EXPECTED["physical"]):
        res = verify_backup(repo, backup_id)
        assert res.ok, (backup_id, res.problems)


def test_logical_backup_restores(compat: Settings, pg_cluster: LocalCluster) -> None:
    repo = open_repository(compat)
    target = with_dbname(pg_cluster.url(), "compat_logical")
    out = execute_restore(repo, plan_restore(repo, EXPECTED["logical"], target, create=True))
    assert out.validated
    assert {t: c["restored"] for t, c in out.to_dict()["tables"].items()} == EXPECTED["logical_counts"]
    with connect(target) as conn:
        row = conn.execute("SELECT label, payload FROM items WHERE id = 1234").fetchone()
        plan = conn.execute("EXPLAIN SELECT * FROM items WHERE label = 'item 7'").fetchall()
    assert row == ("item 1234", {"n": 1234})
    assert "items_label" in " ".join(r[0] for r in plan)


@pytest.mark.parametrize("engine", ["threads", "processes"])
def test_physical_backup_restores_with_its_wal(compat: Settings, services_dir: Path, engine: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    if engine == "processes":  # as a restore of 64 MiB or more does
        monkeypatch.setattr(rebuild, "MIN_PROCESS_BYTES", 0)
    repo = open_repository(compat)
    datadir = services_dir / "compat-restores" / engine / "pg"
    plan = plan_pitr(repo, RecoveryTarget("latest"), datadir, backup_id=EXPECTED["physical"], start=True)
    res = execute_pitr(repo, plan, server_access(compat), bindir=compat.pg_bindir, timeout=120)
    restored = LocalCluster(datadir.parent, port=res.port or 0, pgdata=datadir)
    try:
        want = EXPECTED["physical_counts"]
        assert restored.psql("SELECT count(*) FROM items", "compat") == str(want["items"])
        assert restored.psql("SELECT count(*) FROM notes", "compat") == str(want["notes"])
        assert restored.psql("SELECT count(*) FROM notes WHERE body LIKE 'after-base %'", "compat") == \
            str(want["after_base"])
        assert restored.psql("SELECT pg_is_in_recovery()") == "f"
    finally:
        restored.destroy()
