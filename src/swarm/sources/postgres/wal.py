"""Server-side WAL facts and tools: positions, restore points, pg_waldump, pg_receivewal.

Every psycopg error is translated to a swarm error at this boundary (via ``conn.connect``).
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from swarm.errors import SourceError, SwarmError
from swarm.sources.postgres.basebackup import conninfo_args, libpq_env
from swarm.sources.postgres.binaries import tool
from swarm.sources.postgres.conn import connect


@dataclass(frozen=True)
class WalPosition:
    lsn: str
    tli: int
    time: datetime
    segment_size: int
    system_identifier: str
    in_recovery: bool


def wal_position(db_url: str) -> WalPosition:
    with connect(db_url) as conn:
        row = conn.execute(
            "SELECT pg_is_in_recovery(), now(), "
            "(SELECT timeline_id FROM pg_control_checkpoint()), "
            "(SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'), "
            "(SELECT system_identifier::text FROM pg_control_system())").fetchone()
        assert row is not None
        in_rec = bool(row[0])
        lsn_sql = "pg_last_wal_receive_lsn()" if in_rec else "pg_current_wal_lsn()"
        lsn_row = conn.execute(f"SELECT {lsn_sql}::text").fetchone()
        tli = int(row[2])
        if not in_rec:
            # the checkpoint's timeline lags after a promotion until the next checkpoint
            t = conn.execute("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)").fetchone()
            if t:
                tli = int(t[0], 16)
    return WalPosition(str(lsn_row[0]) if lsn_row and lsn_row[0] else "0/0", tli, row[1], int(row[3]), str(row[4]),
                       in_rec)


def switch_wal(db_url: str) -> str:
    """Close the current segment (so archive_command gets it); return the switch LSN."""
    with connect(db_url) as conn:
        row = conn.execute("SELECT pg_switch_wal()::text").fetchone()
    return str(row[0]) if row else ""


def create_restore_point(db_url: str, name: str) -> dict[str, Any]:
    with connect(db_url) as conn:
        row = conn.execute("SELECT pg_create_restore_point(%s)::text, now(), "
                           "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)", (name,)).fetchone()
        assert row is not None
        sw = conn.execute("SELECT pg_switch_wal()::text").fetchone()
    return {"name": name, "lsn": str(row[0]), "time": row[1].isoformat(), "tli": int(row[2], 16),
            "switch_lsn": str(sw[0]) if sw else None}


def backup_bounds(db_url: str) -> dict[str, Any]:
    """Facts taken just before/after a base backup: server time, the next xid, the snapshot's xmin."""
    with connect(db_url) as conn:
        row = conn.execute("SELECT now(), pg_snapshot_xmin(pg_current_snapshot())::text, "
                           "pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
    assert row is not None
    return {"time": row[0].isoformat(), "xmin": int(row[1]), "xmax": int(row[2])}


def cluster_size(db_url: str) -> int:
    """Bytes of every database of the cluster (about what a base backup reads, WAL aside)."""
    with connect(db_url) as conn:
        row = conn.execute("SELECT sum(pg_database_size(oid))::bigint FROM pg_database").fetchone()
    return int(row[0]) if row and row[0] else 0


def tablespace_count(db_url: str) -> int:
    with connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')"
                           ).fetchone()
    return int(row[0]) if row else 0


# ---- pg_waldump -------------------------------------------------------------------------------
_COMMIT_RE = re.compile(r"desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ [A-Z]+)")
_LSN_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+)")
_XID_RE = re.compile(r"tx:\s+(\d+)")


@dataclass(frozen=True)
class SegmentSummary:
    last_commit_time: str | None  # as pg_waldump prints it (server time zone)
    last_lsn: str | None
    max_xid: int | None
    commits: int


def summarize_segment(path: Path, *, bindir: str | None = None) -> SegmentSummary:
    """Last commit time, last record LSN and highest xid in one WAL segment file (pg_waldump).

    pg_waldump stops with an error at the end of valid WAL (a partial or just-switched
    segment); what it printed until then is what we want, so its exit status is ignored
    unless it printed nothing.
    """
    r = subprocess.run([tool("pg_waldump", bindir), str(path)], capture_output=True, text=True, check=False,
                       env={**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}, timeout=120)
    last_commit = None
    last_lsn = None
    max_xid: int | None = None
    commits = 0
    for line in r.stdout.splitlines():
        m = _LSN_RE.search(line)
        if m:
            last_lsn = m.group(1)
        x = _XID_RE.search(line)
        if x and int(x.group(1)):
            max_xid = max(max_xid or 0, int(x.group(1)))
        c = _COMMIT_RE.search(line)
        if c:
            last_commit = c.group(1)
            commits += 1
    if last_lsn is None and r.returncode != 0 and "could not find a valid record" not in r.stderr:
        raise SourceError(f"pg_waldump failed on {path.name}: {r.stderr.strip()[-400:]}")
    return SegmentSummary(last_commit, last_lsn, max_xid, commits)


# ---- pg_receivewal ----------------------------------------------------------------------------
def create_slot_args(db_url: str, slot: str, bindir: str | None = None) -> list[str]:
    return [tool("pg_receivewal", bindir), *conninfo_args(db_url), "--slot", slot, "--create-slot",
            "--if-not-exists", "--no-password"]


def create_slot(db_url: str, slot: str, bindir: str | None = None) -> None:
    r = subprocess.run(create_slot_args(db_url, slot, bindir), capture_output=True, text=True, check=False,
                       env=libpq_env(db_url), timeout=60)
    if r.returncode != 0:
        raise SourceError(f"cannot create replication slot {slot}: {r.stderr.strip()[-600:]}",
                          hint="Check max_replication_slots and that the user has the REPLICATION privilege.")


def start_receivewal(db_url: str, spool: Path, slot: str, bindir: str | None = None,
                     log: Path | None = None) -> subprocess.Popen[bytes]:
    """Run ``pg_receivewal`` into ``spool`` from ``slot`` (no own loop: the caller restarts it)."""
    args = [tool("pg_receivewal", bindir), *conninfo_args(db_url), "-D", str(spool), "--slot", slot,
            "--no-loop", "--no-password", "--status-interval", "1", "--synchronous"]
    out = open(log, "ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(args, stdout=out, stderr=out, env=libpq_env(db_url), start_new_session=True)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # pg_receivewal flushes and exits on SIGINT
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# ---- archiver health and base backup progress -------------------------------------------------
@dataclass(frozen=True)
class ArchiverState:
    """``pg_stat_archiver`` and the archiving settings, as one server answers them."""

    archive_mode: str
    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime | None
    now: datetime
    log_excerpt: str | None = None  # the server log's lines about the failure, where we may read them

    @property
    def failing(self) -> bool:
        """Archiving failed and has not succeeded since."""
        if not self.failed_count or self.last_failed_time is None:
            return False
        return self.last_archived_time is None or self.last_failed_time > self.last_archived_time

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {"archive_mode": self.archive_mode, "archived_count": self.archived_count,
                "last_archived_wal": self.last_archived_wal, "last_archived_time": iso(self.last_archived_time),
                "failed_count": self.failed_count, "last_failed_wal": self.last_failed_wal,
                "last_failed_time": iso(self.last_failed_time), "failing": self.failing,
                "seconds_since_last_archive": round((self.now - self.last_archived_time).total_seconds(), 1)
                if self.last_archived_time else None, "log_excerpt": self.log_excerpt}


_LOG_TAIL_SQL = """
SELECT pg_read_file(f, greatest(0, (pg_stat_file(f)).size - 65536), 65536)
FROM (SELECT pg_current_logfile() AS f) x WHERE f IS NOT NULL
"""


def archiver_state(db_url: str, *, data_dir_log: bool = True) -> ArchiverState:
    """The archiver's counters; with the failure, the server log's lines about it when the log can be read
    (the logging collector's file through ``pg_read_file``, or the failure ``wal push`` recorded in its
    spool beside a local data directory)."""
    with connect(db_url) as conn:
        row = conn.execute("SELECT current_setting('archive_mode'), archived_count, last_archived_wal, "
                           "last_archived_time, failed_count, last_failed_wal, last_failed_time, now() "
                           "FROM pg_stat_archiver").fetchone()
        assert row is not None
        state = ArchiverState(str(row[0]), int(row[1]), row[2], row[3], int(row[4]), row[5], row[6], row[7])
        if not state.failing or not data_dir_log:
            return state
        excerpt = None
        try:
            tail = conn.execute(_LOG_TAIL_SQL).fetchone()
            if tail and tail[0]:
                excerpt = archive_failure_lines(str(tail[0]))
        except Exception:  # no pg_read_file privilege: fall back to the spool
            excerpt = None
        if excerpt is None:
            try:
                ddir = conn.execute("SELECT current_setting('data_directory')").fetchone()
            except Exception:
                ddir = None
            if ddir and ddir[0]:
                excerpt = recorded_push_failure(Path(str(ddir[0])))
    return ArchiverState(**{**state.__dict__, "log_excerpt": excerpt})


def archive_failure_lines(log: str, limit: int = 6) -> str | None:
    """The last failed archive attempt in a server log: the command's own error lines and PostgreSQL's
    "archive command failed" line."""
    lines = log.splitlines()
    idx = [i for i, ln in enumerate(lines) if "archive command failed" in ln]
    if not idx:
        return None
    end = idx[-1]
    start = end
    while start > 0 and end - start < limit and "archive command failed" not in lines[start - 1] \
            and "The failed archive command was" not in lines[start - 1]:
        start -= 1
    return "\n".join(ln.strip() for ln in lines[start:end + 1] if ln.strip())


def recorded_push_failure(datadir: Path) -> str | None:
    """The last failure ``wal push`` recorded in the spool beside ``datadir`` (see wal_archive)."""
    f = datadir.parent / f"{datadir.name}.swarm-spool" / "push" / "last-failure.txt"
    try:
        return f.read_text(errors="replace").strip()[-2000:] or None
    except OSError:
        return None


def basebackup_progress(db_url: str, application_name: str) -> tuple[int, str] | None:
    """(walsender pid, phase) of the running base backup whose connection has ``application_name``."""
    with connect(db_url) as conn:
        row = conn.execute("SELECT p.pid, p.phase FROM pg_stat_progress_basebackup p JOIN pg_stat_activity a "
                           "USING (pid) WHERE a.application_name = %s", (application_name,)).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def terminate_walsenders(db_url: str, application_name: str) -> int:
    """End the server side of our replication connections (a walsender waiting for archiving does not notice
    its client is gone). Best effort: returns how many were ended."""
    try:
        with connect(db_url) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
                                "AND backend_type = 'walsender'", (application_name,)).fetchall()
    except SwarmError:
        return 0
    return sum(1 for r in rows if r[0])
