"""Repack (``prune --max-unused``): a pack of a removed backup that kept backups still read is
rewritten with its live frames only; no manifest changes, every kept backup stays readable, the next
backup deduplicates against the moved blocks, a kill -9 at every step converges."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from swarm.model.repack import Budget
from swarm.repo.tree import open_snapshot
from swarm.services.maintenance.prune import prune
from swarm.services.state.restore import execute_restore_state, plan_restore_state
from swarm.storage.local import LocalStore
from tests.prune.conftest import DyingStore, Killed, PruneEnv, future, policy
from tests.prune.test_prune import check_kept, cli_env, repo_keys, run, verify_kept
from tests.prune.test_prune_crash import DeadAfter

KEEP_ONE = policy("[retention.state]\nkeep_last = 1\n")


def half_dead(penv: PruneEnv) -> tuple[str, str]:
    """Snapshot A holds keep.bin and gone.bin (one data pack); B drops gone.bin and adds a small file:
    once A is removed, A's data pack is about half dead and B still reads keep.bin from it."""
    repo = penv.open()
    (penv.state / "keep.bin").write_bytes(os.urandom(300_000))
    (penv.state / "gone.bin").write_bytes(os.urandom(300_000))
    a = penv.snapshot(repo)
    (penv.state / "gone.bin").unlink()
    (penv.state / "new.bin").write_bytes(os.urandom(5_000))
    b = penv.snapshot(repo)
    return a, b


def test_repack_rewrites_a_half_dead_pack_and_keeps_every_block_readable(penv: PruneEnv, tmp_path: Path) -> None:
    a, b = half_dead(penv)
    before = repo_keys(penv.repo_dir)
    dry = prune(penv.open(clock=future(1)), KEEP_ONE, dry_run=True, max_unused=Budget(percent=10))
    rp = dry.to_dict()["repack"]
    assert rp["packs"] == [f"{a}/packs/000000.pack"], rp
    assert rp["bytes_freed"] > 290_000 and 290_000 < rp["bytes_rewritten"] < 320_000, rp
    assert repo_keys(penv.repo_dir) == before  # a dry run changes nothing

    res = prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=10))
    assert res.removed_backups == [a]
    assert res.repacked == [f"{a}/packs/000000.pack"]
    assert res.bytes_rewritten == rp["bytes_rewritten"]
    left = {k for k in repo_keys(penv.repo_dir) if k.startswith(f"data/{a}/")}
    assert left == {f"data/{a}/packs/000000.moved", f"data/{a}/packs/000000.r1.pack"}
    check_kept(penv, [b], tmp_path / "r1")
    repo = penv.open()
    assert open_snapshot(repo, repo.load_manifest(b)).check(read_data=True) == []  # what verify / check run

    # the next snapshot dedups against keep.bin's moved blocks, commits and restores
    repo = penv.open()
    (penv.state / "more.bin").write_bytes(os.urandom(5_000))
    c = penv.snapshot(repo)
    assert repo.load_manifest(c).source["new_bytes"] < 20_000
    check_kept(penv, [b, c], tmp_path / "r2")
    # nothing more to repack: a second prune changes nothing
    again = prune(penv.open(clock=future(1)), policy("[retention.state]\nkeep_last = 2\n"),
                  max_unused=Budget(percent=0))
    assert again.repacked == [] and again.removed_files == 0


def test_budget_leaves_packs_within_it_alone(penv: PruneEnv) -> None:
    a, _b = half_dead(penv)
    res = prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=60))
    assert res.repacked == [] and res.to_dict()["repack"]["unused_after"] > 290_000
    assert f"data/{a}/packs/000000.pack" in repo_keys(penv.repo_dir)
    res = prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(bytes=400_000))
    assert res.repacked == []
    res = prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(bytes=0))
    assert res.repacked == [f"{a}/packs/000000.pack"]


def test_repack_twice_composes_the_maps(penv: PruneEnv, tmp_path: Path) -> None:
    """A repacked pack that loses more blocks is repacked again (generation 2, map from the original offsets)."""
    repo = penv.open()
    files = {f"f{i}.bin": os.urandom(100_000) for i in range(4)}
    for name, data in files.items():
        (penv.state / name).write_bytes(data)
    a = penv.snapshot(repo)
    (penv.state / "f0.bin").unlink()
    b = penv.snapshot(repo)
    prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
    (penv.state / "f1.bin").unlink()
    c = penv.snapshot(penv.open())
    prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
    left = {k for k in repo_keys(penv.repo_dir) if k.startswith(f"data/{a}/")}
    assert left == {f"data/{a}/packs/000000.moved", f"data/{a}/packs/000000.r2.pack"}, left
    assert b not in {m.id for m in penv.open().list_backups()}
    check_kept(penv, [c], tmp_path / "r")


def test_repack_killed_at_every_step_converges(penv: PruneEnv, tmp_path: Path) -> None:
    half_dead(penv)
    ref = penv.copy(tmp_path / "reference")
    counting = DyingStore(LocalStore(ref.repo_dir))
    res = prune(ref.open(store=counting, clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
    assert res.repacked
    steps = counting.ops
    final = repo_keys(ref.repo_dir)
    kept = [m.id for m in ref.open().list_backups()]
    for n in range(1, steps + 1):
        env = penv.copy(tmp_path / f"kill-{n}")
        with pytest.raises(Killed):
            prune(env.open(store=DeadAfter(LocalStore(env.repo_dir), n), clock=future(1)), KEEP_ONE,
                  max_unused=Budget(percent=0))
        (env.repo_dir / "locks" / "repository" / "exclusive.json").unlink(missing_ok=True)
        # between the kill and the re-run every kept backup is readable (old and new locations both valid)
        repo = env.open()
        for bid in kept:
            verify_kept(repo, bid)
            target = tmp_path / f"mid-{n}-{bid}"
            execute_restore_state(repo, plan_restore_state(repo, bid, target))
            assert {p.relative_to(target).as_posix(): p.read_bytes() for p in target.rglob("*") if p.is_file()} \
                == env.snapshots[bid]
        prune(env.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
        assert repo_keys(env.repo_dir) == final, f"killed at step {n}"
        check_kept(env, kept, tmp_path / f"after-{n}")


def test_cli_max_unused(penv: PruneEnv) -> None:
    half_dead(penv)
    env = cli_env(penv, "[retention.state]\nkeep_last = 1\n")
    r = run(env, "admin", "prune", "--max-unused", "ten percent")
    assert r.returncode == 3 and "--max-unused" in r.stderr, r.stderr
    r = run(env, "admin", "prune", "--dry-run", "--max-unused", "0%")
    assert r.returncode == 0, r.stderr
    assert "would rewrite 1 pack(s)" in r.stdout, r.stdout
    r = run(env, "admin", "prune", "--json", "--max-unused", "50MB")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["repacked"] == [] and d["repack"]["max_unused"] == "50000000 bytes"
    assert d["repack"]["unused_before"] > 290_000


def _frozen_writer(penv: PruneEnv, parent: str) -> tuple[Any, Any]:
    """A state snapshot started before the prune (deduplicating against ``parent``), frozen before its commit."""
    from swarm.repo.tree import Meta, TreeWriter
    from swarm.services.state.backup import state_chunker

    repo = penv.open()
    known = repo.present_blocks(open_snapshot(repo, repo.load_manifest(parent)).referenced_blocks())
    w = repo.begin_backup("state")
    ch = state_chunker(repo)
    tw = TreeWriter(repo, w, chunker=ch, known=known)
    for name in ("keep.bin", "gone.bin"):  # gone.bin exists only in the parent's (soon dead) frames
        tw.add_file(name, Meta(0o600, 0), ch.chunks([(penv.root / "saved" / name).read_bytes()]))
    return w, tw.finish()


def test_a_writer_frozen_across_a_repack_does_not_commit_dropped_frames(penv: PruneEnv) -> None:
    """Regression: the commit check saw the repacked original as present (through its map) although the
    frames the writer deduplicated against were dropped; it committed a backup that could not be read."""
    from swarm.errors import IntegrityError
    from swarm.model.refs import DataRef, Refs

    (penv.root / "saved").mkdir()
    repo = penv.open()
    (penv.state / "keep.bin").write_bytes(os.urandom(300_000))
    (penv.state / "gone.bin").write_bytes(os.urandom(300_000))
    for name in ("keep.bin", "gone.bin"):
        (penv.root / "saved" / name).write_bytes((penv.state / name).read_bytes())
    a = penv.snapshot(repo)
    frozen, root = _frozen_writer(penv, a)
    (penv.state / "gone.bin").unlink()
    penv.snapshot(repo)
    a_blocks = open_snapshot(repo, repo.load_manifest(a)).referenced_blocks()
    res = prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
    assert res.repacked == [f"{a}/packs/000000.pack"]
    refs = Refs.of(packs=[DataRef(p.backup_id, p.name) for p in root.packs], deks={p.dek_id for p in root.packs})
    with pytest.raises(IntegrityError, match="not committed") as err:
        frozen.commit({"complete": True}, refs)
    # (the writer's own objects were swept too: the prune's clock is a day ahead, past the safety age)
    assert f"data/{a}/packs/000000.pack" in err.value.details["missing"], err.value.details
    # a new writer's dedup leaves out the dropped frames and keeps the moved ones
    repo = penv.open()
    present = repo.present_blocks(a_blocks)
    m = repo.pack_map(a, 0)
    assert m is not None
    in_pack = {b: loc for b, loc in a_blocks.items() if (loc.backup_id, loc.pack) == (a, 0)}
    assert {b for b, loc in in_pack.items() if loc.offset in m.frames} == {b for b in present if b in in_pack}
    assert 0 < len([b for b in present if b in in_pack]) < len(in_pack)


def test_the_first_repack_adds_the_repacked_packs_feature(penv: PruneEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older client (one that does not read through pack maps) refuses a repacked repository at open
    (exit 5, "upgrade swarm") instead of failing on the reads of the backups that name a replaced pack."""
    from swarm.errors import FormatUnsupported
    from swarm.repo import repository as repository_module
    from swarm.repo.format import CONFIG_KEY, REPACKED_PACKS, SUPPORTED_FEATURES
    from swarm.repo.upgrade import upgrade_repository

    def features() -> list[str]:
        return list(json.loads((penv.repo_dir / CONFIG_KEY).read_bytes())["features"])

    half_dead(penv)
    assert REPACKED_PACKS not in features()  # not at creation
    prune(penv.open(clock=future(1)), KEEP_ONE, dry_run=True, max_unused=Budget(percent=0))
    prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=100))  # removes, repacks nothing
    assert REPACKED_PACKS not in features()
    old_client = SUPPORTED_FEATURES - {REPACKED_PACKS}
    with monkeypatch.context() as m:
        m.setattr(repository_module, "SUPPORTED_FEATURES", old_client)
        penv.open()  # an older swarm still opens it: nothing is repacked yet

    res = prune(penv.open(clock=future(1)), KEEP_ONE, max_unused=Budget(percent=0))
    assert res.repacked
    assert features().count(REPACKED_PACKS) == 1
    assert REPACKED_PACKS in penv.open().config.features
    with monkeypatch.context() as m:
        m.setattr(repository_module, "SUPPORTED_FEATURES", old_client)
        with pytest.raises(FormatUnsupported, match=REPACKED_PACKS):
            penv.open()
    # `admin repo upgrade` leaves a current repository (and its features) alone
    from swarm.crypto.keys import load_key_file

    assert not upgrade_repository(LocalStore(penv.repo_dir), load_key_file(penv.key)).sealing
    assert REPACKED_PACKS in features()
