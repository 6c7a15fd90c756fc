"""A restore that starts the server fetches the WAL recovery needs before it starts, and
answers PostgreSQL's restore_command from it: no ``wal fetch`` process per file (each one
costs a Python start and a repository open), including the probes for files that do not
exist (the next segment, the next timeline's history, timeline 1's history)."""
from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from swarm.model import wal
from swarm.model.targets import RecoveryTarget
from swarm.repo.format import wal_key
from swarm.services.context import server_access
from swarm.services.postgres.physical_backup import backup_postgres_physical
from swarm.services.postgres.pitr import execute_pitr, plan_pitr
from swarm.services.postgres.wal_ahead import AHEAD_DIR, wanted_names
from swarm.services.wal.archive import ArchiveInventory, spool_root
from swarm.sources.postgres.cluster import LocalCluster
from tests.physical.conftest import PhysEnv

pytestmark = pytest.mark.integration


def _inv(names: list[str], partials: list[str] | None = None) -> ArchiveInventory:
    segs: dict[int, list[wal.Segment]] = {}
    for n in names:
        if wal.is_segment_name(n):
            s = wal.parse_segment(n)
            segs.setdefault(s.tli, []).append(s)
    hist = [n for n in names if n.endswith(".history")]
    from datetime import UTC, datetime

    modified = {n: datetime.now(UTC) for n in names}
    return ArchiveInventory(segs, partials or [], hist, [], modified, wal.DEFAULT_SEGMENT_SIZE)


def test_wanted_names_one_timeline_to_the_end() -> None:
    inv = _inv(["000000010000000000000003", "000000010000000000000004", "000000010000000000000005"])
    present, absent = wanted_names(inv, [1], "000000010000000000000003", "000000010000000000000004",
                                   to_archive_end=True)
    assert present == ["000000010000000000000003", "000000010000000000000004", "000000010000000000000005"]
    assert absent == ["00000001.history", "000000010000000000000006", "00000002.history"]


def test_wanted_names_to_a_target_marks_no_segment_after_it() -> None:
    inv = _inv(["000000010000000000000003", "000000010000000000000004", "000000010000000000000005"])
    present, absent = wanted_names(inv, [1], "000000010000000000000003", "000000010000000000000004",
                                   to_archive_end=False)
    assert present == ["000000010000000000000003", "000000010000000000000004"]
    assert absent == ["00000001.history", "00000002.history"]


def test_wanted_names_two_timelines_and_a_partial() -> None:
    inv = _inv(["000000010000000000000003", "000000010000000000000004", "00000002.history",
                "000000020000000000000004", "00000003.history"],
               partials=["000000020000000000000005.partial"])
    present, absent = wanted_names(inv, [1, 2], "000000010000000000000003", "000000010000000000000003",
                                   to_archive_end=True)
    assert present == ["00000002.history", "000000010000000000000003", "000000010000000000000004",
                       "000000020000000000000004", "000000020000000000000005"]
    # segment 3 was never on timeline 2; timeline 3 exists (not followed): the server fetches its history itself
    assert absent == ["00000001.history", "000000020000000000000003", "000000010000000000000005",
                      "000000010000000000000006", "000000020000000000000006", "00000004.history"]


def test_wanted_names_capped_marks_nothing_after_the_cap() -> None:
    names = [wal.Segment(1, n).name for n in range(3, 20)]
    present, absent = wanted_names(_inv(names), [1], names[0], names[0], to_archive_end=True, max_segments=4)
    assert present == names[:4]
    assert absent == ["00000001.history", "00000002.history"]


def test_restore_answers_recovery_from_the_wal_fetched_ahead(phys: PhysEnv) -> None:
    c = phys.cluster
    c.psql("CREATE TABLE ahead (id int PRIMARY KEY, label text)")
    c.psql("INSERT INTO ahead SELECT g, 'before' FROM generate_series(1, 1000) g")
    repo = phys.repo()
    backup_postgres_physical(repo, phys.url)
    c.psql("INSERT INTO ahead SELECT g, 'after' FROM generate_series(1001, 1500) g")
    seg = c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    c.psql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 60
    while repo._store.stat(wal_key(seg)) is None:
        assert time.monotonic() < deadline, f"{seg} was not archived"
        time.sleep(0.2)
    restores = phys.root / "restores"
    restores.mkdir(exist_ok=True)
    restores.chmod(0o755)
    datadir = restores / f"ahead-{secrets.token_hex(3)}"
    # leftovers of a killed restore into the same directory are replaced, never served
    stale = spool_root(datadir) / AHEAD_DIR
    stale.mkdir(parents=True)
    (stale / seg).write_bytes(b"not WAL")
    plan = plan_pitr(repo, RecoveryTarget("latest"), datadir, start=True)
    res = execute_pitr(repo, plan, server_access(phys.settings), bindir=phys.settings.pg_bindir, timeout=120)
    restored = LocalCluster(datadir.parent, port=res.port or 0, pgdata=datadir)
    try:
        assert restored.psql("SELECT count(*) FROM ahead WHERE label = 'after'") == "500"
        out = res.to_dict()
        assert out["wal_prefetched"] >= 1
        assert out["wal_fetch_fallbacks"] == []  # every request answered without a `wal fetch` process
        assert not (spool_root(datadir) / AHEAD_DIR).exists()  # the fetched WAL is gone after promotion
        assert restored.psql("SHOW restore_command").startswith("sh ")
    finally:
        restored.destroy()


def test_fixture_datadir_is_fsynced_before_start(phys: PhysEnv, tmp_path: Path) -> None:
    """materialize(sync=True) writes the same bytes (the fsync itself is not observable here)."""
    from swarm.repo.tree import open_snapshot

    repo = phys.repo()
    m = repo.list_backups()[-1]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    sa = open_snapshot(repo, repo.load_manifest(m.id)).materialize(a, sync=True)
    sb = open_snapshot(repo, repo.load_manifest(m.id)).materialize(b)
    assert (sa.files, sa.bytes) == (sb.files, sb.bytes)
    assert (a / "PG_VERSION").read_bytes() == (b / "PG_VERSION").read_bytes()
