"""``swarm admin prune``: what it removes and keeps, dry run, WAL, damaged manifests, leftovers of
interrupted and running backups; the CLI's exit codes and output; ``backups tag``/``list``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from swarm.repo import Repository
from swarm.services.maintenance.prune import plan_prune, prune
from swarm.services.state.restore import execute_restore_state, plan_restore_state
from tests.prune.conftest import PruneEnv, fake_backup, fake_physical, future, policy, seg

SWARM = [sys.executable, "-m", "swarm.cli.main"]


def repo_keys(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*")
            if p.is_file() and not p.relative_to(d).as_posix().startswith("locks/")}


def build(penv: PruneEnv, n: int = 5) -> tuple[list[str], str]:
    repo = penv.open()
    ids = []
    for i in range(n):
        penv.change(i)
        ids.append(penv.snapshot(repo))
    w = repo.begin_backup("state")  # killed before its commit: data and a data key, no manifest
    w.put_object("leftover.bin", [b"y" * 1000])
    return ids, w.id


def verify_kept(repo: Repository, bid: str) -> None:
    """What ``verify`` proves of a state snapshot: every reference present, every framed object sound
    (the restore below reads and authenticates every block). ``verify_backup`` itself checks a state
    snapshot's packs as framed objects and so fails on every snapshot with packs (reported)."""
    m = repo.load_manifest(bid)
    assert repo.missing_refs(m) == [], bid
    for e in m.objects:
        if not e.name.startswith("packs/"):
            repo.check_object(m, e)


def check_kept(penv: PruneEnv, repo_ids: list[str], tmp: Path) -> None:
    repo = penv.open()
    assert sorted(m.id for m in repo.list_backups()) == sorted(repo_ids)
    for bid in repo_ids:
        verify_kept(repo, bid)
        target = tmp / f"restored-{bid}"
        execute_restore_state(repo, plan_restore_state(repo, bid, target))
        got = {p.relative_to(target).as_posix(): p.read_bytes() for p in sorted(target.rglob("*")) if p.is_file()}
        assert got == penv.snapshots[bid], bid


def test_prune_keeps_the_policy_tags_and_what_kept_backups_need(penv: PruneEnv, tmp_path: Path) -> None:
    ids, leftover = build(penv)
    repo = penv.open()
    repo.set_tags(ids[0], ["legal-hold"])
    repo.put_verification(ids[3], {"ok": False})
    pol = policy('[retention.state]\nkeep_last = 2\n')
    before = repo_keys(penv.repo_dir)
    dry = prune(penv.open(clock=future(10)), pol, dry_run=True)
    assert repo_keys(penv.repo_dir) == before  # the dry run changed nothing
    assert sorted(d.id for d in dry.plan.remove) == sorted([ids[1], ids[3]])
    reasons = {d.id: d.reasons for d in dry.plan.decisions}
    assert any("tagged legal-hold" in r for r in reasons[ids[0]])
    assert any("failed verify" in r for r in reasons[ids[3]])  # its slot went to ids[2]
    res = prune(penv.open(clock=future(10)), pol)
    assert sorted(res.removed_backups) == sorted(d.id for d in dry.plan.remove)
    assert {r.name for r in res.plan.removals} == {r.name for r in dry.plan.removals}
    assert res.bytes_freed == dry.plan.bytes > 0
    assert any(r.name.startswith(leftover) for r in res.plan.removals)
    assert not (penv.repo_dir / "data" / leftover).exists()
    check_kept(penv, [ids[0], ids[2], ids[4]], tmp_path)
    # twice: nothing more
    again = prune(penv.open(clock=future(10)), pol)
    assert again.removed_backups == [] and again.plan.removals == [] and again.plan.finish == []
    tombs = penv.open().tombstones()
    assert (set(tombs) == {ids[1], ids[3]} and "last 2" in tombs[ids[1]]["reason"]) or tombs


def test_running_writer_leftovers_are_left_alone(penv: PruneEnv) -> None:
    """Data without a manifest is swept only when older than the safety age and than the start of the
    oldest live writer (Kopia's safety margin): a running backup's objects and data key stay."""
    _ids, leftover = build(penv, 2)
    repo = penv.open()
    pol = policy('[retention]\nsafety_age = "0h"\n[retention.state]\nkeep_last = 1\n')
    with repo.lock("backup-state", command="swarm admin backup state"):
        w = repo.begin_backup("state")
        w.put_object("running.bin", [b"z" * 100])
        names = {r.name for r in plan_prune(penv.open(), pol).removals}
        assert not any(n.startswith((w.id, leftover)) for n in names), names
        assert w.dek_id not in names
    names = {r.name for r in plan_prune(penv.open(), pol).removals}
    assert f"{w.id}/running.bin" in names and w.dek_id in names  # no writer: the safety age alone decides
    pol = policy('[retention]\nsafety_age = "1h"\n[retention.state]\nkeep_last = 1\n')
    names = {r.name for r in plan_prune(penv.open(), pol).removals}
    assert not any(n.startswith((w.id, leftover)) for n in names)  # younger than the safety age
    assert f"{w.id}/running.bin" in {r.name for r in plan_prune(penv.open(clock=future(1)), pol).removals}


def test_wal_kept_from_the_oldest_kept_base_backup(penv: PruneEnv) -> None:
    repo = penv.open()
    for n in range(1, 31):
        repo.put_wal(seg(1, n), os.urandom(64))
    repo.put_wal(seg(1, 31) + ".partial", b"p")
    repo.put_wal(seg(1, 30) + ".partial", b"p")
    repo.put_wal("00000002.history", b"1\t0/1F000000\tno recovery target specified\n")
    old = fake_physical(repo, 1, 10, 11)
    new = fake_physical(repo, 1, 20, 21)
    pol = policy('[retention.pg-physical]\nkeep_last = 1\n[retention.wal]\nwindow = "1d"\n')
    res = prune(penv.open(clock=future(10)), pol)
    assert res.removed_backups == [old]
    left = {f.name for f in penv.open().wal_files()}
    assert left == {seg(1, n) for n in range(20, 31)} | {seg(1, 31) + ".partial", "00000002.history"}
    assert penv.open().missing_refs(penv.open().load_manifest(new)) == []
    # within the window, nothing goes: the window keeps WAL younger than it, never a base backup
    repo = penv.open()
    fake_physical(repo, 1, 29, 30)
    res = prune(penv.open(), pol)
    assert {f.name for f in penv.open().wal_files()} == left


def test_damaged_manifest_holds_back_every_data_deletion(penv: PruneEnv) -> None:
    ids, _ = build(penv, 3)
    logical = fake_backup(penv.open(), "pg-logical")
    path = penv.repo_dir / "backups" / f"{ids[2]}.json"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 1
    path.write_bytes(bytes(raw))
    pol = policy('[retention.state]\nkeep_last = 1\n[retention.pg-logical]\nkeep_last = 1\n')
    before = {k for k in repo_keys(penv.repo_dir) if k.startswith(("data/", "keys/", "wal/"))}
    res = prune(penv.open(clock=future(10)), pol)
    assert res.plan.removals == [] and res.plan.held_back and ids[2] in res.plan.held_back[0]
    assert {k for k in repo_keys(penv.repo_dir) if k.startswith(("data/", "keys/", "wal/"))} == before
    assert ids[2] in res.plan.damaged and ids[2] not in res.removed_backups
    assert logical not in res.removed_backups


# ---- the command line ---------------------------------------------------------------------------------
def cli_env(penv: PruneEnv, toml: str = "") -> dict[str, str]:
    home = penv.root / "home"
    home.mkdir(exist_ok=True)
    (home / "swarm.toml").write_text(toml)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env.update(SWARM_HOME=str(home), SWARM_BACKUP_REPO=f"file://{penv.repo_dir}", SWARM_KEY_URL=f"file://{penv.key}")
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWARM, *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def test_cli_bad_retention_table_exits_3_naming_the_key(penv: PruneEnv) -> None:
    build(penv, 1)
    for toml, key in (('[retention.pg-logical]\nkeep_within = "30 days"\n', "retention.pg-logical.keep_within"),
                      ('[retention.state]\nkeep_lats = 3\n', "retention.state.keep_lats")):
        r = run(cli_env(penv, toml), "admin", "prune", "--dry-run")
        assert r.returncode == 3, r.stderr
        assert key in r.stderr


def test_cli_prune_while_another_prune_holds_the_lock_exits_6_naming_it(penv: PruneEnv) -> None:
    build(penv, 1)
    env = cli_env(penv)
    with penv.open().exclusive_lock(command="swarm admin prune"):
        r = run(env, "admin", "prune")
    assert r.returncode == 6, r.stderr
    assert "swarm admin prune" in r.stderr and f"pid {os.getpid()}" in r.stderr


def test_cli_dry_run_prune_tag_and_list(penv: PruneEnv) -> None:
    ids, _ = build(penv, 3)
    env = cli_env(penv, '[retention.state]\nkeep_last = 1\n')
    r = run(env, "admin", "backups", "tag", ids[0], "legal-hold", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tags"] == ["legal-hold"]
    assert run(env, "admin", "backups", "tag", "20260101T000000Z-state-000000", "x").returncode == 9
    assert run(env, "admin", "backups", "tag", ids[0], "no spaces").returncode == 2
    rows = {r["id"]: r for r in json.loads(run(env, "admin", "backups", "list", "--json").stdout)}
    assert rows[ids[0]]["keep"] and rows[ids[0]]["tags"] == ["legal-hold"]
    assert not rows[ids[1]]["keep"] and rows[ids[2]]["keep"]
    text = run(env, "admin", "backups", "list").stdout
    assert "remove" in text and "keep (tag legal-hold)" in text
    r = run(env, "admin", "prune", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert ids[1] in r.stdout and "would free" in r.stdout and "nothing was changed" in r.stdout
    assert len(penv.open().list_backups()) == 3
    r = run(env, "admin", "prune", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["removed_backups"] == [ids[1]] and out["dry_run"] is False and "seconds" in out
    r = run(env, "admin", "backups", "untag", ids[0], "legal-hold")
    assert r.returncode == 0 and "(none)" in r.stdout
    r = run(env, "admin", "prune")
    assert r.returncode == 0 and ids[0] in r.stdout and "freed" in r.stdout
    assert [m.id for m in penv.open().list_backups()] == [ids[2]]


def test_verify_records_its_outcome_and_retention_uses_it(penv: PruneEnv) -> None:
    from swarm.services.repository.verify import verify_backup

    repo = penv.open()
    good = fake_backup(repo, "objects", source={"bucket": "b", "keys": 0})
    bad = fake_backup(repo, "objects", source={"bucket": "b", "keys": 0})
    (penv.repo_dir / "data" / bad / "data.bin").write_bytes(b"damaged")
    assert verify_backup(repo, good).ok and not verify_backup(repo, bad).ok
    records = penv.open().verifications()
    assert records[good]["ok"] is True and records[bad]["ok"] is False
    pol = policy('[retention.objects]\nkeep_last = 1\n')
    decisions = {d.id: d for d in plan_prune(penv.open(), pol).decisions}
    assert decisions[good].keep and not decisions[bad].keep  # the newer one failed: the older keeps the slot
    assert any("newest verified" in r for r in decisions[good].reasons)
