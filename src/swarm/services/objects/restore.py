"""Point-in-time restore of a bucket or prefix, undelete, and version listings.

``restore_at`` makes every key under the prefix read as it did at T:

* the plan is computed by ``model.object_versions.plan_key_restore`` from the version
  listings, key by key, while the listing streams (memory: one key's versions);
* a key live at T whose current content differs gets the T version copied on top (a new
  latest version, history kept; server-side CopyObject when source and target share an
  account); a key absent at T (created after T, or deleted before T) that is live now gets
  a delete marker (in place) or is deleted (another bucket); unchanged keys are skipped;
* a T version in an archive class (GLACIER, DEEP_ARCHIVE) is reported, not copied: restore
  (thaw) it first;
* ``--from dr`` reads the DR bucket's history. DR versions carry the time they were
  *replicated*, so T there means "what had reached DR by T" (within the replication lag).

Crash and re-run: every action is one S3 request and the plan is recomputed from the
listings, so a re-run after a crash (or after success) plans only what is still different.
Failures are isolated per key (object lock refusing a delete, a copy that keeps failing
after retries) and listed in the result; the rest continues.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from swarm.clock import utc_iso
from swarm.errors import NotFoundError, RefusedError
from swarm.model.object_versions import (
    ActionKind,
    PlanSummary,
    RestoreAction,
    Version,
    group_by_key,
    markers_on_top,
    merge_by_key,
    plan_key_restore,
)
from swarm.services.objects.common import KeyWork, failures_dict, run_bounded
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.objects import Bucket

LIST_LIMIT = 1000


@dataclass
class RestoreResult:
    source: dict[str, Any]
    target: dict[str, Any]
    at: str
    prefix: str
    dry_run: bool
    summary: PlanSummary = field(default_factory=PlanSummary)
    actions: list[RestoreAction] = field(default_factory=list)
    archived: list[RestoreAction] = field(default_factory=list)
    work: KeyWork = field(default_factory=KeyWork)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.work.failed

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "dry_run": self.dry_run, "at": self.at, "prefix": self.prefix,
                "source": self.source, "target": self.target, "plan": self.summary.to_dict(),
                "actions": [a.to_dict() for a in self.actions],
                "actions_truncated": self.summary.copy + self.summary.delete > len(self.actions),
                "archived": [a.to_dict() for a in self.archived],
                "done": dict(self.work.counts), "failed": failures_dict(self.work),
                "failed_count": len(self.work.failed), "elapsed_s": round(self.elapsed_s, 3)}


def _pairs(src: Bucket, target: Bucket, prefix: str) -> Iterator[tuple[str, list[Version], list[Version]]]:
    if src.cfg == target.cfg:
        for key, hist in group_by_key(src.iter_versions(prefix)):
            yield key, hist, hist
    else:
        yield from merge_by_key(group_by_key(src.iter_versions(prefix)),
                                group_by_key(target.iter_versions(prefix)))


def restore_at(src: Bucket, target: Bucket, at: datetime, *, prefix: str = "", dry_run: bool = False,
               workers: int = 8, reporter: Reporter | None = None, force: bool = False) -> RestoreResult:
    """Make every key under ``prefix`` read as it did at ``at``.

    Refuses, unless ``force``, a time in the future and a time before the bucket existed
    (a mistyped year would otherwise turn into deleting every key)."""
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    src.check_access(write=True)
    if target.cfg != src.cfg:
        target.check_access()
    src.require_versioning("point-in-time restore")
    if not force:
        now = datetime.now(UTC)
        if at > now:
            raise RefusedError(f"--at {utc_iso(at)} is in the future", hint="Check the time (UTC), or pass --force.")
        created = src.created_at()
        if created is not None and at < created:
            raise RefusedError(f"--at {utc_iso(at)} is before bucket {src.name} was created ({utc_iso(created)}): "
                               "restoring to it would delete every key", hint="Check the time (UTC); pass --force if "
                                                                             "that is really what you want.")
    res = RestoreResult(src.cfg.public(), target.cfg.public(), utc_iso(at), prefix, dry_run)
    reporter.stage(f"restoring {target.name}/{prefix} to {utc_iso(at)}" + (" (dry run)" if dry_run else ""))

    def actions() -> Iterator[RestoreAction]:
        for _key, s_hist, t_hist in _pairs(src, target, prefix):
            a = plan_key_restore(s_hist, t_hist, at)
            res.summary.add(a)
            if a is None:
                continue
            if a.kind is ActionKind.ARCHIVED:
                if len(res.archived) < LIST_LIMIT:
                    res.archived.append(a)
                continue
            if len(res.actions) < LIST_LIMIT:
                res.actions.append(a)
            yield a

    def execute(a: RestoreAction) -> None:
        if a.kind is ActionKind.COPY:
            assert a.source is not None
            v = a.source
            Bucket.retrying(lambda: src.copy_version_to(target, v.key, v.version_id, size_hint=v.size))
            res.work.add("copied")
            res.work.add("bytes", v.size)
            reporter.advance(v.size)
        else:
            # a delete marker in a versioned target; a plain delete in an unversioned one
            Bucket.retrying(lambda: target.add_delete_marker(a.key))
            res.work.add("deleted")

    if dry_run:
        for _ in actions():
            pass
    else:
        run_bounded(actions(), execute, workers=workers, work=res.work, key_of=lambda a: a.key)
    res.elapsed_s = time.monotonic() - t0
    return res


# ---- undelete ------------------------------------------------------------------------------------

@dataclass
class UndeleteResult:
    bucket: dict[str, Any]
    keys: list[dict[str, Any]] = field(default_factory=list)
    work: KeyWork = field(default_factory=KeyWork)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.work.failed

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "dry_run": self.dry_run, "bucket": self.bucket,
                "undeleted": len(self.keys), "keys": self.keys[:LIST_LIMIT],
                "markers_removed": self.work.counts.get("markers", 0),
                "failed": failures_dict(self.work), "failed_count": len(self.work.failed)}


def undelete(bucket: Bucket, *, key: str | None = None, prefix: str | None = None, dry_run: bool = False,
             workers: int = 8) -> UndeleteResult:
    """Remove the delete markers on top of each deleted key, so its newest version is live again.
    Only delete markers are removed (never an object version); a key never written, or not
    deleted, is left alone (a named KEY that is not deleted is NotFoundError)."""
    bucket.check_access(write=True)
    bucket.require_versioning("undelete")
    res = UndeleteResult(bucket.cfg.public(), dry_run=dry_run)
    listing = bucket.iter_versions(key if key is not None else (prefix or ""))

    def todo() -> Iterator[tuple[str, list[Version]]]:
        for k, hist in group_by_key(listing):
            if key is not None and k != key:
                continue
            markers = markers_on_top(hist)
            if markers:
                res.keys.append({"key": k, "markers": [m.version_id for m in markers],
                                 "restored_version_id": hist[-1 - len(markers)].version_id})
                yield k, markers

    def remove(item: tuple[str, list[Version]]) -> None:
        k, markers = item
        for m in markers:  # newest first
            try:
                Bucket.retrying(lambda m=m: bucket.delete_version(k, m.version_id))  # type: ignore[misc]
            except Exception as exc:
                from swarm.errors import SwarmError

                if isinstance(exc, SwarmError):
                    res.work.fail(k, m.version_id, exc)
                    return
                raise
            res.work.add("markers")

    if dry_run:
        for _ in todo():
            pass
    else:
        run_bounded(todo(), remove, workers=workers, work=res.work, key_of=lambda it: it[0])
    if key is not None and not res.keys:
        hist = bucket.key_history(key)
        state = "has no versions" if not hist else "is not deleted (its latest version is live)"
        raise NotFoundError(f"{key} in {bucket.name} {state}; nothing to undelete",
                            hint=f"See its history with `swarm admin objects versions {key}`.")
    return res


def versions(bucket: Bucket, key: str) -> dict[str, Any]:
    """Every version and delete marker of one key, newest first."""
    bucket.check_access()
    hist = bucket.key_history(key)
    if not hist:
        raise NotFoundError(f"{key} has no versions in {bucket.name}",
                            hint="Check the key (no leading slash) and SWARM_OBJECTS_BUCKET.")
    return {"bucket": bucket.name, "key": key, "versions": [v.to_dict() for v in reversed(hist)]}
