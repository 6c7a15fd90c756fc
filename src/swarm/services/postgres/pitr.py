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

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from swarm.errors import (
    BackupNotFound,
    DatadirNotEmpty,
    IntegrityError,
    RecoveryFailed,
    RefusedError,
    RestorePointExists,
    RestorePointUnknown,
    SwarmError,
    TargetOutOfRange,
    TimelineMismatch,
    WalMissing,
    WalUnreadable,
    WrongKind,
)
from swarm.model import recovery, wal
from swarm.model.manifest import Manifest
from swarm.model.sources import Kind
from swarm.model.targets import RecoveryTarget, parse_time
from swarm.repo import Repository, rebuild
from swarm.repo.tree import open_snapshot
from swarm.services.postgres.physical_backup import physical_backups
from swarm.services.postgres.wal_ahead import WalAhead, prefetch_for_recovery
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.wal.archive import ArchiveInventory, inventory
from swarm.services.wal.server_access import ServerAccess


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
    timeline_reason: str = ""
    branches: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    restore_point: dict[str, Any] | None = None

    @property
    def timeline(self) -> int:
        """The timeline recovery follows (``recovery_target_timeline``)."""
        return self.timeline_path[-1]

    def recovery_settings(self) -> dict[str, str]:
        """``recovery_target_*`` for the server. A restore point is reached by its recorded LSN
        (exclusive: the state right at the point), not by name: a name can occur in the WAL more
        than once (``restore-point --replace``) and PostgreSQL stops at the first it meets."""
        if self.restore_point is not None:
            return {"recovery_target_lsn": str(self.restore_point["lsn"]), "recovery_target_inclusive": "off"}
        return self.target.settings()

    def to_dict(self) -> dict[str, Any]:
        s = self.backup.physical
        return {"backup_id": self.backup.id, "backup_stop_lsn": s.stop_lsn,
                "backup_stop_time": s.stop_time,
                "target": self.target.to_dict(), "datadir": str(self.datadir), "port": self.port, "start": self.start,
                "restore_point": ({k: self.restore_point.get(k) for k in ("name", "lsn", "tli", "time")}
                                  if self.restore_point else None),
                "timeline": self.timeline, "timeline_reason": self.timeline_reason,
                "timelines": self.timeline_path, "branches": self.branches, "warnings": self.warnings,
                "wal_from": self.wal_from, "wal_to": self.wal_to,
                "newest_reachable": self.newest_reachable, "earliest_restorable": self.earliest_restorable,
                "size": s.size, "files": s.files}


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
    wal_prefetched: int = 0  # WAL files fetched before the server started (wal_ahead)
    wal_fetch_fallbacks: list[str] = field(default_factory=list)  # names recovery still asked `wal fetch` for

    def to_dict(self) -> dict[str, Any]:
        return {"plan": self.plan.to_dict(), "files": self.files, "bytes": self.bytes, "started": self.started,
                "wal_prefetched": self.wal_prefetched, "wal_fetch_fallbacks": self.wal_fetch_fallbacks,
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
def record_restore_point(repo: Repository, point: dict[str, Any], *, replace: bool = False) -> None:
    """Record ``point`` (checksummed); RefusedError if its name is recorded already, unless ``replace``."""
    repo.put_restore_point(point, replace=replace)


def make_restore_point(repo: Repository, db_url: str, name: str, *, replace: bool = False,
                       wait_archived_s: float = 30.0) -> dict[str, Any]:
    """``pg_create_restore_point`` + ``pg_switch_wal`` (so the point is archived), recorded in the repository.

    A name already recorded is refused unless ``replace`` (then the record points at the new
    point; recovery to the name uses the recorded LSN, so the older point of that name in the
    WAL does not stop it early). Steps: check the name, create the point on the server, record
    it. A crash between the last two leaves a point in the WAL that the repository does not
    know: harmless, and creating it again under the same name works (nothing was recorded).
    A damaged record (IntegrityError) is refused like an existing one; ``replace`` overwrites it.
    The record is a conditional create, so of two runs racing on one new name the second is
    refused at the last step (its point stays in the WAL unrecorded, harmless as above).
    """
    from swarm.services.postgres.physical_backup import archive_failing_error
    from swarm.sources.postgres.wal import archiver_state, create_restore_point

    RecoveryTarget("name", name)  # validates the name
    state = archiver_state(db_url)
    if state.failing:  # the point would be recorded but unreachable until archiving works again
        raise archive_failing_error(state, repo.url, consequence="a restore point made now could not be recovered "
                                                                 "to until its WAL is archived")
    try:
        old = load_restore_point(repo, name)
    except IntegrityError:
        if not replace:
            raise
        old = None  # a damaged record is what --replace is for
    if old is not None and not replace:
        raise RestorePointExists(f"restore point {name!r} already exists (LSN {old.get('lsn')}, {old.get('time')})",
                           hint="Choose another name, or pass --replace to point the name at a new restore point "
                                "(`swarm admin restore-points` lists them).", details={"existing": old})
    point = create_restore_point(db_url, name)
    if old is not None:
        point["replaced"] = {k: old.get(k) for k in ("lsn", "time", "tli")}
    record_restore_point(repo, point, replace=replace)
    # wait (bounded) until the segment holding the point is archived, so a restore to it can start now
    ident = repo.cluster_identity() or {}
    seg = wal.segment_of(wal.Lsn.parse(point["lsn"]), int(point["tli"]),
                         int(ident.get("segment_size") or wal.DEFAULT_SEGMENT_SIZE))
    deadline = time.monotonic() + wait_archived_s
    while not repo.has_wal(seg.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    point["archived"] = repo.has_wal(seg.name)
    point["segment"] = seg.name
    return point


def load_restore_point(repo: Repository, name: str) -> dict[str, Any] | None:
    """The record of restore point ``name``; None if none; IntegrityError if it is damaged."""
    return repo.get_restore_point(name)


def list_restore_points(repo: Repository) -> list[dict[str, Any]]:
    """Every recorded restore point, oldest LSN first; a damaged record is listed with ``damaged``."""
    damaged: dict[str, str] = {}
    out = repo.list_restore_points(damaged)
    out += [{"name": name, "damaged": True, "problem": problem} for name, problem in damaged.items()]
    return sorted(out, key=lambda p: (wal.Lsn.parse(p["lsn"]).value if "lsn" in p else -1, p["name"]))


# ---- planning ------------------------------------------------------------------------------------
def _check_datadir(datadir: Path) -> None:
    if (datadir / "postmaster.pid").exists():
        raise DatadirNotEmpty(f"a PostgreSQL server is running in {datadir} (postmaster.pid exists)",
                           hint="Stop it and choose an empty directory; a restore never writes over a cluster.")
    if datadir.exists() and (not datadir.is_dir() or any(datadir.iterdir())):
        raise DatadirNotEmpty(f"{datadir} is not empty",
                           hint="Restore into a new or empty directory (move the old one away first).")


def _stop_time(m: Manifest) -> datetime:
    return parse_time(m.physical.stop_time)


def _base_backup(m: Manifest) -> recovery.BaseBackup:
    s = m.physical
    return recovery.BaseBackup(m.id, s.timeline, wal.Lsn.parse(s.start_lsn), wal.Lsn.parse(s.stop_lsn),
                               _stop_time(m), s.xid_after or 0)


def _archive_facts(repo: Repository, inv: ArchiveInventory, warnings: list[str]) -> recovery.Archive:
    histories: dict[int, tuple[wal.HistoryEntry, ...]] = {}
    for name in inv.histories:
        try:
            histories[wal.parse_history_name(name)] = tuple(wal.parse_history(repo.get_wal(name).decode()))
        except (ValueError, UnicodeDecodeError, SwarmError) as exc:
            warnings.append(f"timeline history {name} cannot be read ({exc}); that timeline cannot be followed")
    names = [s.name for segs in inv.segments.values() for s in segs] + list(inv.partials)
    return recovery.archive_from_names(names, inv.segment_size, histories)


def primary_timeline(repo: Repository, db_url: str | None) -> tuple[int | None, str | None]:
    """The timeline the configured primary is on (``pg_control_checkpoint()``, corrected after a
    promotion), or None with the reason it could not be used."""
    if not db_url:
        return None, "no primary is configured (SWARM_DB_URL or --db-url)"
    from swarm.sources.postgres.wal import wal_position

    try:
        pos = wal_position(db_url)
    except SwarmError as exc:
        return None, f"the configured primary cannot be reached: {exc.message}"
    ident = repo.cluster_identity()
    if ident and str(ident["system_identifier"]) != pos.system_identifier:
        return None, (f"the configured server is cluster {pos.system_identifier}, the repository holds "
                      f"{ident['system_identifier']}")
    return pos.tli, None


def _refused(exc: recovery.PlanRefused, **kw: Any) -> RefusedError:
    """The operator's error for a refused plan: the timeline cases are ``timeline-mismatch``."""
    timeline = exc.reason in ("history-missing", "history-damaged", "no-backup-on-timeline", "backup-off-timeline")
    return (TimelineMismatch if timeline else RefusedError)(str(exc), **kw)


def plan_pitr(repo: Repository, target: RecoveryTarget, datadir: Path, *, backup_id: str | None = None,
              port: int | None = None, start: bool = False, bindir: str | None = None,
              timeline: str | int = "current", primary_url: str | None = None) -> PitrPlan:
    """Decide the base backup, the timeline path and the WAL to replay; refuse what cannot work.

    ``timeline``: ``current`` (the configured primary's timeline when ``primary_url`` answers, else
    the newest archived one), ``latest`` or a number. No side effects.
    """
    datadir = Path(datadir).absolute()
    _check_datadir(datadir)
    warnings: list[str] = []
    ident = repo.cluster_identity()
    manifests = physical_backups(repo, str(ident["system_identifier"]) if ident else None, warnings)
    if backup_id:
        chosen_m = repo.load_manifest(backup_id)
        if chosen_m.kind != Kind.PG_PHYSICAL:
            raise WrongKind(f"backup {backup_id} is a {chosen_m.kind} backup, not a physical one",
                               hint="Point-in-time recovery needs a physical backup (`backup postgres --physical`).")
        if all(m.id != chosen_m.id for m in manifests):
            manifests.append(chosen_m)
    if not manifests:
        raise BackupNotFound(f"no physical backup in {repo.url}",
                            hint="Take one with `swarm admin backup postgres --physical`.")
    by_id = {m.id: m for m in manifests}
    oldest = manifests[0]
    first = oldest.physical
    earliest = {"time": first.stop_time, "lsn": first.stop_lsn, "xid": first.xid_after, "backup_id": oldest.id}
    hint_earliest = (f"The earliest restorable point is {first.stop_time} "
                     f"(LSN {first.stop_lsn}), the end of the oldest backup {oldest.id}.")
    # the target as an LSN, where we can know it
    target_lsn: wal.Lsn | None = target.lsn
    point: dict[str, Any] | None = None
    if target.kind == "name":
        point = load_restore_point(repo, target.value)
        if point is None:
            raise RestorePointUnknown(f"restore point {target.value!r} is not recorded in {repo.url}",
                               hint="Create restore points with `swarm admin restore-point NAME`, which records "
                                    "them (`swarm admin restore-points` lists them); or use --target-time / "
                                    "--target-lsn.")
        target_lsn = wal.Lsn.parse(point["lsn"])
    # which timeline
    inv = inventory(repo)
    archive = _archive_facts(repo, inv, warnings)
    primary_tli, primary_problem = (None, None)
    if timeline == "current":
        primary_tli, primary_problem = primary_timeline(repo, primary_url)
    choice = recovery.choose_timeline(timeline, archive, primary_tli, primary_problem)
    try:
        path = recovery.timeline_path(archive, choice.tli)
    except recovery.PlanRefused as exc:
        raise _refused(exc, hint="Choose another timeline with --target-timeline (`swarm admin wal status` lists "
                                 "the archived ones).") from None
    if point is not None and not any(sp.tli == int(point["tli"]) and sp.holds(target_lsn or wal.Lsn(0))
                                      for sp in path):
        raise TimelineMismatch(f"restore point {target.value!r} (LSN {point['lsn']}, timeline {point['tli']}) is "
                               f"not on the history of timeline {choice.tli}, which this restore follows "
                               f"({choice.reason})", hint=f"Follow its timeline with --target-timeline {point['tli']}.")
    continued = recovery.continued_ancestors(archive, path)
    if continued and timeline == "current" and primary_tli is None:
        # The primary cannot tell us which history is production, and both go on after the branch:
        # following the newest timeline could return a copy's data instead of the primary's.
        c = continued[0]
        raise TimelineMismatch(
            f"cannot tell which timeline to follow: timeline {choice.tli} branched off timeline {c['timeline']} at "
            f"{c['left_at']}, and timeline {c['timeline']} has archived WAL after that (up to {c['archived_to']}); "
            f"{primary_problem or 'the primary could not be asked'}",
            hint=f"Choose: --target-timeline {c['timeline']} (the timeline that went on, usually the primary's) or "
                 f"--target-timeline {choice.tli} (the branch, e.g. a restored copy that archived); or configure the "
                 "primary (SWARM_DB_URL / --db-url) so `current` can ask it.",
            details={"continued": continued, "newest_timeline": choice.tli})
    for c in continued:
        warnings.append(f"timeline {c['timeline']} has archived WAL after this history left it at {c['left_at']} "
                        f"(up to {c['archived_to']}): a server kept writing on it; that WAL is not in this restore "
                        f"(--target-timeline {c['timeline']} follows it)")
    branched = recovery.branches(archive, path)
    for br in branched:
        where = (f" off timeline {br['parent']} at {br['switch_lsn']}" if br["parent"] is not None else "")
        warnings.append(f"timeline {br['timeline']} branches{where} in the archive and is not followed "
                        f"(a restored copy or an earlier recovery that archived?); --target-timeline "
                        f"{br['timeline']} follows it")
    # which base backup
    want = recovery.Target(time=target.time, lsn=target_lsn, xid=target.xid)
    bases = [_base_backup(m) for m in manifests]
    try:
        if backup_id:
            base = next(b for b in bases if b.id == backup_id)
            recovery.check_backup(base, path, want)
        else:
            base = recovery.choose_backup([b for b in bases if b.id in by_id], path, want)
    except recovery.PlanRefused as exc:
        if exc.reason == "before-oldest-backup":
            raise TargetOutOfRange(f"{target.describe()} is earlier than the oldest backup's end", hint=hint_earliest,
                               details={"earliest_restorable": earliest}) from None
        if exc.reason == "target-before-backup":
            raise TargetOutOfRange(f"{target.describe()} is before the end of backup {backup_id}",
                               hint="Choose an older backup, or let swarm pick one (omit the ID).") from None
        raise _refused(exc, hint="Follow another timeline with --target-timeline, or take a new physical backup "
                                 "on this one.") from None
    chosen = by_id[base.id]
    size = archive.segment_size
    cov = recovery.wal_coverage(archive, path, base, target_lsn)
    final_tli = choice.tli
    end = recovery.archived_end(archive, path, cov.first.segno)
    if end is not None:
        end_seg = recovery.path_segment(path, end[0], size)
        reachable: dict[str, Any] = {"lsn": str(end_seg.end), "segment": end_seg.name + (".partial" if end[1] else ""),
                                     "timeline": end_seg.tli}
    else:
        reachable = {"lsn": str(base.stop_lsn), "segment": None, "timeline": final_tli}
    if target_lsn is not None and cov.beyond_archive:
        raise TargetOutOfRange(f"{target.describe()} is beyond the newest archived WAL (archived up to LSN "
                           f"{reachable['lsn']} on timeline {reachable['timeline']})",
                           hint="Choose an earlier target, or wait for the segment to be archived "
                                "(`swarm admin wal status`).", details={"newest_reachable": reachable})
    if cov.missing:
        gap = cov.missing[0]
        raise WalMissing(f"WAL segment {gap.name} is missing from the repository: recovery from backup "
                           f"{chosen.id} along timeline{'s' if len(path) > 1 else ''} "
                           f"{', '.join(str(sp.tli) for sp in path)} cannot pass it",
                           hint=f"Restore {gap.name} into the archive if you have it; otherwise the newest point "
                                f"reachable from this backup is before segment {gap.name}.",
                           details={"missing": [g.name for g in cov.missing[:20]],
                                    "missing_count": len(cov.missing)})
    if target.kind in ("time", "xid") and end is not None:
        summary = _newest_summary(repo, archive, path, end[0], bindir)
        reachable["last_commit_time"] = summary.last_commit_time if summary else None
        reachable["max_xid"] = summary.max_xid if summary else None
        if target.kind == "time" and summary and summary.last_commit_time:
            t = target.time
            assert t is not None
            last_commit = _waldump_time(summary.last_commit_time)
            # The newest time the archive proves: its last commit, or the chosen backup's end
            # when nothing was committed after the backup (the backup's state is then the state
            # up to that time).
            newest_t = max(last_commit, _stop_time(chosen))
            reachable["newest_time"] = newest_t.isoformat()
            if t > newest_t:
                raise TargetOutOfRange(f"{target.describe()} is after the newest archived transaction",
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
        if target.kind == "xid" and summary and summary.max_xid is not None and (target.xid or 0) > summary.max_xid:
            raise TargetOutOfRange(f"{target.describe()} is not in the archived WAL (the newest transaction id "
                               f"seen is {summary.max_xid})", details={"newest_reachable": reachable},
                               hint="Choose an earlier transaction, or --target-latest.")
    return PitrPlan(chosen, target, datadir, port, start, [sp.tli for sp in path], cov.first.name, cov.last.name,
                    reachable, earliest, timeline_reason=choice.reason, branches=branched, warnings=warnings,
                    restore_point=point)


def _waldump_time(text: str) -> datetime:
    # "2026-11-24 03:01:02.123456 UTC"
    return parse_time(text.replace(" UTC", "+00:00"))


def _newest_summary(repo: Repository, archive: recovery.Archive, path: Sequence[recovery.Span], end_segno: int,
                    bindir: str | None, *, look_back: int = 8) -> Any:
    """pg_waldump summary of the newest archived WAL along ``path`` that holds a commit: the
    ``.partial`` at the end if there is one, then the newest segments going back (at most ``look_back``)."""
    from swarm.sources.postgres.wal import summarize_segment

    size = archive.segment_size
    names = []
    tail = recovery.path_segment(path, end_segno, size)
    if archive.has_partial(tail) and not archive.has(tail):
        names.append(wal.partial_name(tail))
    names += [s.name for s in recovery.segments_back_from(path, end_segno, size, look_back, archive)]
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
def materialize_physical(repo: Repository, manifest: Manifest, root: Path, *, jobs: int = 4,
                         reporter: Reporter | None = None, sync: bool = False) -> tuple[int, int]:
    """Write the backup's files under ``root`` (an existing directory); return (files, bytes).

    Reads through the tree store (``open_snapshot``: ``tree.json``, or ``index.json`` for a
    backup of the older block-index format): directories, then files several at once
    (adjacent blocks in one range request, each block proven), symlinks last, never following
    one. Raises IntegrityError naming the file and pack on damage; what was written stays
    (the callers remove the directory). ``sync``: every file is fsynced as soon as it is
    written (``TreeReader.materialize``), so a server started on ``root`` finds little left
    to flush in its start-up sync of the data directory. Blocks are decoded by one worker
    process per core for a backup of 64 MiB or more (``swarm.repo.rebuild``).
    """
    reporter = reporter or NullReporter()
    reader = open_snapshot(repo, manifest)
    reporter.total(int(manifest.physical.size or 0))
    big = int(manifest.physical.size or 0) >= rebuild.MIN_PROCESS_BYTES
    stats = reader.materialize(root, jobs=jobs, progress=reporter.advance, sync=sync,
                               processes=(os.cpu_count() or 1) if big else 0)
    return stats.files, stats.bytes


def _mkdirs_traversable(path: Path) -> None:
    """Create ``path`` and its missing parents as 0755, whatever the umask (077 in the CLI): the
    server user must enter them to reach the data directory. Only directories created here are
    chmod'ed; existing ones are left as they are (the reachability check then names a closed
    one). A kill -9 between a mkdir and its chmod leaves that directory empty and umask-masked;
    a re-run treats it as existing, and the reachability check then names it with the fix."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o755)
        os.chmod(d, 0o755)


def execute_pitr(repo: Repository, plan: PitrPlan, access: ServerAccess, *, bindir: str | None = None,
                 jobs: int = 4, reporter: Reporter | None = None, archive: bool = False, keep_failed: bool = False,
                 timeout: float = 600) -> PitrResult:
    """Write the data directory, the recovery settings and (with ``plan.start``) recover and promote.

    ``access``: how the server user runs ``wal fetch`` (and ``wal push`` with ``archive``), from the
    wiring (``services.context.server_access``). ``archive``: the restored cluster archives its WAL
    into the repository. Off by default: a
    restored copy is not production, and its new timeline in the production archive would change
    what later recoveries follow. Turn it on only for a copy that becomes the new primary.

    Steps: (1) create the spool and the data directory, (2) write the backup's files, (2b) with
    ``plan.start``, fetch the WAL recovery will ask for into the spool and point
    ``restore_command`` at a script that answers from it (``wal_ahead``; anything else still
    goes to ``wal fetch``), (3) write the recovery settings and ``recovery.signal``, (4) start
    the server, recover, promote, then remove the fetched WAL. A failure in 2-4 stops the
    server and removes what this call created (the data directory or, if it existed empty, its
    contents; the server log; the spool) unless ``keep_failed``; the error says which. A kill
    -9 of this process instead leaves them behind (and, after step 4 began, a running server;
    the fetched WAL stays in the spool until the next restore into that directory empties it):
    the next restore into that directory refuses it as not empty or running, and
    ``pg_ctl_command(datadir, "stop")`` stops it. Files are fsynced as they are written in step
    2 when the server starts in step 4 (its start-up sync then finds them clean).

    The server user's WAL read grant (``access``: the WAL private key, ``ServerAccess.grant_read``)
    is revoked when this call fails or after promotion; without ``plan.start`` it stays for the
    operator's start and the restored server removes it at the end of recovery
    (``recovery_end_command``).

    Who can connect: this is the operator's restore, into a data directory whose lifetime they
    own, so the restored ``pg_hba.conf`` and roles (production's) stay as they are; swarm does
    not lock it down the way it does the throwaway copy of ``verify --restore-test``
    (``physical_verify``, ``cluster.lock_down_hba``). Swarm's own queries here (promotion,
    the restored LSN) connect as ``swarm`` on 127.0.0.1 with the password a cluster swarm
    created keeps in PGDATA (``cluster.DATADIR_PASSWORD_FILE``), when the copy has one.
    """
    from swarm.services.wal.archive import spool_root
    from swarm.sources.netutil import free_port
    from swarm.sources.postgres.cluster import LocalCluster, first_unreachable_by_server_user, hand_to_server_user

    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    result = PitrResult(plan)
    _check_datadir(plan.datadir)
    _mkdirs_traversable(plan.datadir.parent)
    blocked = first_unreachable_by_server_user(plan.datadir.parent)
    if blocked is not None:
        raise RefusedError(f"the PostgreSQL server user cannot reach {plan.datadir}: it may not enter {blocked}",
                           hint=f"Let it through (`chmod o+x {blocked}`), or choose a data directory under a "
                                "path it can enter (e.g. /var/lib/postgresql/restores).")
    if plan.port is not None and plan.start:
        from swarm.sources.netutil import port_open

        if port_open("127.0.0.1", plan.port):
            raise RefusedError(f"port {plan.port} is already in use", hint="Choose another --port, or leave it out "
                                                                          "(a free port is picked).")
    existed = plan.datadir.exists()
    ahead: WalAhead | None = None
    spool = spool_root(plan.datadir)  # restore_command's prefetch spool, writable by the server user
    cluster = LocalCluster(plan.datadir.parent, port=plan.port or free_port(), pgdata=plan.datadir,
                           bindir=Path(bindir) if bindir else None)
    try:
        spool.mkdir(exist_ok=True)
        hand_to_server_user(spool)
        plan.datadir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(plan.datadir, 0o700)
        reporter.stage(f"writing {plan.backup.physical.files} files of backup {plan.backup.id}")
        result.files, result.bytes = materialize_physical(repo, plan.backup, plan.datadir, jobs=jobs,
                                                          reporter=reporter, sync=plan.start)
        result.timings["files_s"] = round(time.monotonic() - t0, 3)
        result.port = cluster.port
        restore_command = access.restore_command
        if plan.start:  # the server starts now: hand it the WAL it will ask for before it asks
            reporter.stage("fetching the WAL recovery needs")
            ahead = prefetch_for_recovery(repo, spool, timelines=plan.timeline_path, wal_from=plan.wal_from,
                                          wal_to=plan.wal_to, to_archive_end=plan.target.kind == "latest",
                                          fallback_command=restore_command, jobs=jobs,
                                          give=hand_to_server_user)
            restore_command = ahead.restore_command
            result.wal_prefetched = len(ahead.fetched)
            result.timings["wal_s"] = round(time.monotonic() - t0 - result.timings["files_s"], 3)
        settings_out = {
            "restore_command": restore_command,
            "recovery_end_command": access.recovery_end_command,  # the WAL read grant ends with recovery
            "recovery_target_action": "promote",
            "recovery_target_timeline": str(plan.timeline),
            "port": str(cluster.port),
            **plan.recovery_settings(),
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
        reporter.stage(f"starting PostgreSQL on port {cluster.port}, recovering to {plan.target.describe()} "
                       f"on timeline {plan.timeline}")
        try:
            cluster.start(timeout=timeout)
        except SwarmError as exc:
            _raise_if_damaged_wal(cluster.logfile)
            raise RecoveryFailed(f"the restored server did not come up: {exc.message.splitlines()[0]} "
                                 f"(server log: {_log_tail(cluster.logfile)})") from exc
        result.started = True
        _wait_promoted(cluster, timeout)
    except BaseException as exc:
        access.revoke()
        _after_failure(exc, cluster, spool, existed=existed, keep=keep_failed)
        raise
    access.revoke()  # promoted: the server user no longer needs to read WAL
    if ahead is not None:
        result.wal_fetch_fallbacks = ahead.fallbacks()
        ahead.remove()
    result.timings["recovery_s"] = round(time.monotonic() - t0 - result.timings["files_s"]
                                         - result.timings.get("wal_s", 0.0), 3)
    facts = _restored_facts(cluster)
    result.restored_lsn = facts["lsn"]
    result.timeline = facts["timeline"]
    result.last_transaction_time = facts["last_xact"] or _last_xact_from_log(cluster.logfile)
    result.timings["total_s"] = round(time.monotonic() - t0, 3)
    return result


def _after_failure(exc: BaseException, cluster: Any, spool: Path, *, existed: bool, keep: bool) -> None:
    """Stop the half-recovered server and remove what the restore created, or keep it (``--keep-failed``);
    say which in the error's hint."""
    import shutil

    datadir, logfile = cluster.datadir, cluster.logfile
    if keep:
        note = (f"The failed restore was kept for inspection (--keep-failed): data directory {datadir}, server log "
                f"{logfile}; stop it with `{pg_ctl_command(datadir, 'stop')}` if it runs.")
    else:
        with contextlib.suppress(Exception):
            if cluster.is_running():
                cluster.stop("immediate")
        if existed:
            for child in list(datadir.iterdir()) if datadir.exists() else []:
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        else:
            shutil.rmtree(datadir, ignore_errors=True)
        shutil.rmtree(spool, ignore_errors=True)
        if isinstance(exc, SwarmError) and logfile.exists():
            tail = _log_tail(logfile)  # the log goes with the rest: keep its errors in the message
            if tail not in exc.message and tail != "(no error in the log)":
                exc.message = f"{exc.message} (server log: {tail})"
        logfile.unlink(missing_ok=True)
        what = f"the data directory's contents ({datadir})" if existed else f"the data directory {datadir}"
        note = (f"Removed what the failed restore created: {what}, its server log and spool; run it again with "
                "--keep-failed to inspect them.")
    if isinstance(exc, SwarmError):
        hint = exc.hint or ""
        if not keep:  # the log is gone: drop the sentences that send the operator to it
            hint = " ".join(sent for sent in re.split(r"(?<=\.)\s+", hint) if str(logfile) not in sent)
        exc.hint = f"{hint} {note}".strip()
        exc.details = {**exc.details, "kept": keep, "datadir": str(datadir)}


def _conf_quote(v: str) -> str:
    return v.replace("\\", "\\\\").replace("'", "''")


def _wait_promoted(cluster: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not cluster.is_running():
            _raise_if_damaged_wal(cluster.logfile)
            raise RecoveryFailed(f"PostgreSQL stopped during recovery: {_log_tail(cluster.logfile)}",
                              hint=f"Read {cluster.logfile}.")
        try:
            if cluster.psql("SELECT pg_is_in_recovery()") == "f":
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RecoveryFailed(f"recovery did not finish in {timeout:.0f} s: {_log_tail(cluster.logfile)}",
                      hint=f"Read {cluster.logfile}.")


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
        raise WalUnreadable(f"recovery stopped: archived WAL cannot be read: {damaged}",
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
