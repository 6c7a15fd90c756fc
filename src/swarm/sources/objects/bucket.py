"""One bucket on one S3 endpoint, with the operations object protection needs.

Retries: botocore's standard mode (``make_client``) retries throttling (503 SlowDown) and
dropped connections per request; ``Bucket.retrying`` adds a per-key retry with exponential
backoff around whole copy / delete operations, for transient failures that outlast those.
"""
from __future__ import annotations

import queue
import random
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from swarm.clock import utc_iso
from swarm.errors import ConfigError, RefusedError, SwarmError, UnavailableError
from swarm.model.object_versions import Version
from swarm.storage.s3 import translate

SOURCE_VERSION_META = "swarm-source-version"  # x-amz-meta-swarm-source-version on DR copies
SOURCE_MTIME_META = "swarm-source-mtime"  # the source version's last-modified, RFC 3339
# Bodies up to this size are copied with one PUT from memory; larger ones stream multipart.
# Peak memory of a copy run is about workers × this (8 × 16 MiB), whatever the object count.
STREAM_PUT_LIMIT = 16 << 20
T = TypeVar("T")
_S3NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class BucketConfig:
    """Where a bucket is and how to reach it."""

    bucket: str
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None

    def same_account(self, other: BucketConfig) -> bool:
        """True if one client can read one and write the other (so CopyObject works)."""
        return (self.endpoint or "", self.access_key or "", self.secret_key or "") == (
            other.endpoint or "", other.access_key or "", other.secret_key or "")

    def public(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "endpoint": self.endpoint or "AWS S3"}


class CopyFailed(SwarmError):
    """One key could not be copied / deleted after retries (reported per key, the run goes on)."""

    code = "copy-failed"


@dataclass(frozen=True)
class KeyFailure:
    key: str
    version_id: str | None
    error: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "version_id": self.version_id, "error": self.error, "message": self.message}


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or str(
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return type(exc).__name__


def _status(exc: BaseException) -> int:
    if isinstance(exc, ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def unsupported(exc: BaseException) -> bool:
    """Does this error mean "the backend does not implement this API"?

    SeaweedFS answers lifecycle transitions with 501 NotImplemented and PutBucketReplication
    with 409 BucketAlreadyOwnedByYou; others say NotImplemented / MethodNotAllowed.
    """
    code, status = _code(exc), _status(exc)
    return (status in (501, 405) or code in ("NotImplemented", "MethodNotAllowed", "XNotImplemented")
            or (code == "BucketAlreadyOwnedByYou" and status == 409))


class Bucket:
    def __init__(self, cfg: BucketConfig, *, client: Any = None, pool: int = 32) -> None:
        self.cfg = cfg
        self.name = cfg.bucket
        self.client = client or _client(cfg, pool)
        self._order = threading.local()
        self._fast: Any = None
        if cfg.endpoint and cfg.access_key and cfg.secret_key and client is None:
            from swarm.sources.objects.fastpath import SigV4Endpoint

            self._fast = SigV4Endpoint(cfg.endpoint, cfg.access_key, cfg.secret_key, cfg.region, pool)
        self.client.meta.events.register("before-parse.s3.ListObjectVersions", self._capture_order)

    # ---- errors ---------------------------------------------------------------------------------
    def _err(self, exc: Exception, what: str) -> SwarmError:
        return translate(exc, f"{what} (bucket {self.name})", self.cfg.endpoint)

    def call(self, what: str, fn: Callable[..., T], **kw: Any) -> T:
        try:
            return fn(**kw)
        except (ClientError, BotoCoreError) as exc:
            raise self._err(exc, what) from exc

    # ---- checks ---------------------------------------------------------------------------------
    def check_access(self, *, write: bool = False) -> None:
        """Fail before any change if the bucket is missing or the credentials are wrong.

        HeadBucket proves the credentials; ``write`` additionally lists versions (the call
        every command needs), which catches keys allowed to HEAD but not to list.
        """
        try:
            self.client.head_bucket(Bucket=self.name)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"check access (bucket {self.name})", self.cfg.endpoint, bucket_call=True) from exc
        if write:
            self.call("list versions", self.client.list_object_versions, Bucket=self.name, MaxKeys=1)

    def versioning(self) -> str | None:
        resp = self.call("read versioning", self.client.get_bucket_versioning, Bucket=self.name)
        status = resp.get("Status")
        return str(status) if status else None

    def created_at(self) -> datetime | None:
        """The bucket's creation time as the server reports it (ListBuckets), if it does."""
        resp = self.call("list buckets", self.client.list_buckets)
        for b in resp.get("Buckets", []):
            if b.get("Name") == self.name and b.get("CreationDate") is not None:
                created: datetime = b["CreationDate"]
                return created
        return None

    def require_versioning(self, why: str) -> None:
        status = self.versioning()
        if status != "Enabled":
            raise RefusedError(
                f"bucket {self.name} on {self.cfg.endpoint or 'AWS S3'} has versioning "
                f"{status or 'never enabled'}: {why} needs every version kept",
                hint=f"Enable versioning on {self.name} (`swarm admin objects policy apply` sets "
                     "[versioning] enabled = true, or `aws s3api put-bucket-versioning --versioning-configuration "
                     "Status=Enabled`). Versions written before that cannot be recovered.")

    # ---- listings -------------------------------------------------------------------------------
    def _capture_order(self, response_dict: dict[str, Any], **_: Any) -> None:
        """Record the XML order of Version / DeleteMarker entries: boto3 splits them into two
        lists, and last-modified (1 s granularity on some servers) cannot always re-merge them."""
        order: dict[tuple[str, str], int] = {}
        try:
            root = ET.fromstring(response_dict.get("body") or b"")
            i = 0
            for el in root:
                tag = el.tag.replace(_S3NS, "")
                if tag in ("Version", "DeleteMarker"):
                    order[(el.findtext(f"{_S3NS}Key") or el.findtext("Key") or "",
                           el.findtext(f"{_S3NS}VersionId") or el.findtext("VersionId") or "")] = i
                    i += 1
        except ET.ParseError:
            order = {}
        self._order.value = order

    def iter_versions(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[Version]:
        """Every version and delete marker under ``prefix``, in S3's order (key ascending, newest
        first within a key). The next page is fetched in the background while this one is
        consumed; at most three pages are in memory."""
        pages = self._fast_pages(prefix, page_size) if self._fast is not None else self._boto_pages(prefix, page_size)
        for page in _prefetch(pages):
            yield from page

    def _fast_pages(self, prefix: str, page_size: int) -> Iterator[list[Version]]:
        from swarm.sources.objects.fastpath import list_versions_page

        key_marker: str | None = None
        version_marker: str | None = None
        while True:
            page = list_versions_page(self._fast, self.name, prefix, key_marker, version_marker, page_size)
            yield [_version(e, bool(e["DeleteMarker"])) for e in page.entries]
            if not page.truncated or not page.next_key:
                return
            key_marker, version_marker = page.next_key, page.next_version

    def _boto_pages(self, prefix: str, page_size: int) -> Iterator[list[Version]]:
        kw: dict[str, Any] = {"Bucket": self.name, "Prefix": prefix, "MaxKeys": page_size}
        while True:
            resp = self.call(f"list versions under {prefix or '/'}", self.client.list_object_versions, **kw)
            order: dict[tuple[str, str], int] = getattr(self._order, "value", {}) or {}
            entries = [_version(v, False) for v in resp.get("Versions", [])]
            entries += [_version(v, True) for v in resp.get("DeleteMarkers", [])]
            if order:
                entries.sort(key=lambda v: order.get((v.key, v.version_id), 1 << 30))
            else:  # no raw order: key ascending, latest first, then newest first
                entries.sort(key=lambda v: (v.key, not v.is_latest, -v.last_modified.timestamp()))
            yield entries
            if not resp.get("IsTruncated"):
                return
            kw["KeyMarker"] = resp.get("NextKeyMarker")
            kw["VersionIdMarker"] = resp.get("NextVersionIdMarker")
            if not kw["KeyMarker"]:
                return

    def key_history(self, key: str) -> list[Version]:
        """All versions of exactly ``key``, oldest first."""
        return list(reversed([v for v in self.iter_versions(key) if v.key == key]))

    # ---- object operations ----------------------------------------------------------------------
    def head(self, key: str, version_id: str | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if version_id:
            kw["VersionId"] = version_id
        return dict(self.call(f"head {key}", self.client.head_object, **kw))

    def tags(self, key: str, version_id: str | None = None) -> dict[str, str]:
        kw: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if version_id:
            kw["VersionId"] = version_id
        resp = self.call(f"read tags of {key}", self.client.get_object_tagging, **kw)
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}

    def add_delete_marker(self, key: str) -> str | None:
        resp = self.call(f"delete {key}", self.client.delete_object, Bucket=self.name, Key=key)
        return _vid(resp)

    def delete_version(self, key: str, version_id: str) -> None:
        self.call(f"delete version {version_id} of {key}", self.client.delete_object, Bucket=self.name, Key=key,
                  VersionId=version_id)

    def put_stream(self, key: str, body: Iterable[bytes], *, metadata: dict[str, str] | None = None,
                   content_type: str | None = None, tags: dict[str, str] | None = None) -> str | None:
        """Upload from an iterator of chunks (bounded memory via the managed transfer)."""
        reader = _IterReader(body)
        extra = _extra(metadata, content_type, tags, None)
        try:
            self.client.upload_fileobj(reader, self.name, key, ExtraArgs=extra)
        except (ClientError, BotoCoreError) as exc:
            raise self._err(exc, f"put {key}") from exc
        return None

    def iter_get(self, key: str, version_id: str | None = None) -> Iterator[bytes]:
        kw: dict[str, Any] = {"Bucket": self.name, "Key": key}
        if version_id:
            kw["VersionId"] = version_id
        resp = self.call(f"get {key}", self.client.get_object, **kw)
        body = resp["Body"]
        try:
            yield from body.iter_chunks(chunk_size=1 << 20)
        except (ClientError, BotoCoreError) as exc:
            raise self._err(exc, f"get {key}") from exc
        finally:
            body.close()

    def copy_version_to(self, dst: Bucket, key: str, version_id: str, *, dst_key: str | None = None,
                        extra_meta: dict[str, str] | None = None, storage_class: str | None = None,
                        size_hint: int = 0) -> str | None:
        """Copy one version of ``key`` to ``dst`` as a new latest version, keeping user metadata,
        content type and tags, plus ``extra_meta``. Server-side when the two buckets share an
        endpoint and credentials, else streamed through this process (GET → PUT; bodies up to
        ``STREAM_PUT_LIMIT`` between two custom endpoints take the lean ``fastpath``)."""
        dst_key = dst_key or key
        if self.cfg.same_account(dst.cfg) and size_hint < (5 << 30) and not extra_meta:
            # one request: metadata, content headers and tags copied as they are
            if self._fast is not None:
                from swarm.sources.objects.fastpath import copy_object

                return copy_object(dst._fast or self._fast, dst.name, dst_key, self.name, key, version_id,
                                   storage_class)
            kw0: dict[str, Any] = {"Bucket": dst.name, "Key": dst_key,
                                   "CopySource": {"Bucket": self.name, "Key": key, "VersionId": version_id},
                                   "MetadataDirective": "COPY", "TaggingDirective": "COPY"}
            if storage_class:
                kw0["StorageClass"] = storage_class
            return _vid(dst.call(f"copy {key}", dst.client.copy_object, **kw0))
        if self.cfg.same_account(dst.cfg) and size_hint < (5 << 30):
            head = self.head(key, version_id)
            meta = dict(head.get("Metadata") or {})
            meta.update(extra_meta or {})
            kw: dict[str, Any] = {"Bucket": dst.name, "Key": dst_key,
                                  "CopySource": {"Bucket": self.name, "Key": key, "VersionId": version_id},
                                  "MetadataDirective": "REPLACE", "Metadata": meta, "TaggingDirective": "COPY"}
            for h in ("ContentType", "ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl"):
                if head.get(h):
                    kw[h] = head[h]
            if storage_class:
                kw["StorageClass"] = storage_class
            resp = dst.call(f"copy {key}", dst.client.copy_object, **kw)
            return _vid(resp)
        if self._fast is not None and dst._fast is not None and 0 < size_hint <= STREAM_PUT_LIMIT:
            got = self._fast.get(self.name, key, version_id)
            tags = self.tags(key, version_id) if got.tag_count else None
            return dst._fast.put(dst.name, dst_key, got.body, content_type=got.content_type,  # type: ignore[no-any-return]
                                 metadata={**got.metadata, **(extra_meta or {})}, headers=got.headers, tags=tags,
                                 storage_class=storage_class)
        resp = self.call(f"get {key}", self.client.get_object, Bucket=self.name, Key=key, VersionId=version_id)
        body = resp["Body"]
        try:
            tags = self.tags(key, version_id) if int(resp.get("TagCount") or 0) else {}
            meta = dict(resp.get("Metadata") or {})
            meta.update(extra_meta or {})
            extra = _extra(meta, resp.get("ContentType"), tags, storage_class)
            for h in ("ContentEncoding", "ContentDisposition", "ContentLanguage", "CacheControl"):
                if resp.get(h):
                    extra[h] = resp[h]
            size = int(resp.get("ContentLength") or 0)
            try:
                if size <= STREAM_PUT_LIMIT:
                    out = dst.client.put_object(Bucket=dst.name, Key=dst_key, Body=body.read(), **extra)
                    return _vid(out)
                dst.client.upload_fileobj(body, dst.name, dst_key, ExtraArgs=extra)
                return None
            except (ClientError, BotoCoreError) as exc:
                raise dst._err(exc, f"put {dst_key}") from exc
        except (ClientError, BotoCoreError) as exc:
            raise self._err(exc, f"get {key}") from exc
        finally:
            body.close()

    # ---- bucket configuration -------------------------------------------------------------------
    def lifecycle(self) -> list[dict[str, Any]]:
        try:
            return list(self.client.get_bucket_lifecycle_configuration(Bucket=self.name).get("Rules", []))
        except ClientError as exc:
            if _code(exc) in ("NoSuchLifecycleConfiguration",):
                return []
            raise self._err(exc, "read lifecycle") from exc
        except BotoCoreError as exc:
            raise self._err(exc, "read lifecycle") from exc

    def try_put_lifecycle(self, rules: list[dict[str, Any]]) -> bool:
        """Store lifecycle rules; False if the backend refuses this kind of rule (501...)."""
        try:
            if rules:
                self.client.put_bucket_lifecycle_configuration(Bucket=self.name,
                                                               LifecycleConfiguration={"Rules": rules})
            else:
                self.client.delete_bucket_lifecycle(Bucket=self.name)
            return True
        except (ClientError, BotoCoreError) as exc:
            if unsupported(exc):
                return False
            raise self._err(exc, "write lifecycle") from exc

    def set_versioning(self, enabled: bool) -> None:
        self.call("write versioning", self.client.put_bucket_versioning, Bucket=self.name,
                  VersioningConfiguration={"Status": "Enabled" if enabled else "Suspended"})

    def object_lock(self) -> dict[str, Any] | None:
        try:
            cfg = self.client.get_object_lock_configuration(Bucket=self.name).get("ObjectLockConfiguration")
            return dict(cfg) if cfg else None
        except ClientError as exc:
            if _code(exc) in ("ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration") \
                    or _status(exc) == 404:
                return None
            if unsupported(exc):
                return None
            raise self._err(exc, "read object lock") from exc
        except BotoCoreError as exc:
            raise self._err(exc, "read object lock") from exc

    def try_put_object_lock(self, cfg: dict[str, Any]) -> str:
        """"ok", "unsupported", or the error code (e.g. InvalidBucketState: bucket made without lock)."""
        try:
            self.client.put_object_lock_configuration(Bucket=self.name, ObjectLockConfiguration=cfg)
            return "ok"
        except (ClientError, BotoCoreError) as exc:
            if unsupported(exc):
                return "unsupported"
            code = _code(exc)
            if code in ("InvalidBucketState", "InvalidRequest", "ObjectLockConfigurationNotFoundError"):
                return code
            raise self._err(exc, "write object lock") from exc

    def replication(self) -> tuple[bool, dict[str, Any] | None]:
        """(API supported?, configuration or None). A 'not found' answer proves nothing about
        support (SeaweedFS answers that), so callers probe with ``try_put_replication``."""
        try:
            cfg = self.client.get_bucket_replication(Bucket=self.name).get("ReplicationConfiguration")
            return True, dict(cfg) if cfg else None
        except ClientError as exc:
            if unsupported(exc):
                return False, None
            if _code(exc) == "ReplicationConfigurationNotFoundError" or _status(exc) == 404:
                return True, None
            raise self._err(exc, "read replication") from exc
        except BotoCoreError as exc:
            raise self._err(exc, "read replication") from exc

    def try_put_replication(self, cfg: dict[str, Any]) -> str:
        """"ok", "unsupported", or the refusal's code (InvalidRequest: versioning is off...)."""
        try:
            self.client.put_bucket_replication(Bucket=self.name, ReplicationConfiguration=cfg)
            return "ok"
        except (ClientError, BotoCoreError) as exc:
            if unsupported(exc):
                return "unsupported"
            if _code(exc) in ("InvalidRequest", "InvalidArgument", "AccessDenied"):
                return _code(exc)
            raise self._err(exc, "write replication") from exc

    def delete_replication(self) -> None:
        self.call("delete replication", self.client.delete_bucket_replication, Bucket=self.name)

    # ---- retry ----------------------------------------------------------------------------------
    @staticmethod
    def retrying(fn: Callable[[], T], *, attempts: int = 4, base: float = 0.2,
                 sleep: Callable[[float], None] = time.sleep) -> T:
        """Run ``fn``; on a transient error, retry with exponential backoff and jitter."""
        for i in range(attempts):
            try:
                return fn()
            except UnavailableError as exc:
                if not exc.transient or i == attempts - 1:
                    raise
                sleep(base * (2 ** i) * (0.5 + random.random()))
        raise AssertionError("unreachable")


def _prefetch(pages: Iterator[list[Version]], depth: int = 2) -> Iterator[list[Version]]:
    """Run ``pages`` in a background thread, ``depth`` pages ahead (listing latency overlaps
    with the consumer's work). Errors are re-raised in the consumer; closing the consumer
    stops the producer."""
    q: queue.Queue[Any] = queue.Queue(depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for page in pages:
                while not stop.is_set():
                    try:
                        q.put(page, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:
            q.put(exc)

    t = threading.Thread(target=produce, name="list-versions", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _client(cfg: BucketConfig, pool: int) -> Any:
    """Like ``storage.s3.make_client`` (path style, standard retries, bounded timeouts), but
    without botocore's per-request CRC32 on bodies ("when_required"): copies are verified
    end to end by the server's MD5 ETag, which ``replication check`` compares, and skipping
    the extra checksum pass keeps the per-object CPU cost (the bottleneck on small objects)
    down."""
    import boto3
    from botocore.config import Config

    conf = Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"},
                  connect_timeout=5, read_timeout=120, max_pool_connections=pool, signature_version="s3v4",
                  request_checksum_calculation="when_required", response_checksum_validation="when_required")
    return boto3.client("s3", endpoint_url=cfg.endpoint or None, aws_access_key_id=cfg.access_key or None,
                        aws_secret_access_key=cfg.secret_key or None, region_name=cfg.region or "us-east-1",
                        config=conf)


def _vid(resp: Any) -> str | None:
    v = resp.get("VersionId") if isinstance(resp, dict) else None
    return str(v) if v else None


def _version(d: dict[str, Any], marker: bool) -> Version:
    lm = d.get("LastModified")
    if not isinstance(lm, datetime):
        raise ConfigError(f"version listing entry without LastModified: {d.get('Key')}")
    return Version(key=d["Key"], version_id=str(d.get("VersionId") or "null"), last_modified=lm,
                   is_delete_marker=marker, is_latest=bool(d.get("IsLatest")), size=int(d.get("Size") or 0),
                   etag=str(d.get("ETag") or "").strip('"'), storage_class=str(d.get("StorageClass") or "STANDARD"))


def _extra(metadata: dict[str, str] | None, content_type: str | None, tags: dict[str, str] | None,
           storage_class: str | None) -> dict[str, Any]:
    from urllib.parse import urlencode

    extra: dict[str, Any] = {}
    if metadata:
        extra["Metadata"] = metadata
    if content_type:
        extra["ContentType"] = content_type
    if tags:
        extra["Tagging"] = urlencode(tags)
    if storage_class:
        extra["StorageClass"] = storage_class
    return extra


def source_meta(v: Version) -> dict[str, str]:
    """Metadata recording which source version a copy came from."""
    return {SOURCE_VERSION_META: v.version_id, SOURCE_MTIME_META: utc_iso(v.last_modified)}


class _IterReader:
    """A minimal file-like ``read(n)`` over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = bytearray()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._it, None)
            if chunk is None:
                break
            self._buf += chunk
        if n < 0:
            out, self._buf = bytes(self._buf), bytearray()
        else:
            out, self._buf = bytes(self._buf[:n]), self._buf[n:]
        return out
