"""``verify --restore-test`` on physical backups: the backup is recovered in a throwaway
cluster to its consistency point, every B-tree index is checked with amcheck and every
table read in full; the cluster is gone afterwards, also when recovery fails. And a
damaged pack is named by exactly one problem line."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from swarm.repo.format import data_key
from swarm.services.context import restore_test_env
from swarm.services.postgres.physical_backup import backup_postgres_physical
from swarm.services.repository.verify import verify_backup
from tests.physical.conftest import PhysEnv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def backup_id(phys: PhysEnv) -> str:
    c = phys.cluster
    c.psql("CREATE DATABASE shop")
    c.psql("CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, note text)", dbname="shop")
    c.psql("CREATE INDEX orders_customer ON orders (customer)", dbname="shop")
    # a TOASTed column too: the full read de-TOASTs it
    c.psql("INSERT INTO orders SELECT g, 'c' || (g % 97), CASE WHEN g % 500 = 0 THEN repeat(md5(g::text), 400) END "
           "FROM generate_series(1, 20000) g", dbname="shop")
    c.psql("CREATE MATERIALIZED VIEW per_customer AS SELECT customer, count(*) FROM orders GROUP BY 1",
           dbname="shop")
    c.psql("CHECKPOINT")
    return backup_postgres_physical(phys.repo(), phys.url).manifest.id


def _leftovers(work: Path) -> list[str]:
    return sorted(p.name for p in work.iterdir()) if work.exists() else []


def _servers_in(work: Path) -> list[str]:
    r = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [ln for ln in r.stdout.splitlines() if str(work) in ln and "postgres" in ln]


def test_restore_test_recovers_checks_indexes_and_reads_tables(phys: PhysEnv, backup_id: str,
                                                                 tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o755)
    res = verify_backup(phys.repo(), backup_id, restore_test=True, env=restore_test_env(phys.settings),
                        work_dir=str(work))
    assert res.ok, res.problems
    rt = res.restore_test
    assert rt is not None and rt.kind == "physical-cluster" and rt.validated
    f = rt.facts
    assert "shop" in f["databases"] and "postgres" in f["databases"]
    assert f["amcheck"] is True
    # orders_pkey + orders_customer at least, plus the catalogs' indexes of every database
    assert f["indexes_checked"] >= 2 + 2 * 50
    assert f["tables_read"] >= 2 and f["rows_read"] >= 20000 + 97
    assert f["recovered_lsn"] and f["files_restored"] > 100
    d = res.to_dict()["restore_test"]
    assert d["kind"] == "physical-cluster" and d["tables_read"] == f["tables_read"]
    assert d["indexes_checked"] == f["indexes_checked"]
    # the throwaway cluster is stopped and removed
    assert _leftovers(work) == [] and _servers_in(work) == []


def test_cli_reports_the_restore_test(phys: PhysEnv, backup_id: str) -> None:
    r = phys.cli("admin", "verify", backup_id, "--restore-test", "--json")
    v = json.loads(r.stdout)
    assert v["ok"] is True and v["problems"] == []
    rt = v["restore_test"]
    assert rt["kind"] == "physical-cluster" and rt["validated"] is True
    assert rt["tables_read"] >= 2 and rt["indexes_checked"] >= 2 and rt["amcheck"] is True
    human = phys.cli("admin", "verify", backup_id, "--restore-test").stdout
    assert "WAL replayed to the consistency point): passed" in human
    assert "B-tree indexes checked with amcheck" in human and "tables read in full" in human


def test_one_flipped_pack_is_one_problem_line(phys: PhysEnv, backup_id: str) -> None:
    repo = phys.repo()
    m = repo.load_manifest(backup_id)
    pack = max((o for o in m.objects if o.name.startswith("packs/")), key=lambda o: o.stored_size)
    path = phys.repo_dir / data_key(backup_id, pack.name)
    original = path.read_bytes()
    try:
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x01
        path.write_bytes(bytes(damaged))
        res = verify_backup(repo, backup_id, restore_test=True, env=restore_test_env(phys.settings))
        assert [p["where"] for p in res.problems] == [pack.name], res.problems
        assert "SHA-256" in res.problems[0]["problem"] and "authentication" in res.problems[0]["problem"]
        rt = res.restore_test  # a damaged backup is not restored, and the result says so
        assert rt is not None and not rt.ran and "failed the checks" in rt.facts["skipped"]
    finally:
        path.write_bytes(original)
    assert verify_backup(repo, backup_id).ok


def test_missing_or_truncated_tree_index_is_one_problem_line(phys: PhysEnv, backup_id: str) -> None:
    repo = phys.repo()
    path = phys.repo_dir / data_key(backup_id, "tree.json")
    original = path.read_bytes()
    try:
        path.unlink()
        res = verify_backup(repo, backup_id)
        assert [p["where"] for p in res.problems] == ["tree.json"], res.problems
        path.write_bytes(original[:-5])
        res = verify_backup(repo, backup_id)
        assert [p["where"] for p in res.problems] == ["tree.json"], res.problems
    finally:
        path.write_bytes(original)
    assert verify_backup(repo, backup_id).ok


def test_wal_that_decrypts_but_does_not_replay_fails_the_restore_test(phys: PhysEnv, backup_id: str,
                                                                       tmp_path: Path) -> None:
    """A segment archived with the right size and a valid seal but wrong content (a recycled
    file pushed by a broken archiver): only replaying it shows the backup cannot recover."""
    repo = phys.repo()
    m = repo.load_manifest(backup_id)
    seg = m.source["wal_segments"][-1]
    original = repo.get_wal(seg)
    work = tmp_path / "work"
    work.mkdir()
    work.chmod(0o755)
    try:
        repo.put_wal(seg, bytes(len(original)), overwrite=True)
        assert verify_backup(repo, backup_id).ok  # the static checks cannot see it
        res = verify_backup(repo, backup_id, restore_test=True, env=restore_test_env(phys.settings), work_dir=str(work))
        assert not res.ok
        assert res.restore_test is not None and res.restore_test.failures == 1
        assert len(res.problems) == 1, res.problems
        assert "recovery" in res.problems[0]["problem"]
        assert _leftovers(work) == [] and _servers_in(work) == []
        r = phys.cli("admin", "verify", backup_id, "--restore-test", check=False)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "FAILED" in r.stdout and "recovery" in r.stdout
    finally:
        repo.put_wal(seg, original, overwrite=True)
    assert verify_backup(repo, backup_id).ok
