"""One contract suite for every Store implementation (see swarm.storage.base)."""
from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.storage import ObjectExists, ObjectNotFound, Store
from swarm.storage.local import LocalStore
from swarm.storage.memory import MemoryStore
from swarm.storage.s3 import S3Store
from swarm.storage.wrappers import RetryingStore


@pytest.fixture(params=["memory", "local", "s3", "retrying-local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    kind = request.param
    if kind == "memory":
        return MemoryStore()
    if kind == "local":
        return LocalStore(tmp_path / "store")
    if kind == "retrying-local":
        return RetryingStore(LocalStore(tmp_path / "store"))
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("bucket")
    return S3Store(bucket, "pfx", client=client)


def test_put_get_roundtrip(store: Store) -> None:
    assert store.put("a/b/c.bin", b"hello") == 5
    assert store.get("a/b/c.bin") == b"hello"
    assert b"".join(store.iter_get("a/b/c.bin")) == b"hello"


def test_put_stream_of_chunks(store: Store) -> None:
    chunks = [secrets.token_bytes(1000) for _ in range(20)]
    assert store.put("s", iter(chunks)) == 20000
    assert store.get("s") == b"".join(chunks)


def test_empty_object(store: Store) -> None:
    store.put("empty", b"")
    assert store.get("empty") == b""
    info = store.stat("empty")
    assert info is not None and info.size == 0


def test_overwrite_replaces(store: Store) -> None:
    store.put("k", b"one")
    store.put("k", b"two")
    assert store.get("k") == b"two"


def test_if_absent_refuses_existing(store: Store) -> None:
    store.put("lock", b"mine", if_absent=True)
    with pytest.raises(ObjectExists):
        store.put("lock", b"theirs", if_absent=True)
    assert store.get("lock") == b"mine"


def test_missing_key(store: Store) -> None:
    with pytest.raises(ObjectNotFound):
        store.get("nope")
    with pytest.raises(ObjectNotFound):
        list(store.iter_get("nope"))
    assert store.stat("nope") is None
    store.delete("nope")  # not an error


def test_list_prefix_sorted(store: Store) -> None:
    for k in ["x/2", "x/1", "y/1", "x/sub/3"]:
        store.put(k, k.encode())
    assert [i.key for i in store.list("x/")] == ["x/1", "x/2", "x/sub/3"]
    assert [i.key for i in store.list("x/s")] == ["x/sub/3"]
    assert {i.key: i.size for i in store.list("")} == {"x/1": 3, "x/2": 3, "x/sub/3": 7, "y/1": 3}


def test_get_range(store: Store) -> None:
    data = bytes(range(256)) * 40
    store.put("r", data)
    assert store.get_range("r", 0, 10) == data[:10]
    assert store.get_range("r", 1000, 333) == data[1000:1333]
    assert store.get_range("r", len(data) - 5, 100) == data[-5:]  # clipped at the end
    assert store.get_range("r", len(data), 10) == b""
    assert store.get_range("r", 7, 0) == b""
    with pytest.raises(ObjectNotFound):
        store.get_range("missing", 0, 10)
    with pytest.raises(ValueError):
        store.get_range("r", -1, 10)


def test_delete(store: Store) -> None:
    store.put("d", b"1")
    store.delete("d")
    assert store.stat("d") is None


@pytest.mark.parametrize("bad", ["", "/abs", "a/../b", "a//b", "trail/", "./x", "a\\b"])
def test_rejects_unsafe_keys(store: Store, bad: str) -> None:
    with pytest.raises(ValueError):
        store.put(bad, b"x")


def test_large_object_multipart(store: Store) -> None:
    # bigger than the S3 driver's part size, so the multipart path runs
    def gen() -> Iterator[bytes]:
        for i in range(18):
            yield bytes([i]) * (1 << 20)

    n = store.put("big", gen())
    assert n == 18 << 20
    data = store.get("big")
    assert len(data) == n and data[:1] == b"\x00" and data[-1:] == b"\x11"


def test_local_crash_leaves_no_object(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError):
        store.put("k", broken())
    assert store.stat("k") is None
    assert list(store.list("")) == []


def test_local_chowns_to_repository_owner_when_root(tmp_path: Path) -> None:
    """As root, what LocalStore creates belongs to the owner of the repository root (the dev stack's
    postgres user pushes WAL into the same repository)."""
    import os
    import pwd

    root = tmp_path / "owned"
    root.mkdir()
    owner = os.geteuid()
    if owner == 0:
        owner = pwd.getpwnam("postgres").pw_uid
        os.chown(root, owner, -1)
    store = LocalStore(root)
    store.put("a/b/c", b"x")
    for p in (root / "a", root / "a" / "b", root / "a" / "b" / "c"):
        assert p.stat().st_uid == owner, p
