"""A server that dies while we wait for it is reported at once, not after the whole timeout
(trial D2: a restore waited 10 minutes on a dead server, then said 'unavailable')."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from swarm.errors import SourceError
from swarm.sources.postgres.cluster import LocalCluster

pytestmark = pytest.mark.integration


def test_wait_ready_fails_fast_when_the_postmaster_is_gone(services_dir: Path) -> None:
    c = LocalCluster(services_dir / "dies")
    c.init(fast=True)
    c.start()
    try:
        pid = c.pid()
        assert pid
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="stopped while starting"):
            c.wait_ready(timeout=120)
        assert time.monotonic() - t0 < 10
    finally:
        c.destroy()
