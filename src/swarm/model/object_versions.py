"""Versions of objects in a bucket, as values, and the pure decisions made from them.

Everything here works on *version listings* (what ``ListObjectVersions`` returns: key,
version id, delete-marker flag, last-modified, size, ETag, storage class), never on the
network. The services feed listings in page by page; the functions here consume one key's
history at a time, so memory stays proportional to the versions of one key, not to the
bucket.

Conventions:

* A key's **history** is a sequence of ``Version`` oldest first. S3 lists a key's versions
  newest first; ``history_from_listing`` reverses. The listing order is the truth for
  ordering: last-modified has one-second granularity on some servers (SeaweedFS), so two
  versions written in the same second tie on time but not on position.
* The **state of a key at T** is the newest version whose last-modified is <= T; the key is
  absent at T if there is none or if that version is a delete marker.
* Two versions have the **same content** when both are delete markers, or both are objects
  with the same size and, where comparable, the same ETag. ETags of multipart uploads
  (``"...-N"``) depend on the part size, so a multipart ETag is only compared with another
  multipart ETag.

Restore plans (``plan_key_restore``) and replication diffs (``replication_gap``) are
functions of histories only, so they are tested exhaustively with property tests.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from swarm.clock import utc_iso

# Storage classes whose objects must be restored (thawed) before they can be read or copied.
ARCHIVE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


@dataclass(frozen=True)
class Version:
    """One entry of a version listing: an object version or a delete marker."""

    key: str
    version_id: str
    last_modified: datetime
    is_delete_marker: bool = False
    is_latest: bool = False
    size: int = 0
    etag: str = ""
    storage_class: str = "STANDARD"

    @property
    def archived(self) -> bool:
        return not self.is_delete_marker and self.storage_class in ARCHIVE_CLASSES

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "version_id": self.version_id,
                             "last_modified": utc_iso(self.last_modified), "is_latest": self.is_latest,
                             "delete_marker": self.is_delete_marker}
        if not self.is_delete_marker:
            d.update(size=self.size, etag=self.etag, storage_class=self.storage_class)
        return d


def _multipart(etag: str) -> bool:
    return "-" in etag


def same_content(a: Version | None, b: Version | None) -> bool:
    """True if ``a`` and ``b`` would read back the same (see the module docstring)."""
    if a is None or b is None:
        return a is b
    if a.is_delete_marker or b.is_delete_marker:
        return a.is_delete_marker and b.is_delete_marker
    if a.size != b.size:
        return False
    if a.etag and b.etag and _multipart(a.etag) == _multipart(b.etag):
        return a.etag.strip('"') == b.etag.strip('"')
    return True


def history_from_listing(versions: Iterable[Version]) -> list[Version]:
    """One key's listing entries (newest first, as S3 lists them) → history, oldest first."""
    return list(reversed(list(versions)))


def group_by_key(entries: Iterable[Version]) -> Iterator[tuple[str, list[Version]]]:
    """Consecutive listing entries → (key, history oldest first). Listings are sorted by key,
    so each key comes out exactly once and only one key's versions are held at a time."""
    key: str | None = None
    bucket: list[Version] = []
    for v in entries:
        if v.key != key:
            if key is not None:
                yield key, history_from_listing(bucket)
            key, bucket = v.key, []
        bucket.append(v)
    if key is not None:
        yield key, history_from_listing(bucket)


def merge_by_key(left: Iterable[tuple[str, list[Version]]], right: Iterable[tuple[str, list[Version]]]
                 ) -> Iterator[tuple[str, list[Version], list[Version]]]:
    """Join two key-sorted streams of histories: (key, left history, right history); a side
    without the key gives an empty list. Both inputs must be sorted the way S3 sorts keys
    (UTF-8 byte order, which is Python's code point order)."""
    li, ri = iter(left), iter(right)
    lcur, rcur = next(li, None), next(ri, None)
    while lcur is not None or rcur is not None:
        if rcur is None or (lcur is not None and lcur[0] < rcur[0]):
            assert lcur is not None
            yield lcur[0], lcur[1], []
            lcur = next(li, None)
        elif lcur is None or rcur[0] < lcur[0]:
            yield rcur[0], [], rcur[1]
            rcur = next(ri, None)
        else:
            yield lcur[0], lcur[1], rcur[1]
            lcur, rcur = next(li, None), next(ri, None)


def version_at(history: Sequence[Version], at: datetime) -> Version | None:
    """The entry in force at ``at`` (delete markers included), or None if the key did not exist yet."""
    found: Version | None = None
    for v in history:
        if v.last_modified <= at:
            found = v
    return found


def live_at(history: Sequence[Version], at: datetime) -> Version | None:
    """The object version readable at ``at``, or None if the key was absent (never written or deleted)."""
    v = version_at(history, at)
    return None if v is None or v.is_delete_marker else v


def current(history: Sequence[Version]) -> Version | None:
    """The object version readable now, or None (no versions, or a delete marker on top)."""
    if not history or history[-1].is_delete_marker:
        return None
    return history[-1]


# ---- point-in-time restore -------------------------------------------------------------------

class ActionKind(StrEnum):
    COPY = "copy"  # copy source version to be the target key's latest version
    DELETE = "delete"  # hide the key: a delete marker (in a versioned bucket)
    ARCHIVED = "archived"  # the version at T sits in an archive class: thaw it first (not executed)


@dataclass(frozen=True)
class RestoreAction:
    kind: ActionKind
    key: str
    source: Version | None = None  # the version to copy (COPY, ARCHIVED)
    replaces: Version | None = None  # the target's current version, if any

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"action": str(self.kind), "key": self.key}
        if self.source is not None:
            d["version_id"] = self.source.version_id
            d["size"] = self.source.size
            d["storage_class"] = self.source.storage_class
        if self.replaces is not None:
            d["replaces_version_id"] = self.replaces.version_id
        return d


def plan_key_restore(source: Sequence[Version], target: Sequence[Version], at: datetime) -> RestoreAction | None:
    """What to do to the target key so it reads as the source key did at ``at``.

    ``source`` and ``target`` are histories of the same key (the same list when restoring in
    place). None means the key is already right (unchanged keys are never copied again).
    """
    want = live_at(source, at)
    have = current(target)
    if want is None:
        if have is None:
            return None
        return RestoreAction(ActionKind.DELETE, have.key, replaces=have)
    if have is not None and (have.version_id == want.version_id or same_content(have, want)):
        return None
    kind = ActionKind.ARCHIVED if want.archived else ActionKind.COPY
    return RestoreAction(kind, want.key, source=want, replaces=have)


def plan_restore(pairs: Iterable[tuple[str, list[Version], list[Version]]], at: datetime
                 ) -> Iterator[RestoreAction]:
    """Stream of actions for a stream of (key, source history, target history)."""
    for _key, src, tgt in pairs:
        action = plan_key_restore(src, tgt, at)
        if action is not None:
            yield action


@dataclass
class PlanSummary:
    """Counts of a plan, for dry runs and results."""

    copy: int = 0
    delete: int = 0
    archived: int = 0
    bytes_to_copy: int = 0
    keys_examined: int = 0
    unchanged: int = 0

    def add(self, action: RestoreAction | None) -> None:
        self.keys_examined += 1
        if action is None:
            self.unchanged += 1
        elif action.kind is ActionKind.COPY:
            self.copy += 1
            self.bytes_to_copy += action.source.size if action.source else 0
        elif action.kind is ActionKind.DELETE:
            self.delete += 1
        else:
            self.archived += 1

    def to_dict(self) -> dict[str, int]:
        return {"keys_examined": self.keys_examined, "unchanged": self.unchanged, "copy": self.copy,
                "delete": self.delete, "archived": self.archived, "bytes_to_copy": self.bytes_to_copy}


# ---- undelete --------------------------------------------------------------------------------

def markers_on_top(history: Sequence[Version]) -> list[Version]:
    """The delete markers above the newest object version (removing them undeletes the key).
    Empty if the key is not deleted, or if it has no object version to come back to."""
    top: list[Version] = []
    for v in reversed(history):
        if not v.is_delete_marker:
            return top
        top.append(v)
    return []


# ---- replication -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ReplicationGap:
    """How a DR key's history relates to its source key's history.

    ``matched`` source entries (the oldest ones) are already on DR in order; ``missing`` are
    the newer source entries to replay, oldest first. ``extra_dr`` counts DR entries older
    than the matched run (history the source no longer has, e.g. expired noncurrent
    versions) - not an error. ``diverged`` is True when DR's latest entry is not the image
    of any source entry in order (someone wrote to DR, or a copy was damaged).
    """

    key: str
    matched: int
    missing: tuple[Version, ...] = field(default_factory=tuple)
    extra_dr: int = 0
    diverged: bool = False

    @property
    def in_sync(self) -> bool:
        return not self.missing and not self.diverged


def replication_gap(key: str, source: Sequence[Version], dr: Sequence[Version]) -> ReplicationGap:
    """Align DR history with source history.

    Replication replays source entries in order, so in a healthy pair DR's history ends
    with the oldest ``m`` source entries (``m`` = what has been copied so far). The largest
    such ``m`` is taken; entries after it are missing. Crash safe: a run that died after
    copying some of a key's versions leaves a DR history that still aligns, and the next
    run replays only the rest.
    """
    n, d = len(source), len(dr)
    for m in range(min(n, d), -1, -1):
        if all(same_content(dr[d - m + i], source[i]) for i in range(m)):
            break
    else:  # pragma: no cover - m == 0 always matches
        m = 0
    diverged = d > 0 and m == 0 and n > 0
    return ReplicationGap(key, m, tuple(source[m:]), d - m, diverged)


def replication_lag_seconds(gaps: Iterable[ReplicationGap], now: datetime) -> float:
    """Age of the oldest source entry not yet on DR (0 when in sync)."""
    oldest: datetime | None = None
    for g in gaps:
        for v in g.missing:
            if oldest is None or v.last_modified < oldest:
                oldest = v.last_modified
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
