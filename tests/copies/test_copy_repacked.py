"""`repo copy` of a repacked repository: a kept backup whose refs name a pack that repack replaced
(``packs/<n>.pack`` gone, ``packs/<n>.moved`` and the generation it names present) is copied with the
map and the generation, and every kept backup verifies and restores from the copy alone."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from swarm.crypto.keys import create_key_file
from swarm.model.repack import Budget
from swarm.repo import Repository
from swarm.repo.copy import execute_copy, plan_copy
from swarm.repo.tree import open_snapshot
from swarm.services.maintenance.prune import prune
from swarm.services.state.restore import execute_restore_state, plan_restore_state
from swarm.storage.local import LocalStore
from tests.prune.conftest import PruneEnv, future, penv, policy
from tests.prune.test_prune import repo_keys, verify_kept
from tests.prune.test_repack import half_dead

__all__ = ["penv"]  # the fixture, shared with tests/prune/

KEEP_ONE = policy("[retention.state]\nkeep_last = 1\n")


def _copy(penv: PruneEnv, far: Path, kek: object) -> tuple[object, object]:
    source = penv.open()
    store = LocalStore(far, create=True)
    plan = plan_copy(source, "far", store, kek)  # type: ignore[arg-type]
    return plan, execute_copy(source, plan, store, kek)  # type: ignore[arg-type]


def _restores_from(copy: Repository, penv: PruneEnv, kept: list[str], tmp: Path) -> None:
    assert sorted(m.id for m in copy.list_backups()) == sorted(kept)
    for bid in kept:
        verify_kept(copy, bid)
        assert open_snapshot(copy, copy.load_manifest(bid)).check(read_data=True) == [], bid
        target = tmp / f"restored-{bid}"
        execute_restore_state(copy, plan_restore_state(copy, bid, target))
        got = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
        assert got == penv.snapshots[bid], bid


def test_copy_of_a_repacked_repository_restores_every_kept_backup(penv: PruneEnv, tmp_path: Path) -> None:
    a, b = half_dead(penv)
    res = prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
    assert res.removed_backups == [a] and res.repacked == [f"{a}/packs/000000.pack"]
    c_repo = penv.open()
    (penv.state / "more.bin").write_bytes(os.urandom(5_000))
    c = penv.snapshot(c_repo)  # dedups against the moved frames: names the repacked original too
    kept = [b, c]

    own = create_key_file(tmp_path / "far.key")  # the copy has a key of its own (rewrap)
    far = tmp_path / "far"
    plan, result = _copy(penv, far, own)
    assert plan.skipped == {}, plan.skipped  # type: ignore[attr-defined]
    assert sorted(result.backups) == sorted(kept), result.problems  # type: ignore[attr-defined]
    assert result.problems == {}  # type: ignore[attr-defined]
    on_copy = {k for k in repo_keys(far) if k.startswith(f"data/{a}/")}
    assert on_copy == {f"data/{a}/packs/000000.moved", f"data/{a}/packs/000000.r1.pack"}, on_copy
    # a second run has nothing left to copy
    again, _ = _copy(penv, far, own)
    assert again.backups == [] and [i.key for i in again.items if i.what == "data"] == []  # type: ignore[attr-defined]

    shutil.move(penv.repo_dir, tmp_path / "primary-gone")  # region loss: the copy alone
    _restores_from(Repository.open(LocalStore(far), own), penv, kept, tmp_path / "r")


def test_copy_made_before_the_repack_catches_up(penv: PruneEnv, tmp_path: Path) -> None:
    """The copy holds the original pack (copied before the repack): a backup made after the repack that
    dedups through the map is copied (the original on the copy serves it), the map is not needed there."""
    a, b = half_dead(penv)
    own = create_key_file(tmp_path / "far.key")
    far = tmp_path / "far"
    _copy(penv, far, own)
    prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
    (penv.state / "more.bin").write_bytes(os.urandom(5_000))
    c = penv.snapshot(penv.open())
    plan, result = _copy(penv, far, own)
    assert plan.skipped == {} and result.backups == [c], (plan.skipped, result.problems)  # type: ignore[attr-defined]
    shutil.move(penv.repo_dir, tmp_path / "primary-gone")
    copy = Repository.open(LocalStore(far), own)
    # the copy keeps a (no prune ran there); b and c restore from the original pack
    assert f"data/{a}/packs/000000.pack" in repo_keys(far)
    penv.snapshots.pop(a, None)
    for bid in (b, c):
        verify_kept(copy, bid)
        target = tmp_path / f"restored-{bid}"
        execute_restore_state(copy, plan_restore_state(copy, bid, target))
        got = {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()}
        assert got == penv.snapshots[bid], bid


def test_a_copy_gets_the_repacked_packs_feature_with_its_first_pack_map(penv: PruneEnv, tmp_path: Path) -> None:
    """A copy made before the first repack has no ``repacked-packs``; the run that writes a pack map
    there adds it first, so an older client refuses the copy too. A copy made after has it from the start."""
    from swarm.repo.format import CONFIG_KEY, REPACKED_PACKS

    def features(d: Path) -> list[str]:
        return list(json.loads((d / CONFIG_KEY).read_bytes())["features"])

    repo = penv.open()
    (penv.state / "first.bin").write_bytes(os.urandom(5_000))
    penv.snapshot(repo)
    own = create_key_file(tmp_path / "far.key")
    far = tmp_path / "far"
    _copy(penv, far, own)  # the copy exists, without the feature
    assert REPACKED_PACKS not in features(far)
    (penv.state / "first.bin").unlink()
    a, b = half_dead(penv)
    prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
    assert REPACKED_PACKS in features(penv.repo_dir)
    plan, result = _copy(penv, far, own)
    assert plan.skipped == {} and result.backups == [b], (plan.skipped, result.problems)  # type: ignore[attr-defined]
    assert f"data/{a}/packs/000000.moved" in repo_keys(far)
    assert features(far).count(REPACKED_PACKS) == 1
    copy = Repository.open(LocalStore(far), own)
    assert REPACKED_PACKS in copy.config.features and copy.config.kek_id == own.key_id
    late = tmp_path / "late"
    _copy(penv, late, own)
    assert REPACKED_PACKS in features(late)
