"""``swarm admin restore stack --at T``: the whole deployment as it was at any time T.

Unlike ``restore set`` (the three stores at a set's own point), T is free: PostgreSQL is
recovered to T from a physical base backup and the WAL archive, the bucket is made to read as it
did at T from its version history (production's, or the DR bucket's with ``from_dr``), and the
state directory is the newest state snapshot taken at or before T. Then the cross-store check of
the result, as for a set.

``plan_restore_stack`` checks everything first and writes nothing: the recovery plan (base
backup, timeline, WAL reaching T: ``swarm.services.postgres.pitr.plan_pitr``), a state snapshot at
or before T (else ``backup-not-found`` naming the oldest), the target state directory, and that
the target bucket is not the bucket being read (unless ``force``).

``execute_restore_stack`` runs, in order: (1) the point-in-time recovery into the data directory,
started and promoted (a failure removes what it wrote, as ``restore physical`` does); (2) the
bucket as of T (``restore_at``: copies and delete markers, history kept); (3) the state snapshot
(staged beside the target, renamed); (4) the check. A kill -9 between steps leaves the earlier
stores restored (the recovered server may be running: ``pg_ctl -D DIR stop``) and the later ones
untouched; a re-run needs a new data directory (or the old one removed) and ``--force`` for the
bucket and state directory.

State snapshots are not pinned to T: the one restored may be older than T by up to the snapshot
interval (``state_lag_s`` in the result).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from swarm.clock import parse_iso, utc_iso
from swarm.errors import BackupNotFound, RefusedError
from swarm.model.manifest import Manifest
from swarm.model.targets import RecoveryTarget
from swarm.repo import Repository
from swarm.services.objects.restore import restore_at
from swarm.services.postgres.pitr import PitrPlan, execute_pitr, plan_pitr
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.sets.outcome import StoresOutcome
from swarm.services.state.backup import state_snapshots
from swarm.services.state.restore import StateRestorePlan, execute_restore_state, plan_restore_state
from swarm.services.wal.server_access import ServerAccess
from swarm.sources.objects.bucket import Bucket


@dataclass
class StackRestorePlan:
    at: datetime
    pitr: PitrPlan
    state: StateRestorePlan
    bucket_source: Bucket
    bucket_target: Bucket
    from_dr: bool

    @property
    def state_lag_s(self) -> float:
        return round((self.at - parse_iso(self.state.manifest.started_at)).total_seconds(), 3)

    def to_dict(self) -> dict[str, Any]:
        return {"at": utc_iso(self.at), "postgres": self.pitr.to_dict(),
                "bucket": {"target": self.bucket_target.name, "source": self.bucket_source.name,
                           "from": "dr" if self.from_dr else "versions"},
                "state": {"backup_id": self.state.manifest.id, "target": str(self.state.target),
                          "replaces": self.state.replaces, "state_lag_s": self.state_lag_s}}


@dataclass
class StackRestoreResult(StoresOutcome):
    postgres_done: ClassVar[str] = "started"  # a PITR is done when the recovered cluster has started

    plan: StackRestorePlan

    def to_dict(self) -> dict[str, Any]:
        return {**self.stores_dict(), "at": utc_iso(self.plan.at), "state_lag_s": self.plan.state_lag_s}


def newest_state_at(repo: Repository, at: datetime) -> Manifest:
    """The newest complete state snapshot started at or before ``at``."""
    snaps = [m for m in state_snapshots(repo) if parse_iso(m.started_at) <= at and m.source.get("complete")]
    if not snaps:
        raise BackupNotFound(f"no complete state snapshot was taken at or before {utc_iso(at)}",
                             hint="`swarm admin backups list` shows the state snapshots; choose a later --at.")
    return snaps[-1]


def plan_restore_stack(repo: Repository, at: datetime, *, datadir: Path, target_bucket: Bucket,
                       target_state: Path, bucket_source: Bucket, from_dr: bool = False, force: bool = False,
                       port: int | None = None, primary_url: str | None = None, bindir: str | None = None,
                       production_state: Path | None = None) -> StackRestorePlan:
    """Check the whole restore (see the module docstring); nothing is written."""
    pitr = plan_pitr(repo, RecoveryTarget("time", utc_iso(at)), datadir, port=port, start=True, bindir=bindir,
                     primary_url=primary_url)
    state = plan_restore_state(repo, newest_state_at(repo, at).id, target_state, force=force,
                               source_dir=production_state)
    if target_bucket.name == bucket_source.name and target_bucket.cfg.same_account(bucket_source.cfg) and not force:
        raise RefusedError(f"the target bucket {target_bucket.name} is the bucket whose history is read",
                           hint="Restore into a scratch bucket (`swarm dev scratch NAME`), or pass --force to make "
                                "that bucket read as it did at --at.")
    return StackRestorePlan(at, pitr, state, bucket_source, target_bucket, from_dr)


def execute_restore_stack(repo: Repository, plan: StackRestorePlan, access: ServerAccess, *,
                          bindir: str | None = None, workers: int = 8, reporter: Reporter | None = None,
                          check: Callable[[str], dict[str, Any]] | None = None, dbname: str = "postgres"
                          ) -> StackRestoreResult:
    """Restore the three stores as of ``plan.at``, then run ``check(db_url)`` on the recovered database
    ``dbname`` of the restored server (the cross-store check of the target)."""
    from swarm.sources.postgres.cluster import LocalCluster

    reporter = reporter or NullReporter()
    res = StackRestoreResult(plan)
    t0 = time.monotonic()
    reporter.stage(f"restore stack at {utc_iso(plan.at)}: PostgreSQL into {plan.pitr.datadir}")
    pitr = execute_pitr(repo, plan.pitr, access, bindir=bindir, reporter=reporter)
    res.postgres = pitr.to_dict()
    db_url = LocalCluster(plan.pitr.datadir.parent, port=pitr.port or 0, pgdata=plan.pitr.datadir).url(dbname)
    res.postgres["target_db"] = db_url
    res.steps.append("postgres")
    res.timings["postgres_s"] = round(time.monotonic() - t0, 3)
    reporter.stage(f"restore stack: the bucket as of {utc_iso(plan.at)} into {plan.bucket_target.name}")
    res.bucket = restore_at(plan.bucket_source, plan.bucket_target, plan.at, workers=workers, reporter=reporter,
                            force=True).to_dict()
    res.steps.append("bucket")
    res.timings["bucket_s"] = round(time.monotonic() - t0 - res.timings["postgres_s"], 3)
    reporter.stage(f"restore stack: state snapshot {plan.state.manifest.id} into {plan.state.target}")
    res.state = execute_restore_state(repo, plan.state, reporter=reporter).to_dict()
    res.steps.append("state")
    res.timings["state_s"] = round(time.monotonic() - t0 - sum(res.timings.values()), 3)
    if check is not None:
        reporter.stage("cross-store integrity check of the restored deployment")
        res.integrity = check(db_url)
        res.steps.append("integrity")
    res.timings["total_s"] = round(time.monotonic() - t0, 3)
    return res
