"""A primary with WAL archiving wired to the CLI, and its repository, for the physical suite.

When the tests run as root, the server (and so archive_command) runs as ``postgres``: the
repository root is handed to that user and the archive command uses the server user's own
config + key copy (see swarm.services.wal.server_access).
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import tomli_w

from swarm.config import Settings, load_settings
from swarm.crypto.keys import create_key_file
from swarm.repo import Repository
from swarm.services.context import open_repository, server_access
from swarm.services.wal.server_access import ServerAccess
from swarm.sources.postgres.cluster import LocalCluster, hand_to_server_user

SWARM = [sys.executable, "-m", "swarm.cli.main"]


@dataclass
class PhysEnv:
    root: Path
    config: Path
    repo_dir: Path
    cluster: LocalCluster
    access: ServerAccess

    @property
    def settings(self) -> Settings:
        return load_settings(self.config)

    def repo(self) -> Repository:
        return open_repository(self.settings, create=True)

    @property
    def url(self) -> str:
        return self.cluster.url("postgres")

    def cli(self, *args: str, check: bool = True, timeout: float = 300,
            config: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
        env["SWARM_HOME"] = str(self.root / "home")
        r = subprocess.run([*SWARM, "--config", str(config or self.config), *args], capture_output=True, text=True,
                           env=env, timeout=timeout, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"swarm {' '.join(args)} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r


def make_env(base: Path, *, archive_timeout: int = 60, s3: dict[str, str] | None = None) -> PhysEnv:
    """A primary archiving into a fresh repository: file:// under ``base``, or ``s3`` (url + credentials)."""
    base.mkdir(parents=True)
    base.chmod(0o755)
    key = create_key_file(base / "keys" / "repo.key")
    repo_dir = base / "repo"
    repo_dir.mkdir()
    hand_to_server_user(repo_dir)
    config = base / "swarm.toml"
    repo_doc = {"url": f"file://{repo_dir}", "key": f"file://{key.path}"}
    if s3:
        repo_doc.update(s3)
    doc = {"repository": repo_doc}
    config.write_text(tomli_w.dumps(doc))
    os.environ.setdefault("SWARM_HOME", str(base / "home"))
    settings = load_settings(config)
    open_repository(settings, create=True)
    access = server_access(settings)
    cluster = LocalCluster(base / "pg")
    cluster.init(fast=True, conf={"full_page_writes": "on", "archive_mode": "on",
                                  "archive_command": f"'{access.archive_command}'",
                                  "archive_timeout": str(archive_timeout), "wal_keep_size": "'64MB'"})
    cluster.start()
    return PhysEnv(base, config, repo_dir, cluster, access)


@pytest.fixture(scope="module")
def phys(services_dir: Path, request: pytest.FixtureRequest) -> Iterator[PhysEnv]:
    env = make_env(services_dir / f"phys-{request.module.__name__.rsplit('.', 1)[-1]}")
    yield env
    env.cluster.destroy()
