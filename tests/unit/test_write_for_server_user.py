"""A symlink planted by the server user in its own directory never makes swarm (root) write
through it (issue 10, finding 6)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from swarm.sources.postgres.cluster import hand_to_server_user, server_user_write_problem, write_for_server_user


@pytest.mark.parametrize("planted", [".tmp-repo.key", "repo.key"])
def test_planted_symlink_is_not_written_through(tmp_path: Path, planted: str) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's file")
    d = tmp_path / "access"
    d.mkdir(mode=0o700)
    hand_to_server_user(d)
    (d / planted).symlink_to(victim)
    write_for_server_user(d / "repo.key", b"key bytes")
    assert victim.read_bytes() == b"root's file"
    assert (d / "repo.key").read_bytes() == b"key bytes" and not (d / "repo.key").is_symlink()
    assert oct((d / "repo.key").stat().st_mode & 0o777) == oct(0o600)
    assert not [p for p in d.iterdir() if p.name.startswith(".tmp-") and not p.is_symlink()]


def test_directory_replaced_by_a_symlink_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    link = tmp_path / "access"
    link.symlink_to(real)
    with pytest.raises(OSError):
        write_for_server_user(link / "repo.key", b"x")
    assert not os.listdir(real)


def test_write_problem_follows_a_repository_symlink() -> None:
    """The dev stack's repository is a symlink in a closed directory to one the server user may
    write: no access problem is invented (a backup refused for broken archiving named one)."""
    base = Path(tempfile.mkdtemp(prefix="swarm-reach-", dir="/var/tmp"))  # the server user can reach it
    try:
        base.chmod(0o755)
        closed = base / "closed"
        closed.mkdir(mode=0o700)
        real = base / "open-repo"
        real.mkdir()
        hand_to_server_user(real)
        (closed / "repo").symlink_to(real)
        assert server_user_write_problem(closed / "repo") is None
        (closed / "elsewhere").mkdir()
        assert f"cannot enter {closed}" in (server_user_write_problem(closed / "elsewhere") or "")
    finally:
        shutil.rmtree(base)
