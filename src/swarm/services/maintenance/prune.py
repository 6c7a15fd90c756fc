"""``swarm admin prune``: apply the retention policy, then delete what no kept backup needs.

``plan_prune`` reads the repository and decides (``swarm.model.retention``); it writes nothing.
``execute_prune`` deletes, under the repository's exclusive lock, in this order:

1. for each backup the policy removes: ``Repository.delete_backup`` (an authenticated tombstone,
   then the manifest), then its verify record and tags; and the manifests of deletions an
   earlier run left half done (a tombstone with its manifest still present);
2. data objects (packs, dumps, tree indexes, object-version copies) no kept backup needs: those
   of backups removed now or earlier, and what interrupted backups left (no manifest, no
   tombstone) once older than the cutoff;
3. data keys nobody needs any more (after every object sealed with them);
4. WAL files before the oldest kept base backup and older than the WAL window; ``.partial`` files
   whose segment is archived;
5. ``.tmp-*`` files of killed writers in a local store, older than the cutoff.

What a kill -9 leaves between (or inside) the steps: after 1, tombstones (and perhaps a manifest
beside its tombstone, which is no backup any more: not listed, not restorable); after 2-5, some of
the garbage. Nothing a kept backup needs is ever deleted, because every step deletes only what the
plan computed from the kept manifests, and manifests go first: a crash never leaves a manifest
whose data is gone. Re-running prune recomputes the plan from what is there and converges
(``tests/prune/test_prune_crash.py`` kills it before every store operation).

Safety against writers (docs/design/prune.md): the plan is computed after the exclusive lock is
held, so no live writer runs; a writer frozen past its lock's expiry finds its lock lost (or a
pack it needs gone) at commit and commits nothing; data without a manifest is swept only when
older than the cutoff = min(now − safety age, start of the oldest live writer); a damaged or
version-1 manifest (whose references are unknown) makes prune delete no data, keys or WAL at all.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from swarm.clock import parse_iso, utc_iso
from swarm.errors import IntegrityError
from swarm.model.manifest import Manifest
from swarm.model.refs import needed
from swarm.model.retention import (
    BaseBackup,
    Candidate,
    DataListing,
    Decision,
    Policy,
    Removal,
    StoredFile,
    data_removals,
    decide,
    wal_removals,
)
from swarm.model.sources import Kind, StateSource
from swarm.repo import Repository
from swarm.services.reporting import NullReporter, Reporter


@dataclass
class PrunePlan:
    """What a prune would do. ``decisions``: keep/remove per backup with reasons; ``finish``: manifests
    of deletions an earlier prune left half done; ``removals``: data, keys, WAL; ``held_back``: why
    some deletions were not planned (damaged manifests...)."""

    now: datetime
    cutoff: datetime
    policy: Policy
    decisions: list[Decision]
    dek_of: dict[str, str]
    finish: list[str] = field(default_factory=list)
    records: list[str] = field(default_factory=list)  # verify records / tags of backups that no longer exist
    removals: list[Removal] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)
    damaged: dict[str, str] = field(default_factory=dict)

    @property
    def remove(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def bytes(self) -> int:
        return sum(r.size for r in self.removals)

    def to_dict(self) -> dict[str, Any]:
        by_what: dict[str, dict[str, int]] = {}
        for r in self.removals:
            w = by_what.setdefault(r.what, {"files": 0, "bytes": 0})
            w["files"] += 1
            w["bytes"] += r.size
        return {"now": utc_iso(self.now), "cutoff": utc_iso(self.cutoff), "policy": self.policy.to_dict(),
                "backups": [d.to_dict() for d in self.decisions], "remove": [d.id for d in self.remove],
                "finish": self.finish, "records": self.records,
                "removals": [r.to_dict() for r in self.removals], "totals": by_what,
                "bytes": self.bytes, "held_back": self.held_back, "damaged": self.damaged}


@dataclass
class PruneResult:
    plan: PrunePlan
    dry_run: bool
    removed_backups: list[str] = field(default_factory=list)
    removed_files: int = 0
    bytes_freed: int = 0
    temp_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, **self.plan.to_dict(), "removed_backups": self.removed_backups,
                "removed_files": self.removed_files, "bytes_freed": self.bytes_freed,
                "temp_files": self.temp_files, "seconds": round(self.seconds, 3)}


def _complete(m: Manifest) -> bool:
    if m.kind == Kind.STATE:
        try:
            src = m.typed_source()
        except IntegrityError:
            return False
        return bool(isinstance(src, StateSource) and src.complete)
    return True


def candidates(manifests: Iterable[Manifest], verifications: dict[str, dict[str, Any]],
               tags: dict[str, list[str]]) -> list[Candidate]:
    """Retention's view of the listed backups: start time, completeness, latest verify, tags."""
    out = []
    for m in manifests:
        v = verifications.get(m.id)
        verified = None if v is None else ("good" if v.get("ok") is True else "failed")
        parts = m.source.get("parts") if m.kind == Kind.SET else None
        out.append(Candidate(m.id, m.kind, parse_iso(m.started_at), _complete(m), verified,
                             frozenset(tags.get(m.id, ())),
                             tuple(str(p) for p in parts.values()) if isinstance(parts, dict) else ()))
    return out


def retention_decisions(repo: Repository, policy: Policy, now: datetime | None = None,
                        ) -> tuple[list[Manifest], list[Decision], dict[str, str]]:
    """(manifests, decisions, damaged) for the listed backups: what ``backups list`` shows and
    prune starts from. Damaged manifests are returned by id (not decided: they are kept)."""
    now = now or repo.clock.now()
    damaged: dict[str, str] = {}
    manifests = repo.list_backups(damaged)
    bad_records: dict[str, str] = {}
    decisions = decide(candidates(manifests, repo.verifications(bad_records), repo.tags(bad_records)), policy, now)
    return manifests, decisions, damaged


def plan_prune(repo: Repository, policy: Policy, *, now: datetime | None = None,
               reporter: Reporter | None = None) -> PrunePlan:
    """Everything a prune would delete, and why; reads only listings and manifests (no pack data)."""
    reporter = reporter or NullReporter()
    reporter.stage("planning")
    now = now or repo.clock.now()
    manifests, decisions, damaged = retention_decisions(repo, policy, now)
    keep_ids = {d.id for d in decisions if d.keep}
    kept = [m for m in manifests if m.id in keep_ids]
    removed = {m.id: m.dek_id for m in manifests if m.id not in keep_ids}
    cutoff = policy.safety_age.before(now)
    for h in repo.lock_holders():
        if h.mode == "shared":  # a WAL lease writes no data (its pushes are WAL files)
            cutoff = min(cutoff, parse_iso(h.started_at) - timedelta(minutes=5))
    tombs = repo.tombstones()
    present = repo.manifest_ids()
    plan = PrunePlan(now, cutoff, policy, decisions, removed, damaged=damaged,
                     finish=sorted(present & set(tombs)))
    bad: dict[str, str] = {}
    plan.records = sorted((set(repo.verifications(bad)) | set(repo.tags(bad))) - present)
    need = needed(kept)
    if damaged:
        plan.held_back.append(f"{len(damaged)} damaged manifest(s) ({', '.join(sorted(damaged)[:3])}): their "
                              "references are unknown, so no data, data key or WAL is deleted; fix or remove them "
                              "and prune again")
    if need.unreferenced:
        plan.held_back.append(f"{len(need.unreferenced)} manifest(s) without references (format version 1): "
                              "no data is deleted until `swarm admin repo upgrade` adds them")
    if plan.held_back:
        return plan
    tomb_deks = {b: str(t["dek_id"]) for b, t in tombs.items() if t.get("dek_id")}
    protected = set()
    ident = repo.cluster_identity() or {}
    wal = repo.wal_files()
    if ident.get("wal_dek_id") and any(not f.conflict for f in wal):
        protected.add(str(ident["wal_dek_id"]))  # WAL sealed before WAL keys existed may use it
    listing = DataListing(
        data={b: {n: StoredFile(n, i.size, i.modified) for n, i in objs.items()}
              for b, objs in repo.data_files().items()},
        deks={k: StoredFile(k, i.size, i.modified) for k, i in repo.dek_files().items()},
        manifests=frozenset(keep_ids | set(damaged)),
        removed={**tomb_deks, **removed}, tombstoned=frozenset(tombs), protected_deks=frozenset(protected))
    plan.removals = data_removals(listing, need, cutoff)
    bases = []
    for m in kept:
        if m.kind == Kind.PG_PHYSICAL:
            try:
                p = m.physical
            except IntegrityError:
                continue
            bases.append(BaseBackup(m.id, p.timeline, p.start_wal, p.stop_wal))
    plan.removals += wal_removals((StoredFile(f.name, 0, f.modified) for f in wal if not f.conflict),
                                  bases, need, policy.wal_window, now)
    return plan


def execute_prune(repo: Repository, plan: PrunePlan, lock: Any, *, reporter: Reporter | None = None) -> PruneResult:
    """Delete what ``plan`` names, in the order of the module docstring; each deletion first checks
    the exclusive lock is still held (a prune that lost it stops, LockedError)."""
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    result = PruneResult(plan, dry_run=False)
    reporter.stage("removing backups")
    reporter.total(len(plan.remove) + len(plan.finish))
    for d in plan.remove:
        repo.delete_backup(d.id, reason="; ".join(d.reasons), lock=lock)
        repo.delete_records(d.id, lock=lock)
        result.removed_backups.append(d.id)
        reporter.advance(1)
    for backup_id in plan.finish:
        repo.finish_deletion(backup_id, lock=lock)
        repo.delete_records(backup_id, lock=lock)
        reporter.advance(1)
    for backup_id in plan.records:
        repo.delete_records(backup_id, lock=lock)
    reporter.stage("deleting unreferenced data")
    reporter.total(plan.bytes)
    order = {"data": 0, "dek": 1, "wal": 2}
    for r in sorted(plan.removals, key=lambda r: (order[r.what], r.name)):
        if r.what == "data":
            backup_id, name = r.name.split("/", 1)
            repo.delete_data(backup_id, name, lock=lock)
        elif r.what == "dek":
            repo.delete_dek(r.name, lock=lock)
        else:
            repo.delete_wal(r.name, lock=lock)
        result.removed_files += 1
        result.bytes_freed += r.size
        reporter.advance(r.size)
    reporter.stage("sweeping temporary files")
    for path, size in repo.sweep_temp(plan.cutoff):
        result.temp_files.append(path)
        result.bytes_freed += size
    result.seconds = time.monotonic() - t0
    return result


def prune(repo: Repository, policy: Policy, *, dry_run: bool = False, wait: float = 0.0,
          reporter: Reporter | None = None, stale_after: float = 120.0, refresh_every: float = 20.0,
          poll: float = 1.0) -> PruneResult:
    """Plan and (unless ``dry_run``) execute a prune. The real run takes the exclusive lock first
    (waiting up to ``wait`` s for writers; LockedError, exit 6, naming the holders or another
    prune) and plans under it, so the plan sees everything every writer committed. ``dry_run``
    plans without the lock and changes nothing."""
    t0 = time.monotonic()
    if dry_run:
        plan = plan_prune(repo, policy, reporter=reporter)
        return PruneResult(plan, dry_run=True, seconds=time.monotonic() - t0)
    lock = repo.exclusive_lock(wait=wait, command="swarm admin prune", stale_after=stale_after,
                               refresh_every=refresh_every, poll=poll, leases_block=False)
    with lock:
        plan = plan_prune(repo, policy, reporter=reporter)
        result = execute_prune(repo, plan, lock, reporter=reporter)
    result.seconds = time.monotonic() - t0
    return result
