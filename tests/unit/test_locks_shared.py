"""The repository's shared and exclusive lock, the WAL lease, and the commit-time checks, on the
memory and local stores (threads and a second process)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from swarm.clock import FrozenClock
from swarm.crypto.keys import create_key_file
from swarm.errors import IntegrityError, KeyError_, LockedError
from swarm.model.refs import DataRef, Refs
from swarm.repo import Repository
from swarm.repo.locks import WAL_LEASE_TTL, ExclusiveLock, SharedLock, hold_wal_lease
from swarm.repo.packs import PackWriter, block_id
from swarm.storage.base import Store
from swarm.storage.local import LocalStore
from swarm.storage.memory import MemoryStore


@pytest.fixture(params=["memory", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return MemoryStore() if request.param == "memory" else LocalStore(tmp_path / "repo")


def test_shared_holder_blocks_exclusive_taker_and_is_named(store: Store) -> None:
    with SharedLock(store, command="swarm admin backup postgres"):
        with pytest.raises(LockedError, match="in use by 1 writer") as err:
            ExclusiveLock(store, command="swarm admin prune").acquire()
        assert "swarm admin backup postgres" in err.value.message
        assert err.value.exit_code == 6
        assert err.value.details["holders"][0]["mode"] == "shared"  # type: ignore[index]
        # the failed taker left nothing behind: another writer still gets in
        SharedLock(store).acquire().release()
    with ExclusiveLock(store, command="swarm admin prune"):
        pass


def test_exclusive_holder_blocks_shared_takers(store: Store, tmp_path: Path) -> None:
    with ExclusiveLock(store, command="swarm admin prune"):
        with pytest.raises(LockedError, match=r"locked for maintenance by .*swarm admin prune") as err:
            SharedLock(store).acquire()
        assert err.value.exit_code == 6
        repo = Repository.init(store, create_key_file(tmp_path / "k"))
        with pytest.raises(LockedError, match="locked for maintenance"):
            repo.lock("backup-postgres").acquire()
        # the named lock taken on the way was given back
        assert store.stat("locks/backup-postgres.json") is None
        with pytest.raises(LockedError):
            ExclusiveLock(store).acquire()  # one exclusive holder at a time
    with SharedLock(store):
        pass


def test_exclusive_waits_for_shared_holders_bounded(store: Store) -> None:
    shared = SharedLock(store).acquire()
    threading.Timer(0.4, shared.release).start()
    t0 = time.monotonic()
    with ExclusiveLock(store, wait=10, poll=0.05):
        assert time.monotonic() - t0 >= 0.3
    shared = SharedLock(store).acquire()
    t0 = time.monotonic()
    with pytest.raises(LockedError, match="in use"):
        ExclusiveLock(store, wait=0.3, poll=0.05).acquire()
    assert 0.25 <= time.monotonic() - t0 < 5
    shared.release()


def test_waiting_exclusive_does_not_hold_up_writers(store: Store) -> None:
    first = SharedLock(store).acquire()
    errors: list[BaseException] = []

    def prune() -> None:
        try:
            ExclusiveLock(store, wait=0.6, poll=0.05).acquire()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=prune)
    t.start()
    time.sleep(0.15)
    assert json.loads(store.get("locks/repository/exclusive.json"))["state"] == "waiting"
    second = SharedLock(store, command="second writer").acquire()  # a waiting prune lets backups in
    t.join()
    assert errors and isinstance(errors[0], LockedError) and "second writer" in errors[0].message
    first.release()
    second.release()


HOLD = """
import sys
from pathlib import Path
from swarm.repo.locks import SharedLock
from swarm.storage.local import LocalStore
lock = SharedLock(LocalStore(Path(sys.argv[1])), command="child writer").acquire()
print("ready", flush=True)
sys.stdin.read()
lock.release()
"""


def test_shared_lock_in_another_process(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "repo")
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "repo")], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        with pytest.raises(LockedError, match=f"pid {p.pid} .*child writer"):
            ExclusiveLock(store).acquire()
        p.kill()  # a killed holder on this host: its record is stale at once (dead pid)
        p.wait(10)
        with ExclusiveLock(store):
            with pytest.raises(LockedError):
                SharedLock(store).acquire()
    finally:
        p.kill()
        p.wait(10)


def test_stale_records_are_broken(store: Store) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    old = SharedLock(store, clock=clock, stale_after=60, refresh_every=3600).acquire()
    with pytest.raises(LockedError):
        ExclusiveLock(store, clock=clock, stale_after=60).acquire()
    clock.advance(61)  # no heartbeat for longer than stale_after: broken
    ex = ExclusiveLock(store, clock=clock, stale_after=60, refresh_every=3600).acquire()
    assert not list(store.list("locks/repository/shared-"))
    with pytest.raises(LockedError):
        SharedLock(store, clock=clock).acquire()
    clock.advance(61)  # and an exclusive holder that stopped refreshing is broken by a writer
    SharedLock(store, clock=clock).acquire().release()
    old.release()
    ex.release()


def test_holder_whose_lock_expired_cannot_commit(tmp_path: Path) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    store = MemoryStore()
    repo = Repository.init(store, create_key_file(tmp_path / "k"), clock)
    lock = repo.lock("backup-postgres", stale_after=60, refresh_every=3600).acquire()
    w = repo.begin_backup("pg-logical", lock=lock)
    w.put_object("a", [b"x"])
    clock.advance(61)  # e.g. the process was frozen: its lock may have been broken
    with pytest.raises(LockedError, match="not renewed"):
        w.commit({})
    assert repo.list_backups() == []
    lock.release()


def test_holder_whose_record_was_removed_cannot_commit(tmp_path: Path) -> None:
    store = MemoryStore()
    repo = Repository.init(store, create_key_file(tmp_path / "k"))
    lock = repo.lock("backup-postgres", refresh_every=3600).acquire()
    w = repo.begin_backup("pg-logical", lock=lock)
    w.put_object("a", [b"x"])
    for info in list(store.list("locks/repository/")):
        store.delete(info.key)  # broken as stale by someone else
    with pytest.raises(LockedError, match="removed or taken over"):
        w.commit({})
    assert repo.list_backups() == []
    lock.release()


def test_same_kind_backup_still_fails_naming_the_holder(tmp_path: Path) -> None:
    repo = Repository.init(MemoryStore(), create_key_file(tmp_path / "k"))
    with repo.lock("backup-postgres", command="swarm admin backup postgres"):
        with pytest.raises(LockedError, match=r"'backup-postgres' is held by pid .*backup postgres") as err:
            repo.lock("backup-postgres").acquire()
        assert err.value.exit_code == 6
        with repo.lock("backup-objects"):  # another kind runs beside it
            assert len(repo.lock_holders()) == 2


# ---- commit-time checks ---------------------------------------------------------------------------
def _physical(repo: Repository, blocks: list[bytes], known: dict[str, Any] | None = None) -> Any:
    w = repo.begin_backup("pg-physical")
    pw = PackWriter(repo_id=repo.config.repo_id, backup_id=w.id, dek_id=w.dek_id, dek=w.dek, upload=w.put_pack)
    used = {}
    for b in blocks:
        bid = block_id(repo.dedup_key(), b)
        used[bid] = (known or {}).get(bid) or pw.add(bid, b)
    pw.close()
    return w, used


def _refs(used: dict[str, Any]) -> Refs:
    """The packs (and their data keys) the blocks of ``used`` live in, as a backup's refs name them."""
    return Refs.of(packs=(DataRef(loc.backup_id, loc.pack_name()) for loc in used.values()),
                   deks=(loc.dek_id for loc in used.values()))


def test_commit_refuses_when_a_referenced_pack_is_gone(tmp_path: Path) -> None:
    store = MemoryStore()
    repo = Repository.init(store, create_key_file(tmp_path / "k"))
    w1, used1 = _physical(repo, [b"a" * 1000, b"b" * 1000])
    w1.commit({}, _refs(used1))
    w2, used2 = _physical(repo, [b"a" * 1000, b"c" * 1000], known=used1)
    pack = repo.object_key(w1.id, "packs/000000.pack")
    store.delete(pack)  # a prune (or a hand) removed it while the second backup ran
    with pytest.raises(IntegrityError, match="was not committed: .*" + pack) as err:
        w2.commit({}, _refs(used2))
    assert "Run the backup again" in (err.value.hint or "")
    assert [m.id for m in repo.list_backups()] == [w1.id]
    # a new run leaves the missing pack out of its dedup, so it writes those blocks anew
    assert repo.present_blocks(used1) == {}
    w3, used3 = _physical(repo, [b"a" * 1000], known=repo.present_blocks(used1))
    w3.commit({}, _refs(used3))
    assert {loc.backup_id for loc in used3.values()} == {w3.id}


def test_commit_refuses_when_its_own_object_is_gone(tmp_path: Path) -> None:
    store = MemoryStore()
    repo = Repository.init(store, create_key_file(tmp_path / "k"))
    w = repo.begin_backup("pg-logical")
    w.put_object("a", [b"x"])
    w.put_object("b", [b"y"])
    store.delete(repo.object_key(w.id, "b"))
    with pytest.raises(IntegrityError, match="/b, which it needs, is missing"):
        w.commit({})
    assert repo.list_backups() == []


# ---- the WAL lease --------------------------------------------------------------------------------
class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def put(self, key: str, data: Any, *, if_absent: bool = False) -> int:
        self.calls += 1
        return super().put(key, data, if_absent=if_absent)

    def get(self, key: str) -> bytes:
        self.calls += 1
        return super().get(key)

    def list(self, prefix: str = "") -> Iterator[Any]:
        self.calls += 1
        return super().list(prefix)

    def stat(self, key: str) -> Any:
        self.calls += 1
        return super().stat(key)


def test_wal_lease_costs_no_round_trip_when_fresh_and_keeps_prune_out() -> None:
    store = CountingStore()
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    t1 = hold_wal_lease(store, "wal-1", "host:/pg", None, clock=clock)
    assert store.calls > 0 and t1 == clock.now()
    clock.advance(30)
    store.calls = 0
    assert hold_wal_lease(store, "wal-1", "host:/pg", t1, clock=clock) == t1
    assert store.calls == 0  # the common push: nothing but the remembered time
    with pytest.raises(LockedError, match="wal push"):
        ExclusiveLock(store, clock=clock).acquire()
    clock.advance(WAL_LEASE_TTL)  # archiving stopped: the lease expires and prune gets in
    with ExclusiveLock(store, clock=clock):
        # a push now finds the repository held: PostgreSQL retries later
        with pytest.raises(LockedError, match="locked for maintenance"):
            hold_wal_lease(store, "wal-1", "host:/pg", t1, clock=clock)


def test_wal_lease_is_not_extended_while_prune_waits() -> None:
    store = MemoryStore()
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    t1 = hold_wal_lease(store, "wal-1", "host:/pg", None, clock=clock)
    waiting = {"host": "h", "pid": 1, "user": "u", "command": "swarm admin prune", "started_at": "2026-01-01T00:00:00Z",
               "heartbeat_at": "2026-01-01T00:02:00Z", "token": "t", "mode": "exclusive", "state": "waiting"}
    store.put("locks/repository/exclusive.json", json.dumps(waiting).encode())
    clock.advance(WAL_LEASE_TTL * 0.3)  # due for a refresh, still usable: kept, not extended
    assert hold_wal_lease(store, "wal-1", "host:/pg", t1, clock=clock) == t1
    clock.advance(WAL_LEASE_TTL * 0.3)  # past its usable part: the push stops
    waiting["heartbeat_at"] = (clock.now() - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    store.put("locks/repository/exclusive.json", json.dumps(waiting).encode())
    with pytest.raises(LockedError, match="swarm admin prune"):
        hold_wal_lease(store, "wal-1", "host:/pg", t1, clock=clock)


# ---- restore points, keys -------------------------------------------------------------------------
def test_restore_points_refused_unless_replace_and_damage_reported(tmp_path: Path) -> None:
    store = MemoryStore()
    repo = Repository.init(store, create_key_file(tmp_path / "k"))
    point = {"name": "before-migration", "lsn": "0/3000028", "time": "2026-01-01T00:00:00Z", "tli": 1}
    repo.put_restore_point(point)
    assert repo.get_restore_point("before-migration") == {**point, "generation": 1}
    from swarm.errors import RefusedError

    with pytest.raises(RefusedError, match=r"already exists .*0/3000028"):
        repo.put_restore_point({**point, "lsn": "0/4000000"})
    assert repo.get_restore_point("before-migration") == {**point, "generation": 1}
    repo.put_restore_point({**point, "lsn": "0/4000000"}, replace=True)
    assert repo.get_restore_point("before-migration") == {**point, "lsn": "0/4000000", "generation": 2}
    key = "restore-points/before-migration.json"
    raw = bytearray(store.get(key))
    assert b"0/4000000" not in raw  # sealed: not readable without the key
    raw[-1] ^= 1  # altered: no longer authenticates
    store.put(key, bytes(raw))
    with pytest.raises(IntegrityError, match="fails authentication"):
        repo.get_restore_point("before-migration")
    damaged: dict[str, str] = {}
    assert repo.list_restore_points(damaged) == []
    assert "before-migration" in damaged


def test_deferred_key_check_still_names_a_wrong_key(tmp_path: Path) -> None:
    store = MemoryStore()
    repo = Repository.init(store, create_key_file(tmp_path / "k"))
    repo.bind_cluster("111", segment_size=16 << 20)
    other = create_key_file(tmp_path / "other")
    before = sorted(i.key for i in store.list())
    lazy = Repository.open(store, other, check_key=False)
    with pytest.raises(KeyError_, match="wrong key"):
        lazy.put_wal("000000010000000000000001", b"x" * 100)
    fresh = MemoryStore()
    Repository.init(fresh, create_key_file(tmp_path / "k2"))
    with pytest.raises(KeyError_, match="wrong key"):  # the WAL keys are created with the first WAL
        Repository.open(fresh, other, check_key=False).put_wal("000000010000000000000001", b"x" * 100)
    assert sorted(i.key for i in store.list()) == before


def test_wal_data_key_unwrapped_once_per_process(tmp_path: Path) -> None:
    from swarm.repo.repository import _WAL_KEYS_CACHE

    store = MemoryStore()
    kek = create_key_file(tmp_path / "k")
    first = Repository.init(store, kek)
    first.bind_cluster("111", segment_size=16 << 20)
    first.put_wal("000000010000000000000009", b"x" * 100)  # creates the WAL keys
    _WAL_KEYS_CACHE.clear()  # as a new process
    calls = []
    real = kek.unwrap

    class Counting:
        key_id = kek.key_id
        description = kek.description
        wrap = kek.wrap

        def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
            calls.append(context)
            return real(wrapped, context)

    for i in range(3):  # three pushes in one process (push + push-ahead), each opening the repository
        r = Repository.open(store, Counting(), check_key=False)  # type: ignore[arg-type]
        r.put_wal(f"00000001000000000000000{i + 1}", b"x" * 100)
    assert len(calls) <= 1
