"""Version-aware replication of a bucket to a DR bucket, and the check that both agree.

Why our own (docs/design/object-replication.md): SeaweedFS has no replication API and its
``filer.sync`` served stale versions on versioned buckets; AWS native replication does not
copy what existed before it was switched on. So: list both sides, align each key's
histories (``model.object_versions.replication_gap``), and replay the source entries DR
lacks, oldest first, per key, keys in parallel.

Version ids cannot be carried across buckets, so every DR copy records the source version id
and last-modified in user metadata (``x-amz-meta-swarm-source-version`` / ``-mtime``).
Delete markers are replayed as delete markers (they carry no metadata; their place in the
sequence identifies them).

Order of steps and what a crash leaves: (1) check credentials and versioning on both sides
(nothing changed yet); (2) stream both listings, merged by key; (3) for a key with a gap,
copy its missing entries one by one in source order. Each copy is one atomic S3 request, so
a crash leaves every key with a *prefix* of its missing entries copied; the next run aligns
that prefix and replays only the rest. Nothing is written anywhere else, so there is no
checkpoint to corrupt. A key whose DR latest does not match any aligned source entry (someone
wrote on DR) gets the source entries replayed on top, which restores the latest pointer.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from swarm.clock import Clock, SystemClock, utc_iso
from swarm.model.object_versions import (
    ReplicationGap,
    Version,
    current,
    group_by_key,
    merge_by_key,
    replication_gap,
    same_content,
)
from swarm.services.objects import listing
from swarm.services.objects.common import KeyWork, failures_dict, require_distinct, run_bounded
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.objects import Bucket
from swarm.sources.objects.bucket import source_meta


@dataclass
class ReplicateResult:
    source: dict[str, Any]
    dr: dict[str, Any]
    prefix: str
    server_side: bool
    work: KeyWork
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.work.failed

    def to_dict(self) -> dict[str, Any]:
        c = self.work.counts
        return {"ok": self.ok, "source": self.source, "dr": self.dr, "prefix": self.prefix,
                "server_side": self.server_side, "keys_examined": c.get("keys", 0),
                "keys_changed": c.get("keys_changed", 0), "versions_copied": c.get("versions", 0),
                "delete_markers_copied": c.get("markers", 0), "bytes_copied": c.get("bytes", 0),
                "failed": failures_dict(self.work), "failed_count": len(self.work.failed),
                "elapsed_s": round(self.elapsed_s, 3)}


def _check_both(src: Bucket, dr: Bucket) -> None:
    """Credentials, listing rights and versioning of both sides, checked concurrently (six small
    requests); the source's error is raised first when both fail. Nothing is changed before
    both pass."""
    with ThreadPoolExecutor(2, thread_name_prefix="objects-check") as pool:
        s = pool.submit(lambda: (src.check_access(write=True), src.require_versioning("replication")))
        d = pool.submit(lambda: (dr.check_access(write=True),
                                 dr.require_versioning("replication (the DR side keeps every version too)")))
        s.result()
        d.result()


def _pairs(src: Bucket, dr: Bucket, prefix: str) -> Iterator[tuple[str, list[Version], list[Version]]]:
    return merge_by_key(group_by_key(src.iter_versions(prefix)), group_by_key(dr.iter_versions(prefix)))


def replicate(src: Bucket, dr: Bucket, *, prefix: str = "", workers: int = 8, storage_class: str | None = None,
              reporter: Reporter | None = None, after_copy: Callable[[int], None] | None = None,
              clock: Clock | None = None, on_listing: Callable[[str], None] | None = None) -> ReplicateResult:
    """Copy every version and delete marker DR lacks. ``after_copy(n)`` is called after the
    n-th copy (tests inject a crash there); ``on_listing(kind)`` each time the DR side starts a
    listing, ``"latest"`` or ``"versions"`` (see ``listing.pairs``).

    A pass that finds nothing to do costs the access checks (both sides at once), the source's
    version listing and, where the DR side allows it, DR's latest-only listing: no per-object
    request. ``keys_examined`` counts the keys either listing showed (a key only DR has and whose
    newest DR entry is a delete marker is not shown by the latest-only listing, and needs nothing).
    """
    reporter = reporter or NullReporter()
    clock = clock or SystemClock()
    t0 = clock.monotonic()
    require_distinct(src.cfg, dr.cfg)
    _check_both(src, dr)
    work = KeyWork()
    copies = [0]
    server_side = src.cfg.same_account(dr.cfg)
    reporter.stage(f"replicating {src.name} → {dr.name}")

    def gaps() -> Iterator[tuple[ReplicationGap, list[Version]]]:
        for key, s_hist, d_hist in listing.pairs(src, dr, prefix, on_mode=on_listing):
            work.add("keys")
            gap = replication_gap(key, s_hist, d_hist)
            if gap.missing or (not s_hist and current(d_hist) is not None):
                yield gap, d_hist

    def replay(item: tuple[ReplicationGap, list[Version]]) -> None:
        gap, _d_hist = item
        work.add("keys_changed")
        if not gap.missing:  # the source lost every version of the key: hide it on DR too
            Bucket.retrying(lambda: dr.add_delete_marker(gap.key))
            work.add("markers")
            return
        for v in gap.missing:
            try:
                if v.is_delete_marker:
                    Bucket.retrying(lambda v=v: dr.add_delete_marker(v.key))  # type: ignore[misc]
                    work.add("markers")
                else:
                    Bucket.retrying(lambda v=v: src.copy_version_to(  # type: ignore[misc]
                        dr, v.key, v.version_id, extra_meta=source_meta(v), storage_class=storage_class,
                        size_hint=v.size))
                    work.add("versions")
                    work.add("bytes", v.size)
                    reporter.advance(v.size)
            except Exception as exc:
                from swarm.errors import SwarmError

                if isinstance(exc, SwarmError):
                    work.fail(v.key, v.version_id, exc)
                    return  # later versions of this key must not overtake the failed one
                raise
            copies[0] += 1
            if after_copy:
                after_copy(copies[0])

    run_bounded(gaps(), replay, workers=workers, work=work, key_of=lambda it: it[0].key)
    return ReplicateResult(src.cfg.public(), dr.cfg.public(), prefix, server_side, work, clock.monotonic() - t0)


# ---- check ---------------------------------------------------------------------------------------

@dataclass
class KeyDifference:
    key: str
    kind: str  # missing_on_dr | missing_versions | latest_differs | extra_on_dr
    detail: str
    source_latest: dict[str, Any] | None = None
    dr_latest: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "kind": self.kind, "detail": self.detail}
        if self.source_latest is not None:
            d["source_latest"] = self.source_latest
        if self.dr_latest is not None:
            d["dr_latest"] = self.dr_latest
        return d


@dataclass
class ReplicationCheck:
    source: dict[str, Any]
    dr: dict[str, Any]
    prefix: str
    checked_at: str
    counts: dict[str, int] = field(default_factory=dict)
    differences: list[KeyDifference] = field(default_factory=list)
    difference_count: int = 0
    lag_s: float = 0.0
    oldest_missing: str | None = None

    @property
    def in_sync(self) -> bool:
        return self.difference_count == 0

    def to_dict(self) -> dict[str, Any]:
        return {"in_sync": self.in_sync, "source": self.source, "dr": self.dr, "prefix": self.prefix,
                "checked_at": self.checked_at, "counts": self.counts, "lag_s": round(self.lag_s, 3),
                "oldest_unreplicated": self.oldest_missing, "difference_count": self.difference_count,
                "truncated": self.truncated, "differences": [d.to_dict() for d in self.differences]}

    @property
    def truncated(self) -> bool:
        """True when ``differences`` lists fewer than ``difference_count`` (all are counted)."""
        return len(self.differences) < self.difference_count


def check_replication(src: Bucket, dr: Bucket, *, prefix: str = "", clock: Clock | None = None,
                      limit: int = 1000) -> ReplicationCheck:
    """Compare both sides key by key: versions in order (size, ETag where comparable, delete
    markers), the latest pointer, and keys only one side has. Read only. Every difference is
    counted (``difference_count``, ``counts``); the first ``limit`` are listed, and
    ``truncated`` says when the list is shorter than the count."""
    clock = clock or SystemClock()
    now = clock.now()
    src.check_access(write=True)
    dr.check_access(write=True)
    res = ReplicationCheck(src.cfg.public(), dr.cfg.public(), prefix, utc_iso(now))
    c = res.counts
    oldest: datetime | None = None

    def differ(d: KeyDifference) -> None:
        res.difference_count += 1
        c[d.kind] = c.get(d.kind, 0) + 1
        if len(res.differences) < limit:
            res.differences.append(d)

    for key, s_hist, d_hist in _pairs(src, dr, prefix):
        c["source_keys"] = c.get("source_keys", 0) + (1 if s_hist else 0)
        c["dr_keys"] = c.get("dr_keys", 0) + (1 if d_hist else 0)
        c["source_versions"] = c.get("source_versions", 0) + len(s_hist)
        c["dr_versions"] = c.get("dr_versions", 0) + len(d_hist)
        s_cur, d_cur = current(s_hist), current(d_hist)
        s_d = s_cur.to_dict() if s_cur else None
        d_d = d_cur.to_dict() if d_cur else None
        if not s_hist:
            if d_cur is not None:
                differ(KeyDifference(key, "extra_on_dr", "key is live on DR but has no versions on the source",
                                     None, d_d))
            continue
        gap = replication_gap(key, s_hist, d_hist)
        for v in gap.missing:
            if oldest is None or v.last_modified < oldest:
                oldest = v.last_modified
        if not d_hist:
            differ(KeyDifference(key, "missing_on_dr", f"{len(s_hist)} version(s) not replicated", s_d, None))
        elif not same_content(s_cur, d_cur):
            differ(KeyDifference(key, "latest_differs",
                                 _latest_detail(s_cur, d_cur) + (f"; {len(gap.missing)} version(s) not replicated"
                                                                 if gap.missing else ""), s_d, d_d))
        elif gap.missing:
            differ(KeyDifference(key, "missing_versions", f"{len(gap.missing)} older version(s) not replicated",
                                 s_d, d_d))
    res.lag_s = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    res.oldest_missing = utc_iso(oldest) if oldest else None
    return res


def _latest_detail(s: Version | None, d: Version | None) -> str:
    def desc(v: Version | None) -> str:
        if v is None:
            return "deleted/absent"
        return f"{v.size} B etag {v.etag}"

    return f"source latest is {desc(s)}, DR latest is {desc(d)}"
