"""Rows never touch local disk, on backup or restore, and restores are exact: every row,
sequence value and owner; backups written by earlier versions (table files in ``pgdump/``)
restore the same way."""
from __future__ import annotations

from pathlib import Path

import pytest

from swarm.crypto.keys import LocalKeyFile
from swarm.repo import Repository
from swarm.services.postgres.logical_backup import backup_postgres_logical
from swarm.services.postgres.logical_restore import execute_restore, plan_restore
from swarm.services.reporting import NullReporter
from swarm.services.repository.verify import verify_backup
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import SnapshotSession, connect, count_rows, redact, with_dbname
from swarm.sources.postgres.copy import TablePart, copy_columns, copy_out
from swarm.sources.postgres.dump import pg_dump_directory, table_pattern
from swarm.storage.local import LocalStore
from tests.conftest import new_database

pytestmark = pytest.mark.integration

FINGERPRINT_SQL = ("SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM {} t")


class DiskSpy(NullReporter):
    """Lists every file under ``root`` at each stage of the run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seen: dict[str, int] = {}

    def _look(self) -> None:
        for p in self.root.rglob("*"):
            if p.is_file():
                self.seen[p.name] = max(self.seen.get(p.name, 0), p.stat().st_size)

    def stage(self, text: str) -> None:
        self._look()

    def advance(self, n: int) -> None:
        self._look()


def _fingerprint(url: str) -> dict[str, object]:
    with connect(url) as conn:
        out: dict[str, object] = {t: conn.execute(FINGERPRINT_SQL.format(t)).fetchone()[0]  # type: ignore[index]
                                  for t in ("runs", "run_events", "approvals", "pipelines")}
        out["sequences"] = conn.execute("SELECT sequencename, last_value FROM pg_sequences "
                                        "ORDER BY 1").fetchall()
        out["owners"] = conn.execute("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' "
                                     "ORDER BY 1").fetchall()
    return out


def _db(cluster: LocalCluster) -> str:
    db = new_database(cluster, runs=20, size_mb=2)
    with connect(db) as conn:  # a sequence value no row shows, an empty table, a table without columns
        conn.execute("SELECT setval('run_events_id_seq', 987654)")
        conn.execute("CREATE TABLE public.empty_one (id int)")
        conn.execute("CREATE TABLE public.no_columns ()")
        conn.execute("INSERT INTO public.no_columns DEFAULT VALUES")
        conn.execute("INSERT INTO public.no_columns DEFAULT VALUES")
        conn.execute("ANALYZE")
    return db


@pytest.mark.parametrize("large_table_bytes", [1 << 40, 64 << 10], ids=["whole-tables", "page-ranges"])
def test_no_rows_staged_and_restore_is_exact(tmp_path: Path, kek: LocalKeyFile, pg_cluster: LocalCluster,
                                            large_table_bytes: int) -> None:
    db = _db(pg_cluster)
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    work = tmp_path / "work"
    spy = DiskSpy(work)
    m = backup_postgres_logical(repo, db, jobs=2, work_dir=str(work), reporter=spy,
                                large_table_bytes=large_table_bytes).manifest
    assert set(spy.seen) <= {"owner.json", "toc.dat"}, spy.seen
    assert m.source["row_counts"]["public.no_columns"] == 2 and m.source["row_counts"]["public.empty_one"] == 0
    assert list(work.iterdir()) == []

    target = with_dbname(pg_cluster.url(), "exact_" + m.id[-6:])
    spy = DiskSpy(work)
    out = execute_restore(repo, plan_restore(repo, m.id, target, create=True), work_dir=str(work), reporter=spy)
    assert out.validated, out.comparison.mismatches
    assert set(spy.seen) <= {"owner.json", "toc.dat", "dump.data-list"}, spy.seen
    assert list(work.iterdir()) == []
    assert _fingerprint(target) == _fingerprint(db)
    assert verify_backup(repo, m.id, restore_test=True).ok


def _old_format_backup(repo: Repository, db: str, tmp: Path, *, large: list[str]) -> str:
    """A backup as the previous version wrote it: ``pg_dump -Fd`` table files under
    ``pgdump/``, and the tables in ``large`` as COPY parts in ``parallel_tables``."""
    dumpdir = tmp / "old-dump"
    with SnapshotSession(db) as snap:
        assert snap.conn is not None
        facts = snap.facts()
        row_counts = count_rows(snap.conn)
        writer = repo.begin_backup("pg-logical")
        pg_dump_directory(db, dumpdir, jobs=2, snapshot=snap.snapshot,
                          exclude_table_data=[table_pattern("public", t) for t in large])
        parallel: dict[str, dict[str, object]] = {}
        for i, table in enumerate(large):
            cols = copy_columns(snap.conn, "public", table)
            name = f"tables/{i:04d}-p000.copy"
            writer.put_object(name, copy_out(db, snap.snapshot, TablePart("public", table, 0, 0, None), cols))
            parallel[f"public.{table}"] = {"schema": "public", "table": table, "columns": cols,
                                           "parts": [{"name": name, "rows": row_counts[f"public.{table}"],
                                                      "first_page": 0, "end_page": None}]}
    for path in sorted(dumpdir.iterdir()):
        writer.put_object("pgdump/" + path.name, [path.read_bytes()])
    assert any(p.name != "toc.dat" and p.name.endswith(".dat") for p in dumpdir.iterdir())
    return writer.commit({"engine": "postgresql", "method": "pg_dump", "format": "directory", "jobs": 2,
                          "db_url": redact(db), **facts.to_dict(), "snapshot": snap.snapshot,
                          "row_counts": row_counts, "parallel_tables": parallel}).id


@pytest.mark.parametrize("large", [[], ["run_events"]], ids=["pg_dump-only", "with-parts"])
def test_backups_of_the_previous_format_restore_without_staging_rows(tmp_path: Path, kek: LocalKeyFile,
                                                                     pg_cluster: LocalCluster,
                                                                     large: list[str]) -> None:
    db = _db(pg_cluster)
    repo = Repository.init(LocalStore(tmp_path / "r"), kek)
    backup_id = _old_format_backup(repo, db, tmp_path, large=large)
    work = tmp_path / "work"
    spy = DiskSpy(work)
    target = with_dbname(pg_cluster.url(), "old_" + backup_id[-6:])
    out = execute_restore(repo, plan_restore(repo, backup_id, target, create=True), work_dir=str(work),
                          reporter=spy)
    assert out.validated, out.comparison.mismatches
    assert set(spy.seen) <= {"owner.json", "toc.dat", "dump.data-list", "list"}, spy.seen
    assert _fingerprint(target) == _fingerprint(db)
    # forced over itself: the same again
    assert execute_restore(repo, plan_restore(repo, backup_id, target, force=True)).validated
    assert _fingerprint(target) == _fingerprint(db)
