"""`wal push` (as PostgreSQL runs it) under the repository's shared lock: its WAL lease keeps an
exclusive taker (prune) out, and while an exclusive holder has the repository the push fails
with exit 6 naming it, and PostgreSQL archives the segment once it is released."""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.errors import LockedError
from tests.physical.conftest import PhysEnv, make_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(services_dir: Path) -> Iterator[PhysEnv]:
    e = make_env(services_dir / "phys-wal-lock")
    e.cluster.psql("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
    yield e
    e.cluster.destroy()


def _switch(env: PhysEnv) -> str:
    env.cluster.psql("INSERT INTO t SELECT g FROM generate_series(1, 100) g")
    seg = env.cluster.psql("SELECT pg_walfile_name(pg_current_wal_insert_lsn())").strip()
    env.cluster.psql("SELECT pg_switch_wal()")
    return seg


def _wait(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_wal_push_holds_a_lease_that_keeps_prune_out_and_waits_for_it(env: PhysEnv) -> None:
    repo = env.repo()
    seg = _switch(env)
    _wait(lambda: repo.has_wal(seg), 30, f"{seg} was not archived")
    spool = env.cluster.datadir.parent / f"{env.cluster.datadir.name}.swarm-spool" / "push"
    assert (spool / "lease.json").exists()  # the refresh time is remembered beside the data directory
    holders = repo.lock_holders()
    assert [h.mode for h in holders] == ["lease"] and holders[0].command == "wal push"
    with pytest.raises(LockedError, match="wal push") as err:
        repo.exclusive_lock().acquire()
    assert err.value.exit_code == 6

    # the lease gone (archiving stopped long enough): prune gets the repository, and a push now
    # fails with exit 6 naming it; PostgreSQL keeps the segment and retries
    for info in list(repo._store.list("locks/repository/shared-")):
        repo._store.delete(info.key)
    (spool / "lease.json").unlink()
    with repo.exclusive_lock(command="swarm admin prune"):
        seg2 = _switch(env)
        _wait((spool / "last-failure.txt").exists, 30, "the push did not fail")
        assert "locked for maintenance" in (spool / "last-failure.txt").read_text()
        assert "swarm admin prune" in (spool / "last-failure.txt").read_text()
        assert not repo.has_wal(seg2), (seg, seg2)
    env.cluster.psql("SELECT pg_switch_wal()")  # wakes the archiver, which retries
    _wait(lambda: repo.has_wal(seg2), 90, f"{seg2} was not archived after the exclusive lock was released")


def test_backup_after_a_pack_was_deleted_writes_its_blocks_again(env: PhysEnv) -> None:
    """A pack of the previous backup is gone (a prune that broke an expired lock, a hand deletion):
    the next backup must not point at it (old code deduplicated against it and committed a
    manifest whose blocks were missing); it stores those blocks anew and verifies."""
    import json

    from swarm.services.repository.verify import verify_backup

    first = json.loads(env.cli("admin", "backup", "postgres", "--physical", "--db-url", env.url, "--json").stdout)
    repo = env.repo()
    m1 = repo.list_backups()[-1]
    packs = [o.name for o in m1.objects if o.name.startswith("packs/")]
    assert packs, first
    repo._store.delete(repo.object_key(m1.id, packs[0]))
    env.cli("admin", "backup", "postgres", "--physical", "--db-url", env.url, "--json")
    m2 = env.repo().list_backups()[-1]
    assert m2.id != m1.id and m2.source["new_blocks"] > 0
    v = verify_backup(env.repo(), m2.id)
    assert v.ok, v.problems


def test_restore_point_refused_unless_replace_and_damaged_record(env: PhysEnv) -> None:
    """Names are not reused silently; a damaged record is reported, listed as damaged, and
    --replace overwrites it (old code could not: loading the damaged record failed first)."""
    import json

    env.cli("admin", "restore-point", "lock-test", "--db-url", env.url)
    r = env.cli("admin", "restore-point", "lock-test", "--db-url", env.url, check=False)
    assert r.returncode == 8 and "already exists" in r.stderr + r.stdout
    repo = env.repo()
    key = "restore-points/lock-test.json"
    raw = bytearray(repo._store.get(key))
    raw[-3] ^= 0x01  # sealed: one flipped bit and it no longer authenticates
    repo._store.put(key, bytes(raw))
    r = env.cli("admin", "restore-point", "lock-test", "--db-url", env.url, check=False)
    assert r.returncode == 5 and "fails authentication" in r.stderr + r.stdout
    r = env.cli("admin", "restore-points", "--json", check=False)
    assert r.returncode == 5  # a damaged record makes the listing fail
    listed = json.loads(r.stdout)["restore_points"]
    assert [p.get("damaged") for p in listed if p["name"] == "lock-test"] == [True]
    env.cli("admin", "restore-point", "lock-test", "--replace", "--db-url", env.url)
    point = env.repo().get_restore_point("lock-test")
    assert point is not None and point["lsn"] != "0/1"


def test_wal_stream_holds_the_shared_lock_while_it_runs(env: PhysEnv, tmp_path: Path) -> None:
    import threading

    from swarm.services.wal.stream import StreamResult, stream_wal

    out: list[StreamResult] = []
    th = threading.Thread(target=lambda: out.append(stream_wal(env.repo(), env.url, tmp_path / "spool",
                                                               slot="swarm_lock_test", duration=4, interval=0.5)))
    th.start()
    try:
        repo = env.repo()
        _wait(lambda: any(h.command == "wal stream" for h in repo.lock_holders()), 20, "no shared holder")
        with pytest.raises(LockedError, match="wal stream"):
            repo.exclusive_lock().acquire()
    finally:
        th.join(60)
    assert out and not out[0].errors, out
    assert not [h for h in env.repo().lock_holders() if h.command == "wal stream"]  # released at the end
    env.cluster.psql("SELECT pg_drop_replication_slot('swarm_lock_test')")
