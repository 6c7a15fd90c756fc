"""Restore a logical backup into a database, then prove it by row counts.

``plan_restore`` has no side effects: it checks the backup exists and the target is
acceptable (exists or ``create``; empty or ``force``). ``execute_restore`` then:

0. sweeps leftover work directories of killed backups and restores (``swept`` in the result);
1. downloads and verifies the dump's schema (``stage_schema``: ``toc.dat``, never a table's
   rows) into a private work directory ``swarm-restore-<pid>-*`` (mode 0700);
2. creates the database if asked;
3. restores it (``restore_into``): pg_restore's pre-data section (after the ``DROP ... IF
   EXISTS`` of ``--clean`` when forced onto a non-empty target); then, at the same time,
   pg_restore's data section minus table data (sequence values, large objects) and every
   table's rows streamed from the repository (verified frame by frame) into parallel
   ``COPY FROM STDIN``; then post-data with ``-j``;
4. counts every table the manifest lists and compares.

Rows go from the repository to the server without touching local disk, for backups of
this version (``tables/*.copy``) and of earlier ones (table files ``pgdump/<id>.dat``,
streamed the same way with the COPY statement their table of contents names).

A crash in 3 leaves a partly restored target: run again with ``--force``; a kill -9 also
leaves the work directory (schema only), swept by the next run. The source of truth is
never touched.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.config import urls
from swarm.errors import DatabaseNotFound, IntegrityError, Interrupted, TargetNotEmpty, WrongKind
from swarm.model.manifest import Manifest
from swarm.model.rowcounts import RowCountComparison, compare_row_counts
from swarm.model.sources import Kind
from swarm.repo import Repository
from swarm.services.postgres.logical_backup import DUMP_PREFIX
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.workdirs import RESTORE_DIR_PREFIX, sweep_and_report, work_directory
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
    without_password,
)
from swarm.sources.postgres.copy import copy_from_statement, copy_in, strip_end_marker
from swarm.sources.postgres.dump import (
    clean_statements,
    copy_statements,
    pg_restore,
    table_data_entries,
    toc_lines,
)


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
    swept: list[str] = field(default_factory=list)  # leftover work directories of killed runs, removed

    @property
    def validated(self) -> bool:
        return self.comparison.validated

    def to_dict(self) -> dict[str, Any]:
        """``swarm_db_url`` is the target to point swarm at, with no password in it (never
        ``***``, which pasted into a shell would become the password);
        ``swarm_db_url_password_omitted`` says the target URL had one, left out."""
        url, omitted = without_password(self.plan.target_url)
        return {"backup": self.plan.manifest.id, "target": redact(self.plan.target_url), "validated": self.validated,
                "tables": self.comparison.to_dict(), "timings": self.timings,
                "swarm_db_url": url, "swarm_db_url_password_omitted": omitted, "swept": self.swept}


def plan_restore(repo: Repository, backup_id: str, target_url: str, *, create: bool = False, force: bool = False,
                 jobs: int = 2) -> RestorePlan:
    """Raises ConfigError (exit 3) for a malformed ``target_url`` (named as ``--target-db``),
    NotFoundError (9) for a missing backup or target database, RefusedError (8) for a backup
    of another kind or a non-empty target without ``force``."""
    urls.check("postgres", target_url, setting="--target-db", source="flag")
    manifest = repo.load_manifest(backup_id)
    if manifest.kind != Kind.PG_LOGICAL:
        raise WrongKind(f"backup {backup_id} is a {manifest.kind} backup, not a logical PostgreSQL backup",
                           hint="Pick an id of kind pg-logical from `swarm admin backups list`.")
    dbname = dbname_of(target_url)
    admin_url = with_dbname(target_url, "postgres")
    exists = database_exists(admin_url, dbname)
    if not exists and not create:
        raise DatabaseNotFound(f"target database {dbname} does not exist at {redact(admin_url)}",
                            hint="Pass --create to create it.")
    existing = 0
    if exists:
        with connect(target_url) as conn:
            existing = len(user_tables(conn))
        if existing and not force:
            raise TargetNotEmpty(
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
    swept = sweep_and_report(work_dir, reporter)
    with work_directory(RESTORE_DIR_PREFIX, work_dir) as tmp:
        dumpdir = tmp / "dump"
        reporter.stage(f"downloading and verifying the schema of {plan.manifest.id}")
        stage_schema(repo, plan.manifest, dumpdir, bindir=bindir)
        timings["download_s"] = round(time.monotonic() - t0, 3)
        if plan.create:
            create_database(with_dbname(plan.target_url, "postgres"), dbname_of(plan.target_url))
        restore_into(repo, plan.manifest, plan.target_url, dumpdir, jobs=plan.jobs, clean=plan.clean,
                     no_owner=no_owner, bindir=bindir, reporter=reporter, timings=timings)
        timings["restore_s"] = round(time.monotonic() - t0 - timings["download_s"], 3)
    reporter.stage("validating row counts")
    expected = dict(plan.manifest.logical.row_counts)
    comparison = compare_row_counts(expected, restored_counts(plan.target_url, list(expected)))
    timings["total_s"] = round(time.monotonic() - t0, 3)
    return RestoreResult(plan, comparison, timings, swept)


def _fetch(repo: Repository, manifest: Manifest, name: str, target: Path) -> None:
    """One object to ``target``, through ``.part`` renamed only once it verified completely."""
    part = target.with_name(target.name + ".part")
    try:
        with open(part, "wb") as fh:
            for chunk in repo.read_object(manifest, name):
                fh.write(chunk)
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def stage_schema(repo: Repository, manifest: Manifest, dest: Path, *, bindir: str | None = None) -> Path:
    """Download and verify what ``pg_restore`` needs of the backup's ``pgdump/`` objects into
    ``dest``: ``toc.dat`` and the files that are not table data (large objects, if any).
    Table files (``<id>.dat`` of a TABLE DATA entry, backups of earlier versions) stay in the
    repository: ``restore_into`` streams them. Returns ``dest``."""
    dest.mkdir(mode=0o700, parents=True, exist_ok=True)
    toc = DUMP_PREFIX + "toc.dat"
    _fetch(repo, manifest, toc, dest / "toc.dat")
    rows_files = {f"{DUMP_PREFIX}{dump_id}.dat" for dump_id, _ in table_data_entries(toc_lines(dest, bindir))}
    for entry in manifest.objects:
        if entry.name.startswith(DUMP_PREFIX) and entry.name != toc and entry.name not in rows_files:
            _fetch(repo, manifest, entry.name, dest / entry.name[len(DUMP_PREFIX):])
    return dest


@dataclass(frozen=True)
class _Load:
    """One stream of rows: a repository object into one ``COPY ... FROM STDIN``."""
    what: str
    statement: Any  # psycopg Composed, or the statement text of an earlier version's dump
    name: str
    rows: int | None  # expected rows (None: not recorded, the table's count is checked at the end)
    strip_end: bool  # pg_dump's table files end with a ``\.`` line
    encoding: str | None


def _loads(manifest: Manifest, dumpdir: Path, toc: list[str], bindir: str | None) -> list[_Load]:
    """Every table's rows, as streams to load: the manifest's COPY parts (``parallel_tables``)
    and pg_dump table files (``pgdump/<id>.dat``, each TABLE DATA entry of the dump)."""
    src = manifest.logical
    encoding = src.encoding
    out = [_Load(f"{t['schema']}.{t['table']}", copy_from_statement(t["schema"], t["table"], t["columns"]),
                 p["name"], p["rows"], False, encoding)
           for t in src.parallel_tables.values() for p in t["parts"]]
    entries = table_data_entries(toc)
    statements, dump_encoding = copy_statements(dumpdir, entries, bindir)
    listed = {o.name for o in manifest.objects}
    for (dump_id, line), stmt in zip(entries, statements, strict=True):
        name = f"{DUMP_PREFIX}{dump_id}.dat"
        if name not in listed:
            raise IntegrityError(f"backup {manifest.id} has no {name} for the dump's entry {line!r}",
                                 hint="The backup is incomplete; restore an earlier one.")
        out.append(_Load(".".join(line.split()[5:7]), stmt, name, None, True, dump_encoding))
    return sorted(out, key=lambda ld: -manifest.object(ld.name).size)


def restore_into(repo: Repository, manifest: Manifest, url: str, dumpdir: Path, *, jobs: int, clean: bool = False,
                 no_owner: bool = False, bindir: str | None = None, reporter: Reporter | None = None,
                 timings: dict[str, float] | None = None) -> None:
    """Restore a backup into ``url``: the schema from ``dumpdir`` (at least ``toc.dat``, see
    ``stage_schema``) and every table's rows streamed from the repository; local copies of
    table files in ``dumpdir``, if any, are not read. ``timings``, if given, receives the
    seconds of each phase (``schema_s``, ``data_s``, ``post_data_s``)."""
    reporter = reporter or NullReporter()
    timings = {} if timings is None else timings
    t0 = time.monotonic()
    if clean:
        reporter.stage("dropping the objects the backup contains")
        with connect(url) as conn, conn.transaction():
            for stmt in clean_statements(dumpdir, bindir):
                conn.execute(stmt.encode())
    reporter.stage("pg_restore pre-data (schema)")
    pg_restore(url, dumpdir, jobs=jobs, no_owner=no_owner, bindir=bindir, section="pre-data")
    toc = toc_lines(dumpdir, bindir)
    loads = _loads(manifest, dumpdir, toc, bindir)
    timings["schema_s"] = round(time.monotonic() - t0, 3)
    # pg_restore's data section without the table data we stream: sequence values, large objects
    table_data = {line for _, line in table_data_entries(toc)}
    data_list = dumpdir.parent / f"{dumpdir.name}.data-list"
    data_list.write_text("".join((";" if line in table_data else "") + line + "\n" for line in toc))
    reporter.stage(f"loading data with {jobs} jobs ({len(loads)} streams)")
    reporter.total(sum(manifest.object(ld.name).size for ld in loads))

    stop = threading.Event()  # set when the restore is interrupted: running COPYs abort at their next chunk

    def load(ld: _Load) -> int:
        def chunks() -> Iterator[bytes]:
            for chunk in repo.read_object(manifest, ld.name):
                if stop.is_set():
                    raise Interrupted(f"loading {ld.what} was stopped: the restore was interrupted")
                reporter.advance(len(chunk))
                yield chunk

        stream = strip_end_marker(chunks()) if ld.strip_end else chunks()
        return copy_in(url, ld.statement, stream, what=f"{ld.what} from {ld.name}", encoding=ld.encoding)

    pool = ThreadPoolExecutor(max(1, jobs) + 1)
    try:
        data = pool.submit(pg_restore, url, dumpdir, jobs=jobs, no_owner=no_owner, bindir=bindir,
                           section="data", use_list=data_list)
        loaded = list(pool.map(load, loads))
        data.result()
    except BaseException:
        # Ctrl-C / SIGTERM or a failed load: no further table starts, running COPYs abort (their
        # transactions roll back); pg_restore's own data section, if still running, is waited for
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        data_list.unlink(missing_ok=True)
    for ld, rows in zip(loads, loaded, strict=True):
        if ld.rows is not None and rows != ld.rows:
            raise IntegrityError(f"part {ld.name} loaded {rows} rows, the manifest says {ld.rows}")
    timings["data_s"] = round(time.monotonic() - t0 - timings["schema_s"], 3)
    reporter.stage(f"pg_restore post-data (indexes, constraints) with {jobs} jobs")
    pg_restore(url, dumpdir, jobs=jobs, no_owner=no_owner, bindir=bindir, section="post-data")
    timings["post_data_s"] = round(time.monotonic() - t0 - timings["schema_s"] - timings["data_s"], 3)


def restored_counts(url: str, tables: list[str]) -> dict[str, int]:
    """Row counts of the named tables that exist at ``url`` (missing ones are left out)."""
    with connect(url) as conn:
        present = {f"{s}.{t}" for s, t in user_tables(conn)}
        return count_rows(conn, [split_table(t) for t in tables if t in present])
