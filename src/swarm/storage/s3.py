"""A store on any S3-compatible endpoint (AWS S3, SeaweedFS, MinIO, Ceph).

Objects up to ``PART_SIZE`` go in one PutObject; larger streams use a multipart upload
that is aborted if anything fails, so a crash leaves at most an incomplete upload (which
the bucket's abort-incomplete-multipart lifecycle rule, or ``prune``, removes) and never a
partial object. Every request body (a PutObject, each UploadPart) carries its SHA-256
(``x-amz-checksum-sha256``), which the server verifies before it stores anything: bytes damaged
on the way are refused (``BadDigest``), never stored (``tests/storage/test_s3_checksum.py``
proves it against SeaweedFS). ``VERIFIED_PUTS`` says so to callers (``repo copy`` trusts it
instead of reading each object back). botocore's standard retry mode retries throttling (503 SlowDown) and
connection errors with backoff; what is left is translated into swarm errors here.
"""
from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from swarm.errors import SwarmError
from swarm.storage.base import (
    BucketNotFound,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StoreAccessDenied,
    StoreUnavailable,
    as_chunks,
    check_range,
    validate_key,
)

PART_SIZE = 16 << 20
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden", "403",
           "InvalidToken", "ExpiredToken"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
_BAD_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch", "InvalidChecksum"}
_TRANSIENT = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
              "ThrottlingException", "500", "502", "503", "504", "RequestTimeTooSkewed"}


def make_client(endpoint: str | None, access_key: str | None, secret_key: str | None,
                region: str | None = None, *, attempts: int = 3, pool: int = 32) -> Any:
    """A boto3 S3 client with path-style addressing, bounded timeouts and standard retries."""
    cfg = Config(s3={"addressing_style": "path"}, retries={"max_attempts": attempts, "mode": "standard"},
                 connect_timeout=5, read_timeout=120, max_pool_connections=pool,
                 signature_version="s3v4")
    return boto3.client("s3", endpoint_url=endpoint or None, aws_access_key_id=access_key or None,
                        aws_secret_access_key=secret_key or None, region_name=region or "us-east-1", config=cfg)


def translate(exc: Exception, what: str, endpoint: str | None, *, bucket_call: bool = False) -> SwarmError:
    """Turn a botocore exception into the swarm error an operator can act on. ``bucket_call``: the
    request addressed the bucket itself (HeadBucket), so a bare 404 means the bucket is missing."""
    where = endpoint or "AWS S3"
    if isinstance(exc, ClientError) and bucket_call and \
            str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")) == "404":
        return BucketNotFound(f"{what}: the bucket does not exist on {where}",
                              hint="Create the bucket, or fix the URL that names it.")
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in _MISSING or (status == "404" and code != "NoSuchBucket"):
            return ObjectNotFound(f"{what}: not found")
        if code == "NoSuchBucket":
            return BucketNotFound(f"{what}: the bucket does not exist on {where}",
                                  hint="Create the bucket, or fix the URL that names it.")
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict") or status == "412":
            return ObjectExists(f"{what}: already exists")
        if code in _DENIED or status == "403":
            return StoreAccessDenied(f"{what}: access denied by {where} ({code})",
                                     hint="Check the access key and secret configured for this endpoint: "
                                          "SWARM_OBJECTS_* / [objects] for the artefact bucket, SWARM_DR_OBJECTS_* "
                                          "/ [dr] for the DR bucket, SWARM_REPO_S3_* / [repository] for the backup "
                                          "repository (else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).")
        if code in _BAD_DIGEST:
            return StoreUnavailable(f"{what}: {where} refused the bytes it received: their checksum does not match "
                                    f"the one sent ({code}); nothing was stored", transient=True,
                                    hint="The bytes were damaged on the way; run the command again.")
        transient = code in _TRANSIENT or status.startswith("5")
        return StoreUnavailable(f"{what}: {where} answered {code or status}", transient=transient)
    if isinstance(exc, NoCredentialsError):
        return StoreAccessDenied(f"{what}: no S3 credentials configured",
                                 hint="Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the repo credentials "
                                      "in swarm.toml.")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError | ReadTimeoutError):
        return StoreUnavailable(f"{what}: cannot reach {where} ({exc})",
                                hint="Is the S3 endpoint up and the URL right? The request was retried.")
    return StoreUnavailable(f"{what}: S3 error from {where}: {exc}")


def sha256_b64(body: bytes | memoryview) -> str:
    """The ``x-amz-checksum-sha256`` value of ``body`` (base64 of its SHA-256)."""
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


_DATA_KIND = re.compile(r"^data/\d{8}T\d{6}Z-([a-z][a-z0-9-]*)-[0-9a-f]{6}/")


def kind_of_key(key: str) -> str | None:
    """The backup kind a repository key's bytes belong to, for the storage class: a data object
    ``data/<backup id>/...`` (the id names its kind) or ``wal/...``; None for metadata (manifests,
    keys, records, locks), which stay in the default class."""
    m = _DATA_KIND.match(key)
    if m:
        return m.group(1)
    return "wal" if key.startswith("wal/") else None


class S3Store:
    """``storage_class``: backup kind (or ``wal``) → S3 storage class sent with every put of that
    kind's data (``kind_of_key``); other objects get the server's default class."""

    # every put's bytes are checked by the server against the SHA-256 sent with them (module docstring)
    VERIFIED_PUTS = True

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None,
                 access_key: str | None = None, secret_key: str | None = None, region: str | None = None,
                 client: Any = None, storage_class: dict[str, str] | None = None) -> None:
        self.bucket = bucket
        self.storage_class = dict(storage_class or {})
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint
        self.client = client or make_client(endpoint, access_key, secret_key, region)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def _k(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def check(self) -> None:
        """Fail fast with a clear error if the bucket is unreachable or the credentials are wrong."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"bucket {self.bucket}", self.endpoint, bucket_call=True) from exc

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        full = self._k(key)
        chunks = iter(as_chunks(data))
        buf = bytearray()
        for chunk in chunks:
            buf += chunk
            if len(buf) >= PART_SIZE:
                return self._multipart(full, key, buf, chunks, if_absent)
        extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_absent else {}
        body = bytes(buf)
        extra.update(self._class(key))
        try:
            self.client.put_object(Bucket=self.bucket, Key=full, Body=body, ChecksumSHA256=sha256_b64(body), **extra)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"put {key}", self.endpoint) from exc
        return len(buf)

    def _multipart(self, full: str, key: str, first: bytearray, rest: Iterator[bytes], if_absent: bool) -> int:
        try:
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=full,
                                                            ChecksumAlgorithm="SHA256",
                                                            **self._class(key))["UploadId"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"put {key}", self.endpoint) from exc
        parts: list[dict[str, Any]] = []
        total = 0
        try:
            buf = first
            while True:
                while len(buf) >= PART_SIZE:
                    with memoryview(buf) as view:
                        part = bytes(view[:PART_SIZE])  # one copy of the part, none of the rest
                    del buf[:PART_SIZE]
                    total += self._upload_part(full, upload_id, parts, part)
                nxt = next(rest, None)
                if nxt is None:
                    break
                buf += nxt
            if buf or not parts:
                total += self._upload_part(full, upload_id, parts, bytes(buf))
            extra: dict[str, Any] = {"IfNoneMatch": "*"} if if_absent else {}
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts}, **extra)
            return total
        except BaseException as exc:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            except (ClientError, BotoCoreError):
                pass
            if isinstance(exc, ClientError | BotoCoreError):
                raise translate(exc, f"put {key}", self.endpoint) from exc
            raise

    def _class(self, key: str) -> dict[str, str]:
        kind = kind_of_key(key)
        cls = self.storage_class.get(kind) if kind else None
        return {"StorageClass": cls} if cls else {}

    def _upload_part(self, full: str, upload_id: str, parts: list[dict[str, Any]], body: bytes) -> int:
        n = len(parts) + 1
        digest = sha256_b64(body)
        resp = self.client.upload_part(Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=n, Body=body,
                                       ChecksumSHA256=digest)
        parts.append({"PartNumber": n, "ETag": resp["ETag"], "ChecksumSHA256": digest})
        return len(body)

    def get(self, key: str) -> bytes:
        return b"".join(self.iter_get(key))

    def iter_get(self, key: str) -> Iterator[bytes]:
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._k(key))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"get {key}", self.endpoint) from exc
        return self._iter_body(resp["Body"], key)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        if length == 0:
            return b""
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self._k(key),
                                          Range=f"bytes={offset}-{offset + length - 1}")
            return bytes(resp["Body"].read())
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "InvalidRange" or str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")) == "416":
                if self.stat(key) is None:
                    raise ObjectNotFound(f"get {key}: not found") from exc
                return b""  # the range starts at or past the end
            raise translate(exc, f"get {key}", self.endpoint) from exc
        except BotoCoreError as exc:
            raise translate(exc, f"get {key}", self.endpoint) from exc

    def _iter_body(self, body: Any, key: str) -> Iterator[bytes]:
        try:
            yield from body.iter_chunks(chunk_size=1 << 20)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"get {key}", self.endpoint) from exc
        finally:
            body.close()

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=self._k(key))
        except (ClientError, BotoCoreError) as exc:
            err = translate(exc, f"stat {key}", self.endpoint)
            if isinstance(err, ObjectNotFound):
                return None
            raise err from exc
        return ObjectInfo(key, int(resp["ContentLength"]), resp.get("LastModified"))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        full = f"{self.prefix}/{prefix}" if self.prefix else prefix
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
                for item in page.get("Contents", []):
                    yield ObjectInfo(self._strip(item["Key"]), int(item["Size"]), item.get("LastModified"))
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, f"list {prefix or '/'}", self.endpoint) from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._k(key))
        except (ClientError, BotoCoreError) as exc:
            err = translate(exc, f"delete {key}", self.endpoint)
            if not isinstance(err, ObjectNotFound):
                raise err from exc
