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
   Also the leftovers of an interrupted repack: a generation ``packs/<n>.r<g>.pack`` no pack map
   names, and an original pack whose map names a stored generation;
3. repack (``--max-unused``): packs of removed backups that kept backups still read, chosen by
   ``swarm.model.repack.choose`` within the unused-space budget, rewritten with their live frames
   only (``Repository.repack``: new generation, then its map, then the old object; no manifest
   changes, since readers translate the original locations through the map);
4. data keys nobody needs any more (after every object sealed with them);
5. WAL files before the oldest kept base backup and older than the WAL window; ``.partial`` files
   whose segment is archived;
6. ``.tmp-*`` files of killed writers in a local store, older than the cutoff.

What a kill -9 leaves between (or inside) the steps: after 1, tombstones (and perhaps a manifest
beside its tombstone, which is no backup any more: not listed, not restorable); after 2-6, some of
the garbage; inside 3, a repacked generation no map names, or an old pack beside its new
generation (both readable): step 2 of the next run deletes the one no map names.
Nothing a kept backup needs is ever deleted, because every step deletes only what the
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
from swarm.model.refs import DataRef, Needed, needed
from swarm.model.repack import Budget, PackUse, RepackChoice, choose
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
from swarm.repo.packs import Location, moved_name, pack_number
from swarm.repo.tree import open_snapshot
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
    budget: Budget = field(default_factory=lambda: Budget(percent=10.0))
    kind_of: dict[str, str] = field(default_factory=dict)  # backup id -> kind (manifests and tombstones)
    dek_kind: dict[str, str] = field(default_factory=dict)
    size_before: dict[str, int] = field(default_factory=dict)
    repack: list[RepackItem] = field(default_factory=list)
    repack_choice: RepackChoice | None = None

    @property
    def remove(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def bytes(self) -> int:
        return sum(r.size for r in self.removals)

    def repack_dict(self) -> dict[str, Any]:
        c = self.repack_choice
        return {"max_unused": str(self.budget), "packs": [f"{r.backup_id}/{r.current}" for r in self.repack],
                "pack_bytes": c.total if c else 0, "unused_before": c.unused_before if c else 0,
                "unused_after": c.unused_after if c else 0, "limit": c.limit if c else 0,
                "bytes_freed": c.freed if c else 0, "bytes_rewritten": c.rewritten if c else 0}

    def size_after(self) -> dict[str, int]:
        """What the repository would hold per kind after this plan: ``size_before`` less the files it
        removes and the bytes repack frees (manifests and records it removes are not counted: small)."""
        out = dict(self.size_before)
        for r in self.removals:
            if r.what == "data":
                kind = self.kind_of.get(r.name.split("/", 1)[0], "unattributed")
            elif r.what == "dek":
                kind = self.dek_kind.get(r.name, "unattributed")
            else:
                kind = "wal"
            out[kind] = max(0, out.get(kind, 0) - r.size)
        for item in self.repack:
            kind = self.kind_of.get(item.backup_id, "unattributed")
            used = sum(loc.length for _bid, loc in item.live.values()) + 8
            out[kind] = max(0, out.get(kind, 0) - (item.size - used))
        return out

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
                "bytes": self.bytes, "repack": self.repack_dict(), "size_before": self.size_before,
                "size_after": self.size_after(), "held_back": self.held_back,
                "damaged": self.damaged}


@dataclass
class RepackItem:
    """One pack to rewrite: original pack ``number`` of ``backup_id``, now stored as ``current``
    (the original, or a generation), and its live frames (original offset → (block id, location))."""

    backup_id: str
    number: int
    current: str
    size: int
    live: dict[int, tuple[str, Location]]


@dataclass
class PruneResult:
    plan: PrunePlan
    dry_run: bool
    removed_backups: list[str] = field(default_factory=list)
    removed_files: int = 0
    bytes_freed: int = 0
    bytes_rewritten: int = 0
    repacked: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    size_after: dict[str, int] | None = None  # measured after a real run (a dry run reports the plan's)

    def to_dict(self) -> dict[str, Any]:
        d = self.plan.to_dict()
        if self.size_after is not None:
            d["size_after"] = self.size_after
        return {"dry_run": self.dry_run, **d, "removed_backups": self.removed_backups,
                "removed_files": self.removed_files, "bytes_freed": self.bytes_freed,
                "bytes_rewritten": self.bytes_rewritten, "repacked": self.repacked,
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
               reporter: Reporter | None = None, budget: Budget | None = None) -> PrunePlan:
    """Everything a prune would delete and repack, and why. Reads listings and manifests; pack data
    only when a kept backup still reads a pack of a removed backup (then the trees of the kept
    snapshots that reference such packs are walked, to learn which of their frames are live)."""
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
                     finish=sorted(present & set(tombs)), budget=budget or Budget(percent=10.0))
    plan.kind_of = {**{b: str(t.get("kind") or "unattributed") for b, t in tombs.items()},
                    **{m.id: m.kind for m in manifests}}
    plan.dek_kind = {**{str(t["dek_id"]): plan.kind_of[b] for b, t in tombs.items() if t.get("dek_id")},
                     **{m.dek_id: m.kind for m in manifests}}
    plan.size_before = repo.size_by_kind(plan.kind_of, plan.dek_kind)
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
    files = repo.data_files()
    need, current = _repacked(repo, need, files, keep_ids)
    listing = DataListing(
        data={b: {n: StoredFile(n, i.size, i.modified) for n, i in objs.items()}
              for b, objs in files.items()},
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
    _plan_repack(repo, plan, kept, need, files, current, keep_ids)
    return plan


def _repacked(repo: Repository, need: Needed, files: dict[str, dict[str, Any]], keep_ids: set[str],
              ) -> tuple[Needed, dict[tuple[str, int], str]]:
    """``need`` with repack's objects resolved, and where each needed pack of a backup that is not
    kept is stored now ((backup, n) → object name). A needed original pack whose map names a stored
    generation needs the map and that generation, not the original (a repack killed before deleting
    it left it); otherwise it needs the original as before."""
    data = set(need.data)
    current: dict[tuple[str, int], str] = {}
    for r in need.data:
        n = pack_number(r.name)
        if n is None or r.backup_id in keep_ids:
            continue
        have = files.get(r.backup_id, {})
        m = repo.pack_map(r.backup_id, n) if moved_name(n) in have else None
        if m is not None and m.to in have:
            data -= {r}
            data |= {DataRef(r.backup_id, moved_name(n)), DataRef(r.backup_id, m.to)}
            current[(r.backup_id, n)] = m.to
        elif r.name in have:
            current[(r.backup_id, n)] = r.name
    return Needed(need.manifests, frozenset(data), need.deks, need.wal, need.unreferenced), current


def _plan_repack(repo: Repository, plan: PrunePlan, kept: list[Manifest], need: Needed,
                 files: dict[str, dict[str, Any]], current: dict[tuple[str, int], str], keep_ids: set[str]) -> None:
    """Choose the packs to rewrite (``swarm.model.repack``). Candidates: packs of backups that are not
    kept which a kept backup still reads. Their live frames come from walking the kept snapshots that
    reference them; every other needed pack counts as fully used."""
    uses: list[PackUse] = []
    for r in need.data:
        if r.name.endswith(".pack") and r.backup_id in keep_ids and r.name in files.get(r.backup_id, {}):
            size = int(files[r.backup_id][r.name].size)
            uses.append(PackUse(f"{r.backup_id}/{r.name}", size, max(0, size - 8), candidate=False))
    if current:
        wanted = set(current)
        live: dict[tuple[str, int], dict[int, tuple[str, Location]]] = {k: {} for k in wanted}
        for m in kept:
            if not m.refs or not any((p.backup_id, pack_number(p.name)) in wanted for p in m.refs.packs):
                continue
            try:
                for e in open_snapshot(repo, m).walk():
                    for c in e.chunks:
                        hit = live.get((c.loc.backup_id, c.loc.pack))
                        if hit is not None:
                            hit[c.loc.offset] = (c.id, c.loc)
            except IntegrityError as exc:
                plan.held_back.append(f"repack skipped: the tree of kept backup {m.id} cannot be read ({exc.message})")
                return
        for (b, n), name in sorted(current.items()):
            size = int(files[b][name].size)
            frames = live[(b, n)]
            used = sum(loc.length for _bid, loc in frames.values())
            uses.append(PackUse(f"{b}/{name}", size, used, candidate=bool(frames)))
            if frames:
                plan.repack.append(RepackItem(b, n, name, size, frames))
    choice = choose(uses, plan.budget)
    chosen = {p.key for p in choice.chosen}
    plan.repack = [r for r in plan.repack if f"{r.backup_id}/{r.current}" in chosen]
    plan.repack_choice = choice


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
    removals = sorted(plan.removals, key=lambda r: (order[r.what], r.name))
    for r in [r for r in removals if r.what == "data"]:
        backup_id, name = r.name.split("/", 1)
        repo.delete_data(backup_id, name, lock=lock)
        result.removed_files += 1
        result.bytes_freed += r.size
        reporter.advance(r.size)
    if plan.repack:
        reporter.stage("repacking")
        reporter.total(sum(r.size for r in plan.repack))
    for item in plan.repack:
        written, freed = repo.repack(item.backup_id, item.number, item.live, lock=lock)
        result.repacked.append(f"{item.backup_id}/{item.current}")
        result.bytes_rewritten += written
        result.bytes_freed += freed
        reporter.advance(item.size)
    reporter.stage("deleting unreferenced keys and WAL")
    for r in [r for r in removals if r.what != "data"]:
        if r.what == "dek":
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
          poll: float = 1.0, max_unused: Budget | None = None) -> PruneResult:
    """Plan and (unless ``dry_run``) execute a prune. The real run takes the exclusive lock first
    (waiting up to ``wait`` s for writers; LockedError, exit 6, naming the holders or another
    prune) and plans under it, so the plan sees everything every writer committed. ``dry_run``
    plans without the lock and changes nothing."""
    t0 = time.monotonic()
    if dry_run:
        plan = plan_prune(repo, policy, reporter=reporter, budget=max_unused)
        return PruneResult(plan, dry_run=True, seconds=time.monotonic() - t0)
    lock = repo.exclusive_lock(wait=wait, command="swarm admin prune", stale_after=stale_after,
                               refresh_every=refresh_every, poll=poll, leases_block=False)
    with lock:
        plan = plan_prune(repo, policy, reporter=reporter, budget=max_unused)
        result = execute_prune(repo, plan, lock, reporter=reporter)
        result.size_after = repo.size_by_kind(plan.kind_of, plan.dek_kind)
    result.seconds = time.monotonic() - t0
    return result
