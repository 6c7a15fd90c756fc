"""Restore test of an objects backup (``verify --restore-test`` on a backup of kind ``objects``).

An objects backup pins, per key, the version id live at its moment, with that version's
size and ETag (``inventory.jsonl``, see ``objects_backup``); with ``--copy-data`` it also
holds the version's bytes in the repository. The restore test proves a sample of those
versions can still be brought back:

* ``sample`` inventory lines are drawn uniformly at random (reservoir sampling over the
  streamed inventory, so memory does not grow with the bucket); ``sample = 0`` or a sample
  at least as large as the inventory reads every line;
* a line whose bytes the backup copied is read from the repository (every frame
  authenticated and the object's SHA-256 checked on the way); any other line is read from
  the bucket by its version id (GET ?versionId=);
* the bytes read must have the inventoried size and, when the ETag is a plain MD5 (not a
  multipart ``"...-N"`` ETag, which depends on the part size), that MD5. A version gone
  from the bucket, or bytes that differ, is a failure naming the key and version id; the
  versions gone from the bucket are also counted apart (``versions_gone``): they were deleted
  in the bucket, not damaged in the repository, and call for other action.

It only reads: nothing is written to the bucket or the repository. An unreachable bucket or
repository, or refused credentials, raise (exit 7 / 3) instead of failing every key.
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from swarm.errors import IntegrityError, NotFoundError, SwarmError
from swarm.model.manifest import Manifest
from swarm.repo import Repository
from swarm.services.objects.backup import INVENTORY
from swarm.services.objects.common import open_bucket
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.objects import Bucket, BucketConfig

Fail = Callable[[str, str], None]
# errors that say something about the sampled version itself (anything else is raised)
_DATA_ERRORS = (NotFoundError, IntegrityError)


def _lines(repo: Repository, m: Manifest) -> Iterator[dict[str, Any]]:
    buf = b""
    for chunk in repo.read_object(m, INVENTORY):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for ln in lines:
            if ln:
                yield json.loads(ln)
    if buf.strip():
        yield json.loads(buf)


def reservoir(items: Iterable[dict[str, Any]], k: int, rng: random.Random) -> tuple[list[dict[str, Any]], int]:
    """A uniform sample of ``k`` items (all of them if ``k`` is 0 or they are fewer), in input
    order, and how many items there were."""
    chosen: list[tuple[int, dict[str, Any]]] = []
    n = 0
    for n, item in enumerate(items, 1):
        if k <= 0 or len(chosen) < k:
            chosen.append((n, item))
        else:
            j = rng.randrange(n)
            if j < k:
                chosen[j] = (n, item)
    return [it for _, it in sorted(chosen, key=lambda t: t[0])], n


def _compare(line: dict[str, Any], chunks: Iterable[bytes]) -> str | None:
    """None if the bytes match the inventory line's size and plain-MD5 ETag, else what differs."""
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    for chunk in chunks:
        md5.update(chunk)
        size += len(chunk)
    want_size = int(line.get("size") or 0)
    if size != want_size:
        return f"{size} bytes read, the inventory records {want_size}"
    etag = str(line.get("etag") or "").strip('"')
    if etag and "-" not in etag and len(etag) == 32 and md5.hexdigest() != etag.lower():
        return f"MD5 {md5.hexdigest()} of the bytes read differs from the inventoried ETag {etag}"
    return None


def sample_objects(repo: Repository, manifest: Manifest, bucket_config: Callable[[str | None], BucketConfig],
                   fail: Fail, facts: dict[str, Any], *, sample: int = 20, reporter: Reporter | None = None,
                   seed: int | None = None) -> None:
    """Read back ``sample`` inventoried versions and compare them (see the module docstring).

    ``facts`` gets ``objects_sampled``, ``inventory_keys``, ``from_bucket``,
    ``from_repository``, ``bytes_read``, ``etags_compared``, ``failed`` and, of those,
    ``versions_gone`` (versions no longer in the bucket); each failure is passed to
    ``fail(key, message)``.
    """
    reporter = reporter or NullReporter()
    rng = random.Random(seed)
    chosen, total = reservoir(_lines(repo, manifest), sample, rng)
    facts.update(objects_sampled=len(chosen), inventory_keys=total, from_bucket=0, from_repository=0,
                 bytes_read=0, etags_compared=0, failed=0, versions_gone=0,
                 bucket=manifest.objects_source.bucket)
    reporter.stage(f"restore test: reading {len(chosen)} of {total} inventoried versions")
    reporter.total(sum(int(d.get("size") or 0) for d in chosen))
    bucket: Bucket | None = None
    manifests: dict[str, Manifest] = {manifest.id: manifest}

    def counted(chunks: Iterable[bytes]) -> Iterator[bytes]:
        for c in chunks:
            facts["bytes_read"] += len(c)
            reporter.advance(len(c))
            yield c

    for d in chosen:
        key, vid = str(d["key"]), str(d["version_id"])
        ref = d.get("data")
        try:
            if ref:
                bid = str(ref["backup"])
                if bid not in manifests:
                    manifests[bid] = repo.load_manifest(bid)
                chunks: Iterable[bytes] = repo.read_object(manifests[bid], str(ref["object"]))
                facts["from_repository"] += 1
                where = f"the copy in backup {bid}"
            else:
                if bucket is None:
                    bucket = open_bucket(_bucket_config(bucket_config, manifest))
                chunks = bucket.iter_get(key, vid)
                facts["from_bucket"] += 1
                where = f"bucket {bucket.name}"
            differs = _compare(d, counted(chunks))
        except SwarmError as exc:
            if not isinstance(exc, _DATA_ERRORS):
                raise  # the bucket or repository cannot be reached, or refuses us: not a finding about this key
            facts["failed"] += 1
            gone = isinstance(exc, NotFoundError) and not ref
            if gone:
                facts["versions_gone"] += 1
            fail(key, f"version {vid}: " + ("gone from the bucket" if gone else exc.message))
            continue
        etag = str(d.get("etag") or "").strip('"')
        if etag and "-" not in etag and len(etag) == 32:
            facts["etags_compared"] += 1
        if differs is not None:
            facts["failed"] += 1
            fail(key, f"version {vid} read from {where}: {differs}")


def _bucket_config(configured: Callable[[str | None], BucketConfig], manifest: Manifest) -> BucketConfig:
    """The backed-up bucket, with the configured endpoint and credentials (the manifest's
    endpoint when none is configured)."""
    src = manifest.objects_source
    cfg = configured(src.bucket)
    if not cfg.endpoint and src.endpoint:
        cfg = BucketConfig(cfg.bucket, src.endpoint, cfg.access_key, cfg.secret_key, cfg.region)
    return cfg
