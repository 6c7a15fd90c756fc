"""Restore a logical backup into a database, then prove it by row counts.

``plan_restore`` has no side effects: it checks the backup exists and the target is
acceptable (exists or ``create``; empty or ``force``). ``execute_restore`` then:

1. downloads and verifies the pg_dump directory into a staging directory;
2. creates the database if asked;
3. restores it (``restore_into``): pg_restore's pre-data section (with ``--clean
   --if-exists`` when forced onto a non-empty target); then, at the same time, pg_restore's
   data section with ``-j`` and the large tables' parts streamed from the repository
   (verified frame by frame) into parallel ``COPY FROM STDIN``; then post-data with ``-j``;
4. counts every table the manifest lists and compares.

A crash in 3 leaves a partly restored target: run again with ``--force``. The source of
truth is never touched.
"""
from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.config import urls
from swarm.errors import NotFoundError, RefusedError
from swarm.model.manifest import Manifest
from swarm.model.rowcounts import RowCountComparison, compare_row_counts
from swarm.repo import Repository
from swarm.services.backup_postgres import DUMP_PREFIX
from swarm.services.materialize import materialize
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.postgres.conn import (
    connect,
    count_rows,
    create_database,
    database_exists,
    dbname_of,
    redact,
    split_table,
    user_tables,
    with_dbname,
)
from swarm.sources.postgres.copy import copy_in
from swarm.sources.postgres.dump import clean_statements, pg_restore


@dataclass(frozen=True)
class RestorePlan:
    manifest: Manifest
    target_url: str
    create: bool
    clean: bool
    existing_tables: int
    jobs: int

    def to_dict(self) -> dict[str, Any]:
        return {"backup": self.manifest.id, "target": redact(self.target_url), "create_database": self.create,
                "clean_existing": self.clean, "existing_tables": self.existing_tables, "jobs": self.jobs,
                "restore_bytes": self.manifest.size}


@dataclass
class RestoreResult:
    plan: RestorePlan
    comparison: RowCountComparison
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def validated(self) -> bool:
        return self.comparison.validated

    def to_dict(self) -> dict[str, Any]:
        return {"backup": self.plan.manifest.id, "target": redact(self.plan.target_url), "validated": self.validated,
                "tables": self.comparison.to_dict(), "timings": self.timings,
                "swarm_db_url": redact(self.plan.target_url)}


def plan_restore(repo: Repository, backup_id: str, target_url: str, *, create: bool = False, force: bool = False,
                 jobs: int = 2) -> RestorePlan:
    """Raises ConfigError (exit 3) for a malformed ``target_url`` (named as ``--target-db``),
    NotFoundError (9) for a missing backup or target database, RefusedError (8) for a backup
    of another kind or a non-empty target without ``force``."""
    urls.check("postgres", target_url, setting="--target-db", source="flag")
    manifest = repo.load_manifest(backup_id)
    if manifest.kind != "pg-logical":
        raise RefusedError(f"backup {backup_id} is a {manifest.kind} backup, not a logical PostgreSQL backup",
                           hint="Pick an id of kind pg-logical from `swarm admin backups list`.")
    dbname = dbname_of(target_url)
    admin_url = with_dbname(target_url, "postgres")
    exists = database_exists(admin_url, dbname)
    if not exists and not create:
        raise NotFoundError(f"target database {dbname} does not exist at {redact(admin_url)}",
                            hint="Pass --create to create it.")
    existing = 0
    if exists:
        with connect(target_url) as conn:
            existing = len(user_tables(conn))
        if existing and not force:
            raise RefusedError(
                f"target database {dbname} is not empty ({existing} tables); refusing to restore over it",
                hint="Restore into a new database (--create with a new name), or pass --force to replace "
                     "the objects the backup contains.", details={"existing_tables": existing})
    return RestorePlan(manifest, target_url, create and not exists, existing > 0, existing, jobs)


def execute_restore(repo: Repository, plan: RestorePlan, *, work_dir: str | None = None,
                    reporter: Reporter | None = None, bindir: str | None = None,
                    no_owner: bool = False) -> RestoreResult:
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="swarm-restore-", dir=work_dir) as tmp:
        dumpdir = Path(tmp) / "dump"
        reporter.stage(f"downloading and verifying {plan.manifest.id}")
        materialize(repo, plan.manifest, DUMP_PREFIX, dumpdir, jobs=plan.jobs, reporter=reporter)
        timings["download_s"] = round(time.monotonic() - t0, 3)
        if plan.create:
            create_database(with_dbname(plan.target_url, "postgres"), dbname_of(plan.target_url))
        restore_into(repo, plan.manifest, plan.target_url, dumpdir, jobs=plan.jobs, clean=plan.clean,
                     no_owner=no_owner, bindir=bindir, reporter=reporter)
        timings["restore_s"] = round(time.monotonic() - t0 - timings["download_s"], 3)
    reporter.stage("validating row counts")
    expected: dict[str, int] = plan.manifest.source.get("row_counts", {})
    comparison = compare_row_counts(expected, restored_counts(plan.target_url, list(expected)))
    timings["total_s"] = round(time.monotonic() - t0, 3)
    return RestoreResult(plan, comparison, timings)


def restore_into(repo: Repository, manifest: Manifest, url: str, dumpdir: Path, *, jobs: int, clean: bool = False,
                 no_owner: bool = False, bindir: str | None = None, reporter: Reporter | None = None) -> None:
    """Restore a materialised dump directory plus the manifest's parallel table parts into ``url``."""
    reporter = reporter or NullReporter()
    if clean:
        reporter.stage("dropping the objects the backup contains")
        with connect(url) as conn, conn.transaction():
            for stmt in clean_statements(dumpdir, bindir):
                conn.execute(stmt.encode())
    reporter.stage("pg_restore pre-data (schema)")
    pg_restore(url, dumpdir, jobs=jobs, no_owner=no_owner, bindir=bindir, section="pre-data")
    parts = [(t, p) for t in manifest.source.get("parallel_tables", {}).values() for p in t["parts"]]
    reporter.stage(f"loading data with {jobs} jobs ({len(parts)} parallel parts)")
    reporter.total(sum(manifest.object(p["name"]).size for _, p in parts))

    def load(item: tuple[dict[str, Any], dict[str, Any]]) -> int:
        table, part = item

        def chunks() -> Any:
            for chunk in repo.read_object(manifest, part["name"]):
                reporter.advance(len(chunk))
                yield chunk

        return copy_in(url, table["schema"], table["table"], table["columns"], chunks())

    with ThreadPoolExecutor(max(1, jobs) + 1) as pool:
        data = pool.submit(pg_restore, url, dumpdir, jobs=jobs, no_owner=no_owner, bindir=bindir, section="data")
        loaded = list(pool.map(load, parts))
        data.result()
    for (_table, part), rows in zip(parts, loaded, strict=True):
        if rows != part["rows"]:
            from swarm.errors import IntegrityError

            raise IntegrityError(f"part {part['name']} loaded {rows} rows, the manifest says {part['rows']}")
    reporter.stage(f"pg_restore post-data (indexes, constraints) with {jobs} jobs")
    pg_restore(url, dumpdir, jobs=jobs, no_owner=no_owner, bindir=bindir, section="post-data")


def restored_counts(url: str, tables: list[str]) -> dict[str, int]:
    """Row counts of the named tables that exist at ``url`` (missing ones are left out)."""
    with connect(url) as conn:
        present = {f"{s}.{t}" for s, t in user_tables(conn)}
        return count_rows(conn, [split_table(t) for t in tables if t in present])
