"""Prune reports the repository's size per kind before and after (``size_before`` / ``size_after``)."""
from __future__ import annotations

import os
from pathlib import Path

from swarm.model.repack import Budget
from swarm.services.maintenance.prune import prune
from tests.prune.conftest import PruneEnv, fake_backup, future, policy, seg
from tests.prune.test_prune import cli_env, run
from tests.prune.test_repack import half_dead


def disk(d: Path, prefix: str) -> int:
    return sum(p.stat().st_size for p in (d / prefix).rglob("*") if p.is_file())


def test_size_per_kind_before_and_after(penv: PruneEnv) -> None:
    a, b = half_dead(penv)
    repo = penv.open()
    logical = [fake_backup(repo, "pg-logical", payload=os.urandom(20_000)) for _ in range(2)]
    for n in range(1, 4):
        repo.put_wal(seg(1, n), os.urandom(100))
    pol = policy("[retention.state]\nkeep_last = 1\n[retention.pg-logical]\nkeep_last = 1\n")
    dry = prune(penv.open(clock=future(1)), pol, dry_run=True, max_unused=Budget(percent=0)).to_dict()
    before = dry["size_before"]
    assert set(before) >= {"state", "pg-logical", "wal", "unattributed"}, before
    assert sum(before.values()) == disk(penv.repo_dir, "") - disk(penv.repo_dir, "locks")
    assert before["wal"] == disk(penv.repo_dir, "wal")
    assert before["state"] >= disk(penv.repo_dir, f"data/{a}") + disk(penv.repo_dir, f"data/{b}")
    # the dry run projects: the removed logical dump and the state snapshot's dead blocks go
    assert before["pg-logical"] - dry["size_after"]["pg-logical"] >= 20_000
    assert before["state"] - dry["size_after"]["state"] > 290_000
    real = prune(penv.open(clock=future(1)), pol, max_unused=Budget(percent=0)).to_dict()
    assert real["size_before"] == before
    after = real["size_after"]
    assert sum(after.values()) == disk(penv.repo_dir, "") - disk(penv.repo_dir, "locks")
    for kind in ("state", "pg-logical"):  # measured: what the plan projected, within the small records
        assert abs(after[kind] - dry["size_after"][kind]) < 4_000, (kind, after, dry["size_after"])
    assert after["wal"] == before["wal"]
    assert logical[1] in {m.id for m in penv.open().list_backups()}


def test_cli_prints_sizes(penv: PruneEnv) -> None:
    half_dead(penv)
    r = run(cli_env(penv, "[retention.state]\nkeep_last = 1\n"), "admin", "prune", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "repository size by kind" in r.stdout and "state" in r.stdout, r.stdout
