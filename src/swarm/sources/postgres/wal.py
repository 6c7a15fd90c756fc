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

from swarm.errors import SourceError
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
