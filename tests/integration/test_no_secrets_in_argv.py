"""Passwords never reach a process's argument list (readable by every local user through ``ps``),
and the connection's TLS settings reach pg_basebackup / pg_receivewal / pg_dump / pg_restore
(issue 10, findings 4 and 5)."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from swarm.sources.postgres.basebackup import BaseBackupStream, conninfo_args, libpq_env
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.dump import pg_dump_directory
from swarm.sources.postgres.wal import create_slot_args

SECRET = "s3cret-Pa55"
URL = f"postgresql://backup:{SECRET}@db.example:5433/swarm?sslmode=verify-full&sslrootcert=/etc/ca.pem"


@pytest.mark.parametrize("url", [URL, URL.replace(f":{SECRET}@", "@") + f"&password={SECRET}"])
def test_replication_tools_get_the_whole_connection_string_but_not_the_password(url: str) -> None:
    for args in (conninfo_args(url), BaseBackupStream(url).args, create_slot_args(url, "swarm")):
        line = " ".join(args)
        assert SECRET not in line
        assert "sslmode=verify-full" in line and "sslrootcert=/etc/ca.pem" in line and "db.example" in line
        assert "5433" in line and "user=backup" in line
    assert libpq_env(url)["PGPASSWORD"] == SECRET


@pytest.mark.integration
def test_pg_dump_command_line_holds_no_password(pg_cluster: LocalCluster, tmp_path: Path) -> None:
    """The attack: read the running pg_dump's /proc/<pid>/cmdline, as any local user can."""
    url = pg_cluster.url("postgres")  # the cluster's own random password is in it
    secret = pg_cluster.password
    assert secret and f":{secret}@" in url
    seen: list[bytes] = []

    def spy(proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until the child has exec'd pg_dump
            try:
                line = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            except OSError:
                line = b""
            if b"pg_dump" in line:
                seen.append(line)
                return
            time.sleep(0.001)

    pg_dump_directory(url, tmp_path / "d", jobs=1, snapshot=None, on_start=spy)
    assert seen and seen[0], "the spy saw no command line"
    assert secret.encode() not in seen[0]
    assert b"pg_dump" in seen[0]
