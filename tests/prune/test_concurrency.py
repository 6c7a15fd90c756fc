"""Physical and state backups and prunes at the same time, with a writer frozen past its lock's
expiry: no committed backup ever misses anything, the frozen writer commits nothing, and every
kept backup verifies and restores afterwards."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarm.errors import IntegrityError, LockedError
from swarm.model.refs import Refs
from swarm.services.maintenance.prune import prune
from swarm.services.postgres.physical_backup import backup_postgres_physical
from swarm.services.repository.verify import verify_backup
from swarm.services.state.backup import StateScope, backup_state
from swarm.services.state.restore import execute_restore_state, plan_restore_state
from tests.physical.conftest import PhysEnv, make_env
from tests.prune.conftest import policy
from tests.prune.test_prune import verify_kept

ROUNDS = 20
POLICY = policy('[retention]\nsafety_age = "0h"\n[retention.state]\nkeep_last = 2\n'
                '[retention.pg-physical]\nkeep_last = 2\n[retention.wal]\nwindow = "0h"\n')


@pytest.fixture(scope="module")
def env(services_dir: Path) -> Iterator[PhysEnv]:
    e = make_env(services_dir / "prune-concurrency")
    e.cluster.psql("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 20000) g")
    yield e
    e.cluster.destroy()


def test_backups_and_prunes_at_once(env: PhysEnv, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    snapshots: dict[str, dict[str, bytes]] = {}
    errors: list[BaseException] = []
    outcome: dict[str, Any] = {"physical": 0, "state": 0, "prunes": 0, "prune_locked": 0, "backup_locked": 0,
                               "removed": 0, "frozen": None}
    writers_done = threading.Event()
    archiving = threading.Event()  # the first WAL push took the cluster's lease before prunes begin

    def guarded(fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
        return run

    def physical() -> None:
        for i in range(ROUNDS):
            env.cluster.psql(f"UPDATE t SET v = md5(v || '{i}') WHERE id % 50 = {i}")
            try:
                backup_postgres_physical(env.repo(), env.url, wal_wait_s=60)
                outcome["physical"] += 1
                archiving.set()
            except LockedError:
                outcome["backup_locked"] += 1
            time.sleep(0.3)

    def states() -> None:
        for i in range(ROUNDS):
            (state / f"run-{i:03d}.bin").write_bytes(os.urandom(30_000))
            if i >= 3:
                (state / f"run-{i - 3:03d}.bin").unlink()
            files = {p.name: p.read_bytes() for p in state.iterdir()}
            try:
                m = backup_state(env.repo(), StateScope(state), recent_s=0).manifest
                snapshots[m.id] = files
                outcome["state"] += 1
            except LockedError:
                outcome["backup_locked"] += 1
            time.sleep(0.3)

    def prunes() -> None:
        archiving.wait(120)
        n = 0
        while n < ROUNDS or not writers_done.is_set():
            n += 1
            try:
                res = prune(env.repo(), POLICY, wait=5, poll=0.1)
                outcome["prunes"] += 1
                outcome["removed"] += len(res.removed_backups)
            except LockedError:
                outcome["prune_locked"] += 1
            time.sleep(0.5)

    def frozen() -> None:
        """A state writer that freezes (no heartbeat) past its lock's expiry while prunes run, pointing
        at the packs of the oldest snapshot then listed, which the policy removes meanwhile."""
        archiving.wait(120)
        time.sleep(2)
        repo = env.repo()
        victim = next(m for m in repo.list_backups() if m.kind == "state")
        deadline = time.monotonic() + 120
        while True:  # like any writer, it cannot start while a prune holds the exclusive lock: try again
            try:
                lock = repo.lock("backup-frozen", command="frozen writer", stale_after=1.0,
                                 refresh_every=0.2).acquire()
                break
            except LockedError:
                assert time.monotonic() < deadline, "the frozen writer never got its lock"
                outcome["backup_locked"] += 1
                time.sleep(0.2)
        w = repo.begin_backup("state", lock=lock)
        w.put_object("tree.json", [b"{}"])
        assert lock.named is not None
        lock.shared._stop_heartbeat()
        lock.named._stop_heartbeat()
        time.sleep(6)  # frozen: prunes break its stale lock and may sweep its data (safety age 0)
        try:
            assert victim.refs is not None
            w.commit({"state_dir": str(state), "complete": True}, Refs.of(packs=victim.refs.packs,
                                                                         deks=victim.refs.deks))
            outcome["frozen"] = "committed"
        except (LockedError, IntegrityError) as exc:
            outcome["frozen"] = type(exc).__name__
        finally:
            lock.release()

    writers = [threading.Thread(target=guarded(physical)), threading.Thread(target=guarded(states)),
               threading.Thread(target=guarded(frozen))]
    pruner = threading.Thread(target=guarded(prunes))
    for t in [*writers, pruner]:
        t.start()
    for t in writers:
        t.join(timeout=600)
    writers_done.set()
    pruner.join(timeout=600)
    assert not errors, errors
    assert outcome["frozen"] in ("LockedError", "IntegrityError"), outcome
    assert outcome["prunes"] >= ROUNDS // 2 and outcome["removed"] > 0, outcome
    assert outcome["physical"] >= ROUNDS // 2 and outcome["state"] >= ROUNDS // 2, outcome

    prune(env.repo(), POLICY, wait=30)
    repo = env.repo()
    kept = repo.list_backups()
    assert sorted(m.kind for m in kept) == ["pg-physical", "pg-physical", "state", "state"], outcome
    for m in kept:
        assert repo.missing_refs(m) == [], m.id
        if m.kind == "state":
            verify_kept(repo, m.id)
            target = tmp_path / f"restore-{m.id}"
            execute_restore_state(repo, plan_restore_state(repo, m.id, target))
            assert {p.name: p.read_bytes() for p in target.iterdir()} == snapshots[m.id]
        else:
            res = verify_backup(repo, m.id)
            assert res.ok, res.problems
