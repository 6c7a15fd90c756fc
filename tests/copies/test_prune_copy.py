"""Prune on a copy: the same rules, under the copy's exclusive lock. A running `repo copy` holds the
copy's shared lock, so a prune of the copy refuses (exit 6, naming it) or waits for it with --wait;
what the copy wrote is intact afterwards. ``--follow`` repeats the copy every interval."""
from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

import pytest

from swarm.crypto.keys import LocalKeyFile, create_key_file
from swarm.errors import ExitCode, LockedError
from swarm.model.retention import DEFAULT_POLICY
from swarm.repo import Repository
from swarm.repo.copy import CopyTarget
from swarm.services.copies.copy import copy_lags, copy_repository
from swarm.services.maintenance.prune import prune
from swarm.storage.base import Store
from swarm.storage.factory import open_store
from tests.stores import PassThroughStore


class GatedStore(PassThroughStore):
    """A store whose first put under ``keys/`` waits for ``gate`` (a copy paused while it holds its lock)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.gate = threading.Event()
        self.paused = threading.Event()

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        if key.startswith("keys/") and not self.gate.is_set():
            self.paused.set()
            assert self.gate.wait(60)
        return self.inner.put(key, data, if_absent=if_absent)


@pytest.fixture
def source(tmp_path: Path, kek: LocalKeyFile) -> Repository:
    repo = Repository.init(open_store(f"file://{tmp_path / 'primary'}"), kek)
    for n in range(2):
        w = repo.begin_backup("pg-logical")
        w.put_object("pgdump/toc.dat", [b"toc %d" % n])
        w.commit({"engine": "postgres"})
    return repo


def test_prune_on_the_copy_while_a_copy_runs(tmp_path: Path, source: Repository) -> None:
    own = create_key_file(tmp_path / "far.key")
    gated = GatedStore(open_store(f"file://{tmp_path / 'far'}"))
    target = CopyTarget("far", gated, own)  # type: ignore[arg-type]
    done: list[object] = []
    t = threading.Thread(target=lambda: done.append(copy_repository(source, [target])))
    t.start()
    try:
        assert gated.paused.wait(30)  # the copy holds the copy's shared lock and is writing
        copy = Repository.open(gated.inner, own)
        with pytest.raises(LockedError) as ei:
            prune(copy, DEFAULT_POLICY, wait=0, poll=0.1)
        assert ei.value.exit_code == ExitCode.LOCKED and "repo copy" in ei.value.message
        # with --wait, prune waits for the copy to finish, then prunes with the same safety rules
        threading.Timer(1.0, gated.gate.set).start()
        res = prune(copy, DEFAULT_POLICY, wait=30, poll=0.1)
    finally:
        gated.gate.set()
        t.join(60)
    run = done[0]
    assert run.ok  # type: ignore[attr-defined]
    assert res.removed_backups == [] and res.removed_files == 0  # nothing the kept backups need is deleted
    listed = [m.id for m in copy.list_backups()]
    assert listed == [m.id for m in source.list_backups()]
    for m in copy.list_backups():
        for e in m.objects:
            copy.check_object(m, e)


def test_follow_repeats_the_copy_and_the_lag_closes(tmp_path: Path, source: Repository) -> None:
    target = CopyTarget("usb", open_store(f"file://{tmp_path / 'usb'}"), source.kek)
    lag = copy_lags(source, [target])[0]
    assert lag.level == "OK" and len(lag.missing_backups) == 2  # no WAL yet: the lag is the backups'
    slept: list[float] = []

    def sleep(s: float) -> None:  # a backup lands between two rounds
        slept.append(s)
        w = source.begin_backup("pg-logical")
        w.put_object("pgdump/toc.dat", [b"late"])
        w.commit({"engine": "postgres"})

    run = copy_repository(source, [target], follow=True, interval=5, rounds=2, sleep=sleep)
    assert run.rounds == 2 and run.ok and len(slept) == 1 and 0 <= slept[0] <= 5
    assert len(run.outcomes[0].result.backups) == 1  # type: ignore[union-attr]
    assert copy_lags(source, [target])[0].missing_backups == []
