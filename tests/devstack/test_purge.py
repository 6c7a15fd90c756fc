"""``swarm dev down --purge`` removes everything the stack and its commands left under SWARM_HOME."""
from __future__ import annotations

from pathlib import Path

from swarm.devstack.stack import CONFIG_MARKER, DevStack


def _leftovers(home: Path) -> None:
    """What `swarm admin wal stream` (default spool) and `dev up` leave behind."""
    spool = home / "wal-stream"
    (spool / "archive_status").mkdir(parents=True)
    (spool / "000000010000000000000003.partial").write_bytes(b"\0" * 16)
    (home / "wal-stream.log").write_text("pg_receivewal: starting log streaming\n")
    (home / "dev" / "state" / "cron").mkdir(parents=True)
    (home / "swarm.toml").write_text(CONFIG_MARKER + "\n")


def test_purge_removes_the_wal_stream_spool_and_its_log(tmp_path: Path) -> None:
    home = tmp_path / ".swarm"
    _leftovers(home)
    res = DevStack(home).down(purge=True)
    assert res["purged"] is True
    assert not (home / "wal-stream").exists()
    assert not (home / "wal-stream.log").exists()
    assert not (home / "dev").exists()
    assert not (home / "swarm.toml").exists()


def test_down_without_purge_keeps_the_spool(tmp_path: Path) -> None:
    home = tmp_path / ".swarm"
    _leftovers(home)
    DevStack(home).down(purge=False)
    assert (home / "wal-stream" / "000000010000000000000003.partial").exists()
    assert (home / "wal-stream.log").exists()


def test_purge_of_nothing_is_fine(tmp_path: Path) -> None:
    home = tmp_path / ".swarm"
    assert DevStack(home).down(purge=True)["stopped"] == []
