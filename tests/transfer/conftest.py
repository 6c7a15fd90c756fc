"""Fixtures for run export / import: a seeded "prod" (database + bucket, and its own
SWARM_HOME with an export signing key), an empty "dev" (migrated database + bucket, and a
SWARM_HOME that trusts prod's public key), a scrubbed export of one prod run, and helpers to
count what a target holds (to prove a refused import wrote nothing)."""
from __future__ import annotations

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from swarm.devstack.seaweed import SeaweedServer
from swarm.platform.schema import apply_migrations
from swarm.platform.seed import Persona, seed_database, seed_objects
from swarm.services.transfer.trust import (
    ExportSigningKey,
    Trust,
    export_public,
    load_signing_key,
    load_trust,
    trust_key,
)
from swarm.sources.objects import Bucket, BucketConfig
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import connect, count_rows, create_database, with_dbname
from swarm.storage.s3 import make_client


@dataclass
class Stack:
    db_url: str
    bucket: Bucket
    run_rows: list[dict[str, Any]]

    def persona(self, run_id: str) -> Persona:
        row = next(r for r in self.run_rows if r["id"] == run_id)
        return Persona(random.Random(row["persona_seed"]))


def new_db(cluster: LocalCluster) -> str:
    name = "tx_" + secrets.token_hex(4)
    create_database(cluster.url("postgres"), name)
    url = with_dbname(cluster.url("postgres"), name)
    apply_migrations(url)
    return url


def new_bucket(server: SeaweedServer, prefix: str, *, versioned: bool = False) -> Bucket:
    client = make_client(server.endpoint, server.access_key, server.secret_key)
    name = f"{prefix}-{secrets.token_hex(5)}"
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return Bucket(BucketConfig(name, server.endpoint, server.access_key, server.secret_key))


@pytest.fixture(scope="module")
def prod(pg_cluster: LocalCluster, seaweed: SeaweedServer) -> Stack:
    url = new_db(pg_cluster)
    _, run_rows = seed_database(url, runs=6, size_mb=0.3, seed=11)
    b = new_bucket(seaweed, "prod")
    seed_objects(b.client, b.name, run_rows, model_kb=16, workers=4, db_url=url)
    return Stack(url, b, run_rows)


@pytest.fixture
def dev(pg_cluster: LocalCluster, seaweed: SeaweedServer) -> Stack:
    return Stack(new_db(pg_cluster), new_bucket(seaweed, "dev", versioned=True), [])


def pii_run(prod: Stack) -> str:
    """The prod run with the most PII-bearing events."""
    best, best_n = prod.run_rows[0]["id"], -1
    with connect(prod.db_url) as conn:
        for r in prod.run_rows:
            p = prod.persona(r["id"])
            row = conn.execute("SELECT count(*) FROM run_events WHERE run_id = %s AND (payload::text LIKE %s OR "
                               "payload::text LIKE %s)", (r["id"], f"%{p.email}%", f"%{p.phone}%")).fetchone()
            n = int(row[0]) if row else 0
            if n > best_n:
                best, best_n = r["id"], n
    return best


@pytest.fixture(scope="module")
def run_id(prod: Stack) -> str:
    return pii_run(prod)


@pytest.fixture(scope="session")
def prod_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """prod's SWARM_HOME: where its export signing key lives."""
    return tmp_path_factory.mktemp("prod-home")


@pytest.fixture(scope="session")
def prod_key(prod_home: Path) -> ExportSigningKey:
    return load_signing_key(prod_home)[0]


@pytest.fixture(scope="session")
def dev_home(prod_home: Path, prod_key: ExportSigningKey, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dev's SWARM_HOME, trusting prod's public key the way an operator does it."""
    home = tmp_path_factory.mktemp("dev-home")
    pub = tmp_path_factory.mktemp("transfer") / "prod.pub"
    export_public(prod_home, pub)
    trust_key(home, pub)
    return home


@pytest.fixture(scope="session")
def dev_trust(dev_home: Path) -> Trust:
    return load_trust(dev_home)


@pytest.fixture(scope="module")
def scrubbed_archive(prod: Stack, run_id: str, prod_key: ExportSigningKey,
                     tmp_path_factory: pytest.TempPathFactory) -> Path:
    from swarm.services.transfer.export import export_run

    out = tmp_path_factory.mktemp("exports") / f"{run_id}-scrubbed.tar.gz"
    export_run(prod.db_url, prod.bucket, run_id, out, scrub=True, signing_key=prod_key)
    return out


def listing(b: Bucket) -> dict[str, int]:
    out: dict[str, int] = {}
    for page in b.client.get_paginator("list_object_versions").paginate(Bucket=b.name):
        for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
            out[f"{v['Key']}@{v['VersionId']}"] = int(v.get("Size") or 0)
    return out


def state(stack: Stack) -> tuple[dict[str, int], dict[str, int]]:
    """Row counts of every table and every object version: what 'nothing written' compares."""
    with connect(stack.db_url) as conn:
        counts = count_rows(conn)
    return counts, listing(stack.bucket)


def objects(b: Bucket, prefix: str = "") -> dict[str, bytes]:
    out = {}
    for page in b.client.get_paginator("list_objects_v2").paginate(Bucket=b.name, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = b.client.get_object(Bucket=b.name, Key=item["Key"])["Body"].read()
    return out


def env_for(monkeypatch: pytest.MonkeyPatch, stack: Stack) -> None:
    c = stack.bucket.cfg
    monkeypatch.setenv("SWARM_DB_URL", stack.db_url)
    monkeypatch.setenv("SWARM_OBJECTS_ENDPOINT", c.endpoint or "")
    monkeypatch.setenv("SWARM_OBJECTS_BUCKET", c.bucket)
    monkeypatch.setenv("SWARM_OBJECTS_ACCESS_KEY", c.access_key or "")
    monkeypatch.setenv("SWARM_OBJECTS_SECRET_KEY", c.secret_key or "")


@pytest.fixture(scope="session")
def cli_app() -> typer.Typer:
    from swarm.cli.commands import transfer

    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    admin = typer.Typer()
    app.add_typer(admin, name="admin")
    transfer.register(admin)
    return app


def run_cli(app: typer.Typer, *args: str) -> tuple[int, str, str, Any]:
    """Run like ``swarm`` does (SwarmError → its exit code). Returns (code, stdout, stderr, json)."""
    import json

    from typer.testing import CliRunner

    from swarm.errors import SwarmError

    result = CliRunner().invoke(app, list(args))
    code = result.exit_code
    if isinstance(result.exception, SwarmError):
        code = int(result.exception.exit_code)
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    data = json.loads(result.stdout) if "--json" in args and result.stdout.strip() else None
    return code, result.stdout, result.stderr, data


@pytest.fixture
def dev_env(dev: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    env_for(monkeypatch, dev)
    yield dev
