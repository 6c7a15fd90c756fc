"""Packs of deduplicated blocks and the WAL archive objects, on an in-memory store: round trips,
keyed ids, damage caught and named, duplicate/conflict semantics, cluster binding."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm.crypto.keys import create_key_file
from swarm.errors import IntegrityError, RefusedError
from swarm.repo import Repository
from swarm.repo.format import data_key, wal_key
from swarm.repo.packs import Location, PackWriter, block_id, split_frames
from swarm.storage.memory import MemoryStore


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(MemoryStore(), create_key_file(tmp_path / "k"))


def write_blocks(repo: Repository, blocks: list[bytes],
                 pack_target: int = 1 << 20) -> tuple[str, list[tuple[str, Location]]]:
    w = repo.begin_backup("pg-physical")
    pw = PackWriter(repo_id=repo.config.repo_id, backup_id=w.id, dek_id=w.dek_id, dek=w.dek, upload=w.put_pack,
                    pack_target=pack_target)
    out = []
    for b in blocks:
        bid = block_id(repo.dedup_key(), b)
        out.append((bid, pw.add(bid, b)))
    pw.close()
    w.commit({})
    return w.id, out


def test_block_ids_are_keyed_and_stable(repo: Repository, tmp_path: Path) -> None:
    k = repo.dedup_key()
    assert k == repo.dedup_key() and len(k) == 32
    assert block_id(k, b"x" * 10) == block_id(k, b"x" * 10)
    assert block_id(k, b"x") != block_id(os.urandom(32), b"x")
    import hashlib

    assert block_id(k, b"page") != hashlib.sha256(b"page").hexdigest()  # not a bare hash of the plaintext
    # another process opening the same repository reads the same secret
    again = Repository.open(repo._store, repo.kek)
    assert again.dedup_key() == k


def test_pack_roundtrip_and_range_reads(repo: Repository) -> None:
    blocks = [os.urandom(15000), b"\0" * 32768, os.urandom(15000), bytes(range(256)) * 100, b""]
    bid, written = write_blocks(repo, blocks, pack_target=20000)
    m = repo.load_manifest(bid)
    packs = [o for o in m.objects if o.name.startswith("packs/")]
    assert len(packs) >= 2  # small target: several packs
    for (b, loc), plain in zip(written, blocks, strict=True):
        assert repo.read_block(loc, b) == plain
    # frames of each pack line up with the locations
    for o in packs:
        frames = split_frames(repo._store.get(data_key(bid, o.name)), where=o.name)
        assert frames


def test_damage_is_caught(repo: Repository) -> None:
    bid, written = write_blocks(repo, [os.urandom(3000), os.urandom(3000)])
    b0, loc0 = written[0]
    b1, _ = written[1]
    with pytest.raises(IntegrityError, match="fails authentication"):
        repo.read_block(loc0, b1)  # a frame served for another block id
    key = data_key(bid, loc0.pack_name())
    store = getattr(repo._store, "_inner", repo._store)  # under the repository's pack forwarding
    assert isinstance(store, MemoryStore)
    blob, t = store.objects[key]
    damaged = bytearray(blob)
    damaged[loc0.offset + 20] ^= 1
    store.objects[key] = (bytes(damaged), t)
    with pytest.raises(IntegrityError, match="fails authentication"):
        repo.read_block(loc0, b0)
    store.objects[key] = (blob[: loc0.offset + 10], t)
    with pytest.raises(IntegrityError):
        repo.read_block(loc0, b0)


def test_location_roundtrip() -> None:
    loc = Location("20261124T000000Z-pg-physical-abcdef", 3, 7, 1234, 999, "dek-1")
    assert Location.from_list(loc.to_list()) == loc
    assert loc.pack_name() == "packs/000003.pack"


def test_wal_objects_duplicate_conflict_and_binding(repo: Repository) -> None:
    ident = repo.bind_cluster("111", segment_size=16 << 20)
    assert repo.bind_cluster("111") == ident
    with pytest.raises(RefusedError, match="belongs to PostgreSQL cluster 111"):
        repo.bind_cluster("222")
    name = "000000010000000000000003"
    data = os.urandom(1000) + b"\0" * 100000
    assert repo.put_wal(name, data) == "stored"
    assert repo.get_wal(name) == data
    assert repo.put_wal(name, data) == "duplicate"
    with pytest.raises(RefusedError, match="different content"):
        repo.put_wal(name, data[:-1] + b"\1")
    assert repo.get_wal(name) == data
    assert any(i.key.startswith("wal/conflicts/" + name) for i in repo._store.list("wal/"))
    # partials are replaced, never refused
    p = name + ".partial"
    assert repo.put_wal(p, b"a", overwrite=True) == "stored"
    assert repo.put_wal(p, b"ab", overwrite=True) == "stored"
    assert repo.get_wal(p) == b"ab"
    assert wal_key("00000002.history") == "wal/history/00000002.history"
    # a WAL object moved to another name does not open
    store = getattr(repo._store, "_inner", repo._store)  # under the repository's pack forwarding
    assert isinstance(store, MemoryStore)
    store.objects[wal_key("000000010000000000000004")] = store.objects[wal_key(name)]
    with pytest.raises(IntegrityError):
        repo.get_wal("000000010000000000000004")
