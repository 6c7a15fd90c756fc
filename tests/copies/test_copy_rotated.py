"""A repository rotated to a new key (both keys readable until retire) copies with either key
configured, and the copy carries only its own key's wraps."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarm.crypto.keys import create_key_file
from swarm.repo import Repository
from swarm.repo.copy import execute_copy, plan_copy
from swarm.repo.rotate import rotate
from swarm.storage.memory import MemoryStore


@pytest.mark.parametrize("configured", ["old", "new"])
def test_a_rotated_repository_copies_with_either_key(tmp_path: Path, configured: str) -> None:
    store = MemoryStore()
    old, new = create_key_file(tmp_path / "old"), create_key_file(tmp_path / "new")
    repo = Repository.init(store, old)
    w = repo.begin_backup("pg-logical")
    w.put_object("pgdump/toc.dat", [b"toc bytes"])
    m = w.commit({"engine": "postgresql", "database": "app", "row_counts": {}})
    rotate(store, old, new)
    source = Repository.open(store, old if configured == "old" else new)
    own = create_key_file(tmp_path / "copy")
    target = MemoryStore()
    execute_copy(source, plan_copy(source, "far", target, own), target, own)
    copy = Repository.open(target, own)
    assert b"".join(copy.read_object(copy.load_manifest(m.id), "pgdump/toc.dat")) == b"toc bytes"
    for key in [i.key for i in target.list("keys/")]:
        body = json.loads(target.get(key))
        assert "also" not in body and body.get("kek_id") == own.key_id, key
