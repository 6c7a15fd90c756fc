"""The hint after a failed objects restore test says what to do about what failed: a pinned
version deleted from the bucket is not repository damage, and a new backup will not bring it
back."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from swarm.crypto.keys import LocalKeyFile
from swarm.repo import Repository
from swarm.services.context import restore_test_env
from swarm.services.objects.backup import backup_objects
from swarm.services.repository.verify import verify_backup
from swarm.sources.objects import Bucket
from swarm.storage.local import LocalStore
from swarm.ui.views import verify as verify_view

from .conftest import put
from .test_verify_sample import settings_for


@pytest.fixture
def local_repo(tmp_path: Path, kek: LocalKeyFile) -> Repository:
    return Repository.init(LocalStore(tmp_path / "repo"), kek)


def test_a_version_deleted_in_the_bucket_points_at_the_bucket_not_the_repository(
        local_repo: Repository, src: Bucket, capsys: pytest.CaptureFixture[str]) -> None:
    vid = put(src, "h/a", b"a" * 100)
    put(src, "h/b", b"b" * 100)
    time.sleep(1.1)
    bid = backup_objects(local_repo, src, prefix="h/").manifest.id
    src.delete_version("h/a", vid)
    res = verify_backup(local_repo, bid, restore_test=True, env=restore_test_env(settings_for(src)), sample=0)
    assert not res.ok and [p["where"] for p in res.problems] == ["h/a"]
    assert res.restore_test is not None and res.restore_test.facts["versions_gone"] == 1
    verify_view.verify_result(res, bid, as_json=False)
    err = capsys.readouterr().err
    assert "hint:" in err
    assert "storage" not in err and "take a new one" not in err  # not the repository medium's fault
    assert "deleted" in err and "lifecycle" in err and "object lock" in err
    assert "objects versions" in err and "--from dr" in err


def test_a_damaged_repository_object_still_blames_the_storage(local_repo: Repository, src: Bucket,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    put(src, "d/a", b"a" * 100)
    time.sleep(1.1)
    m = backup_objects(local_repo, src, prefix="d/").manifest
    store_root = Path(local_repo._store.root)  # type: ignore[attr-defined]
    victim = next(p for p in store_root.rglob("*") if p.is_file() and m.id in str(p) and "data" in p.parts)
    victim.write_bytes(b"not what was written")
    res = verify_backup(local_repo, m.id, restore_test=True, env=restore_test_env(settings_for(src)), sample=0)
    assert not res.ok
    verify_view.verify_result(res, m.id, as_json=False)
    err = capsys.readouterr().err
    assert "storage" in err and "deleted" not in err
