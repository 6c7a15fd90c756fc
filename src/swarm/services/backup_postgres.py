"""Logical PostgreSQL backup: ``pg_dump -Fd -j N`` of one snapshot into the repository.

Order of steps, and what a crash between them leaves:

1. take the ``backup-postgres`` repository lock (a crash leaves a lock that goes stale);
2. open a REPEATABLE READ transaction and export its snapshot;
3. write the data key, start ``pg_dump --snapshot`` into a local staging directory and,
   while it runs, count every table's rows in the same snapshot and upload each table
   file as soon as pg_dump closes it (then delete it from staging);
4. after pg_dump exits, upload the rest (``toc.dat``) and write the manifest, last.

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
from swarm.sources.postgres.conn import SnapshotSession, redact
from swarm.sources.postgres.dump import finished_data_files, pg_dump_directory

KIND = "pg-logical"
DUMP_PREFIX = "pgdump/"
READ_CHUNK = 4 << 20


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
                            reporter: Reporter | None = None, bindir: str | None = None) -> LogicalBackupResult:
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    with repo.lock("backup-postgres") as lock, tempfile.TemporaryDirectory(prefix="swarm-dump-", dir=work_dir) as tmp:
        dumpdir = Path(tmp) / "dump"
        writer = None
        try:
            with SnapshotSession(db_url) as snap:
                facts = snap.facts()
                writer = repo.begin_backup(KIND, lock=lock)
                reporter.stage(f"dumping {facts.database} ({facts.database_size / 1e6:.0f} MB) with {jobs} jobs")
                reporter.total(facts.database_size)
                procs: list[Any] = []
                errors: list[BaseException] = []

                def run_dump() -> None:
                    try:
                        pg_dump_directory(db_url, dumpdir, jobs=jobs, snapshot=snap.snapshot, bindir=bindir,
                                          on_start=procs.append)
                    except BaseException as exc:
                        errors.append(exc)

                dumper = threading.Thread(target=run_dump, name="pg_dump", daemon=True)
                dumper.start()
                try:
                    row_counts = snap.count_rows()
                    timings["count_s"] = round(time.monotonic() - t0, 3)
                    uploaded = _upload_while_dumping(writer, dumper, procs, dumpdir, jobs, reporter)
                except BaseException:
                    _stop_dump(procs, dumper)
                    raise
                if errors:
                    raise errors[0]
                timings["dump_s"] = round(time.monotonic() - t0, 3)
            # pg_dump is done: the snapshot can go; upload what is left (toc.dat, late files)
            rest = sorted(p for p in dumpdir.iterdir() if p.name not in uploaded)
            with ThreadPoolExecutor(max(1, jobs)) as pool:
                for f in [pool.submit(_put_file, writer, p, reporter) for p in rest]:
                    f.result()
            source = {
                "engine": "postgresql", "method": "pg_dump", "format": "directory", "jobs": jobs,
                "db_url": redact(db_url), **facts.to_dict(), "snapshot": snap.snapshot, "row_counts": row_counts,
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
