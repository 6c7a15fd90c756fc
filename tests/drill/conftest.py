"""A seeded deployment with a backup set in a repository, and the real `swarm` command pointed at it."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from swarm.crypto.keys import create_key_file
from swarm.devstack.seaweed import SeaweedServer
from swarm.sources.postgres.cluster import LocalCluster
from tests.check.conftest import Deployment
from tests.sets.test_sets_cli import _versioned_deployment


@dataclass
class DrillDeployment:
    d: Deployment
    repo_env: dict[str, str]
    root: Path

    def cli(self, *args: str, **env: str) -> tuple[int, str, str, Any]:
        return self.d.cli(*args, **{**self.repo_env, **env})

    def backup_set(self) -> str:
        rc, _, err, out = self.cli("admin", "backup", "set", "--json")
        assert rc == 0, err
        return str(out["id"])

    def drills_dir(self) -> Path:
        return self.d.home / "drills"

    def buckets(self) -> set[str]:
        return {b["Name"] for b in self.d.client.list_buckets().get("Buckets", [])}


@pytest.fixture(scope="package")
def seaweed(services_dir: Path) -> Iterator[SeaweedServer]:
    """The drill tests' own SeaweedFS. Every bucket that holds data takes volumes of a ``weed
    mini`` that has about 70 (reference/s3-servers-probe.md, "Volumes run out with many
    buckets"), and a drill test makes two or three (production's, the drill's, a DR or scratch
    one): on the session's server they would leave the tests after them without volumes."""
    server = SeaweedServer(services_dir / f"seaweed-drill-{secrets.token_hex(3)}", "testkey",
                           "testsecret-" + secrets.token_hex(4))
    server.start()
    yield server
    server.stop(grace=5)


@pytest.fixture
def dd(pg_cluster: LocalCluster, seaweed: SeaweedServer, tmp_path: Path) -> DrillDeployment:
    d = _versioned_deployment(pg_cluster, seaweed, tmp_path)
    key = create_key_file(tmp_path / "keys" / "repo.key")
    env = {"SWARM_BACKUP_REPO": f"file://{tmp_path / 'repo'}", "SWARM_KEY_URL": f"file://{key.path}"}
    return DrillDeployment(d, env, tmp_path)
