"""Fixtures for state-directory snapshots: a configured deployment (key, file:// repository,
state directory) driven through the real CLI, and builders of realistic state directories."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from swarm.crypto.keys import create_key_file
from swarm.repo import Repository

SWARM = [sys.executable, "-m", "swarm.cli.main"]


@dataclass
class StateEnv:
    root: Path
    state: Path
    repo_dir: Path
    key: Path

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
        env.update(SWARM_HOME=str(self.root / "home"), SWARM_BACKUP_REPO=f"file://{self.repo_dir}",
                   SWARM_KEY_URL=f"file://{self.key}", SWARM_STATE_DIR=str(self.state))
        return env

    def cli(self, *args: str, timeout: float = 120) -> tuple[int, str, str, Any]:
        """Run ``swarm`` as a subprocess; (exit code, stdout, stderr, parsed JSON stdout or None)."""
        r = subprocess.run([*SWARM, *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                           check=False)
        data = json.loads(r.stdout) if "--json" in args and r.stdout.strip() else None
        return r.returncode, r.stdout, r.stderr, data

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen([*SWARM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**self.env, **env})

    def repo(self) -> Repository:
        from swarm.config import load_settings
        from swarm.services.context import open_repository

        old = dict(os.environ)
        os.environ.update(self.env)
        try:
            return open_repository(load_settings(), create=True)
        finally:
            os.environ.clear()
            os.environ.update(old)


def make_state_dir(d: Path) -> None:
    """A state directory of swarm's real layout plus every kind of entry a snapshot must keep."""
    (d / "cron").mkdir(parents=True)
    (d / "cron" / "jobs.json").write_text(json.dumps({"version": 1, "jobs": [
        {"id": f"job-{i:03d}", "pipeline": f"p{i}", "schedule": "0 * * * *"} for i in range(40)]}, indent=1))
    for r in range(5):
        run = d / "batch" / f"run-{r:04d}"
        run.mkdir(parents=True)
        (run / "status.json").write_text(json.dumps({"run_id": r, "status": "done"}))
        (run / "input.jsonl").write_text("".join(json.dumps({"i": i, "prompt": f"item {i}"}) + "\n"
                                                 for i in range(200 * (r + 1))))
    (d / "batch" / "run-0000" / "log.txt").write_text("started\n")
    os.link(d / "batch" / "run-0000" / "log.txt", d / "batch" / "run-0001" / "log-copy.txt")
    (d / "batch" / "latest").symlink_to("run-0004")
    (d / "batch" / "dangling").symlink_to("/nowhere/at/all")
    (d / "empty").mkdir()
    (d / "private.txt").write_text("mine")
    (d / "private.txt").chmod(0o600)
    (d / "big.bin").write_bytes(os.urandom(300_000))
    os.utime(d / "cron" / "jobs.json", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


@pytest.fixture
def senv(tmp_path: Path) -> Iterator[StateEnv]:
    root = tmp_path / "deploy"
    root.mkdir()
    key = root / "keys" / "repo.key"
    create_key_file(key)
    state = root / "state"
    make_state_dir(state)
    yield StateEnv(root, state, root / "repo", key)


def tree_of(d: Path) -> dict[str, tuple[Any, ...]]:
    """Everything a restore must reproduce: type, mode, mtime (ns), content or link target, per path;
    hard links as the set of paths sharing an inode."""
    out: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirs, files in os.walk(d):
        for name in dirs + files:
            p = Path(dirpath) / name
            rel = p.relative_to(d).as_posix()
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("l", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("d", oct(st.st_mode & 0o7777), st.st_mtime_ns)
            elif not p.is_file():
                out[rel] = ("special",)
            else:
                out[rel] = ("f", oct(st.st_mode & 0o7777), st.st_mtime_ns, p.read_bytes())
                inodes.setdefault(st.st_ino, []).append(rel)
    out["<hardlinks>"] = ("links", sorted(sorted(v) for v in inodes.values() if len(v) > 1))
    return out
