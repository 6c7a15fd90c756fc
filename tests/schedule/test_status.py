"""`swarm admin status` against a real primary archiving into a repository: OK, CRITICAL at once
when archive_command fails (broken on purpose), OK again once it is fixed; `--nagios` exit codes."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w

from tests.physical.conftest import PhysEnv, make_env


@pytest.fixture(scope="module")
def env(services_dir: Path) -> Iterator[PhysEnv]:
    e = make_env(services_dir / "status-env", archive_timeout=1)
    doc = {"repository": {"url": f"file://{e.repo_dir}", "key": f"file://{e.root / 'keys' / 'repo.key'}"},
           "database": {"url": e.url},
           # only a weekly physical backup is scheduled, so one backup makes the whole status OK
           "schedule": {"physical": {"cron": "0 2 * * 0", "command": "backup postgres --physical"}}}
    e.config.write_text(tomli_w.dumps(doc))
    yield e
    e.cluster.destroy()


def _archiver(env: PhysEnv) -> tuple[int, int]:
    out = env.cluster.psql("SELECT archived_count || ',' || failed_count FROM pg_stat_archiver")
    a, f = out.strip().split(",")
    return int(a), int(f)


def _switch(env: PhysEnv) -> None:
    env.cluster.psql("CREATE TABLE IF NOT EXISTS t(x int); INSERT INTO t VALUES (1); SELECT pg_switch_wal();")


def _wait(pred, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_ok_then_critical_when_archiving_breaks_then_ok_again(env: PhysEnv) -> None:
    env.cli("admin", "backup", "postgres", "--physical")
    _switch(env)
    archived = _archiver(env)[0]
    _wait(lambda: _archiver(env)[0] > archived, "a segment archived")

    r = env.cli("admin", "status", "--json", "--no-replication", check=False)
    rep = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rep["level"] == "OK"
    assert rep["backups"]["pg-physical"]["id"]
    assert rep["rpo_seconds"] is not None and rep["recoverable_window"]["continuous"] is True
    r = env.cli("admin", "status", "--nagios", check=False)
    assert r.returncode == 0 and r.stdout.startswith("SWARM OK - "), r.stdout + r.stderr

    # break archiving on purpose: archive_command now fails
    good = env.cluster.psql("SHOW archive_command").strip()
    env.cluster.psql("ALTER SYSTEM SET archive_command = 'false'")
    env.cluster.psql("SELECT pg_reload_conf()")
    failed = _archiver(env)[1]
    _switch(env)
    _wait(lambda: _archiver(env)[1] > failed, "a failed archive attempt")

    r = env.cli("admin", "status", "--json", "--no-replication", check=False)
    rep = json.loads(r.stdout)
    assert r.returncode == 1
    assert rep["level"] == "CRITICAL"
    [wal] = [c for c in rep["checks"] if c["name"] == "wal"]
    assert wal["level"] == "CRITICAL" and "failing" in wal["summary"] and wal["hint"]
    r = env.cli("admin", "status", "--nagios", check=False)
    assert r.returncode == 2 and r.stdout.startswith("SWARM CRITICAL - "), r.stdout + r.stderr
    assert "archiv" in r.stdout

    # fix it: the next archive succeeds and the status is OK again
    env.cluster.psql(f"ALTER SYSTEM SET archive_command = '{good.replace(chr(39), chr(39) * 2)}'")
    env.cluster.psql("SELECT pg_reload_conf()")
    archived = _archiver(env)[0]
    _wait(lambda: _archiver(env)[0] > archived, "archiving to resume", timeout=120)
    r = env.cli("admin", "status", "--json", "--no-replication", check=False)
    rep = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout
    assert rep["level"] == "OK"


def test_nagios_turns_every_error_into_unknown(env: PhysEnv, tmp_path: Path) -> None:
    r = env.cli("admin", "status", "--nagios", "--no-such-option", check=False)
    assert r.returncode == 3 and r.stdout.startswith("SWARM UNKNOWN - "), r.stdout + r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[repository]\nurl = "file:///nonexistent/nowhere"\nkey = "file:///nonexistent/key"\n')
    r = env.cli("admin", "status", "--nagios", check=False, config=bad)
    assert r.returncode == 3 and r.stdout.startswith("SWARM UNKNOWN - "), r.stdout + r.stderr
    # without --nagios the project's own exit codes stand
    r = env.cli("admin", "status", "--no-such-option", check=False)
    assert r.returncode == 2


def test_a_scheduled_kind_never_backed_up_is_a_warning(env: PhysEnv, tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    doc = {"repository": {"url": f"file://{env.repo_dir}", "key": f"file://{env.root / 'keys' / 'repo.key'}"},
           "schedule": {"state": {"cron": "0 1 * * *", "command": "backup state"}}}
    cfg.write_text(tomli_w.dumps(doc))
    r = env.cli("admin", "status", "--json", check=False, config=cfg)
    rep = json.loads(r.stdout)
    assert r.returncode == 1
    [st] = [c for c in rep["checks"] if c["name"] == "backup:state"]
    assert st["level"] == "WARNING" and "backup state" in st["hint"]
    assert rep["level"] == "WARNING"


def test_check_config_passes_then_fails_with_a_hint_when_archive_command_points_elsewhere(env: PhysEnv) -> None:
    r = env.cli("admin", "check", "config", "--json", "--wal-timeout", "60", check=False)
    res = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    steps = {s["name"]: s for s in res["steps"]}
    assert steps["repository"]["status"] == "ok"
    assert steps["archive-command"]["status"] == "ok"
    assert steps["wal-switch"]["status"] == "ok" and steps["wal-switch"]["facts"]["segment"]
    assert steps["bucket-policy"]["status"] == "skipped" and steps["dr-bucket"]["status"] == "skipped"

    good = env.cluster.psql("SHOW archive_command").strip()
    elsewhere = env.root / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    elsewhere.chmod(0o777)
    env.cluster.psql(f"ALTER SYSTEM SET archive_command = 'cp %p {elsewhere}/%f'")
    env.cluster.psql("SELECT pg_reload_conf()")
    _wait(lambda: "cp %p" in env.cluster.psql("SHOW archive_command"), "the new archive_command")
    try:
        r = env.cli("admin", "check", "config", "--json", check=False)
        res = json.loads(r.stdout)
        assert r.returncode == 1
        steps = {s["name"]: s for s in res["steps"]}
        ac = steps["archive-command"]
        assert ac["status"] == "failed" and "not swarm's" in ac["message"] and "wal push %p" in ac["hint"]
        assert steps["wal-switch"]["status"] == "skipped"
        human = env.cli("admin", "check", "config", check=False)
        assert human.returncode == 1 and "hint:" in human.stdout and "NOT OK" in human.stdout
    finally:
        env.cluster.psql(f"ALTER SYSTEM SET archive_command = '{good.replace(chr(39), chr(39) * 2)}'")
        env.cluster.psql("SELECT pg_reload_conf()")
