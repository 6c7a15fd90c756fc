"""How replication reads the two sides: the source's version listing joined with the DR side,
read as cheaply as the key at hand allows.

Why: on SeaweedFS a ``ListObjectVersions`` page costs the server five to six times what a
``ListObjectsV2`` page does (it opens every key's version directory), and a replication pass
that finds nothing to do is two full listings and little else. For a key whose source
history is one object version, DR's *latest* entry alone decides whether anything is missing
(``replication_gap`` aligns DR's newest entry with that one version), and a ``ListObjectsV2``
page gives exactly that: the newest entry of every key whose newest entry is not a delete
marker. So the DR side starts as a latest-only listing; at the first key that needs DR's full
history (more than one source entry, a delete marker, a key absent from the latest-only
listing, or a latest that differs) the DR side switches to the version listing, started right
after the last key already decided, and stays there until ``SWITCH_BACK`` consecutive keys in
a row were decidable from latest entries alone, when it returns to the cheap listing.

Exact, not a heuristic: every key the cheap path decides is decided the way the full history
would decide it (see ``_decidable``); every other key gets its full DR history. Each side is
paged in order in a background thread (one page ahead); memory stays at a few pages. Read
only: a kill at any point leaves nothing behind.

Not paged in parallel: on SeaweedFS, two to five concurrent version listings of one bucket (split
by prefix, or by key range with boundaries from a delimiter listing) took 1.5-2.5x as long as one
sequential listing of the same keys (bench/RESULTS.md, objects), so each side is one stream.

Only buckets reached through the lean SigV4 data path (custom endpoints with keys) take the
cheap path; others (AWS S3 through boto3, where both listings cost alike) stream both version
listings as before.

The lean ``ListObjectsV2`` request below signs through the source adapter's endpoint object;
it belongs beside ``list_versions_page`` in ``sources/objects/fastpath.py`` and is here only
because that module is owned elsewhere for now.
"""
from __future__ import annotations

import queue
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from swarm.model.object_versions import Version, group_by_key, merge_by_key, same_content
from swarm.sources.objects import Bucket

PAGE = 1000
# In version-listing mode, this many consecutive keys decidable from latest entries alone send
# the DR side back to the cheap listing. A switch back wastes at most the version pages read
# ahead (one queued, one in flight), so four pages' worth of keys between switches bounds the
# waste at about half a version listing even for keys laid out to flip the mode as often as
# possible; buckets where most keys have history stay on the version listing.
SWITCH_BACK = 4 * PAGE

History = list[Version]
Triple = tuple[str, History, History]


def pairs(src: Bucket, dr: Bucket, prefix: str, *, on_mode: Callable[[str], None] | None = None
          ) -> Iterator[Triple]:
    """(key, source history, DR history) for every key under ``prefix`` that either side has,
    in key order, except keys decided in sync from DR's latest entry alone, which are yielded
    with the DR history ``[latest]`` (enough for ``replication_gap`` on a one-entry source
    history: it aligns DR's newest entry only). ``on_mode("latest" | "versions")`` is told each
    time the DR side starts a listing (tests and profiles count them)."""
    s_iter = group_by_key(src.iter_versions(prefix))
    if dr._fast is None:  # boto3-only bucket: both listings cost alike
        if on_mode:
            on_mode("versions")
        yield from merge_by_key(s_iter, group_by_key(dr.iter_versions(prefix)))
        return
    yield from _hybrid(s_iter, dr, prefix, on_mode or (lambda _m: None))


def _decidable(s_hist: History, d_latest: Version | None) -> bool:
    """Can DR's latest entry alone (``None``: the key is not live on DR) settle this key?

    Only when the source history is a single object version: ``replication_gap`` then aligns
    DR's newest entry with it, and the latest-only listing shows DR's newest entry whenever it
    is an object. The key is in sync iff that entry has the same content. A delete marker as
    DR's newest entry hides the key from the latest-only listing, so ``None`` is not decidable.
    """
    return (len(s_hist) == 1 and not s_hist[0].is_delete_marker and d_latest is not None
            and same_content(s_hist[0], d_latest))


def _hybrid(s_iter: Iterator[tuple[str, History]], dr: Bucket, prefix: str,
            on_mode: Callable[[str], None]) -> Iterator[Triple]:
    last: str | None = None  # every key <= last is decided
    s_cur = next(s_iter, None)
    while True:
        # ---- cheap mode: DR latest entries only --------------------------------------------
        on_mode("latest")
        latest = _Pages(_latest_pages(dr, prefix, last))
        try:
            d_cur = next(latest, None)
            while s_cur is not None or d_cur is not None:
                if s_cur is None or (d_cur is not None and d_cur.key < s_cur[0]):
                    assert d_cur is not None
                    # live on DR only: replication hides it; the latest entry is all it needs
                    yield d_cur.key, [], [d_cur]
                    last, d_cur = d_cur.key, next(latest, None)
                    continue
                key, s_hist = s_cur
                d_latest = d_cur if d_cur is not None and d_cur.key == key else None
                if not _decidable(s_hist, d_latest):
                    break  # switch: DR's full history from this key on
                assert d_latest is not None
                yield key, s_hist, [d_latest]
                last, s_cur, d_cur = key, next(s_iter, None), next(latest, None)
            else:
                return
        finally:
            latest.close()
        # ---- full mode: DR version listing, from the first undecided key -------------------
        on_mode("versions")
        versions = _Pages(_version_pages(dr, prefix, last))
        d_hist_iter = group_by_key(versions)
        try:
            d_grp = next(d_hist_iter, None)
            streak = 0
            while s_cur is not None or d_grp is not None:
                if s_cur is None or (d_grp is not None and d_grp[0] < s_cur[0]):
                    assert d_grp is not None
                    yield d_grp[0], [], d_grp[1]
                    last, d_grp = d_grp[0], next(d_hist_iter, None)
                    streak = 0
                    continue
                key, s_hist = s_cur
                d_hist = d_grp[1] if d_grp is not None and d_grp[0] == key else []
                yield key, s_hist, d_hist
                last, s_cur = key, next(s_iter, None)
                if d_hist:
                    d_grp = next(d_hist_iter, None)
                streak = streak + 1 if _decidable(s_hist, d_hist[-1] if d_hist else None) else 0
                if streak >= SWITCH_BACK and s_cur is not None:
                    break
            else:
                return
        finally:
            versions.close()


# ---- pages --------------------------------------------------------------------------------------

def _version_pages(b: Bucket, prefix: str, after: str | None) -> Iterator[list[Version]]:
    """DR version listing of every key > ``after`` (all keys when None), page by page."""
    from swarm.sources.objects.fastpath import list_versions_page

    key_marker, version_marker = after, None
    while True:
        page = list_versions_page(b._fast, b.name, prefix, key_marker, version_marker, PAGE)
        yield [_entry(e) for e in page.entries if after is None or e["Key"] > after]
        if not page.truncated or not page.next_key:
            return
        key_marker, version_marker = page.next_key, page.next_version


def _latest_pages(b: Bucket, prefix: str, after: str | None) -> Iterator[list[Version]]:
    """``ListObjectsV2`` of keys > ``after``: the newest entry of every key whose newest entry
    is an object (version id unknown: ``"?"``; never used to copy or delete)."""
    token: str | None = None
    ep = b._fast
    while True:
        query = {"list-type": "2", "prefix": prefix, "max-keys": str(PAGE)}
        if token:
            query["continuation-token"] = token
        elif after is not None:
            query["start-after"] = after
        resp = ep._request("GET", b.name, "", query, {}, None,
                           f"list {prefix or '/'} on {b.name}")
        root = ET.fromstring(resp.data)
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        out = []
        for el in root.iterfind(ns + "Contents"):
            key = el.findtext(ns + "Key") or ""
            if after is not None and key <= after:
                continue
            lm = el.findtext(ns + "LastModified") or ""
            out.append(Version(key=key, version_id="?",
                               last_modified=datetime.fromisoformat(lm.replace("Z", "+00:00")),
                               is_latest=True, size=int(el.findtext(ns + "Size") or 0),
                               etag=(el.findtext(ns + "ETag") or "").strip('"'),
                               storage_class=el.findtext(ns + "StorageClass") or "STANDARD"))
        yield out
        token = root.findtext(ns + "NextContinuationToken")
        if (root.findtext(ns + "IsTruncated") or "").lower() != "true" or not token:
            return


def _entry(e: dict[str, Any]) -> Version:
    return Version(key=e["Key"], version_id=str(e.get("VersionId") or "null"), last_modified=e["LastModified"],
                   is_delete_marker=bool(e["DeleteMarker"]), is_latest=bool(e.get("IsLatest")),
                   size=int(e.get("Size") or 0), etag=str(e.get("ETag") or "").strip('"'),
                   storage_class=str(e.get("StorageClass") or "STANDARD"))


class _Pages:
    """Entries of ``pages`` (a generator: its arguments are bound when it is created), fetched
    one page ahead in a background thread. ``close()`` stops the producer (used when the DR side
    switches listing)."""

    def __init__(self, pages: Iterator[list[Version]]) -> None:
        self._q: queue.Queue[Any] = queue.Queue(1)
        self._stop = threading.Event()
        self._done = object()
        self._buf: Iterator[Version] = iter(())
        self._t = threading.Thread(target=self._produce, args=(pages,), name="list-dr", daemon=True)
        self._t.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self, pages: Iterator[list[Version]]) -> None:
        try:
            for page in pages:
                if not self._put(page):
                    return
            self._put(self._done)
        except BaseException as exc:  # re-raised in the consumer
            self._put(exc)

    def __iter__(self) -> Iterator[Version]:
        return self

    def __next__(self) -> Version:
        while True:
            v = next(self._buf, None)
            if v is not None:
                return v
            item = self._q.get()
            if item is self._done:
                self._q.put(item)  # stay exhausted
                raise StopIteration
            if isinstance(item, BaseException):
                raise item
            self._buf = iter(item)

    def close(self) -> None:
        self._stop.set()

