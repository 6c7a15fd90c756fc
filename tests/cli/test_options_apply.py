"""Options that only mean something together with another are usage errors (exit 2) when given
alone, naming the option they need, never silently dropped."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SWARM = [sys.executable, "-m", "swarm.cli.main"]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "AWS_", "PG"))}
    env.update(SWARM_HOME=str(tmp_path / "home"), HOME=str(tmp_path), COLUMNS="200")
    return subprocess.run([*SWARM, *args], capture_output=True, text=True, timeout=60, check=False, env=env)


LOGICAL_ID = "20260101T000000Z-pg-logical-abcdef"
PHYSICAL_ID = "20260101T000000Z-pg-physical-abcdef"
OBJECTS_ID = "20260101T000000Z-objects-abcdef"


@pytest.mark.parametrize("args,words", [
    (["admin", "verify", OBJECTS_ID, "--sample", "5"], ["--sample", "--restore-test"]),
    (["admin", "verify", LOGICAL_ID, "--sample", "0", "--json"], ["--sample", "--restore-test"]),
    (["admin", "verify", LOGICAL_ID, "--restore-test", "--sample", "5"], ["--sample", "objects backups only"]),
    (["admin", "verify", PHYSICAL_ID, "--restore-test", "--sample", "5"], ["--sample", "objects backups only"]),
    (["admin", "restore", "physical", "--datadir", "/tmp/x", "--target-latest", "--keep-failed"],
     ["--keep-failed", "--start"]),
])
def test_an_option_without_what_it_needs_is_a_usage_error(tmp_path: Path, args: list[str], words: list[str]) -> None:
    r = run(tmp_path, *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert all(w in r.stderr for w in words), r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args", [
    ["admin", "verify", OBJECTS_ID, "--restore-test", "--sample", "5"],
    ["admin", "verify", LOGICAL_ID],
    ["admin", "verify", LOGICAL_ID, "--restore-test"],
])
def test_sample_with_an_objects_restore_test_is_accepted(tmp_path: Path, args: list[str]) -> None:
    r = run(tmp_path, *args)
    assert r.returncode != 2, (r.stdout, r.stderr)  # no repository configured here: a config error, not usage
    assert "Traceback" not in r.stderr
