"""Logical PostgreSQL backup: one exported snapshot; its schema by ``pg_dump -Fd``, every
table's rows by ``COPY ... TO STDOUT`` straight into the repository. No row of any table is
ever written to local disk (issue #8: a killed backup used to leave whole tables there).

Order of steps, and what a crash between them leaves:

0. sweep the work directory: directories of earlier runs of this host (``swarm-dump-<pid>-*``,
   ``swarm-restore-<pid>-*``) whose process is gone are removed and listed in the result
   (``swept``); a live run's directory is never touched;
1. take the ``backup-postgres`` repository lock (a crash leaves a lock that goes stale);
2. create the private work directory ``<work_dir>/swarm-dump-<pid>-<random>`` (mode 0700,
   with ``owner.json``: pid, host, process start time);
3. open a REPEATABLE READ transaction, export its snapshot, list the tables; write the data key;
4. all at once:
   * ``pg_dump --snapshot --exclude-table-data=<every listed table>`` into the work directory:
     ``toc.dat`` (schema, sequence values, ownership, privileges) and nothing else, unless the
     database has large objects (``blob_*.dat``, uploaded and deleted as pg_dump closes them);
   * ``LOCK TABLE ... IN ACCESS SHARE MODE`` on every listed table in the snapshot's
     transaction, held to the end (as pg_dump does: no TRUNCATE / DROP / ALTER meanwhile);
   * every table streamed from ``COPY ... TO STDOUT`` (in the snapshot) into repository
     objects, ``jobs`` at a time: one object per table, or ctid page ranges for tables of
     ``large_table_bytes`` and more; rows counted as they pass;
5. upload what pg_dump left (``toc.dat``), then write the manifest, last; remove the work
   directory.

Any failure before 5 completes aborts: uploaded objects are deleted (best effort) and no
backup is listed. A kill -9 anywhere leaves a stale lock, objects without a manifest (for
``prune``) and the work directory with at most pg_dump's schema output in it, which the
next backup or restore on this host sweeps. The work directory needs a few MB (the
schema), plus the size of the largest large object if there are any.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.model.manifest import Manifest
from swarm.repo import Repository
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.workdirs import DUMP_DIR_PREFIX, sweep_and_report, work_directory
from swarm.sources.postgres.conn import SnapshotSession, redact
from swarm.sources.postgres.copy import (
    RowCounter,
    TablePart,
    copy_columns,
    copy_out,
    data_tables,
    lock_tables,
    server_encoding,
    split_pages,
)
from swarm.sources.postgres.dump import finished_data_files, pg_dump_directory, table_pattern

KIND = "pg-logical"
DUMP_PREFIX = "pgdump/"
TABLES_PREFIX = "tables/"
READ_CHUNK = 4 << 20
LARGE_TABLE_BYTES = 64 << 20  # tables this big are copied in several parallel parts
PART_BYTES = 256 << 20  # about this much heap per part (at least ``jobs`` parts per large table)


@dataclass
class LogicalBackupResult:
    manifest: Manifest
    timings: dict[str, float] = field(default_factory=dict)
    swept: list[str] = field(default_factory=list)  # leftover work directories of killed runs, removed

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        src = m.source
        return {"id": m.id, "kind": m.kind, "database": src.get("database"),
                "server_version": src.get("server_version"),
                "size": m.size, "stored_size": m.stored_size, "objects": len(m.objects),
                "tables": len(src.get("row_counts", {})), "rows": sum(src.get("row_counts", {}).values()),
                "started_at": m.started_at, "finished_at": m.finished_at, "timings": self.timings,
                "swept": self.swept}


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
    swept = sweep_and_report(work_dir, reporter)
    with repo.lock("backup-postgres") as lock, work_directory(DUMP_DIR_PREFIX, work_dir) as tmp:
        dumpdir = tmp / "dump"
        writer = None
        try:
            with SnapshotSession(db_url) as snap:
                assert snap.conn is not None
                facts = snap.facts()
                encoding = server_encoding(snap.conn)
                tables = data_tables(snap.conn)
                plans: list[tuple[int, TablePart, list[str]]] = []
                for i, (schema, table, size) in enumerate(tables):
                    cols = copy_columns(snap.conn, schema, table)
                    n_parts = max(jobs, -(-size // PART_BYTES)) if size >= large_table_bytes else 1
                    plans += [(i, part, cols) for part in split_pages(schema, table, size, n_parts)]
                writer = repo.begin_backup(KIND, lock=lock)
                reporter.stage(f"backing up {facts.database} ({facts.database_size / 1e6:.0f} MB): "
                               f"{len(tables)} tables in {len(plans)} parts, {jobs} at a time")
                reporter.total(facts.database_size)
                procs: list[Any] = []
                errors: list[BaseException] = []

                def run_dump() -> None:
                    try:
                        pg_dump_directory(db_url, dumpdir, jobs=1, snapshot=snap.snapshot, bindir=bindir,
                                          exclude_table_data=[table_pattern(s, t) for s, t, _ in tables],
                                          on_start=procs.append)
                    except BaseException as exc:
                        errors.append(exc)

                dumper = threading.Thread(target=run_dump, name="pg_dump", daemon=True)
                dumper.start()
                copier = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="copy-out")
                try:
                    lock_tables(snap.conn, [(s, t) for s, t, _ in tables])
                    timings["lock_s"] = round(time.monotonic() - t0, 3)
                    part_futures = [copier.submit(_copy_part, writer, db_url, snap.snapshot, i, part, cols,
                                                  encoding, reporter) for i, part, cols in plans]
                    uploaded = _upload_while_dumping(writer, dumper, procs, dumpdir, jobs, reporter)
                    if errors:
                        raise errors[0]
                    timings["schema_s"] = round(time.monotonic() - t0, 3)
                    parts_done = _results(part_futures)
                except BaseException:
                    _stop_dump(procs, dumper)
                    copier.shutdown(wait=True, cancel_futures=True)
                    raise
                copier.shutdown(wait=True)
                if errors:
                    raise errors[0]
                row_counts: dict[str, int] = {f"{s}.{t}": 0 for s, t, _ in tables}
                copied_tables: dict[str, dict[str, Any]] = {}
                for (_i, part, cols), (name, rows) in zip(plans, parts_done, strict=True):
                    entry = copied_tables.setdefault(part.qualified, {"schema": part.schema, "table": part.table,
                                                                      "columns": cols, "parts": []})
                    entry["parts"].append({"name": name, "rows": rows, "first_page": part.first_page,
                                           "end_page": part.end_page})
                    row_counts[part.qualified] += rows
                row_counts = dict(sorted(row_counts.items()))
                timings["dump_s"] = round(time.monotonic() - t0, 3)
            # the snapshot can go; upload what pg_dump left (toc.dat, late files)
            rest = sorted(p for p in dumpdir.iterdir() if p.name not in uploaded)
            with ThreadPoolExecutor(max(1, jobs)) as pool:
                for f in [pool.submit(_put_file, writer, p, reporter) for p in rest]:
                    f.result()
            source = {
                "engine": "postgresql", "method": "pg_dump", "format": "directory", "jobs": jobs,
                "db_url": redact(db_url), **facts.to_dict(), "snapshot": snap.snapshot, "snapshot_time": snap.time,
                "row_counts": row_counts,
                "table_data": "copy", "encoding": encoding, "parallel_tables": dict(sorted(copied_tables.items())),
            }
            timings["total_s"] = round(time.monotonic() - t0, 3)
            source["timings"] = timings
            reporter.stage("writing manifest")
            manifest = writer.commit(source)
        except BaseException:
            if writer is not None:
                writer.abort()
            raise
    return LogicalBackupResult(manifest, timings, swept)


def _results(futures: list[Future[tuple[str, int]]]) -> list[tuple[str, int]]:
    """Every future's result, in order; the first failure (in time) is raised at once."""
    done, _ = wait(futures, return_when=FIRST_EXCEPTION)
    for f in done:
        if f.exception() is not None:
            raise f.exception()  # type: ignore[misc]
    return [f.result() for f in futures]


def _copy_part(writer: Any, db_url: str, snapshot: str, index: int, part: TablePart, cols: list[str],
               encoding: str, reporter: Reporter) -> tuple[str, int]:
    """Stream one table, or one page range of a large table, into one object; return
    (object name, rows)."""
    name = f"{TABLES_PREFIX}{index:04d}-p{part.index:03d}.copy"
    counter = RowCounter()

    def progress(chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            reporter.advance(len(chunk))
            yield chunk

    writer.put_object(name, progress(counter.wrap(copy_out(db_url, snapshot, part, cols, encoding=encoding))))
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
