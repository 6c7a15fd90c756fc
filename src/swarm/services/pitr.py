"""Point-in-time recovery: a physical backup + archived WAL, replayed to a target.

``plan_pitr`` has no side effects: it picks the base backup for the target and refuses,
with the reason and what would work instead, when

* the data directory is not empty, or a server runs in it;
* the target is before the oldest backup's end (it names the earliest restorable point);
* a WAL segment between the backup's start and the target is missing (it names it);
* the target is after the newest archived WAL (it names the newest reachable time/LSN:
  the newest segment is fetched and read with pg_waldump for its last commit);
* a restore point is not known to the repository.

``execute_pitr`` writes the files (blocks read by byte range, several files at once),
the recovery settings (``restore_command`` = ``swarm admin wal fetch %f %p`` with a config
the server user can read, ``recovery_target_*``, ``recovery_target_action = promote``,
``recovery_target_timeline`` = the newest timeline reachable from the backup, named
explicitly) and ``recovery.signal``; with ``start`` it starts the
server, waits until recovery stopped at the target and the server was promoted, and reports
the LSN reached and the time of the last transaction replayed.

Crash behaviour: an interrupted execute leaves a partly written data directory without a
running server; run it again into a new (or emptied) directory.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from swarm.config import Settings
from swarm.errors import IntegrityError, NotFoundError, RefusedError, SourceError, SwarmError
from swarm.model import wal
from swarm.model.manifest import Manifest
from swarm.model.targets import RecoveryTarget, parse_time
from swarm.repo import Repository
from swarm.repo.format import restore_point_key, wal_key
from swarm.repo.packs import Location
from swarm.services.physical_backup import load_index, physical_backups
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.wal_archive import ArchiveInventory, inventory
from swarm.storage.base import ObjectNotFound

MAX_SPAN = 8 << 20  # coalesce adjacent frames of one pack into range reads up to this size


@dataclass
class PitrPlan:
    backup: Manifest
    target: RecoveryTarget
    datadir: Path
    port: int | None
    start: bool
    timeline_path: list[int]
    wal_from: str
    wal_to: str
    newest_reachable: dict[str, Any]
    earliest_restorable: dict[str, Any]
    archive: bool = True

    def to_dict(self) -> dict[str, Any]:
        s = self.backup.source
        return {"backup_id": self.backup.id, "backup_stop_lsn": s.get("stop_lsn"),
                "backup_stop_time": s.get("stop_time"),
                "target": self.target.to_dict(), "datadir": str(self.datadir), "port": self.port, "start": self.start,
                "timelines": self.timeline_path, "wal_from": self.wal_from, "wal_to": self.wal_to,
                "newest_reachable": self.newest_reachable, "earliest_restorable": self.earliest_restorable,
                "size": s.get("size"), "files": s.get("files")}


@dataclass
class PitrResult:
    plan: PitrPlan
    files: int = 0
    bytes: int = 0
    started: bool = False
    port: int | None = None
    restored_lsn: str | None = None
    timeline: int | None = None
    last_transaction_time: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(), "files": self.files, "bytes": self.bytes, "started": self.started,
                "port": self.port, "restored_lsn": self.restored_lsn, "timeline": self.timeline,
                "last_transaction_time": self.last_transaction_time, "timings": self.timings,
                "db_url": f"postgresql://swarm@127.0.0.1:{self.port}/postgres" if self.started else None,
                "start_command": pg_ctl_command(self.plan.datadir, "start"),
                "stop_command": pg_ctl_command(self.plan.datadir, "stop")}


def pg_ctl_command(datadir: Path, action: str) -> str:
    """The command an operator runs to start or stop a restored cluster (as the server's user)."""
    import os

    from swarm.sources.postgres.binaries import find_bindir

    try:
        pg_ctl = str(find_bindir(need="pg_ctl") / "pg_ctl")
    except SwarmError:
        pg_ctl = "pg_ctl"
    cmd = f"{pg_ctl} -D {datadir} {action}"
    return f"runuser -u postgres -- {cmd}" if os.geteuid() == 0 else cmd


# ---- restore points ------------------------------------------------------------------------------
def record_restore_point(repo: Repository, point: dict[str, Any]) -> None:
    repo.store.put(restore_point_key(point["name"]), json.dumps(point, default=str).encode())


def make_restore_point(repo: Repository, db_url: str, name: str, *,
                       wait_archived_s: float = 30.0) -> dict[str, Any]:
    """``pg_create_restore_point`` + ``pg_switch_wal`` (so the point is archived), recorded in the repository."""
    from swarm.sources.postgres.wal import create_restore_point

    RecoveryTarget("name", name)  # validates the name
    point = create_restore_point(db_url, name)
    record_restore_point(repo, point)
    # wait (bounded) until the segment holding the point is archived, so a restore to it can start now
    ident = repo.cluster_identity() or {}
    seg = wal.segment_of(wal.Lsn.parse(point["lsn"]), int(point["tli"]),
                         int(ident.get("segment_size") or wal.DEFAULT_SEGMENT_SIZE))
    deadline = time.monotonic() + wait_archived_s
    while repo.store.stat(wal_key(seg.name)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    point["archived"] = repo.store.stat(wal_key(seg.name)) is not None
    point["segment"] = seg.name
    return point


def load_restore_point(repo: Repository, name: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads(repo.store.get(restore_point_key(name))))
    except ObjectNotFound:
        return None


# ---- planning ------------------------------------------------------------------------------------
def _check_datadir(datadir: Path) -> None:
    if (datadir / "postmaster.pid").exists():
        raise RefusedError(f"a PostgreSQL server is running in {datadir} (postmaster.pid exists)",
                           hint="Stop it and choose an empty directory; a restore never writes over a cluster.")
    if datadir.exists() and (not datadir.is_dir() or any(datadir.iterdir())):
        raise RefusedError(f"{datadir} is not empty",
                           hint="Restore into a new or empty directory (move the old one away first).")


def _stop_time(m: Manifest) -> datetime:
    return parse_time(str(m.source["stop_time"]))


def _timeline_path(repo: Repository, inv: ArchiveInventory, base_tli: int, base_stop: wal.Lsn) -> tuple[
        list[int], dict[int, wal.Lsn]]:
    """Timelines recovery follows from a backup ending at ``base_stop``: up to the newest timeline that
    branched off after it, and the LSN where each ancestor was left."""
    best: list[int] = [base_tli]
    switches: dict[int, wal.Lsn] = {}
    for name in sorted(inv.histories, reverse=True):
        tli = wal.parse_history_name(name)
        if tli <= base_tli:
            continue
        try:
            hist = wal.parse_history(repo.get_wal(name).decode())
        except (ObjectNotFound, ValueError, UnicodeDecodeError):
            continue
        points = wal.timeline_switch_points(hist)
        if base_tli in points and points[base_tli] >= base_stop:
            best = [base_tli] + [e.parent_tli for e in hist if e.parent_tli > base_tli] + [tli]
            switches = points
            break
    return best, switches


def plan_pitr(repo: Repository, target: RecoveryTarget, datadir: Path, *, backup_id: str | None = None,
              port: int | None = None, start: bool = False, bindir: str | None = None) -> PitrPlan:
    datadir = Path(datadir).absolute()
    _check_datadir(datadir)
    ident = repo.cluster_identity()
    backups = physical_backups(repo, str(ident["system_identifier"]) if ident else None)
    if not backups:
        raise NotFoundError(f"no physical backup in {repo.url}",
                            hint="Take one with `swarm admin backup postgres --physical`.")
    oldest = backups[0]
    earliest = {"time": oldest.source["stop_time"], "lsn": oldest.source["stop_lsn"],
                "xid": oldest.source.get("xid_after"), "backup_id": oldest.id}
    hint_earliest = (f"The earliest restorable point is {oldest.source['stop_time']} "
                     f"(LSN {oldest.source['stop_lsn']}), the end of the oldest backup {oldest.id}.")
    # the target as an LSN, where we can know it
    target_lsn: wal.Lsn | None = target.lsn
    if target.kind == "name":
        point = load_restore_point(repo, target.value)
        if point is None:
            raise RefusedError(f"restore point {target.value!r} is not recorded in {repo.url}",
                               hint="Create restore points with `swarm admin restore-point NAME`, which records "
                                    "them; or use --target-time / --target-lsn.")
        target_lsn = wal.Lsn.parse(point["lsn"])
    # pick the base backup
    def usable(m: Manifest) -> bool:
        s = m.source
        if target.kind == "time":
            t = target.time
            assert t is not None
            return _stop_time(m) <= t
        if target_lsn is not None:
            return wal.Lsn.parse(s["stop_lsn"]) <= target_lsn
        if target.kind == "xid":
            xid = target.xid
            assert xid is not None
            return int(s.get("xid_after", 0)) <= xid
        return True

    if backup_id:
        chosen = repo.load_manifest(backup_id)
        if chosen.kind != "pg-physical":
            raise RefusedError(f"backup {backup_id} is a {chosen.kind} backup, not a physical one",
                               hint="Point-in-time recovery needs a physical backup (`backup postgres --physical`).")
        if not usable(chosen):
            raise RefusedError(f"{target.describe()} is before the end of backup {backup_id} "
                               f"({chosen.source['stop_time']}, LSN {chosen.source['stop_lsn']})",
                               hint="Choose an older backup, or let swarm pick one (omit the ID).")
    else:
        candidates = [m for m in backups if usable(m)]
        if not candidates:
            raise RefusedError(f"{target.describe()} is earlier than the oldest backup's end", hint=hint_earliest,
                               details={"earliest_restorable": earliest})
        chosen = candidates[-1]
    inv = inventory(repo)
    if not backup_id:
        # Prefer the newest backup from which the newest timeline is reachable (a backup taken on the
        # old timeline after the branch point cannot follow it; PostgreSQL would refuse).
        newest_tli = max([wal.parse_history_name(h) for h in inv.histories] + list(inv.segments) + [1])
        for m in reversed(candidates):
            p, _ = _timeline_path(repo, inv, int(m.source["timeline"]), wal.Lsn.parse(m.source["stop_lsn"]))
            if p[-1] == newest_tli:
                chosen = m
                break
    src = chosen.source
    size = int(src.get("segment_size") or wal.DEFAULT_SEGMENT_SIZE)
    start_lsn, stop_lsn = wal.Lsn.parse(src["start_lsn"]), wal.Lsn.parse(src["stop_lsn"])
    path, switches = _timeline_path(repo, inv, int(src["timeline"]), stop_lsn)
    final_tli = path[-1]
    have: set[int] = set()
    for tli in path:
        have |= {s.segno for s in inv.segments.get(tli, [])}
    newest_final = inv.segments.get(final_tli, [])
    if not newest_final:
        newest_seg = wal.segment_for_end(stop_lsn, int(src["timeline"]), size)
    else:
        newest_seg = newest_final[-1]
    first_seg = wal.segment_of(start_lsn, int(src["timeline"]), size)
    # where the WAL must reach: the target's segment when we know its LSN, else everything archived
    if target_lsn is not None:
        end_segno = wal.segment_of(target_lsn, final_tli, size).segno
    else:
        end_segno = newest_seg.segno
    end_segno = max(end_segno, wal.segment_for_end(stop_lsn, final_tli, size).segno)
    missing = [n for n in range(first_seg.segno, end_segno + 1) if n not in have]
    newest_end = wal.Segment(final_tli, max(have), size).end if have else stop_lsn
    reachable: dict[str, Any] = {"lsn": str(newest_end), "segment": wal.Segment(final_tli, max(have), size).name
                                 if have else None, "timeline": final_tli}
    if missing:
        gap = wal.Segment(final_tli if missing[0] >= newest_seg.segno else path[0], missing[0], size)
        # name the segment on the timeline recovery would read it from
        for tli in reversed(path):
            sw = switches.get(tli - 1) if tli > path[0] else None
            if sw is None or missing[0] >= wal.segment_of(sw, tli, size).segno:
                gap = wal.Segment(tli, missing[0], size)
                break
        if target_lsn is not None and missing[0] > newest_seg.segno:
            raise RefusedError(f"{target.describe()} is beyond the newest archived WAL (archived up to LSN "
                               f"{newest_end} on timeline {final_tli})",
                               hint="Choose an earlier target, or wait for the segment to be archived "
                                    "(`swarm admin wal status`).", details={"newest_reachable": reachable})
        raise RefusedError(f"WAL segment {gap.name} is missing from the repository: recovery from backup "
                           f"{chosen.id} cannot pass it", hint=f"Restore {gap.name} into the archive if you have it; "
                           f"otherwise the newest point reachable from this backup is before segment {gap.name}.",
                           details={"missing": [wal.Segment(gap.tli, n, size).name for n in missing[:20]]})
    if target.kind in ("time", "xid") and have:
        summary = _newest_summary(repo, inv, final_tli, max(have), size, bindir)
        reachable["last_commit_time"] = summary.last_commit_time
        reachable["max_xid"] = summary.max_xid
        if target.kind == "time" and summary.last_commit_time:
            t = target.time
            assert t is not None
            last_commit = _waldump_time(summary.last_commit_time)
            # The newest time the archive proves: its last commit, or the chosen backup's end
            # when nothing was committed after the backup (the backup's state is then the state
            # up to that time).
            newest_t = max(last_commit, _stop_time(chosen))
            reachable["newest_time"] = newest_t.isoformat()
            if t > newest_t:
                raise RefusedError(f"{target.describe()} is after the newest archived transaction",
                                   hint=f"The newest reachable time is {newest_t.isoformat()} (last commit in "
                                        f"{reachable['segment']}, or the backup's end); choose that or earlier, "
                                        "or --target-latest.",
                                   details={"newest_reachable": reachable})
            if t >= last_commit:
                # No archived commit after T: PostgreSQL would never see its target and stop
                # with an error; replaying everything archived gives exactly the state at T.
                note = (f"no archived transaction after {target.value}: recovering everything archived, which "
                        f"is the state at that time")
                target = RecoveryTarget("latest")
                reachable["note"] = note
        if target.kind == "xid" and summary.max_xid is not None and (target.xid or 0) > summary.max_xid:
            raise RefusedError(f"{target.describe()} is not in the archived WAL (the newest transaction id "
                               f"seen is {summary.max_xid})", details={"newest_reachable": reachable},
                               hint="Choose an earlier transaction, or --target-latest.")
    return PitrPlan(chosen, target, datadir, port, start, path, first_seg.name,
                    wal.Segment(final_tli, end_segno, size).name, reachable, earliest)


def _waldump_time(text: str) -> datetime:
    # "2026-11-24 03:01:02.123456 UTC"
    return parse_time(text.replace(" UTC", "+00:00"))


def _newest_summary(repo: Repository, inv: ArchiveInventory, tli: int, segno: int, size: int,
                    bindir: str | None, *, look_back: int = 8) -> Any:
    """pg_waldump summary of the newest archived WAL that holds a commit: the ``.partial`` after the
    newest segment if there is one, then the newest segments going back (at most ``look_back``)."""
    from swarm.sources.postgres.wal import summarize_segment

    names = []
    partial = wal.partial_name(wal.Segment(tli, segno + 1, size))
    if partial in inv.partials:
        names.append(partial)
    have = {s.segno for s in inv.segments.get(tli, [])}
    names += [wal.Segment(tli, n, size).name for n in range(segno, max(-1, segno - look_back), -1) if n in have]
    first = None
    with tempfile.TemporaryDirectory(prefix="swarm-waldump-") as tmp:
        for name in names:
            p = Path(tmp) / name.removesuffix(".partial")
            p.write_bytes(repo.get_wal(name))
            summary = summarize_segment(p, bindir=bindir)
            p.unlink()
            first = first or summary
            if summary.last_commit_time:
                if first.max_xid and (summary.max_xid or 0) < first.max_xid:
                    return summary.__class__(summary.last_commit_time, summary.last_lsn, first.max_xid,
                                             summary.commits)
                return summary
    return first


# ---- execution -----------------------------------------------------------------------------------
def _write_file(repo: Repository, root: Path, f: dict[str, Any], blocks: dict[str, Location]) -> int:
    path = root / f["path"]
    ids: list[str] = f.get("blocks", [])
    written = 0
    with open(path, "wb") as fh:
        i = 0
        while i < len(ids):
            loc = blocks[ids[i]]
            # coalesce following blocks stored right after this one in the same pack
            j = i + 1
            span = loc.length
            while j < len(ids) and span < MAX_SPAN:
                nxt = blocks[ids[j]]
                if nxt.backup_id == loc.backup_id and nxt.pack == loc.pack and nxt.offset == loc.offset + span:
                    span += nxt.length
                    j += 1
                else:
                    break
            data = repo.read_span(loc, span)
            pos = 0
            for k in range(i, j):
                bl = blocks[ids[k]]
                plain = repo.open_block(data[pos:pos + bl.length], bl, ids[k])
                fh.write(plain)
                written += len(plain)
                pos += bl.length
            i = j
    if written != int(f.get("size", written)):
        raise SourceError(f"restored {f['path']} has {written} bytes, the index says {f['size']}")
    os.chmod(path, f.get("mode", 0o600))
    os.utime(path, (f["mtime"], f["mtime"]))
    return written


def materialize_physical(repo: Repository, manifest: Manifest, root: Path, *, jobs: int = 4,
                         reporter: Reporter | None = None, skip: tuple[str, ...] = ()) -> tuple[int, int]:
    """Write the backup's files under ``root`` (which must exist); return (files, bytes)."""
    reporter = reporter or NullReporter()
    index = load_index(repo, manifest)
    blocks = {bid: Location.from_list(v) for bid, v in index["blocks"].items()}
    files = [f for f in index["files"] if f["path"] not in skip]
    for f in files:
        if f["type"] == "d" and f["path"]:
            (root / f["path"]).mkdir(parents=True, exist_ok=True)
    for f in files:
        if f["type"] == "l":
            (root / f["path"]).symlink_to(f["link"])
    regular = sorted((f for f in files if f["type"] == "f"), key=lambda f: -int(f.get("size", 0)))
    reporter.total(sum(int(f.get("size", 0)) for f in regular))
    total = 0
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for n in pool.map(lambda f: _write_file(repo, root, f, blocks), regular):
            total += n
            reporter.advance(n)
    for f in files:
        if f["type"] == "d" and f["path"]:
            os.chmod(root / f["path"], f.get("mode", 0o700))
    return len(regular), total


def execute_pitr(repo: Repository, plan: PitrPlan, settings: Settings, *, jobs: int = 4,
                 reporter: Reporter | None = None, archive: bool = True, timeout: float = 600) -> PitrResult:
    from swarm.sources.netutil import free_port
    from swarm.sources.postgres.cluster import LocalCluster, hand_to_server_user, server_user_can_reach
    from swarm.sources.postgres.server_access import server_access

    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    result = PitrResult(plan)
    _check_datadir(plan.datadir)
    if not plan.datadir.parent.exists():
        plan.datadir.parent.mkdir(parents=True, mode=0o755)
    if not server_user_can_reach(plan.datadir.parent):
        raise RefusedError(f"the PostgreSQL server user cannot reach {plan.datadir.parent}",
                           hint="Choose a data directory outside /root (e.g. under /var/lib or /tmp).")
    from swarm.services.wal_archive import spool_root

    spool = spool_root(plan.datadir)  # restore_command's prefetch spool, writable by the server user
    spool.mkdir(exist_ok=True)
    hand_to_server_user(spool)
    access = server_access(settings)
    plan.datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(plan.datadir, 0o700)
    reporter.stage(f"writing {plan.backup.source.get('files')} files of backup {plan.backup.id}")
    result.files, result.bytes = materialize_physical(repo, plan.backup, plan.datadir, jobs=jobs, reporter=reporter)
    result.timings["files_s"] = round(time.monotonic() - t0, 3)
    port = plan.port or free_port()
    result.port = port
    settings_out = {
        "restore_command": access.restore_command,
        "recovery_target_action": "promote",
        "recovery_target_timeline": str(plan.timeline_path[-1]),
        "port": str(port),
        **plan.target.settings(),
    }
    if archive:
        settings_out["archive_mode"] = "on"
        settings_out["archive_command"] = access.archive_command
    else:
        settings_out["archive_mode"] = "off"
    with open(plan.datadir / "postgresql.auto.conf", "a") as fh:
        fh.write(f"\n# written by swarm restore of {plan.backup.id} to {plan.target.describe()}\n")
        for k, v in settings_out.items():
            fh.write(f"{k} = '{_conf_quote(v)}'\n")
    (plan.datadir / "recovery.signal").touch()
    hand_to_server_user(plan.datadir, recursive=True)
    if not plan.start:
        result.timings["total_s"] = round(time.monotonic() - t0, 3)
        return result
    reporter.stage(f"starting PostgreSQL on port {port}, recovering to {plan.target.describe()}")
    cluster = LocalCluster(plan.datadir.parent, port=port, pgdata=plan.datadir,
                           bindir=Path(settings.pg_bindir) if settings.pg_bindir else None)
    try:
        cluster.start(timeout=timeout)
    except SwarmError:
        _raise_if_damaged_wal(cluster.logfile)
        raise
    result.started = True
    _wait_promoted(cluster, timeout)
    result.timings["recovery_s"] = round(time.monotonic() - t0 - result.timings["files_s"], 3)
    facts = _restored_facts(cluster)
    result.restored_lsn = facts["lsn"]
    result.timeline = facts["timeline"]
    result.last_transaction_time = facts["last_xact"] or _last_xact_from_log(cluster.logfile)
    result.timings["total_s"] = round(time.monotonic() - t0, 3)
    return result


def _conf_quote(v: str) -> str:
    return v.replace("\\", "\\\\").replace("'", "''")


def _wait_promoted(cluster: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster.is_running():
            _raise_if_damaged_wal(cluster.logfile)
            raise SourceError(f"PostgreSQL stopped during recovery: {_log_tail(cluster.logfile)}",
                              hint=f"Read {cluster.logfile}.")
        try:
            if cluster.psql("SELECT pg_is_in_recovery()") == "f":
                return
        except Exception:
            pass
        time.sleep(0.3)
    raise SourceError(f"recovery did not finish in {timeout:.0f} s: {_log_tail(cluster.logfile)}",
                      hint=f"Read {cluster.logfile}; the server is left running for inspection.")


def _restored_facts(cluster: Any) -> dict[str, Any]:
    row = cluster.psql("SELECT pg_current_wal_lsn()::text || '|' || "
                       "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || '|' || "
                       "coalesce(pg_last_xact_replay_timestamp()::text, '')")
    lsn, tli, last = row.split("|")
    return {"lsn": lsn, "timeline": int(tli, 16), "last_xact": last or None}


_LAST_RE = re.compile(r"last completed transaction was at log time (.+)$", re.M)


_DAMAGED_RE = re.compile(r"(object wal/\S+: [^\n]*(?:authentication|truncated|SHA-256|header|decompress)[^\n]*)")


def _raise_if_damaged_wal(logfile: Path) -> None:
    """Recovery aborted because `wal fetch` could not read a segment: say which, as IntegrityError."""
    damaged = _damaged_wal_in_log(logfile)
    if damaged:
        raise IntegrityError(f"recovery stopped: archived WAL cannot be read: {damaged}",
                             hint="Restore to a target before that segment, or put an intact copy of it into the "
                                  f"archive; `swarm admin wal status` lists the archive. Server log: {logfile}.")


def _damaged_wal_in_log(logfile: Path) -> str | None:
    """The first integrity error `wal fetch` wrote into the server log, if any."""
    try:
        m = _DAMAGED_RE.search(logfile.read_text(errors="replace"))
    except OSError:
        return None
    return m.group(1).strip() if m else None


def _last_xact_from_log(logfile: Path) -> str | None:
    try:
        m = list(_LAST_RE.finditer(logfile.read_text(errors="replace")))
    except OSError:
        return None
    return m[-1].group(1).strip() if m else None


def _log_tail(logfile: Path) -> str:
    try:
        lines = [ln for ln in logfile.read_text(errors="replace").splitlines() if "FATAL" in ln or "ERROR" in ln]
    except OSError:
        return "(no log)"
    return "; ".join(lines[-3:]) or "(no error in the log)"


def now_utc() -> datetime:
    return datetime.now(UTC)
