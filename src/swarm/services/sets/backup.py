"""``swarm admin backup set``: PostgreSQL, the bucket and the state directory at one point T.

Steps, each a backup of its own (with its own locks, written as that kind always is):

1. PostgreSQL. Logical (default): one exported snapshot; T is the server's clock when it was
   taken (``source.snapshot_time``) and the row counts are those of that snapshot. Physical
   (``physical=True``): a base backup, then the row counts in one REPEATABLE READ snapshot,
   then a restore point ``set-...`` (created and recorded like ``swarm admin restore-point``);
   T is the restore point's time (commits between the count and the point are not counted:
   the figures are then off by those few rows, and say so with ``figures_exact`` False).
2. The bucket's inventory pinned to the versions live at T (``backup_objects(at=T)``): what was
   written after T is left out.
3. The state directory snapshot (it cannot be pinned to a past moment: it is read right after;
   ``source.state_lag_s`` says how long after T).
4. The set manifest (kind ``set``), written last: its parts, T, production's figures at T
   (``pipelines_total``, every table's row count) for the drill and the cross-store check, and
   refs to everything its parts need (their objects, packs, data keys, WAL), so a kept set keeps
   its parts' data; prune keeps a kept set's parts (``source.parts``).

If a part fails, no set is written; the parts already taken stay as ordinary backups (listed as
such) and the result names the part that failed. A kill -9 at any step leaves the same: parts
committed so far, no set. Holds the named lock ``backup-set`` (one set at a time) and the
repository's shared lock for the whole run.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from swarm.clock import parse_iso, utc_iso
from swarm.errors import SwarmError
from swarm.model.manifest import Manifest
from swarm.model.refs import DataRef, Refs
from swarm.model.sources import Kind
from swarm.repo import Repository
from swarm.services.objects.backup import backup_objects
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.state.backup import StateScope, backup_state
from swarm.sources.objects.bucket import Bucket

LOCK = "backup-set"


@dataclass
class SetBackupResult:
    at: str = ""
    method: str = "logical"
    parts: dict[str, str] = field(default_factory=dict)  # part -> backup id, for the parts committed
    failed: dict[str, str] = field(default_factory=dict)  # part -> what went wrong (no set then)
    manifest: Manifest | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.manifest.id if self.manifest else None, "ok": self.ok, "at": self.at,
                "method": self.method, "parts": self.parts, "failed": self.failed,
                "figures": self.figures, "timings": self.timings}


def part_refs(m: Manifest) -> Refs:
    """Everything backup ``m`` needs, its own objects included (a set references its parts whole)."""
    own = Refs.of(objects=(DataRef(m.id, o.name) for o in m.objects), deks=[m.dek_id])
    return own if m.refs is None else own.merge(m.refs)


def backup_set(repo: Repository, *, db_url: str, bucket: Bucket, scope: StateScope, physical: bool = False,
               jobs: int = 2, work_dir: str | None = None, bindir: str | None = None, wal_wait_s: float = 60.0,
               copy_data: bool = False, reporter: Reporter | None = None) -> SetBackupResult:
    """Back up the three stores at one point (see the module docstring). Never raises for a failed part:
    the result's ``failed`` names it (and ``ok`` is False); raises only if the set's own lock or
    manifest cannot be written."""
    reporter = reporter or NullReporter()
    res = SetBackupResult(method="physical" if physical else "logical")
    t0 = time.monotonic()
    parts: dict[str, Manifest] = {}
    with repo.lock(LOCK) as lock:
        try:
            reporter.stage("backup set: PostgreSQL")
            pg, at, figures, point = _postgres(repo, db_url, physical=physical, jobs=jobs, work_dir=work_dir,
                                               bindir=bindir, wal_wait_s=wal_wait_s, reporter=reporter)
            parts["postgres"] = pg
            res.at, res.figures = utc_iso(at), figures
            res.parts["postgres"] = pg.id
            res.timings["postgres_s"] = round(time.monotonic() - t0, 3)
        except SwarmError as exc:
            res.failed["postgres"] = exc.message
            return res
        try:
            reporter.stage(f"backup set: the bucket {bucket.name} as of {res.at}")
            objs = backup_objects(repo, bucket, at=at, copy_data=copy_data, reporter=reporter).manifest
            parts["objects"] = objs
            res.parts["objects"] = objs.id
            res.timings["objects_s"] = round(time.monotonic() - t0 - sum(res.timings.values()), 3)
        except SwarmError as exc:
            res.failed["objects"] = exc.message
            return res
        try:
            reporter.stage(f"backup set: the state directory {scope.state_dir}")
            st = backup_state(repo, scope, reporter=reporter)
            parts["state"] = st.manifest
            res.parts["state"] = st.manifest.id
            res.timings["state_s"] = round(time.monotonic() - t0 - sum(res.timings.values()), 3)
            if not st.complete:
                res.failed["state"] = ("the state snapshot is incomplete (unreadable or inconsistent files: "
                                       f"see backup {st.manifest.id})")
                return res
        except SwarmError as exc:
            res.failed["state"] = exc.message
            return res
        lag = (parse_iso(parts["state"].started_at) - at).total_seconds()
        source = {"at": res.at, "method": res.method, "parts": res.parts, "figures": figures,
                  "restore_point": point, "state_lag_s": round(max(lag, 0.0), 3),
                  "timings": res.timings}
        refs = Refs()
        for m in parts.values():
            refs = refs.merge(part_refs(m))
        writer = repo.begin_backup(Kind.SET, lock=lock)
        try:
            res.manifest = writer.commit(source, refs)
        except BaseException:
            writer.abort()
            raise
    res.timings["total_s"] = round(time.monotonic() - t0, 3)
    return res


def _postgres(repo: Repository, db_url: str, *, physical: bool, jobs: int, work_dir: str | None,
              bindir: str | None, wal_wait_s: float, reporter: Reporter
              ) -> tuple[Manifest, datetime, dict[str, Any], str | None]:
    """The PostgreSQL part: (manifest, T, figures, restore point name or None)."""
    if not physical:
        from swarm.services.postgres.logical_backup import backup_postgres_logical

        m = backup_postgres_logical(repo, db_url, jobs=jobs, work_dir=work_dir, reporter=reporter,
                                    bindir=bindir).manifest
        src = m.logical
        counts = dict(src.row_counts)
        at = parse_iso(str(m.source.get("snapshot_time") or m.started_at))
        return m, at, _figures(counts, exact=True), None
    from swarm.services.postgres.physical_backup import backup_postgres_physical
    from swarm.services.postgres.pitr import make_restore_point
    from swarm.sources.postgres.conn import SnapshotSession

    m = backup_postgres_physical(repo, db_url, jobs=jobs, reporter=reporter, bindir=bindir,
                                 wal_wait_s=wal_wait_s).manifest
    with SnapshotSession(db_url) as snap:
        counts = snap.count_rows()
    name = f"set-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
    point = make_restore_point(repo, db_url, name)
    at = parse_iso(str(point["time"]))
    return m, at, _figures(counts, exact=False), name


def _figures(row_counts: dict[str, int], *, exact: bool) -> dict[str, Any]:
    """Production's figures at T: what ``GET /api/v1/pipelines`` reports as its total (the pipelines
    table's rows) and every table's row count."""
    return {"pipelines_total": int(row_counts.get("public.pipelines", 0)), "row_counts": row_counts,
            "figures_exact": exact}
