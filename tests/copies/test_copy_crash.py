"""``repo copy`` at the repository level, on in-memory stores: the copy is the same repository
(same id, same bytes, rewrapped key files only), incremental, checked, and resumable after a
kill -9 before any of its puts; it never lists a backup it cannot restore."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from swarm.crypto.keys import LocalKeyFile, create_key_file
from swarm.errors import CopyMismatch, IntegrityError, KeyMismatch
from swarm.model.refs import DataRef, Refs, WalRange
from swarm.repo import Repository
from swarm.repo.copy import copy_lag, execute_copy, plan_copy
from swarm.repo.format import BACKUPS_PREFIX, CONFIG_KEY, KEYS_PREFIX, LOCKS_PREFIX, data_key
from swarm.storage.memory import MemoryStore
from tests.stores import DyingStore, Killed

SEGS = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"]


def make_source(kek: LocalKeyFile) -> tuple[Repository, list[str]]:
    """A repository holding two backups (the second reading the first's object and needing WAL), WAL
    and a history file, a restore point, tags, a verify record and a tombstone."""
    repo = Repository.init(MemoryStore(), kek)
    w1 = repo.begin_backup("pg-logical")
    w1.put_object("pgdump/toc.dat", [os.urandom(5000)])
    w1.put_object("tables/0000-p000.copy", [b"row\n" * 3000])
    b1 = w1.commit({"engine": "postgres"})
    repo.bind_cluster("7311", segment_size=16 << 20)
    for seg in SEGS:
        repo.put_wal(seg, os.urandom(2000))
    repo.put_wal("00000002.history", b"1\t0/3000000\tno recovery target specified\n")
    w2 = repo.begin_backup("pg-logical")
    w2.put_object("pgdump/toc.dat", [b"second"])
    b2 = w2.commit({"engine": "postgres"}, Refs.of(objects=[DataRef(b1.id, "pgdump/toc.dat")], deks=[b1.dek_id],
                                                   wal=[WalRange(1, SEGS[0], SEGS[1])]))
    w3 = repo.begin_backup("pg-logical")
    w3.put_object("x", [b"gone"])
    b3 = w3.commit({"engine": "postgres"})
    repo.delete_backup(b3.id, reason="test")
    repo.delete_data(b3.id, "x")  # what prune does next
    repo.delete_dek(b3.dek_id)
    repo.put_restore_point({"name": "before-upgrade", "lsn": "0/3000028", "time": "2026-11-27T10:00:00Z", "tli": 1,
                            "switch_lsn": "0/3000100"})
    repo.set_tags(b1.id, ["keep"])
    repo.put_verification(b2.id, {"ok": True, "verified_at": "2026-11-27T10:00:00Z", "problems": []})
    assert {m.id for m in repo.list_backups()} == {b1.id, b2.id}
    return repo, [m.id for m in repo.list_backups()]


def copy(source: Repository, store: object, kek: LocalKeyFile):  # type: ignore[no-untyped-def]
    plan = plan_copy(source, "offsite", store, kek)  # type: ignore[arg-type]
    return execute_copy(source, plan, store, kek, stale_after=30, refresh_every=5)  # type: ignore[arg-type]


def assert_restorable(store: MemoryStore, kek: LocalKeyFile, source: Repository) -> list[str]:
    """Every backup the copy lists reads back whole, with every reference present; returns their ids."""
    if CONFIG_KEY not in store.objects:
        return []
    c = Repository.open(store, kek)
    listed = c.list_backups()
    for m in listed:
        for e in m.objects:
            c.check_object(m, e)
        assert c.missing_refs(m) == []
        for w in (m.refs.wal if m.refs else ()):
            for seg in SEGS[:2] if w.last == SEGS[1] else []:
                assert c.get_wal(seg) == source.get_wal(seg)
    return [m.id for m in listed]


def contents(store: MemoryStore, *, with_keys: bool) -> dict[str, bytes]:
    return {k: v for k, (v, _t) in store.objects.items() if not k.startswith(LOCKS_PREFIX)
            and (with_keys or (not k.startswith(KEYS_PREFIX) and k != CONFIG_KEY))}


@pytest.fixture
def keys(tmp_path: Path) -> tuple[LocalKeyFile, LocalKeyFile]:
    return create_key_file(tmp_path / "primary.key"), create_key_file(tmp_path / "offsite.key")


def test_copy_is_the_same_repository_with_its_own_key(keys: tuple[LocalKeyFile, LocalKeyFile]) -> None:
    kek, own = keys
    source, ids = make_source(kek)
    target = MemoryStore()
    res = copy(source, target, own)
    assert res.problems == {} and res.backups == ids
    c = Repository.open(target, own)
    assert c.config.repo_id == source.config.repo_id and c.config.kek_id == own.key_id
    with pytest.raises(KeyMismatch):
        Repository.open(target, kek)  # rewrapped: the primary's key does not open the copy
    # every object's bytes identical, except the rewrapped key files
    src = contents(source._store, with_keys=False)  # type: ignore[arg-type]
    assert contents(target, with_keys=False) == src
    assert sorted(k for k in target.objects if k.startswith(KEYS_PREFIX)) == \
        sorted(k for k in source._store.objects if k.startswith(KEYS_PREFIX))  # type: ignore[attr-defined]
    assert assert_restorable(target, own, source) == ids
    assert [m.id for m in c.list_backups()] == ids
    assert c.get_restore_point("before-upgrade") == source.get_restore_point("before-upgrade")
    assert c.tags() == source.tags() and c.verifications() == source.verifications()
    assert set(c.tombstones()) == set(source.tombstones())
    assert c.get_wal("00000002.history") == source.get_wal("00000002.history")
    lag = copy_lag(source, "offsite", target)
    assert (lag.lag_seconds, lag.missing_wal, lag.missing_backups, lag.level) == (0.0, 0, [], "OK")
    # incremental: nothing to do, then only what is new
    again = plan_copy(source, "offsite", target, own)
    assert again.items == [] and again.present == ids
    source.put_wal("000000010000000000000004", b"more")
    w = source.begin_backup("pg-logical")
    w.put_object("pgdump/toc.dat", [b"third"])
    b4 = w.commit({"engine": "postgres"})
    lag = copy_lag(source, "offsite", target)
    assert lag.missing_wal == 1 and lag.missing_backups == [b4.id]
    more = plan_copy(source, "offsite", target, own)
    assert sorted(i.what for i in more.items) == ["data", "dek", "manifest", "wal"]
    assert execute_copy(source, more, target, own).backups == [b4.id]


def test_kill_at_every_put_then_resume_converges(keys: tuple[LocalKeyFile, LocalKeyFile]) -> None:
    kek, own = keys
    source, ids = make_source(kek)
    clean = MemoryStore()
    counting = DyingStore(clean, die_at=0)
    copy(source, counting, own)
    total = counting.puts
    assert total > 15
    for die_at in range(1, total + 1):
        inner = MemoryStore()
        with pytest.raises(Killed):
            copy(source, DyingStore(inner, die_at), own)
        listed = assert_restorable(inner, own, source)  # never a backup it cannot restore
        assert set(listed) <= set(ids)
        res = copy(source, inner, own)
        assert res.problems == {}, (die_at, res.problems)
        assert assert_restorable(inner, own, source) == ids
        assert contents(inner, with_keys=False) == contents(clean, with_keys=False), die_at
        assert sorted(k for k in inner.objects if k.startswith(KEYS_PREFIX)) == \
            sorted(k for k in clean.objects if k.startswith(KEYS_PREFIX))
        assert plan_copy(source, "offsite", inner, own).items == [], die_at


def test_a_damaged_source_object_is_not_copied_and_its_backup_not_listed(
        keys: tuple[LocalKeyFile, LocalKeyFile]) -> None:
    kek, own = keys
    source, ids = make_source(kek)
    b1 = next(m.id for m in source.list_backups() if len(m.objects) == 2)
    b2 = next(i for i in ids if i != b1)
    key = data_key(b1, "tables/0000-p000.copy")
    raw, t = source._store.objects[key]  # type: ignore[attr-defined]
    source._store.objects[key] = (raw[:-1] + bytes([raw[-1] ^ 1]), t)  # type: ignore[attr-defined]
    target = MemoryStore()
    res = copy(source, target, own)
    assert b1 in res.problems and "does not match" in res.problems[b1]
    assert key not in target.objects
    # the second backup reads the first one's toc.dat, which is intact: it is complete on the copy
    assert assert_restorable(target, own, source) == [b2]


def test_a_place_holding_another_repository_is_refused(keys: tuple[LocalKeyFile, LocalKeyFile]) -> None:
    kek, own = keys
    source, _ids = make_source(kek)
    other = Repository.init(MemoryStore(), own)
    with pytest.raises(CopyMismatch):
        plan_copy(source, "offsite", other._store, own)
    with pytest.raises(IntegrityError):
        bad = MemoryStore()
        bad.put(CONFIG_KEY, b"{")
        plan_copy(source, "offsite", bad, own)


class OverlapStore(DyingStore):
    """Counts how many puts of data objects and WAL run at once, and the order of every put."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__(inner, die_at=0)
        import threading

        self.mutex = threading.Lock()
        self.inflight = 0
        self.most = 0
        self.order: list[str] = []

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        import time

        bulk = key.startswith(("data/", "wal/"))
        with self.mutex:
            self.order.append(key)
            if bulk:
                self.inflight += 1
                self.most = max(self.most, self.inflight)
        try:
            if bulk:
                time.sleep(0.05)  # a slow link: the next objects go out meanwhile
            return super().put(key, data, if_absent=if_absent)
        finally:
            if bulk:
                with self.mutex:
                    self.inflight -= 1


def test_data_and_wal_go_out_several_at_a_time_and_manifests_after_all_of_it(
        keys: tuple[LocalKeyFile, LocalKeyFile]) -> None:
    kek, own = keys
    source, ids = make_source(kek)
    target = OverlapStore(MemoryStore())
    res = copy(source, target, own)
    assert res.problems == {} and res.backups == ids
    assert target.most >= 2  # not one at a time
    last_bulk = max(i for i, k in enumerate(target.order) if k.startswith(("data/", "wal/")))
    first_manifest = min(i for i, k in enumerate(target.order) if k.startswith(BACKUPS_PREFIX))
    assert last_bulk < first_manifest  # every manifest after all the data and WAL
    assert assert_restorable(target.inner, own, source) == ids
