"""Inventory pinned in the repository, copy-data deduplicated per version, restore of a backup."""
from __future__ import annotations

import json
import time

import pytest

from swarm.errors import NotFoundError
from swarm.repo import Repository
from swarm.services.objects.backup import INVENTORY, backup_objects, restore_objects
from swarm.sources.objects import Bucket

from .conftest import get, put, snapshot


def inventory(repo: Repository, backup_id: str) -> list[dict]:  # type: ignore[type-arg]
    m = repo.load_manifest(backup_id)
    return [json.loads(ln) for ln in b"".join(repo.read_object(m, INVENTORY)).splitlines()]


def test_inventory_is_exact_and_restorable(repo: Repository, src: Bucket) -> None:
    v1 = put(src, "inv/a", b"a1", ContentType="text/plain")
    put(src, "inv/b", b"b1")
    put(src, "inv/gone", b"x")
    src.add_delete_marker("inv/gone")
    time.sleep(1.1)
    res = backup_objects(repo, src, prefix="inv/")
    d = res.to_dict()
    assert d["keys"] == 2 and not d["copy_data"]
    lines = inventory(repo, d["id"])
    assert [ln["key"] for ln in lines] == ["inv/a", "inv/b"]
    assert lines[0]["version_id"] == v1 and lines[0]["size"] == 2 and lines[0]["etag"]
    assert set(lines[0]) >= {"key", "version_id", "etag", "size", "last_modified", "storage_class"}
    # later: overwrite a, delete b, add c
    put(src, "inv/a", b"a2")
    src.add_delete_marker("inv/b")
    put(src, "inv/c", b"c1")
    dry = restore_objects(repo, d["id"], src, src, dry_run=True).to_dict()
    assert dry["counts"]["would_restore"] == 2 and get(src, "inv/a") == b"a2"
    out = restore_objects(repo, d["id"], src, src).to_dict()
    assert out["ok"] and out["counts"]["copied"] == 2
    assert get(src, "inv/a") == b"a1" and get(src, "inv/b") == b"b1" and get(src, "inv/c") == b"c1"
    assert src.head("inv/a")["ContentType"] == "text/plain"
    assert restore_objects(repo, d["id"], src, src).to_dict()["counts"].get("copied", 0) == 0  # idempotent
    # a version gone without stored bytes: reported per key, exit non-zero via ok=False
    src.delete_version("inv/b", lines[1]["version_id"])
    put(src, "inv/b", b"b2")
    res2 = restore_objects(repo, d["id"], src, src).to_dict()
    assert not res2["ok"] and [f["key"] for f in res2["failed"]] == ["inv/b"]


def test_copy_data_dedupes_per_version_and_restores_lost_versions(repo: Repository, src: Bucket) -> None:
    put(src, "cd/a", b"A" * 1000, Metadata={"owner": "x"}, Tagging="swarm-class=model")
    put(src, "cd/b", b"B" * 10)
    time.sleep(1.1)
    first = backup_objects(repo, src, prefix="cd/", copy_data=True).to_dict()
    assert first["versions_stored"] == 2 and first["versions_referenced"] == 0
    put(src, "cd/b", b"B2")
    time.sleep(1.1)
    second = backup_objects(repo, src, prefix="cd/", copy_data=True).to_dict()
    assert second["versions_stored"] == 1 and second["versions_referenced"] == 1
    assert second["references"] == [first["id"]]
    m = repo.load_manifest(second["id"])
    assert "reference_format" in m.source and len(m.objects) == 2  # inventory + one version
    line_a = next(ln for ln in inventory(repo, second["id"]) if ln["key"] == "cd/a")
    assert line_a["data"]["backup"] == first["id"]
    # every version of cd/a is destroyed: the stored bytes bring it back
    for v in src.key_history("cd/a"):
        src.delete_version("cd/a", v.version_id)
    res = restore_objects(repo, second["id"], src, src).to_dict()
    assert res["ok"] and res["counts"]["uploaded_from_backup"] == 1
    assert get(src, "cd/a") == b"A" * 1000
    assert src.head("cd/a")["Metadata"]["owner"] == "x" and src.tags("cd/a") == {"swarm-class": "model"}


def test_restore_objects_of_a_missing_backup_is_not_found(repo: Repository, src: Bucket) -> None:
    with pytest.raises(NotFoundError):
        restore_objects(repo, "20260101T000000Z-objects-abcdef", src, src)
    assert snapshot(src) == {}


def test_restore_objects_refuses_a_backup_of_another_kind(repo: Repository, src: Bucket) -> None:
    from swarm.errors import RefusedError

    writer = repo.begin_backup("pg-logical")
    writer.put_object("pgdump/toc.dat", [b"x"])
    m = writer.commit({"engine": "postgresql"})
    with pytest.raises(RefusedError):
        restore_objects(repo, m.id, src, src)
    assert snapshot(src) == {}
