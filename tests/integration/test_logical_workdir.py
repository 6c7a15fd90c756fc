"""Issue #8, defect 4: a killed logical backup must leave no table rows on local disk, and
the next run sweeps what a killed run left in the work directory (never a live run's).

The backup runs as ``swarm admin backup postgres --work-dir DIR`` in its own process group,
and the whole group (swarm, pg_dump and its workers) is killed with SIGKILL mid-way: what
an OOM kill or a container stop does.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from swarm.crypto.keys import LocalKeyFile
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import connect, with_dbname
from tests.conftest import new_database

pytestmark = pytest.mark.integration
SWARM = str(Path(sys.executable).parent / "swarm")


def _env(tmp_path: Path, kek: LocalKeyFile, db: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "AWS_", "PG"))}
    env.update(SWARM_HOME=str(tmp_path / "home" / ".swarm"), SWARM_KEY_URL=str(kek.path),
               SWARM_BACKUP_REPO=f"file://{tmp_path / 'repo'}", SWARM_DB_URL=db, COLUMNS="200")
    return env


def _swarm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([SWARM, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, f"swarm {' '.join(args)} exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
    return r


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def _started(work: Path, repo: Path) -> bool:
    """The backup is moving rows: a dump file in its work directory, or the repository is
    receiving data (a local store writes ``.tmp-*`` files from the first byte of an object)."""
    return (any(p.name != "owner.json" for p in _files(work))
            or ((repo / "data").is_dir() and any(_files(repo / "data"))))


def test_killed_backup_leaves_no_rows_on_disk_and_is_swept(tmp_path: Path, kek: LocalKeyFile,
                                                           pg_cluster: LocalCluster) -> None:
    db = new_database(pg_cluster, runs=60, size_mb=40)
    with connect(db) as conn:
        run_ids = [r[0].encode() for r in conn.execute("SELECT id FROM runs").fetchall()]
    assert run_ids
    work = tmp_path / "work"
    work.mkdir()
    env = _env(tmp_path, kek, db)
    proc = subprocess.Popen([SWARM, "admin", "backup", "postgres", "--jobs", "2", "--work-dir", str(work)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not _started(work, tmp_path / "repo"):
            time.sleep(0.002)
        assert proc.poll() is None, "the backup finished before it could be killed; seed more data"
        time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    time.sleep(0.5)  # nothing of the group survives to write more
    leftovers = _files(work)
    assert leftovers, "a killed run leaves its work directory (schema only)"
    for path in leftovers:
        data = path.read_bytes()
        found = [r for r in run_ids if r in data]
        assert not found, f"{path} ({len(data)} bytes) holds row data: {found[:3]}"
        assert path.name == "toc.dat" or not path.name.endswith(".dat"), f"table data file left: {path}"
    for d in (p for p in work.rglob("*") if p.is_dir()):
        assert d.stat().st_mode & 0o077 == 0, f"{d} is readable by others"

    # the next backup sweeps the leftover, says so, and its backup restores and validates
    out = json.loads(_swarm(env, "admin", "backup", "postgres", "--work-dir", str(work), "--json").stdout)
    assert len(out["swept"]) == 1 and str(work) in out["swept"][0]
    assert _files(work) == [] and list(work.iterdir()) == []
    human = _swarm(env, "admin", "backup", "postgres", "--work-dir", str(work))
    assert "leftover" not in human.stdout  # nothing left to sweep this time

    target = with_dbname(pg_cluster.url(), "swept_" + out["id"][-6:])
    restored = json.loads(_swarm(dict(env, SWARM_WORK_DIR=str(work)), "admin", "restore", "postgres", out["id"],
                                 "--target-db", target, "--create", "--json").stdout)
    assert restored["validated"] is True
    assert list(work.iterdir()) == []


_HELD: list[object] = []  # entered, never exited: like a killed run (collecting one would remove it)


def _dir_of(work: Path, prefix: str, pid: int) -> Path:
    """A work directory as a run with ``pid`` leaves it (created by the code under test)."""
    from swarm.services.workdirs import work_directory

    cm = work_directory(prefix, str(work), pid=pid)
    _HELD.append(cm)
    path = cm.__enter__()
    (path / "dump").mkdir()
    (path / "dump" / "toc.dat").write_bytes(b"schema")
    return path


def test_live_runs_work_dir_is_never_swept(tmp_path: Path, kek: LocalKeyFile, pg_cluster: LocalCluster) -> None:
    db = new_database(pg_cluster, runs=3, size_mb=0.2)
    work = tmp_path / "work"
    work.mkdir()
    live = subprocess.Popen(["sleep", "120"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        live_dir = _dir_of(work, "swarm-dump-", live.pid)
        dead_dir = _dir_of(work, "swarm-restore-", dead.pid)
        unrelated = work / "keep-me"
        unrelated.mkdir()
        out = json.loads(_swarm(_env(tmp_path, kek, db), "admin", "backup", "postgres", "--work-dir", str(work),
                                "--json").stdout)
        assert live_dir.is_dir() and (live_dir / "dump" / "toc.dat").is_file()
        assert not dead_dir.exists()
        assert unrelated.is_dir()
        assert out["swept"] == [str(dead_dir)]
    finally:
        live.kill()
        live.wait()
    # once its owner is gone, the next run (a restore this time) sweeps it
    env = _env(tmp_path, kek, db)
    backup_id = out["id"]
    target = with_dbname(pg_cluster.url(), "live_" + backup_id[-6:])
    r = _swarm(dict(env, SWARM_WORK_DIR=str(work)), "admin", "restore", "postgres", backup_id, "--target-db", target,
               "--create")
    assert "leftover" in r.stdout and str(live_dir) in r.stdout.replace("\n", "")
    assert not live_dir.exists() and unrelated.is_dir()


def test_verify_sweeps_what_a_killed_verify_left(tmp_path: Path, kek: LocalKeyFile, pg_cluster: LocalCluster) -> None:
    """A kill -9 of ``verify --restore-test`` leaves its ``swarm-verify-<pid>-*`` directory (and
    the throwaway cluster in it): the next verify removes it, says so, and leaves a live run's."""
    db = new_database(pg_cluster, runs=3, size_mb=0.2)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(_env(tmp_path, kek, db), SWARM_WORK_DIR=str(work))
    backup_id = json.loads(_swarm(env, "admin", "backup", "postgres", "--json").stdout)["id"]
    live = subprocess.Popen(["sleep", "120"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        live_dir = _dir_of(work, "swarm-verify-", live.pid)
        dead_dir = _dir_of(work, "swarm-verify-", dead.pid)
        (dead_dir / "cluster").mkdir()
        out = json.loads(_swarm(env, "admin", "verify", backup_id, "--json").stdout)
        assert out["ok"] is True and out["swept"] == [str(dead_dir)]
        assert not dead_dir.exists() and live_dir.is_dir()
    finally:
        live.kill()
        live.wait()
    human = _swarm(env, "admin", "verify", backup_id, "--restore-test")
    assert "leftover" in human.stdout and str(live_dir) in human.stdout.replace("\n", "")
    assert list(work.iterdir()) == []
