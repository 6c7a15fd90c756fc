"""Pin a bucket's object versions in the backup repository, and bring them back.

``backup_objects`` writes a repository backup of kind ``objects``:

* ``inventory.jsonl``: one JSON line per key live at the backup's moment T (the start of the
  run), in S3 key order: ``key``, ``version_id``, ``etag``, ``size``, ``last_modified``,
  ``storage_class``; with ``--copy-data`` also ``content_type``, ``metadata`` and ``data``.
  The moment is exact even though listing takes time: versions written after T are
  ignored (``model.object_versions.live_at``), to the 1 s granularity of last-modified;
* with ``--copy-data``, the bytes of every inventoried version, as repository objects
  ``versions/<sha256(key NUL version_id)>``. Versions are immutable, so a version already
  stored by an earlier objects backup of the same bucket is *referenced*, not stored again.

Reference format (recorded in the manifest's ``source.reference_format``): each
inventory line's ``data`` is ``{"backup": "<backup id>", "object": "versions/<hash>"}``,
naming the backup whose repository object holds the plaintext bytes (read with
``Repository.read_object(load_manifest(backup), object)``). ``source.references`` lists every
other backup this one points into, and the manifest's ``refs`` list each such object
(``refs.objects``) and those backups' data keys: ``prune`` must keep them while this one is kept.

Crash safety: the manifest is written last (the Repository's protocol), so an interrupted
backup does not exist; copied data objects are removed by ``abort`` or swept by ``prune``.

``restore_objects`` brings exactly the inventoried versions back as the latest versions: a
key whose current content already matches is skipped; otherwise the recorded version is
copied (server-side when possible); if that version is gone from the bucket, its stored
bytes are uploaded (when the backup copied data); else the key is reported failed. Keys
not in the inventory are left alone.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from swarm.clock import Clock, SystemClock, parse_iso, utc_iso
from swarm.errors import ConfigError, NotFoundError, SwarmError, WrongKind
from swarm.model.manifest import Manifest
from swarm.model.object_versions import Version, current, group_by_key, live_at, same_content
from swarm.model.refs import DataRef, Refs
from swarm.model.sources import Kind
from swarm.repo import Repository
from swarm.services.objects.common import KeyWork, failures_dict, run_bounded
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.objects import Bucket

KIND = Kind.OBJECTS
INVENTORY = "inventory.jsonl"
REFERENCE_FORMAT = ('inventory line "data": {"backup": <backup id>, "object": "versions/<sha256 hex of '
                    'key + NUL + version_id>"}; the named backup holds the plaintext bytes of that version')


def version_object_name(key: str, version_id: str) -> str:
    return "versions/" + hashlib.sha256(f"{key}\0{version_id}".encode()).hexdigest()


@dataclass
class ObjectsBackupResult:
    manifest: Manifest
    counts: dict[str, int]
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        src = self.manifest.objects_source
        return {"id": self.manifest.id, "kind": KIND, "bucket": src.bucket, "prefix": src.prefix,
                "at": src.at, "copy_data": src.copy_data, **self.counts, "size": src.bytes,
                "stored_size": self.manifest.stored_size, "references": list(src.references),
                "elapsed_s": round(self.elapsed_s, 3)}


def _previous_refs(repo: Repository, bucket: Bucket) -> dict[tuple[str, str], dict[str, Any]]:
    """(key, version id) → data reference (with the content type, metadata and tags recorded
    with it), from the newest earlier copy-data backup of this bucket."""
    prev = [m for m in repo.list_backups() if m.kind == KIND and m.objects_source.copy_data
            and m.objects_source.bucket == bucket.name and m.objects_source.endpoint == bucket.cfg.endpoint]
    if not prev:
        return {}
    m = prev[-1]
    refs: dict[tuple[str, str], dict[str, Any]] = {}
    for line in _lines(repo, m):
        d = json.loads(line)
        if d.get("data"):
            refs[(d["key"], d["version_id"])] = {k: d[k] for k in ("data", "content_type", "metadata", "tags")
                                                 if k in d}
    return refs


def _lines(repo: Repository, m: Manifest) -> Iterator[str]:
    buf = b""
    for chunk in repo.read_object(m, INVENTORY):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for ln in lines:
            if ln:
                yield ln.decode()
    if buf:
        yield buf.decode()


def backup_objects(repo: Repository, bucket: Bucket, *, prefix: str = "", copy_data: bool = False,
                   workers: int = 8, clock: Clock | None = None, reporter: Reporter | None = None,
                   at: datetime | None = None) -> ObjectsBackupResult:
    """Back up the bucket's inventory as of ``at`` (default: now): the versions live at that moment
    (a backup set passes its consistency point, so later writes are left out)."""
    clock = clock or SystemClock()
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    bucket.check_access(write=True)
    bucket.require_versioning("an objects backup (it pins version ids)")
    at = at or clock.now()
    counts = {"keys": 0, "bytes": 0, "versions_stored": 0, "bytes_stored": 0, "versions_referenced": 0}
    refs = _previous_refs(repo, bucket) if copy_data else {}
    referenced: set[str] = set()
    copied: set[DataRef] = set()  # versions stored by earlier backups that this one reads: its refs
    mutex = threading.Lock()
    with repo.lock("backup-objects") as lock:
        writer = repo.begin_backup(KIND, lock=lock)
        try:
            reporter.stage(f"inventory of {bucket.name}/{prefix} at {utc_iso(at)}")
            with tempfile.TemporaryFile() as inv, ThreadPoolExecutor(max(1, workers)) as pool:
                window: deque[tuple[dict[str, Any], Future[dict[str, Any]] | None]] = deque()

                def store(v: Version) -> dict[str, Any]:
                    name = version_object_name(v.key, v.version_id)
                    meta: dict[str, Any] = {}

                    def body() -> Iterator[bytes]:
                        resp = bucket.call(f"get {v.key}", bucket.client.get_object, Bucket=bucket.name,
                                           Key=v.key, VersionId=v.version_id)
                        meta["content_type"] = resp.get("ContentType")
                        meta["metadata"] = dict(resp.get("Metadata") or {})
                        if int(resp.get("TagCount") or 0):
                            meta["tags"] = bucket.tags(v.key, v.version_id)
                        stream = resp["Body"]
                        try:
                            yield from stream.iter_chunks(chunk_size=1 << 20)
                        finally:
                            stream.close()

                    Bucket.retrying(lambda: writer.put_object(name, body()))
                    with mutex:
                        counts["versions_stored"] += 1
                        counts["bytes_stored"] += v.size
                    reporter.advance(v.size)
                    return {**meta, "data": {"backup": writer.id, "object": name}}

                def flush(block: bool) -> None:
                    while window and (block or window[0][1] is None or window[0][1].done()):
                        line, fut = window.popleft()
                        if fut is not None:
                            line.update(fut.result())
                        inv.write(json.dumps(line, sort_keys=True).encode() + b"\n")

                for _key, hist in group_by_key(bucket.iter_versions(prefix)):
                    v = live_at(hist, at)
                    if v is None:
                        continue
                    counts["keys"] += 1
                    counts["bytes"] += v.size
                    line: dict[str, Any] = {"key": v.key, "version_id": v.version_id, "etag": v.etag,
                                            "size": v.size, "last_modified": utc_iso(v.last_modified),
                                            "storage_class": v.storage_class}
                    fut: Future[dict[str, Any]] | None = None
                    if copy_data:
                        ref = refs.get((v.key, v.version_id))
                        if ref is not None:
                            line.update(ref)
                            referenced.add(ref["data"]["backup"])
                            with mutex:
                                copied.add(DataRef(ref["data"]["backup"], ref["data"]["object"]))
                            counts["versions_referenced"] += 1
                        elif v.archived:
                            line["data"] = None
                            line["note"] = f"in {v.storage_class}: not copied (thaw it first)"
                        else:
                            fut = pool.submit(store, v)
                    window.append((line, fut))
                    flush(block=len(window) >= workers * 8)
                flush(block=True)
                inv.seek(0)
                writer.put_object(INVENTORY, iter(lambda: inv.read(1 << 20), b""))
            source = {"engine": "s3", "bucket": bucket.name, "endpoint": bucket.cfg.endpoint, "prefix": prefix,
                      "at": utc_iso(at), "copy_data": copy_data, "inventory": INVENTORY,
                      "keys": counts["keys"], "bytes": counts["bytes"],
                      "reference_format": REFERENCE_FORMAT, "references": sorted(referenced)}
            deks = {repo.load_manifest(b).dek_id for b in referenced}
            manifest = writer.commit(source, Refs.of(objects=copied, deks=deks))
        except BaseException:
            writer.abort()
            raise
    return ObjectsBackupResult(manifest, counts, time.monotonic() - t0)


# ---- restore -------------------------------------------------------------------------------------

@dataclass
class ObjectsRestoreResult:
    backup_id: str
    target: dict[str, Any]
    dry_run: bool
    work: KeyWork = field(default_factory=KeyWork)
    planned: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.work.failed

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "backup_id": self.backup_id, "target": self.target, "dry_run": self.dry_run,
                "counts": dict(self.work.counts), "actions": self.planned[:1000],
                "failed": failures_dict(self.work), "failed_count": len(self.work.failed),
                "elapsed_s": round(self.elapsed_s, 3)}


def _inventory_versions(repo: Repository, m: Manifest) -> Iterator[tuple[str, list[Version], dict[str, Any]]]:
    for line in _lines(repo, m):
        d = json.loads(line)
        v = Version(d["key"], d["version_id"], parse_iso(d["last_modified"]), size=int(d["size"]),
                    etag=d.get("etag", ""), storage_class=d.get("storage_class", "STANDARD"))
        yield d["key"], [v], d


def restore_objects(repo: Repository, backup_id: str, source: Bucket, target: Bucket, *, dry_run: bool = False,
                    workers: int = 8, reporter: Reporter | None = None) -> ObjectsRestoreResult:
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    m = repo.load_manifest(backup_id)
    if m.kind != KIND:
        # a backup of the wrong kind is refused (exit 8) by every restore; a missing one is 9
        raise WrongKind(f"backup {backup_id} is a {m.kind} backup, not an objects backup",
                           hint="Pick an id of kind objects from `swarm admin backups list`.")
    src = m.objects_source
    if source.name != src.bucket:
        raise ConfigError(f"backup {backup_id} is of bucket {src.bucket}, not {source.name}",
                          hint="Point SWARM_OBJECTS_BUCKET at the bucket the backup was taken of; use "
                               "--to-bucket to restore elsewhere.")
    source.check_access()
    if target.cfg != source.cfg:
        target.check_access(write=True)
    prefix = src.prefix
    res = ObjectsRestoreResult(backup_id, target.cfg.public(), dry_run)
    manifests: dict[str, Manifest] = {m.id: m}
    mlock = threading.Lock()
    reporter.stage(f"restoring {src.keys} keys of {backup_id} into {target.name}")

    def manifest_of(bid: str) -> Manifest:
        with mlock:
            if bid not in manifests:
                manifests[bid] = repo.load_manifest(bid)
            return manifests[bid]

    def todo() -> Iterator[tuple[Version, dict[str, Any], bool]]:
        tgt = group_by_key(target.iter_versions(prefix))
        tcur = next(tgt, None)
        for key, (want,), d in _inventory_versions(repo, m):
            while tcur is not None and tcur[0] < key:
                tcur = next(tgt, None)
            hist = tcur[1] if tcur is not None and tcur[0] == key else []
            have = current(hist)
            res.work.add("keys")
            if have is not None and (have.version_id == want.version_id or same_content(have, want)):
                res.work.add("unchanged")
                continue
            in_bucket = target.cfg == source.cfg and any(h.version_id == want.version_id for h in hist)
            if len(res.planned) < 1000:
                res.planned.append({"key": key, "version_id": want.version_id,
                                    "from": "version" if in_bucket else ("version-or-stored-bytes"
                                                                         if d.get("data") else "version")})
            yield want, d, in_bucket

    def execute(item: tuple[Version, dict[str, Any], bool]) -> None:
        want, d, _in_bucket = item
        try:
            Bucket.retrying(lambda: source.copy_version_to(target, want.key, want.version_id,
                                                           size_hint=want.size))
            res.work.add("copied")
            reporter.advance(want.size)
            return
        except SwarmError as exc:
            if not isinstance(exc, NotFoundError):
                raise
            if not d.get("data"):
                raise NotFoundError(f"version {want.version_id} of {want.key} is gone from {source.name} "
                                    "and the backup holds no copy of its bytes (taken without --copy-data)"
                                    ) from exc
        ref = d["data"]
        rm = manifest_of(ref["backup"])
        meta = dict(d.get("metadata") or {})
        meta["swarm-restored-from-version"] = want.version_id
        Bucket.retrying(lambda: target.put_stream(want.key, repo.read_object(rm, ref["object"]), metadata=meta,
                                                  content_type=d.get("content_type"), tags=d.get("tags")))
        res.work.add("uploaded_from_backup")
        reporter.advance(want.size)

    if dry_run:
        for _ in todo():
            res.work.add("would_restore")
    else:
        run_bounded(todo(), execute, workers=workers, work=res.work, key_of=lambda it: it[0].key)
    res.elapsed_s = time.monotonic() - t0
    return res
