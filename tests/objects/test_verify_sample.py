"""``verify --restore-test`` on objects backups: a sample of the inventoried versions is read
back (from the bucket by version id, or the copied bytes from the repository) and compared
with the inventory; a version gone from the bucket fails the verify, naming the key."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
import typer

from swarm.config import Settings, load_settings
from swarm.crypto.keys import LocalKeyFile
from swarm.repo import Repository
from swarm.services.context import restore_test_env
from swarm.services.objects.backup import backup_objects
from swarm.services.repository.verify import verify_backup
from swarm.sources.objects import Bucket
from swarm.storage.local import LocalStore

from .conftest import env_for, put, run_cli


@pytest.fixture
def local_repo(tmp_path: Path, kek: LocalKeyFile) -> Repository:
    return Repository.init(LocalStore(tmp_path / "repo"), kek)


def settings_for(b: Bucket) -> Settings:
    c = b.cfg
    return load_settings(objects_endpoint=c.endpoint, objects_access_key=c.access_key,
                         objects_secret_key=c.secret_key)


def test_inventory_sample_reads_versions_and_names_a_lost_one(local_repo: Repository, src: Bucket) -> None:
    vids = {f"s/{i}": put(src, f"s/{i}", f"body {i}".encode() * (i + 1)) for i in range(6)}
    time.sleep(1.1)
    bid = backup_objects(local_repo, src, prefix="s/").manifest.id
    put(src, "s/1", b"overwritten later: the pinned version still reads back")
    res = verify_backup(local_repo, bid, restore_test=True, env=restore_test_env(settings_for(src)), sample=0)
    assert res.ok, res.problems
    rt = res.restore_test
    assert rt is not None and rt.kind == "objects-sample"
    assert rt.facts["objects_sampled"] == 6 and rt.facts["inventory_keys"] == 6
    assert rt.facts["from_bucket"] == 6 and rt.facts["etags_compared"] == 6 and rt.facts["failed"] == 0
    part = verify_backup(local_repo, bid, restore_test=True, env=restore_test_env(settings_for(src)), sample=3)
    assert part.ok and part.to_dict()["restore_test"]["objects_sampled"] == 3
    # the pinned version of s/4 is deleted from the bucket: the restore test names it
    src.delete_version("s/4", vids["s/4"])
    bad = verify_backup(local_repo, bid, restore_test=True, env=restore_test_env(settings_for(src)), sample=0)
    assert not bad.ok
    assert [p["where"] for p in bad.problems] == ["s/4"], bad.problems
    assert vids["s/4"] in bad.problems[0]["problem"] and "gone" in bad.problems[0]["problem"]
    d = bad.to_dict()["restore_test"]
    assert d["validated"] is False and d["failed"] == 1 and d["objects_sampled"] == 6


def test_copy_data_sample_reads_the_repository_copies(local_repo: Repository, src: Bucket) -> None:
    vid = put(src, "c/a", b"A" * 5000)
    put(src, "c/b", b"B" * 10)
    time.sleep(1.1)
    bid = backup_objects(local_repo, src, prefix="c/", copy_data=True).manifest.id
    src.delete_version("c/a", vid)  # gone from the bucket, but the backup holds its bytes
    res = verify_backup(local_repo, bid, restore_test=True, env=restore_test_env(settings_for(src)), sample=0)
    assert res.ok, res.problems
    f = res.restore_test.facts if res.restore_test else {}
    assert f["from_repository"] == 2 and f["from_bucket"] == 0 and f["bytes_read"] == 5010


def test_cli_verify_restore_test_of_an_objects_backup(local_repo: Repository, src: Bucket, kek: LocalKeyFile,
                                                      tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm.cli.commands import verify

    vid = put(src, "k/x", b"x" * 100)
    put(src, "k/y", b"y" * 100)
    time.sleep(1.1)
    bid = backup_objects(local_repo, src, prefix="k/").manifest.id
    env_for(monkeypatch, src, repo=f"file://{tmp_path / 'repo'}", key_url=str(kek.path))
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    admin = typer.Typer()
    app.add_typer(admin, name="admin")
    verify.register(admin)
    code, _out, data = run_cli(app, "admin", "verify", bid, "--restore-test", "--json")
    assert code == 0 and data["restore_test"]["kind"] == "objects-sample"
    assert data["restore_test"]["objects_sampled"] == 2
    code, out, _ = run_cli(app, "admin", "verify", bid, "--restore-test")
    assert code == 0 and "2 of 2 versions read (2 from the bucket" in out
    src.delete_version("k/x", vid)
    code, out, _ = run_cli(app, "admin", "verify", bid, "--restore-test", "--sample", "0")
    assert code == 1 and "k/x" in out and "FAILED" in out
