"""Physical backups of the older block-index format (``index.json``, written before physical
backups moved onto the tree store) stay verifiable and restorable, and a new backup
deduplicates against one. The old writer is kept as a test helper (tests/legacy_physical.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from swarm.model.targets import RecoveryTarget
from swarm.repo.format import data_key
from swarm.services.context import server_access
from swarm.services.postgres.physical_backup import backup_postgres_physical, known_blocks
from swarm.services.postgres.pitr import execute_pitr, materialize_physical, plan_pitr
from swarm.services.repository.verify import verify_backup
from tests.legacy_physical import write_legacy_physical
from tests.physical.conftest import PhysEnv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tmpdir_pg(phys: PhysEnv) -> Path:
    d = phys.root / "restores"
    d.mkdir(exist_ok=True)
    d.chmod(0o755)
    return d


@pytest.fixture(scope="module")
def legacy(phys: PhysEnv, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(tree-format backup id, legacy backup id): the legacy one holds the same files, its blocks
    under base/ referenced from the tree backup's packs, the rest in packs of its own."""
    c = phys.cluster
    c.psql("CREATE TABLE legacy_sentinel (id int PRIMARY KEY, label text)")
    c.psql("INSERT INTO legacy_sentinel SELECT g, 'row ' || g FROM generate_series(1, 5000) g")
    c.psql("CHECKPOINT")
    repo = phys.repo()
    tree = backup_postgres_physical(repo, phys.url).manifest
    files = tmp_path_factory.mktemp("legacy-src")
    materialize_physical(repo, tree, files)
    known = known_blocks(repo, tree)
    # reference only the blocks of files under base/ (the legacy backup stores the rest itself)
    from swarm.repo.tree import open_snapshot

    base_ids = {r.id for e in open_snapshot(repo, tree).walk() if e.path.startswith("base/") for r in e.chunks}
    old = write_legacy_physical(repo, files, dict(tree.source),
                                known={b: loc for b, loc in known.items() if b in base_ids})
    assert {o.name for o in old.objects} >= {"index.json"} and "tree.json" not in {o.name for o in old.objects}
    assert old.refs is not None and any(p.backup_id == tree.id for p in old.refs.packs)
    assert any(p.backup_id == old.id for p in old.refs.packs) and old.refs.wal
    return tree.id, old.id


def test_legacy_backup_verifies(phys: PhysEnv, legacy: tuple[str, str]) -> None:
    res = verify_backup(phys.repo(), legacy[1])
    assert res.ok, res.problems
    assert res.objects_checked >= 2


def test_legacy_backup_restores_to_a_running_cluster(phys: PhysEnv, legacy: tuple[str, str], tmpdir_pg: Path) -> None:
    repo = phys.repo()
    datadir = tmpdir_pg / "from-legacy"
    plan = plan_pitr(repo, RecoveryTarget("latest"), datadir, backup_id=legacy[1], start=True)
    res = execute_pitr(repo, plan, server_access(phys.settings), bindir=phys.settings.pg_bindir, timeout=120)
    from swarm.sources.postgres.cluster import LocalCluster

    restored = LocalCluster(datadir.parent, port=res.port or 0, pgdata=datadir)
    try:
        assert restored.psql("SELECT count(*) FROM legacy_sentinel") == "5000"
    finally:
        restored.destroy()


def test_new_backup_deduplicates_against_a_legacy_one(phys: PhysEnv, legacy: tuple[str, str]) -> None:
    repo = phys.repo()
    r = backup_postgres_physical(repo, phys.url)
    assert r.stats["dedup_base"] == legacy[1]
    assert r.stats["reused_blocks"] > r.stats["new_blocks"]
    assert verify_backup(repo, r.manifest.id).ok


def test_damaged_legacy_pack_is_one_problem_line(phys: PhysEnv, legacy: tuple[str, str]) -> None:
    repo = phys.repo()
    m = repo.load_manifest(legacy[1])
    pack = max((o for o in m.objects if o.name.startswith("packs/")), key=lambda o: o.stored_size)
    path = phys.repo_dir / data_key(m.id, pack.name)
    original = path.read_bytes()
    try:
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        path.write_bytes(bytes(damaged))
        res = verify_backup(repo, m.id)
        assert [p["where"] for p in res.problems] == [pack.name], res.problems
    finally:
        path.write_bytes(original)
