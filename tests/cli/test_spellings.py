"""Every option applies to the command it is on: an inapplicable one is a usage error (exit 2),
never silently dropped, and the old `restore postgres --physical` spelling names its successor."""
from __future__ import annotations

import subprocess
import sys

import pytest

SWARM = [sys.executable, "-m", "swarm.cli.main"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SWARM, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("args", [
    ["admin", "restore", "postgres", "--physical", "--target-latest", "--datadir", "/tmp/x"],
    ["admin", "restore", "postgres", "ID", "--physical", "--target-db", "postgresql://a@h/db"],
    ["admin", "restore", "postgres", "--physical", "--latest", "--datadir", "/tmp/x", "--json"],
])
def test_old_physical_restore_spelling_names_the_new_command(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "swarm admin restore physical" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,word", [
    (["admin", "restore", "postgres", "ID", "--target-db", "postgresql://a@h/db", "--target-time", "2026-01-01"],
     "--target-time"),
    (["admin", "restore", "postgres", "ID", "--target-db", "postgresql://a@h/db", "--start"], "--start"),
    (["admin", "restore", "physical", "--datadir", "/tmp/x", "--target-latest", "--force"], "--force"),
    (["admin", "restore", "physical", "--datadir", "/tmp/x", "--target-latest", "--jobs", "4"], "--jobs"),
    (["admin", "restore", "physical", "--datadir", "/tmp/x", "--target-latest", "--target-db", "x"], "--target-db"),
    (["admin", "backup", "postgres", "--physical", "--work-dir", "/tmp"], "--work-dir"),
    (["admin", "backup", "postgres", "--wal-wait-timeout", "5"], "--wal-wait-timeout"),
])
def test_an_option_that_does_not_apply_is_a_usage_error(args: list[str], word: str) -> None:
    r = run(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert word in r.stderr and "Traceback" not in r.stderr


def test_a_logical_restore_needs_its_id_and_target() -> None:
    r = run("admin", "restore", "postgres")
    assert r.returncode == 2 and "--target-db" in r.stderr
