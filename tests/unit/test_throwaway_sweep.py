"""Sweeping leftover throwaway clusters touches only what a dead swarm run owned, and never
signals a process that is not the postgres of that data directory (issue 10, finding 3)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from swarm.services.workdirs import _NAME, owner_record, sweep_relocated_clusters
from swarm.sources.postgres.cluster import OWNER_FILE, stop_orphan


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _relocated(root: Path, name: str, owner: dict[str, object] | None) -> Path:
    d = root / name
    (d / "data").mkdir(parents=True)
    (d / "data" / "PG_VERSION").write_text("15\n")
    if owner is not None:
        (d / OWNER_FILE).write_text(json.dumps(owner))
    return d


def test_only_relocated_clusters_of_dead_owners_are_swept(tmp_path: Path) -> None:
    dead = _relocated(tmp_path, "0123456789abcdef", owner_record(_dead_pid()))
    live = _relocated(tmp_path, "fedcba9876543210", owner_record(os.getpid()))
    no_owner = _relocated(tmp_path, "00112233aabbccdd", None)  # the dev stack's, a test fixture's
    other = _relocated(tmp_path, "access-0123456789", owner_record(_dead_pid()))  # not a cluster base
    foreign = _relocated(tmp_path, "aaaaaaaaaaaaaaaa", {**owner_record(_dead_pid()), "host": "elsewhere"})
    assert sweep_relocated_clusters(tmp_path) == [str(dead)]
    assert not dead.exists()
    assert live.is_dir() and no_owner.is_dir() and other.is_dir() and foreign.is_dir()


def test_stop_orphan_leaves_a_process_that_is_not_that_servers_alone(tmp_path: Path) -> None:
    """A recycled pid in postmaster.pid (here a `sleep`) is never signalled."""
    datadir = tmp_path / "data"
    datadir.mkdir()
    sleeper = subprocess.Popen(["sleep", "30"], cwd=datadir)
    try:
        (datadir / "postmaster.pid").write_text(f"{sleeper.pid}\n{datadir}\n0\n5432\n\n\n")
        assert stop_orphan(datadir, timeout=1) is False
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_physical_verify_directories_are_recognised_with_their_pid() -> None:
    for name, pid in (("swarm-verify-restore-123-ab_c9", "123"), ("swarm-verify-phys-77-x1", "77"),
                      ("swarm-verify-5-zz", "5"), ("swarm-verify-restore-abc123", None)):
        m = _NAME.fullmatch(name)
        assert m is not None and m.group("pid") == pid, name
