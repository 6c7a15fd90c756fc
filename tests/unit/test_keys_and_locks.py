from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from swarm.clock import FrozenClock
from swarm.crypto.keys import create_key_file, load_key_file
from swarm.errors import ConfigError, KeyError_, LockedError
from swarm.repo.locks import RepoLock
from swarm.storage.base import StoreUnavailable
from swarm.storage.memory import MemoryStore
from swarm.storage.wrappers import FaultyStore, RetryingStore


def test_key_file_mode_and_roundtrip(tmp_path: Path) -> None:
    k = create_key_file(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    again = load_key_file(tmp_path / "k")
    assert again.key_id == k.key_id
    assert again.unwrap(k.wrap(b"x" * 32, b"ctx"), b"ctx") == b"x" * 32


def test_key_file_refuses_overwrite(tmp_path: Path) -> None:
    create_key_file(tmp_path / "k")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        create_key_file(tmp_path / "k")


def test_missing_and_open_key_files(tmp_path: Path) -> None:
    with pytest.raises(KeyError_, match="does not exist"):
        load_key_file(tmp_path / "none")
    create_key_file(tmp_path / "k")
    os.chmod(tmp_path / "k", 0o644)
    with pytest.raises(KeyError_, match="readable by other users") as err:
        load_key_file(tmp_path / "k")
    assert "chmod 600" in (err.value.hint or "")


def test_damaged_key_file(tmp_path: Path) -> None:
    create_key_file(tmp_path / "k")
    body = json.loads((tmp_path / "k").read_text())
    body["key_id"] = "kek-0000000000000000"
    (tmp_path / "k").write_text(json.dumps(body))
    os.chmod(tmp_path / "k", 0o600)
    with pytest.raises(KeyError_, match="damaged"):
        load_key_file(tmp_path / "k")


def test_unwrap_with_other_key_fails(tmp_path: Path) -> None:
    a, b = create_key_file(tmp_path / "a"), create_key_file(tmp_path / "b")
    with pytest.raises(KeyError_):
        b.unwrap(a.wrap(b"x" * 32, b"c"), b"c")
    with pytest.raises(KeyError_):
        a.unwrap(a.wrap(b"x" * 32, b"c"), b"other context")


def test_lock_names_holder_and_releases() -> None:
    store = MemoryStore()
    with RepoLock(store, "backup-postgres", command="swarm admin backup postgres"):
        with pytest.raises(LockedError) as err:
            RepoLock(store, "backup-postgres").acquire()
        assert f"pid {os.getpid()}" in err.value.message
        assert "swarm admin backup postgres" in err.value.message
    RepoLock(store, "backup-postgres").acquire().release()  # free again


def test_stale_lock_is_broken_after_heartbeat_timeout() -> None:
    store = MemoryStore()
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    old = RepoLock(store, "x", clock=clock, stale_after=60, refresh_every=3600)
    old.acquire()
    with pytest.raises(LockedError):
        RepoLock(store, "x", clock=clock, stale_after=60).acquire()
    clock.advance(61)
    new = RepoLock(store, "x", clock=clock, stale_after=60).acquire()
    assert new.read_holder() is not None and new.read_holder().token == new.token  # type: ignore[union-attr]
    new.release()
    old._stop.set()


def test_lock_of_dead_pid_on_this_host_is_broken_at_once() -> None:
    store = MemoryStore()
    lock = RepoLock(store, "x")
    body = json.loads(lock._body())
    body["pid"] = 2 ** 22 + 12345  # no such process
    store.put("locks/x.json", json.dumps(body).encode())
    RepoLock(store, "x").acquire().release()


def test_lost_lock_stops_commit() -> None:
    store = MemoryStore()
    lock = RepoLock(store, "x", refresh_every=0.05).acquire()
    store.delete("locks/x.json")
    import time

    time.sleep(0.3)
    with pytest.raises(LockedError, match="lost"):
        lock.ensure_held()
    lock.release()


def test_retrying_store_retries_transient_only() -> None:
    inner = FaultyStore(MemoryStore())
    store = RetryingStore(inner, attempts=4, sleep=lambda s: None)
    inner.fail_next = 3
    store.put("k", b"v")
    assert store.get("k") == b"v"
    inner.fail_next = 10
    with pytest.raises(StoreUnavailable, match="after 4 attempts"):
        store.get("k")
