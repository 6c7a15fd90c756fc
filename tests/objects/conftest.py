"""Fixtures for object-protection tests: a second SeaweedFS (the DR side), moto for the API
shapes SeaweedFS lacks, versioned buckets, and a CLI app built from ``objects.register``.

Every service is started for real; if one cannot start, the tests that need it error.
"""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from swarm.devstack.seaweed import SeaweedServer
from swarm.sources.netutil import free_port
from swarm.sources.objects import Bucket, BucketConfig
from swarm.storage.s3 import make_client


@pytest.fixture(scope="session")
def dr_seaweed(services_dir: Path) -> Iterator[SeaweedServer]:
    server = SeaweedServer(services_dir / "seaweed-dr", "drkey", "drsecret-" + secrets.token_hex(4))
    server.start()
    yield server
    server.stop(grace=5)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def new_bucket(server: SeaweedServer, *, versioned: bool = True, lock: bool = False, prefix: str = "b") -> Bucket:
    client = make_client(server.endpoint, server.access_key, server.secret_key)
    name = f"{prefix}-{secrets.token_hex(5)}"
    if lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    else:
        client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return Bucket(BucketConfig(name, server.endpoint, server.access_key, server.secret_key))


@pytest.fixture
def src(seaweed: SeaweedServer) -> Bucket:
    return new_bucket(seaweed, prefix="src")


@pytest.fixture
def dr_same(seaweed: SeaweedServer) -> Bucket:
    """A DR bucket on the same server (server-side copies)."""
    return new_bucket(seaweed, prefix="drs")


@pytest.fixture
def dr_remote(dr_seaweed: SeaweedServer) -> Bucket:
    """A DR bucket on the second server (other endpoint and credentials: streamed copies)."""
    return new_bucket(dr_seaweed, prefix="drr")


def put(b: Bucket, key: str, body: bytes, **kw: Any) -> str:
    return str(b.client.put_object(Bucket=b.name, Key=key, Body=body, **kw).get("VersionId"))


def get(b: Bucket, key: str) -> bytes | None:
    try:
        return bytes(b.client.get_object(Bucket=b.name, Key=key)["Body"].read())
    except b.client.exceptions.NoSuchKey:
        return None


def snapshot(b: Bucket, prefix: str = "") -> dict[str, bytes]:
    """Key → content of every live key."""
    out = {}
    for page in b.client.get_paginator("list_objects_v2").paginate(Bucket=b.name, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = b.client.get_object(Bucket=b.name, Key=item["Key"])["Body"].read()
    return out


def env_for(monkeypatch: pytest.MonkeyPatch, primary: Bucket, dr: Bucket | None = None,
            repo: str | None = None, key_url: str | None = None) -> None:
    c = primary.cfg
    monkeypatch.setenv("SWARM_OBJECTS_ENDPOINT", c.endpoint or "")
    monkeypatch.setenv("SWARM_OBJECTS_BUCKET", c.bucket)
    monkeypatch.setenv("SWARM_OBJECTS_ACCESS_KEY", c.access_key or "")
    monkeypatch.setenv("SWARM_OBJECTS_SECRET_KEY", c.secret_key or "")
    if dr is not None:
        d = dr.cfg
        monkeypatch.setenv("SWARM_DR_OBJECTS_ENDPOINT", d.endpoint or "")
        monkeypatch.setenv("SWARM_DR_OBJECTS_BUCKET", d.bucket)
        monkeypatch.setenv("SWARM_DR_OBJECTS_ACCESS_KEY", d.access_key or "")
        monkeypatch.setenv("SWARM_DR_OBJECTS_SECRET_KEY", d.secret_key or "")
    if repo:
        monkeypatch.setenv("SWARM_BACKUP_REPO", repo)
    if key_url:
        monkeypatch.setenv("SWARM_KEY_URL", key_url)


@pytest.fixture(scope="session")
def cli_app() -> typer.Typer:
    """A small app: ``admin objects ...``, ``admin backup objects``, ``admin restore objects``."""
    from swarm.cli.commands import objects

    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    admin = typer.Typer()
    backup = typer.Typer()
    restore = typer.Typer()
    app.add_typer(admin, name="admin")
    admin.add_typer(backup, name="backup")
    admin.add_typer(restore, name="restore")
    objects.register(admin, backup, restore)
    return app


def run_cli(app: typer.Typer, *args: str) -> tuple[int, str, Any]:
    """Run like ``swarm``: SwarmError → its exit code (as cli/main.py does). Returns (code, stdout, json)."""
    import json

    from typer.testing import CliRunner

    from swarm.errors import SwarmError

    result = CliRunner().invoke(app, list(args))
    code = result.exit_code
    if isinstance(result.exception, SwarmError):
        code = int(result.exception.exit_code)
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    out = result.stdout
    data = None
    if "--json" in args and out.strip():
        data = json.loads(out)
    return code, out, data
