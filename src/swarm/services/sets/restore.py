"""``swarm admin restore set ID``: a backup set into a target deployment, then the cross-store check.

``plan_restore_set`` checks everything first and changes nothing: the backup is a set whose
parts all exist (``backup-not-found`` naming the missing part) and is logical (a physical set is
restored with ``restore physical --target-name <its restore point>``: refused with that hint);
the target database is planned like ``restore postgres`` (exists or ``--create``, empty or
``--force``); the target state directory like ``restore state``; the target bucket is not the
bucket the backup was taken of unless ``force`` (a restore never writes into production unless
asked for exactly that).

``execute_restore_set`` then restores, in this order, each step the ordinary restore of its kind
with the crash behaviour that restore documents:

1. PostgreSQL: the logical part into the target database (rows checked against the set's counts);
2. the bucket as of T: the objects part's pinned versions copied into the target bucket from the
   production bucket's versions, or, ``from_dr``, the DR bucket's history as of T (``restore_at``);
3. the state directory: the state part into the target directory (staged beside it, renamed);
4. the cross-store integrity check of the restored deployment (``check``, from the wiring).

A kill -9 between steps leaves the earlier stores restored and the later ones untouched (the
state directory is never half-written); running the same command again with ``--force``
restores all three again and converges. The result says which steps ran.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm.clock import parse_iso
from swarm.errors import BackupNotFound, RefusedError, WrongKind
from swarm.model.manifest import Manifest
from swarm.model.sources import Kind, SetSource
from swarm.repo import Repository
from swarm.services.objects.backup import restore_objects
from swarm.services.objects.restore import restore_at
from swarm.services.postgres.logical_restore import RestorePlan, execute_restore, plan_restore
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.sets.outcome import StoresOutcome
from swarm.services.state.restore import StateRestorePlan, execute_restore_state, plan_restore_state
from swarm.sources.objects.bucket import Bucket


@dataclass
class SetRestorePlan:
    manifest: Manifest
    source: SetSource
    postgres: RestorePlan
    state: StateRestorePlan
    bucket_source: Bucket  # whose versions are read: production's, or the DR bucket's (from_dr)
    bucket_target: Bucket
    from_dr: bool

    def to_dict(self) -> dict[str, Any]:
        return {"set": self.manifest.id, "at": self.source.at, "parts": dict(self.source.parts),
                "postgres": self.postgres.to_dict(), "bucket": {"target": self.bucket_target.name,
                                                                "from": "dr" if self.from_dr else "versions",
                                                                "source": self.bucket_source.name},
                "state": {"target": str(self.state.target), "replaces": self.state.replaces,
                          "entries": len(self.state.entries)}}


@dataclass
class SetRestoreResult(StoresOutcome):
    plan: SetRestorePlan

    def to_dict(self) -> dict[str, Any]:
        return {**self.stores_dict(), "set": self.plan.manifest.id, "at": self.plan.source.at}


def load_set(repo: Repository, set_id: str) -> tuple[Manifest, SetSource]:
    m = repo.load_manifest(set_id)
    if m.kind != Kind.SET:
        raise WrongKind(f"backup {set_id} is a {m.kind} backup, not a backup set",
                        hint="Pick an id of kind set from `swarm admin backups list`.")
    src = SetSource.parse(m.source, f"manifest of {set_id}")
    for part, pid in src.parts.items():
        try:
            repo.load_manifest(pid)
        except BackupNotFound:
            raise BackupNotFound(f"the {part} part {pid} of backup set {set_id} is missing from the repository",
                                 hint="The set cannot be restored whole; restore its other parts one by one.") \
                from None
    return m, src


def plan_restore_set(repo: Repository, set_id: str, *, target_db: str, target_bucket: Bucket, target_state: Path,
                     bucket_source: Bucket, from_dr: bool = False, create: bool = False, force: bool = False,
                     jobs: int = 2, production_state: Path | None = None) -> SetRestorePlan:
    """Check the whole restore (see the module docstring); nothing is written."""
    m, src = load_set(repo, set_id)
    if src.method != "logical":
        raise RefusedError(f"backup set {set_id} holds a physical base backup: its database is recovered to the "
                           f"set's restore point {src.restore_point}",
                           hint=f"Run `swarm admin restore physical --target-name {src.restore_point} --datadir DIR "
                                "--start`, then `restore objects` and `restore state` with the set's parts "
                                f"({', '.join(f'{k} {v}' for k, v in src.parts.items())}).")
    pg = plan_restore(repo, src.parts["postgres"], target_db, create=create, force=force, jobs=jobs)
    state = plan_restore_state(repo, src.parts["state"], target_state, force=force, source_dir=production_state)
    objects = repo.load_manifest(src.parts["objects"]).objects_source
    if target_bucket.name == objects.bucket and target_bucket.cfg.same_account(bucket_source.cfg) and not force:
        raise RefusedError(f"the target bucket {target_bucket.name} is the bucket the set was taken of",
                           hint="Restore into a scratch bucket (`swarm dev scratch NAME`), or pass --force to "
                                "roll production's bucket back to the set's time.")
    return SetRestorePlan(m, src, pg, state, bucket_source, target_bucket, from_dr)


def execute_restore_set(repo: Repository, plan: SetRestorePlan, *, work_dir: str | None = None,
                        bindir: str | None = None, workers: int = 8, reporter: Reporter | None = None,
                        check: Callable[[], dict[str, Any]] | None = None) -> SetRestoreResult:
    """Restore the three stores, then run ``check`` (the cross-store integrity check of the target)."""
    reporter = reporter or NullReporter()
    res = SetRestoreResult(plan)
    t0 = time.monotonic()
    reporter.stage(f"restore set {plan.manifest.id}: PostgreSQL into {plan.postgres.to_dict()['target']}")
    res.postgres = execute_restore(repo, plan.postgres, work_dir=work_dir, reporter=reporter,
                                   bindir=bindir).to_dict()
    res.steps.append("postgres")
    res.timings["postgres_s"] = round(time.monotonic() - t0, 3)
    reporter.stage(f"restore set {plan.manifest.id}: the bucket as of {plan.source.at} into {plan.bucket_target.name}")
    if plan.from_dr:
        res.bucket = restore_at(plan.bucket_source, plan.bucket_target, parse_iso(plan.source.at), workers=workers,
                                reporter=reporter, force=True).to_dict()
    else:
        res.bucket = restore_objects(repo, plan.source.parts["objects"], plan.bucket_source, plan.bucket_target,
                                     workers=workers, reporter=reporter).to_dict()
    res.steps.append("bucket")
    res.timings["bucket_s"] = round(time.monotonic() - t0 - res.timings["postgres_s"], 3)
    reporter.stage(f"restore set {plan.manifest.id}: the state directory into {plan.state.target}")
    res.state = execute_restore_state(repo, plan.state, reporter=reporter).to_dict()
    res.steps.append("state")
    res.timings["state_s"] = round(time.monotonic() - t0 - sum(res.timings.values()), 3)
    if check is not None:
        reporter.stage("cross-store integrity check of the restored deployment")
        res.integrity = check()
        res.steps.append("integrity")
    res.timings["total_s"] = round(time.monotonic() - t0, 3)
    return res
