"""The dev stack's SeaweedFS: only authenticated S3 requests reach the data (issue 10, finding 11).

Before, any local user could read or overwrite every object over the filer's HTTP port
(no S3 signature needed), and ``server.json`` with the S3 secret was 0644. The test puts an
object through S3, then tries the filer and volume ports with plain HTTP, as such a user
would; it mints a JWT from ``security.toml`` only to find where the object's bytes live.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import stat
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from swarm.devstack import seaweed as sw
from swarm.devstack.seaweed import SeaweedServer
from swarm.storage.s3 import make_client

SECRET = b"customer rows " + secrets.token_bytes(16).hex().encode()


def _status(url: str, method: str = "GET", data: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _jwt(key: str, claims: dict[str, object]) -> str:
    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(hmac.new(key.encode(), head.encode(), hashlib.sha256).digest())


@pytest.fixture
def stored(seaweed: SeaweedServer) -> tuple[str, str]:
    client = make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    bucket, key = "auth-" + secrets.token_hex(5), "runs/r1/report.json"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=key, Body=SECRET)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == SECRET  # S3 with credentials works
    return bucket, key


def test_filer_port_refuses_reads_and_writes_without_jwt(seaweed: SeaweedServer, stored: tuple[str, str]) -> None:
    bucket, key = stored
    filer = f"http://127.0.0.1:{seaweed.ports['filer']}"
    for path in (f"/buckets/{bucket}/{key}", f"/buckets/{bucket}/{key}?metadata=true", f"/buckets/{bucket}/",
                 "/buckets/"):
        status, body = _status(filer + path)
        assert status in (401, 403), (path, status)
        assert SECRET not in body
    status, _ = _status(f"{filer}/buckets/{bucket}/{key}", "PUT", b"overwritten")
    assert status in (401, 403)
    status, _ = _status(f"{filer}/buckets/{bucket}/planted.txt", "PUT", b"planted")
    assert status in (401, 403)
    status, _ = _status(f"{filer}/buckets/{bucket}/{key}", "DELETE")
    assert status in (401, 403)
    client = make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == SECRET
    assert "planted.txt" not in [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_volume_port_refuses_reads_and_writes_without_jwt(seaweed: SeaweedServer, stored: tuple[str, str]) -> None:
    bucket, key = stored
    keys = tomllib.loads((seaweed.base / 'security.toml').read_text())
    filer_read = keys["jwt"]["filer_signing"]["read"]["key"]
    # find the chunk ids the way only a holder of the filer key can
    status, body = _status(f"http://127.0.0.1:{seaweed.ports['filer']}/buckets/{bucket}/{key}?metadata=true",
                           headers={"Authorization": "Bearer " + _jwt(filer_read, {"exp": int(time.time()) + 60})})
    assert status == 200, body
    meta = json.loads(body)
    fids = [c.get("file_id") or c.get("fileId") for c in meta.get("chunks") or meta.get("Chunks") or []]
    volume = f"http://127.0.0.1:{seaweed.ports['volume']}"
    assert fids and all(fids), meta
    for fid in fids:
        status, data = _status(f"{volume}/{fid}")
        assert status in (401, 403), (fid, status)
        assert SECRET not in data
        assert _status(f"{volume}/{fid}", "PUT", b"overwritten")[0] in (401, 403)
    assert _status(f"{volume}/1,0123456789", "PUT", b"x")[0] in (401, 403)


def test_keys_and_credentials_are_private(seaweed: SeaweedServer) -> None:
    assert stat.S_IMODE(seaweed.state_file.stat().st_mode) == 0o600      # holds the S3 secret
    assert stat.S_IMODE((seaweed.base / 'security.toml').stat().st_mode) == 0o600
    assert stat.S_IMODE(seaweed.base.stat().st_mode) == 0o700
    keys = tomllib.loads((seaweed.base / 'security.toml').read_text())
    found = [keys["jwt"]["signing"]["key"], keys["jwt"]["signing"]["read"]["key"],
             keys["jwt"]["filer_signing"]["key"], keys["jwt"]["filer_signing"]["read"]["key"]]
    assert len(sw.JWT_SECTIONS) == 4 and len(set(found)) == 4 and all(len(k) == 64 for k in found)


def test_each_server_gets_its_own_keys(tmp_path: Path) -> None:
    assert sw.security_toml() != sw.security_toml()
