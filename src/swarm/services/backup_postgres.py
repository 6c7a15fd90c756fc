"""Logical PostgreSQL backup: ``pg_dump -Fd -j N`` of one snapshot into the repository,
with the rows of large tables copied in parallel page ranges of the same snapshot.

Order of steps, and what a crash between them leaves:

1. take the ``backup-postgres`` repository lock (a crash leaves a lock that goes stale);
2. open a REPEATABLE READ transaction and export its snapshot;
3. write the data key; then, all at once:
   * ``pg_dump --snapshot --exclude-table-data=<large tables>`` into a local staging
     directory, each table file uploaded as soon as pg_dump closes it;
   * every large table (``large_table_bytes`` and up) streamed straight from
     ``COPY ... TO STDOUT`` by ctid page ranges into repository objects, ``jobs`` at a time
     (no staging), rows counted as they pass;
   * every other table's rows counted in the exporting transaction;
4. after all of it, upload the rest (``toc.dat``) and write the manifest, last.

The dump directory alone restores with ``pg_restore`` minus the large tables' rows; the
manifest's ``parallel_tables`` says which parts (COPY text) hold those, and
``restore_postgres`` loads them in parallel between pg_restore's data and post-data steps.

Any failure before 4 completes aborts: uploaded objects are deleted (best effort) and no
backup is listed. Staging needs at most the uncompressed size of the dump in free space
under ``work_dir`` (the system temp dir by default), usually much less because files
leave staging as soon as they are uploaded.
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.model.manifest import Manifest
from swarm.repo import Repository
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.postgres.conn import SnapshotSession, count_rows, redact, user_tables
from swarm.sources.postgres.copy import RowCounter, TablePart, copy_columns, copy_out, large_tables, split_pages
from swarm.sources.postgres.dump import finished_data_files, pg_dump_directory, table_pattern

KIND = "pg-logical"
DUMP_PREFIX = "pgdump/"
TABLES_PREFIX = "tables/"
READ_CHUNK = 4 << 20
LARGE_TABLE_BYTES = 64 << 20  # tables this big are copied in parallel parts
PART_BYTES = 256 << 20  # about this much heap per part (at least ``jobs`` parts per large table)


@dataclass
class LogicalBackupResult:
    manifest: Manifest
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        src = m.source
        return {"id": m.id, "kind": m.kind, "database": src.get("database"),
                "server_version": src.get("server_version"),
                "size": m.size, "stored_size": m.stored_size, "objects": len(m.objects),
                "tables": len(src.get("row_counts", {})), "rows": sum(src.get("row_counts", {}).values()),
                "started_at": m.started_at, "finished_at": m.finished_at, "timings": self.timings}


def file_chunks(path: Path, reporter: Reporter | None = None) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            if reporter:
                reporter.advance(len(chunk))
            yield chunk


def backup_postgres_logical(repo: Repository, db_url: str, *, jobs: int = 2, work_dir: str | None = None,
                            reporter: Reporter | None = None, bindir: str | None = None,
                            large_table_bytes: int = LARGE_TABLE_BYTES) -> LogicalBackupResult:
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    with repo.lock("backup-postgres") as lock, tempfile.TemporaryDirectory(prefix="swarm-dump-", dir=work_dir) as tmp:
        dumpdir = Path(tmp) / "dump"
        writer = None
        try:
            with SnapshotSession(db_url) as snap:
                assert snap.conn is not None
                facts = snap.facts()
                large = large_tables(snap.conn, large_table_bytes)
                plans: list[tuple[TablePart, list[str]]] = []
                for schema, table, size in large:
                    cols = copy_columns(snap.conn, schema, table)
                    n_parts = max(jobs, -(-size // PART_BYTES))
                    plans += [(part, cols) for part in split_pages(schema, table, size, n_parts)]
                writer = repo.begin_backup(KIND, lock=lock)
                reporter.stage(f"dumping {facts.database} ({facts.database_size / 1e6:.0f} MB) with {jobs} jobs")
                reporter.total(facts.database_size)
                procs: list[Any] = []
                errors: list[BaseException] = []

                def run_dump() -> None:
                    try:
                        pg_dump_directory(db_url, dumpdir, jobs=jobs, snapshot=snap.snapshot, bindir=bindir,
                                          exclude_table_data=[table_pattern(s, t) for s, t, _ in large],
                                          on_start=procs.append)
                    except BaseException as exc:
                        errors.append(exc)

                dumper = threading.Thread(target=run_dump, name="pg_dump", daemon=True)
                dumper.start()
                copier = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="copy-out")
                try:
                    part_futures = [copier.submit(_copy_part, writer, db_url, snap.snapshot, i, part, cols, reporter)
                                    for i, (part, cols) in enumerate(plans)]
                    large_names = {f"{s}.{t}" for s, t, _ in large}
                    row_counts = count_rows(snap.conn, [st for st in user_tables(snap.conn)
                                                        if f"{st[0]}.{st[1]}" not in large_names])
                    timings["count_s"] = round(time.monotonic() - t0, 3)
                    uploaded = _upload_while_dumping(writer, dumper, procs, dumpdir, jobs, reporter)
                    parts_done = [f.result() for f in part_futures]
                except BaseException:
                    _stop_dump(procs, dumper)
                    copier.shutdown(wait=True, cancel_futures=True)
                    raise
                copier.shutdown(wait=True)
                if errors:
                    raise errors[0]
                parallel_tables: dict[str, dict[str, Any]] = {}
                for (part, cols), (name, rows) in zip(plans, parts_done, strict=True):
                    entry = parallel_tables.setdefault(part.qualified, {"schema": part.schema, "table": part.table,
                                                                        "columns": cols, "parts": []})
                    entry["parts"].append({"name": name, "rows": rows, "first_page": part.first_page,
                                           "end_page": part.end_page})
                    row_counts[part.qualified] = row_counts.get(part.qualified, 0) + rows
                row_counts = dict(sorted(row_counts.items()))
                timings["dump_s"] = round(time.monotonic() - t0, 3)
            # pg_dump is done: the snapshot can go; upload what is left (toc.dat, late files)
            rest = sorted(p for p in dumpdir.iterdir() if p.name not in uploaded)
            with ThreadPoolExecutor(max(1, jobs)) as pool:
                for f in [pool.submit(_put_file, writer, p, reporter) for p in rest]:
                    f.result()
            source = {
                "engine": "postgresql", "method": "pg_dump", "format": "directory", "jobs": jobs,
                "db_url": redact(db_url), **facts.to_dict(), "snapshot": snap.snapshot, "row_counts": row_counts,
                "parallel_tables": parallel_tables,
            }
            timings["total_s"] = round(time.monotonic() - t0, 3)
            source["timings"] = timings
            reporter.stage("writing manifest")
            manifest = writer.commit(source)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    return LogicalBackupResult(manifest, timings)


def _copy_part(writer: Any, db_url: str, snapshot: str, index: int, part: TablePart, cols: list[str],
               reporter: Reporter) -> tuple[str, int]:
    """Stream one page range of a large table into one object; return (object name, rows)."""
    name = f"{TABLES_PREFIX}{index:04d}-p{part.index:03d}.copy"
    counter = RowCounter()

    def progress(chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            reporter.advance(len(chunk))
            yield chunk

    writer.put_object(name, progress(counter.wrap(copy_out(db_url, snapshot, part, cols))))
    return name, counter.rows


def _stop_dump(procs: list[Any], dumper: threading.Thread) -> None:
    """Kill a pg_dump that is still running (we failed elsewhere) and wait for its thread."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    dumper.join(30)


def _put_file(writer: Any, path: Path, reporter: Reporter) -> str:
    writer.put_object(DUMP_PREFIX + path.name, file_chunks(path, reporter))
    os.unlink(path)
    return path.name


def _upload_while_dumping(writer: Any, dumper: threading.Thread, procs: list[Any], dumpdir: Path, jobs: int,
                          reporter: Reporter) -> set[str]:
    """Upload table files as pg_dump finishes them; return the names uploaded."""
    done: set[str] = set()
    futures: list[Future[str]] = []
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        while dumper.is_alive():
            dumper.join(0.25)
            if not procs or not dumpdir.is_dir() or not dumper.is_alive():
                continue
            for path in finished_data_files(dumpdir, procs[0].pid, done):
                done.add(path.name)
                futures.append(pool.submit(_put_file, writer, path, reporter))
            for f in [f for f in futures if f.done()]:
                f.result()  # surface upload errors early
        for f in futures:
            f.result()
    return done
