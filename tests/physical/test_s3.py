"""The physical path on an S3 repository (SeaweedFS): archive_command pushing as the server user with
S3 credentials, a deduplicated base backup, frames read back by byte range in verify and restore."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.devstack.seaweed import SeaweedServer
from swarm.model.targets import RecoveryTarget
from swarm.repo import rebuild
from swarm.services.context import server_access
from swarm.services.postgres.physical_backup import backup_postgres_physical
from swarm.services.postgres.pitr import execute_pitr, plan_pitr
from swarm.services.repository.verify import verify_backup
from swarm.sources.postgres.cluster import LocalCluster
from swarm.storage.s3 import make_client
from tests.physical.conftest import PhysEnv, make_env
from tests.physical.test_pitr import wait_archived

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def s3env(services_dir: Path, seaweed: SeaweedServer) -> Iterator[PhysEnv]:
    bucket = "phys-" + secrets.token_hex(4)
    make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key).create_bucket(Bucket=bucket)
    env = make_env(services_dir / "phys-s3", s3={"url": f"s3://{bucket}/repo", "s3_endpoint": seaweed.endpoint,
                                                 "s3_access_key": seaweed.access_key,
                                                 "s3_secret_key": seaweed.secret_key})
    yield env
    env.cluster.destroy()


def test_physical_backup_verify_restore_on_s3(s3env: PhysEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebuild, "MIN_PROCESS_BYTES", 0)  # the restore decodes in worker processes, as a big one
    c = s3env.cluster
    c.psql("CREATE TABLE sentinel (label text)")
    c.psql("INSERT INTO sentinel SELECT 'bulk-' || g FROM generate_series(1, 20000) g")
    repo = s3env.repo()
    assert repo.url.startswith("s3://")
    b = backup_postgres_physical(repo, s3env.url)
    c.psql("INSERT INTO sentinel VALUES ('after-backup')")
    wait_archived(s3env)
    v = verify_backup(repo, b.manifest.id)
    assert v.ok, v.problems
    datadir = s3env.root / "restored"
    plan = plan_pitr(repo, RecoveryTarget("latest"), datadir, start=True)
    res = execute_pitr(repo, plan, server_access(s3env.settings), bindir=s3env.settings.pg_bindir, archive=False,
                       timeout=120)
    rc = LocalCluster(datadir.parent, port=res.port or 0, pgdata=datadir)
    try:
        assert rc.psql("SELECT count(*) FROM sentinel") == "20001"
        assert rc.psql("SELECT count(*) FROM sentinel WHERE label = 'after-backup'") == "1"
    finally:
        rc.destroy()
