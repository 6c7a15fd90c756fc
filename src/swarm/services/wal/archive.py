"""Continuous WAL archiving: push (archive_command), fetch (restore_command), status, stream.

``push`` and ``fetch`` run once per WAL file, started by the server, so they import as
little as possible (no boto3 for file:// repositories, no psycopg) and do one store write
or read each in the common case.

push semantics (barman/pgBackRest lessons):

* success (exit 0) only after the store's ``put`` returned: an fsynced rename on file://,
  a completed PutObject on S3;
* the same name with the same content again: success (the server retries after a crash);
* the same name with different content: refused, both kept (``wal/conflicts/``);
* a segment whose long page header names another system identifier than the repository's
  cluster: refused before anything is written;
* ``push_ahead``: the segments the server has marked ``.ready`` after this one are pushed
  in the same run and remembered in a spool (``spool_root``) (``<name>.ok`` holding the SHA-256 of what was
  pushed); when the server asks for one of them, a matching hash answers at once.

fetch: exit 1 without noise when the file is not archived (the server probes for
``.history`` files and for the segment after the last). A segment archived only as
``<segment>.partial`` (what ``wal stream`` uploads every second) is served in its place, so
recovery replays up to the newest streamed commit and then ends. Each fetch starts (at most one) a
detached prefetcher that downloads the next ``prefetch`` segments into a spool beside the
data directory, so replay does not wait on the network.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from swarm.errors import RefusedError, SwarmError
from swarm.model import wal
from swarm.repo import Repository

PUSH_AHEAD = 8
PREFETCH = 8


# ---- spool -------------------------------------------------------------------------------------
def spool_root(datadir: Path) -> Path:
    """``<data dir's parent>/<data dir name>.swarm-spool``: one spool per cluster, outside its data directory."""
    return datadir.parent / f"{datadir.name}.swarm-spool"


def spool_for(wal_file: Path, kind: str) -> Path | None:
    """``spool_root(datadir)/<kind>`` if we may write there, else None (no spool: no push-ahead/prefetch)."""
    datadir = wal_file.resolve().parent
    if datadir.name == "pg_wal":
        datadir = datadir.parent
    d = spool_root(datadir) / kind
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return d if os.access(d, os.W_OK) else None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# ---- push --------------------------------------------------------------------------------------
PUSH_FAILURE = "last-failure.txt"


def record_push_failure(wal_file: Path, message: str) -> None:
    """Remember why pushing ``wal_file`` failed, in the push spool beside the data directory, so a
    physical backup waiting on the archive can name the cause (the server log may not be readable)."""
    spool = spool_for(wal_file, "push")
    if spool is None:
        return
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with contextlib.suppress(OSError):
        _write_atomic(spool / PUSH_FAILURE, f"{stamp} wal push {wal_file.name}: {message}\n".encode())


def clear_push_failure(wal_file: Path) -> None:
    d = wal_file.resolve().parent
    datadir = d.parent if d.name == "pg_wal" else d
    with contextlib.suppress(OSError):
        (spool_root(datadir) / "push" / PUSH_FAILURE).unlink()


@dataclass
class PushResult:
    name: str
    outcome: str  # stored | duplicate | already-pushed
    bytes: int
    pushed_ahead: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome, "bytes": self.bytes, "pushed_ahead": self.pushed_ahead,
                "seconds": round(self.seconds, 3)}


def _check_identity(repo: Repository, name: str, data: bytes) -> None:
    kind = wal.classify(name)
    sysid = wal.header_system_identifier(data[:64]) if kind in ("segment", "partial") else None
    ident = repo.cluster_identity()
    if sysid is not None:
        repo.bind_cluster(str(sysid), segment_size=len(data) if kind == "segment" else None)
    elif ident is None:
        raise RefusedError(f"{name} is the first WAL file offered to {repo.url}, and it does not say which "
                           "cluster it comes from", hint="Push a WAL segment (or take a physical backup) first.")


def push_wal(repo: Repository, path: Path, *, push_ahead: int = PUSH_AHEAD) -> PushResult:
    t0 = time.monotonic()
    name = path.name
    wal.classify(name)  # ValueError for anything else
    data = path.read_bytes()
    lease_spool = spool_for(path, "push")
    spool = lease_spool if push_ahead else None
    if spool is not None:
        marker = spool / f"{name}.ok"
        if marker.exists():
            ok = marker.read_text().strip() == hashlib.sha256(data).hexdigest()
            marker.unlink(missing_ok=True)
            if ok:
                return PushResult(name, "already-pushed", len(data), seconds=time.monotonic() - t0)
    hold_lease(repo, path, lease_spool)
    _check_identity(repo, name, data)
    outcome = repo.put_wal(name, data, overwrite=wal.is_partial_name(name))
    result = PushResult(name, outcome, len(data))
    if spool is not None and wal.is_segment_name(name):
        result.pushed_ahead = _push_ahead(repo, path, spool, push_ahead)
    result.seconds = time.monotonic() - t0
    return result


LEASE_MEMO = "lease.json"


def hold_lease(repo: Repository, wal_file: Path, spool: Path | None) -> None:
    """Hold this cluster's WAL lease (the repository's shared lock for ``wal push``) before writing.

    The time of the lease's last refresh is remembered in the push spool (``lease.json``, per
    repository), so the common push reads one small local file and makes no store round trip;
    the lease is refreshed in the store only when that time is older than a fraction of its TTL
    (see ``swarm.repo.locks.hold_wal_lease``). Without a spool every push refreshes it. A lost
    memo only costs one refresh. Raises LockedError (exit 6) while maintenance holds the
    repository; PostgreSQL then retries the push.
    """
    d = wal_file.resolve().parent
    datadir = d.parent if d.name == "pg_wal" else d
    owner = f"{socket.gethostname()}:{datadir}"
    memo = spool / LEASE_MEMO if spool is not None else None
    remembered: datetime | None = None
    if memo is not None:
        try:
            m = json.loads(memo.read_bytes())
            if m.get("repo_id") == repo.config.repo_id and m.get("owner") == owner:
                remembered = datetime.fromisoformat(m["refreshed"])
        except (OSError, ValueError, KeyError, TypeError):
            remembered = None
    refreshed = repo.hold_wal_lease(owner, remembered)
    if memo is not None and refreshed != remembered:
        with contextlib.suppress(OSError):
            _write_atomic(memo, json.dumps({"repo_id": repo.config.repo_id, "owner": owner,
                                            "refreshed": refreshed.isoformat()}).encode())


def _push_ahead(repo: Repository, path: Path, spool: Path, limit: int) -> list[str]:
    status = path.parent / "archive_status"
    try:
        ready = sorted(p.name[:-6] for p in status.iterdir() if p.name.endswith(".ready"))
    except OSError:
        return []
    done = []
    for nxt in [n for n in ready if n > path.name and wal.is_segment_name(n)][:limit]:
        marker = spool / f"{nxt}.ok"
        if marker.exists():
            continue
        try:
            data = (path.parent / nxt).read_bytes()
            _check_identity(repo, nxt, data)
            repo.put_wal(nxt, data)
        except (OSError, SwarmError):
            break  # the server will ask for it and see the error then
        _write_atomic(marker, hashlib.sha256(data).hexdigest().encode())
        done.append(nxt)
    return done


def push_partial_or_file(repo: Repository, name: str, data: bytes) -> str:
    """Push bytes we hold in memory (the streamer's spool); partials overwrite, the rest keep the rules."""
    _check_identity(repo, name, data)
    return repo.put_wal(name, data, overwrite=wal.is_partial_name(name))


# ---- fetch -------------------------------------------------------------------------------------
def take_from_spool(name: str, dest: Path, *, prefetch: int = PREFETCH,
                    spawn: Callable[[list[str]], None] | None = None) -> bool:
    """Move a prefetched ``name`` into ``dest`` if the spool has it (needs no repository: the fast path)."""
    if not prefetch or not wal.is_segment_name(name):
        return False
    spool = spool_for(dest, "fetch")
    if spool is None:
        return False
    cached = spool / name
    try:
        os.replace(cached, dest)
    except FileNotFoundError:
        return False
    _kick_prefetch(name, spool, prefetch, spawn)
    return True


def fetch_wal(repo: Repository, name: str, dest: Path, *, prefetch: int = PREFETCH,
              spawn: Callable[[list[str]], None] | None = None) -> bool:
    """Write archived ``name`` to ``dest``; False (and nothing written) if it is not archived."""
    wal.classify(name)
    if take_from_spool(name, dest, prefetch=prefetch, spawn=spawn):
        return True
    spool = spool_for(dest, "fetch") if prefetch else None
    data = repo.find_wal(name)
    if data is None:
        if not wal.is_segment_name(name):
            return False
        # the newest streamed WAL exists only as <segment>.partial (wal stream): serve it
        data = repo.find_wal(wal.partial_name(wal.parse_segment(name)))
        if data is None:
            return False
    _write_atomic(dest, data)
    if spool is not None and wal.is_segment_name(name):
        _kick_prefetch(name, spool, prefetch, spawn)
    return True


def _kick_prefetch(name: str, spool: Path, count: int, spawn: Callable[[list[str]], None] | None) -> None:
    if not wal.is_segment_name(name):
        return
    # drop what replay has passed
    for p in spool.iterdir():
        if wal.is_segment_name(p.name) and p.name[:8] == name[:8] and p.name <= name:
            p.unlink(missing_ok=True)
    pidfile = spool / "prefetch.pid"
    try:
        pid = int(pidfile.read_text())
        os.kill(pid, 0)
        return  # one prefetcher at a time
    except (OSError, ValueError):
        pass
    args = ["prefetch", name, "--spool", str(spool), "--count", str(count)]
    if spawn is not None:
        spawn(args)


def prefetch_after(repo: Repository, name: str, spool: Path, count: int) -> list[str]:
    """Download the ``count`` segments after ``name`` into ``spool``; stop at the first missing one."""
    pidfile = spool / "prefetch.pid"
    try:
        fd = os.open(pidfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        try:
            os.kill(int(pidfile.read_text()), 0)
            return []
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            return []
    got = []
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        seg = wal.parse_segment(name)
        for _ in range(count):
            seg = seg.next()
            target = spool / seg.name
            if target.exists():
                continue
            data = repo.find_wal(seg.name)
            if data is None:
                break
            _write_atomic(target, data)
            got.append(seg.name)
    finally:
        pidfile.unlink(missing_ok=True)
    return got


def spawn_detached(argv_prefix: list[str]) -> Callable[[list[str]], None]:
    """A spawner that runs ``argv_prefix + args`` in the background, detached from the server's process."""
    def run(args: list[str]) -> None:
        with contextlib.suppress(OSError):
            subprocess.Popen([*argv_prefix, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    return run


def self_argv() -> list[str]:
    """How to run this swarm again (same interpreter, same search path; the server user's launcher if that
    is how we were started)."""
    launcher = os.environ.get("SWARM_SELF")
    return [launcher] if launcher else [sys.executable, "-m", "swarm.cli.main"]


# ---- inventory and status ----------------------------------------------------------------------
@dataclass
class ArchiveInventory:
    segments: dict[int, list[wal.Segment]]
    partials: list[str]
    histories: list[str]
    conflicts: list[str]
    modified: dict[str, datetime]
    segment_size: int

    def has(self, name: str) -> bool:
        return name in self.modified


def inventory(repo: Repository) -> ArchiveInventory:
    ident = repo.cluster_identity() or {}
    size = int(ident.get("segment_size") or wal.DEFAULT_SEGMENT_SIZE)
    segs: dict[int, list[wal.Segment]] = {}
    partials, histories, conflicts = [], [], []
    modified: dict[str, datetime] = {}
    for f in repo.wal_files():
        name = f.name
        if f.conflict:
            conflicts.append(name)
            continue
        if f.modified is not None:
            modified[name] = f.modified
        try:
            kind = wal.classify(name)
        except ValueError:
            continue
        if kind == "segment":
            s = wal.parse_segment(name, size)
            segs.setdefault(s.tli, []).append(s)
        elif kind == "partial":
            partials.append(name)
        elif kind == "history":
            histories.append(name)
    for v in segs.values():
        v.sort()
    return ArchiveInventory(segs, sorted(partials), sorted(histories), conflicts, modified, size)


@dataclass
class WalStatus:
    repo: str
    system_identifier: str | None
    timelines: list[dict[str, Any]]
    gaps: list[dict[str, str]]
    conflicts: list[str]
    server: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)  # each makes the status not OK
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.gaps and not self.conflicts and not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repo, "system_identifier": self.system_identifier, "ok": self.ok,
                "timelines": self.timelines, "gaps": self.gaps, "conflicts": self.conflicts, "server": self.server,
                "problems": self.problems, "warnings": self.warnings}


STALE_ARCHIVE_S = 600.0  # WAL waiting this long behind the last archive is worth a warning


def wal_status(repo: Repository, *, db_url: str | None = None, since: dict[int, str] | None = None,
               warnings: list[str] | None = None) -> WalStatus:
    """Newest archived position per timeline, holes, and (with ``db_url``) the live lag and the
    archiver's health: failures since the last success make the status not OK.

    ``since`` (timeline → first segment needed, e.g. the oldest backup's start) extends the
    gap check to the segments before the first one archived.
    """
    inv = inventory(repo)
    ident = repo.cluster_identity()
    timelines = []
    gaps: list[dict[str, str]] = []
    for tli, segs in sorted(inv.segments.items()):
        newest = segs[-1]
        partial = [p for p in inv.partials if p.startswith(f"{tli:08X}")]
        timelines.append({"timeline": tli, "segments": len(segs), "oldest": segs[0].name, "newest": newest.name,
                          "newest_end_lsn": str(newest.end), "partial": partial[-1] if partial else None,
                          "newest_archived_at": _iso(inv.modified.get(partial[-1] if partial and
                                                                      partial[-1] > newest.name else newest.name))})
        first = segs[0]
        if since and tli in since:
            first = min(first, wal.parse_segment(since[tli], inv.segment_size))
        for g in wal.find_gaps(segs, first, newest):
            gaps.append({"timeline": f"{tli}", "missing": g.name})
    status = WalStatus(repo.url, str(ident["system_identifier"]) if ident else None, timelines, gaps, inv.conflicts,
                       warnings=list(warnings or []))
    if db_url:
        from swarm.sources.postgres.wal import archiver_state, wal_position

        pos = wal_position(db_url)
        cur = wal.Lsn.parse(pos.lsn)
        mine = next((t for t in timelines if t["timeline"] == pos.tli), None)
        archived_to = wal.Lsn.parse(mine["newest_end_lsn"]) if mine else wal.Lsn(0)
        lag = max(0, cur - archived_to)
        last = inv.modified.get(mine["newest"]) if mine else None
        age = round((datetime.now(UTC) - last).total_seconds(), 1) if last else None
        status.server = {"lsn": pos.lsn, "timeline": pos.tli, "current_segment": wal.segment_of(cur, pos.tli,
                                                                                                 pos.segment_size).name,
                         "lag_bytes": lag, "archived_to_lsn": str(archived_to),
                         "seconds_since_last_archive": age}
        if ident and str(ident["system_identifier"]) != pos.system_identifier:
            status.server["warning"] = (f"the server is cluster {pos.system_identifier}, the repository holds "
                                        f"{ident['system_identifier']}")
            status.problems.append(status.server["warning"])
        if not pos.in_recovery:
            arch = archiver_state(db_url)
            status.server["archiver"] = arch.to_dict()
            if arch.failing:
                since_ok = (f"{arch.last_archived_wal} {_age(arch.now, arch.last_archived_time)} ago"
                            if arch.last_archived_time else "never")
                status.problems.append(
                    f"archive_command is failing: {arch.failed_count} failed attempts, the last for "
                    f"{arch.last_failed_wal} {_age(arch.now, arch.last_failed_time)} ago; last success: {since_ok}"
                    + (f". The server says: {arch.log_excerpt}" if arch.log_excerpt else ""))
            elif arch.archive_mode == "off":
                status.warnings.append("archive_mode is off on the server: WAL reaches the repository only through "
                                       "`swarm admin wal stream`")
            if age is not None and age > STALE_ARCHIVE_S and lag >= pos.segment_size:
                status.warnings.append(f"the newest archived segment is {age:.0f} s old while "
                                       f"{lag} bytes of WAL wait to be archived")
    return status


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "?"
    s = max(0.0, (now - then).total_seconds())
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h"


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z") if t else None
