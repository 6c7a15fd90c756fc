"""``wal stream``: pg_receivewal into a local spool, shipped to the repository every second.

For an RPO of seconds instead of ``archive_timeout``: pg_receivewal streams WAL as the
server writes it (``--synchronous`` flushes as it receives) from a replication slot, so the
server keeps WAL until we have it, across restarts of either side. Every ``interval``:

* each completed segment in the spool is pushed (same duplicate rules as ``wal push``;
  ``archive_command`` may push the same segment too: identical bytes are a duplicate) and
  then removed from the spool;
* the current ``<segment>.partial`` is uploaded under that name, replacing the previous
  upload (its size only grows); restore uses it only if an operator renames it.

If pg_receivewal exits (the server restarted, the network dropped) it is restarted with
backoff (0.5 s doubling to 10 s); the slot resumes exactly where it stopped, so no gap.
Crash behaviour: segments stay in the spool until pushed; a restart pushes them first.

The stream holds the repository's shared lock while it runs (so prune waits for it). If the
lock is lost (not renewed in time, broken as stale), shipping pauses and the lock is taken
again; while maintenance holds the repository, WAL waits in the spool (and the slot keeps it
on the server) and the failed attempts are counted in ``errors``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import SwarmError
from swarm.model import wal
from swarm.repo import Repository
from swarm.services.wal.archive import push_partial_or_file


@dataclass
class StreamResult:
    pushed: list[str] = field(default_factory=list)
    partial_uploads: int = 0
    restarts: int = 0
    unreachable: int = 0  # restart attempts while the server was down (retried with backoff)
    last_unreachable: str | None = None
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"pushed": self.pushed, "partial_uploads": self.partial_uploads, "restarts": self.restarts,
                "unreachable": self.unreachable, "last_unreachable": self.last_unreachable,
                "errors": self.errors[-10:], "seconds": round(self.seconds, 1)}


def ship_spool(repo: Repository, spool: Path, result: StreamResult, last_partial: dict[str, int]) -> None:
    """Push completed segments (then delete them locally) and the current partial if it grew."""
    for p in sorted(spool.iterdir()):
        name = p.name
        if wal.is_segment_name(name) or wal.is_history_name(name):
            try:
                push_partial_or_file(repo, name, p.read_bytes())
            except SwarmError as exc:
                result.errors.append(f"{name}: {exc.message}")
                continue
            result.pushed.append(name)
            p.unlink()
            last_partial.pop(name + ".partial", None)
    partials = sorted(p for p in spool.iterdir() if wal.is_partial_name(p.name))
    if partials:
        p = partials[-1]
        data = p.read_bytes()
        # pg_receivewal pre-allocates the .partial with zeros; what matters is the content
        sig = hash(data)
        if last_partial.get(p.name) != sig:
            try:
                push_partial_or_file(repo, p.name, data)
                last_partial[p.name] = sig
                result.partial_uploads += 1
            except SwarmError as exc:
                result.errors.append(f"{p.name}: {exc.message}")


def stream_wal(repo: Repository, db_url: str, spool: Path, *, slot: str = "swarm", duration: float | None = None,
               interval: float = 1.0, bindir: str | None = None) -> StreamResult:
    from swarm.sources.postgres.wal import create_slot, start_receivewal, stop_process, wal_position

    spool.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    result = StreamResult()
    pos = wal_position(db_url)
    repo.bind_cluster(pos.system_identifier, segment_size=pos.segment_size)
    create_slot(db_url, slot, bindir)
    backoff = 0.5
    last_partial: dict[str, int] = {}
    lock = repo.shared_lock(command="wal stream").acquire()
    proc = start_receivewal(db_url, spool, slot, bindir, log=spool.parent / f"{spool.name}.log")

    def ship() -> None:
        nonlocal lock
        try:
            lock.ensure_held()
        except SwarmError:
            lock.release()
            try:
                lock = repo.shared_lock(command="wal stream").acquire()
            except SwarmError as exc:
                result.errors.append(f"shared lock: {exc.message}")
                return
        ship_spool(repo, spool, result, last_partial)

    try:
        while duration is None or time.monotonic() - t0 < duration:
            time.sleep(interval)
            ship()
            if proc.poll() is not None:
                result.restarts += 1
                time.sleep(backoff)
                backoff = min(10.0, backoff * 2)
                try:
                    create_slot(db_url, slot, bindir)
                except SwarmError as exc:
                    result.unreachable += 1
                    result.last_unreachable = exc.message
                    continue
                proc = start_receivewal(db_url, spool, slot, bindir, log=spool.parent / f"{spool.name}.log")
            else:
                backoff = 0.5
    finally:
        stop_process(proc)
        try:
            ship()
        finally:
            lock.release()
        result.seconds = time.monotonic() - t0
    return result
