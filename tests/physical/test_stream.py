"""`wal stream`: pg_receivewal from a slot into the repository, across a server restart, without a gap;
and `wal push` from archive_command of the same segments counts as duplicates, not conflicts."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.model import wal
from swarm.services.wal.archive import inventory, wal_status
from swarm.services.wal.stream import StreamResult, stream_wal
from tests.physical.conftest import PhysEnv, make_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def streamed(services_dir: Path) -> Iterator[PhysEnv]:
    env = make_env(services_dir / "phys-stream")
    yield env
    env.cluster.destroy()


def test_stream_survives_restart_without_gap(streamed: PhysEnv, tmp_path: Path) -> None:
    env = streamed
    c = env.cluster
    c.psql("CREATE TABLE t (id serial, at timestamptz DEFAULT clock_timestamp())")
    first = c.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
    out: list[StreamResult] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(stream_wal(env.repo(), env.url, tmp_path / "spool", slot="swarm_test", duration=14,
                                  interval=0.5))
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=run)
    th.start()
    time.sleep(2)
    for _ in range(2):
        c.psql("INSERT INTO t DEFAULT VALUES")
        c.psql("SELECT pg_switch_wal()")
    c.stop("fast")  # the server goes away under pg_receivewal...
    time.sleep(1.5)
    c.start()  # ...and comes back: the stream resumes from the slot
    for _ in range(2):
        c.psql("INSERT INTO t DEFAULT VALUES")
        c.psql("SELECT pg_switch_wal()")
    c.psql("INSERT INTO t DEFAULT VALUES")  # lands in the current .partial
    last_commit_lsn = c.psql("SELECT pg_current_wal_insert_lsn()")
    th.join(60)
    assert not errors, errors
    res = out[0]
    assert res.restarts >= 1, res.to_dict()
    assert not res.errors, res.errors
    assert res.partial_uploads >= 1
    inv = inventory(env.repo())
    segs = inv.segments[1]
    start = wal.parse_segment(first)
    newest = segs[-1]
    assert newest.segno >= start.segno + 3  # four switches: the fourth segment is the current one
    assert wal.find_gaps(segs, start, newest) == []
    assert wal_status(env.repo()).ok
    # the newest committed row is in the uploaded .partial (an RPO of about a second)
    partial_seg = wal.segment_of(wal.Lsn.parse(last_commit_lsn), 1)
    assert wal.partial_name(partial_seg) in inv.partials or inv.has(partial_seg.name)
