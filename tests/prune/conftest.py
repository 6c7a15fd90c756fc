"""Fixtures for prune: a local repository with state snapshots (real tree store, shared packs),
synthetic logical and physical backups, WAL, and a store that dies after N operations."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from swarm.clock import FrozenClock, SystemClock, utc_iso
from swarm.crypto.keys import create_key_file, load_key_file
from swarm.model.refs import Refs, WalRange
from swarm.model.retention import Policy, policy_from_toml
from swarm.repo import Repository
from swarm.services.state.backup import StateScope, backup_state
from swarm.storage.local import LocalStore
from tests.stores import Killed, PassThroughStore


class DyingStore(PassThroughStore):
    """A store that dies (raises Killed) instead of performing its ``die_at``-th put or delete; counts them."""

    def __init__(self, inner: Any, die_at: int = 0) -> None:
        super().__init__(inner)
        self.die_at = die_at
        self.ops = 0
        self.root = getattr(inner, "root", None)

    def _tick(self, key: str) -> None:
        self.ops += 1
        if self.ops == self.die_at:
            raise Killed(key)

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        self._tick(key)
        return super().put(key, data, if_absent=if_absent)

    def delete(self, key: str) -> None:
        self._tick(key)
        super().delete(key)


SYSID = "7311000000000000001"


def seg(tli: int, n: int) -> str:
    return f"{tli:08X}{0:08X}{n:08X}"


@dataclass
class PruneEnv:
    root: Path
    key: Path
    repo_dir: Path
    state: Path
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # id -> files at that time

    def open(self, store: Any = None, clock: Any = None) -> Repository:
        st = store if store is not None else LocalStore(self.repo_dir, create=True)
        return Repository.open(st, load_key_file(self.key), clock or SystemClock(), create=True)

    def copy(self, dest: Path) -> PruneEnv:
        shutil.copytree(self.repo_dir, dest / "repo")
        return PruneEnv(self.root, self.key, dest / "repo", self.state, dict(self.snapshots))

    def files(self) -> dict[str, bytes]:
        return {p.relative_to(self.state).as_posix(): p.read_bytes() for p in sorted(self.state.rglob("*"))
                if p.is_file()}

    def snapshot(self, repo: Repository) -> str:
        m = backup_state(repo, StateScope(self.state), recent_s=0).manifest
        self.snapshots[m.id] = self.files()
        return m.id

    def change(self, i: int) -> None:
        (self.state / "batch").mkdir(exist_ok=True)
        (self.state / "batch" / f"run-{i:03d}.bin").write_bytes(os.urandom(40_000))
        old = self.state / "batch" / f"run-{i - 2:03d}.bin"
        if old.exists():
            old.unlink()
        (self.state / "cron.json").write_text(f'{{"round": {i}}}')


def fake_backup(repo: Repository, kind: str, *, payload: bytes = b"x" * 5000, refs: Refs | None = None,
                source: dict[str, Any] | None = None) -> str:
    w = repo.begin_backup(kind)
    w.put_object("data.bin", [payload])
    w.commit(source or {"database": "app"}, refs)
    return w.id


def fake_physical(repo: Repository, tli: int, start: int, stop: int) -> str:
    """A pg-physical manifest over WAL ``start``..``stop`` (only its WAL refs matter to prune)."""
    src = {"format": "tree", "system_identifier": SYSID, "timeline": tli, "start_lsn": f"0/{start:X}000000",
           "stop_lsn": f"0/{stop:X}000100", "start_wal": seg(tli, start), "stop_wal": seg(tli, stop),
           "wal_segments": [seg(tli, n) for n in range(start, stop + 1)], "segment_size": 16 << 20,
           "stop_time": utc_iso(datetime.now(UTC))}
    return fake_backup(repo, "pg-physical", source=src,
                       refs=Refs.of(wal=[WalRange(tli, seg(tli, start), seg(tli, stop))]))


def policy(text: str) -> Policy:
    import tomllib

    return policy_from_toml(tomllib.loads(text).get("retention"))


def future(days: float) -> FrozenClock:
    return FrozenClock(datetime.now(UTC) + timedelta(days=days))


@pytest.fixture
def penv(tmp_path: Path) -> PruneEnv:
    key = tmp_path / "keys" / "repo.key"
    create_key_file(key)
    state = tmp_path / "state"
    state.mkdir()
    return PruneEnv(tmp_path, key, tmp_path / "repo", state)
