"""Puts to S3 carry the SHA-256 of their bytes and the real server (SeaweedFS) checks it.

No mock: the server is the one the tests start (tests/conftest.py); botocore event hooks only
watch the requests, or damage a body after its checksum was computed (bytes damaged in transit).
"""
from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import pytest
from botocore.exceptions import ClientError

from swarm.storage import ObjectNotFound
from swarm.storage import s3 as s3mod
from swarm.storage.base import StoreUnavailable
from swarm.storage.s3 import S3Store

MiB = 1 << 20


def _b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_server_refuses_a_wrong_sha256(s3_client: Any, bucket: str) -> None:
    """The premise `repo copy` relies on: the server verifies x-amz-checksum-sha256 (put and part)."""
    body = secrets.token_bytes(5 * MiB)
    with pytest.raises(ClientError) as exc:
        s3_client.put_object(Bucket=bucket, Key="wrong", Body=body, ChecksumSHA256=_b64sha(b"other"))
    assert exc.value.response["Error"]["Code"] == "BadDigest"
    with pytest.raises(ClientError):
        s3_client.head_object(Bucket=bucket, Key="wrong")
    up = s3_client.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")["UploadId"]
    with pytest.raises(ClientError) as exc:
        s3_client.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1, Body=body,
                              ChecksumSHA256=_b64sha(b"other"))
    assert exc.value.response["Error"]["Code"] == "BadDigest"
    s3_client.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=up)


def _body(request: Any) -> bytes:
    body = request.body
    if hasattr(body, "read"):
        pos = body.tell()
        data = body.read()
        body.seek(pos)
        return bytes(data)
    return bytes(body or b"")


def _watch(client: Any) -> list[tuple[str, bytes, str | None]]:
    """(operation, body, x-amz-checksum-sha256) of every request sent with a body."""
    seen: list[tuple[str, bytes, str | None]] = []

    def hook(request: Any, **_kw: Any) -> None:
        body = _body(request)
        if body:
            op = request.context.get("operation_name") if hasattr(request, "context") else None
            got = request.headers.get("x-amz-checksum-sha256")
            seen.append((str(op), body, got.decode() if isinstance(got, bytes) else got))

    client.meta.events.register("before-send.s3.PutObject", hook)
    client.meta.events.register("before-send.s3.UploadPart", hook)
    return seen


@pytest.mark.parametrize("size", [1000, 11 * MiB + 7], ids=["one-put", "multipart"])
def test_every_put_request_carries_its_sha256(s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
                                              size: int) -> None:
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)  # the smallest part S3 allows: three parts
    seen = _watch(s3_client)
    store = S3Store(bucket, "pfx", client=s3_client)
    data = secrets.token_bytes(size)
    assert store.put("obj", iter([data[i:i + MiB] for i in range(0, size, MiB)])) == size
    assert store.get("obj") == data
    assert seen and len(seen) == (1 if size < 5 * MiB else 3)
    for _op, body, sent in seen:
        assert sent == _b64sha(body)
    assert b"".join(b for _o, b, _s in seen) == data


@pytest.mark.parametrize("size", [1000, 11 * MiB + 7], ids=["one-put", "multipart"])
def test_bytes_damaged_in_transit_are_refused_and_nothing_is_stored(
        s3_client: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    monkeypatch.setattr(s3mod, "PART_SIZE", 5 * MiB)
    damaged: list[str] = []

    def damage(request: Any, **_kw: Any) -> None:
        body = _body(request)
        if len(body) > 10 and not damaged:
            # after the checksum (and the signature's payload hash) were computed: flip one byte
            request.body = bytes(body[:5]) + bytes([body[5] ^ 1]) + bytes(body[6:])
            damaged.append("yes")

    s3_client.meta.events.register("before-send.s3.PutObject", damage)
    s3_client.meta.events.register("before-send.s3.UploadPart", damage)
    store = S3Store(bucket, "pfx", client=s3_client)
    with pytest.raises(StoreUnavailable) as exc:
        store.put("obj", secrets.token_bytes(size))
    assert damaged
    assert "checksum" in exc.value.message
    with pytest.raises(ObjectNotFound):
        store.get("obj")
