"""kill -9 at every step of prune: a store that dies before its N-th put or delete (and does nothing
after, like a killed process), for every N of an uninterrupted prune; then prune again, and the
repository converges to what the uninterrupted prune leaves, with every kept backup readable."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from swarm.services.maintenance.prune import prune
from swarm.services.state.restore import execute_restore_state, plan_restore_state
from swarm.storage.local import LocalStore
from tests.prune.conftest import DyingStore, Killed, PruneEnv, fake_backup, fake_physical, future, policy, seg
from tests.prune.test_prune import verify_kept

POLICY = policy('[retention.state]\nkeep_last = 2\n[retention.pg-logical]\nkeep_last = 1\n'
                '[retention.pg-physical]\nkeep_last = 1\n[retention.wal]\nwindow = "1d"\n')


class DeadAfter(DyingStore):
    """Dies at the ``die_at``-th put or delete and stays dead: every later one raises too."""

    def _tick(self, key: str) -> None:
        if self.die_at and self.ops >= self.die_at:
            raise Killed(key)
        super()._tick(key)


def keys(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*")
            if p.is_file() and not p.relative_to(d).as_posix().startswith("locks/")}


@pytest.fixture
def populated(penv: PruneEnv) -> tuple[PruneEnv, list[str]]:
    repo = penv.open()
    ids = []
    for i in range(5):
        penv.change(i)
        ids.append(penv.snapshot(repo))
    repo.set_tags(ids[0], ["legal-hold"])
    repo.put_verification(ids[4], {"ok": False})
    logical = [fake_backup(repo, "pg-logical", payload=os.urandom(3000)) for _ in range(2)]
    for n in range(1, 13):
        repo.put_wal(seg(1, n), os.urandom(32))
    physical = [fake_physical(repo, 1, 3, 4), fake_physical(repo, 1, 8, 9)]
    w = repo.begin_backup("pg-logical")  # an interrupted backup
    w.put_object("toc.dat", [b"t" * 500])
    kept = [ids[0], ids[2], ids[3], logical[1], physical[1]]  # ids[4] failed verify: not counted
    return penv, kept


def check(env: PruneEnv, kept: list[str], tmp: Path) -> None:
    repo = env.open()
    assert sorted(m.id for m in repo.list_backups()) == sorted(kept)
    for m in repo.list_backups():
        verify_kept(repo, m.id)
        if m.kind == "state":
            target = tmp / f"restore-{m.id}"
            execute_restore_state(repo, plan_restore_state(repo, m.id, target))
            got = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
            assert got == env.snapshots[m.id]


def test_prune_killed_at_every_step_converges(populated: tuple[PruneEnv, list[str]], tmp_path: Path) -> None:
    penv, kept = populated
    ref = penv.copy(tmp_path / "reference")
    counting = DyingStore(LocalStore(ref.repo_dir))
    res = prune(ref.open(store=counting, clock=future(10)), POLICY)
    steps = counting.ops
    assert len(res.removed_backups) == 4 and steps > 30, steps
    check(ref, kept, tmp_path / "ref-restores")
    final = keys(ref.repo_dir)
    for n in range(1, steps + 1):
        env = penv.copy(tmp_path / f"kill-{n}")
        with pytest.raises(Killed):
            prune(env.open(store=DeadAfter(LocalStore(env.repo_dir), n), clock=future(10)), POLICY)
        # the killed process is gone: its lock record goes stale (dead pid), as the next run would find
        (env.repo_dir / "locks" / "repository" / "exclusive.json").unlink(missing_ok=True)
        prune(env.open(clock=future(10)), POLICY)
        assert keys(env.repo_dir) == final, f"killed at step {n}"
        if n in (1, steps // 3, steps // 2, steps - 1, steps):
            check(env, kept, tmp_path / f"restores-{n}")
        else:
            repo = env.open()
            for m in repo.list_backups():
                assert repo.missing_refs(m) == [], (n, m.id)
