"""Progress without a terminal: cron and CI see a line every few seconds on stderr, `--json`
gets JSON lines on stderr, and stdout stays exactly the one result."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.progress import Progress

from swarm.crypto.keys import create_key_file
from swarm.sources.postgres.cluster import LocalCluster

from ..conftest import new_database

SWARM = str(Path(sys.executable).parent / "swarm")


@pytest.fixture
def backup_env(pg_cluster: LocalCluster, tmp_path: Path) -> dict[str, str]:
    db_url = new_database(pg_cluster, runs=20, size_mb=3)
    key = create_key_file(tmp_path / "keys" / "repo.key")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "AWS_", "PG"))}
    env.update(SWARM_HOME=str(tmp_path / "home"), SWARM_DB_URL=db_url, SWARM_BACKUP_REPO=f"file://{tmp_path / 'repo'}",
               SWARM_KEY_URL=f"file://{key.path}", SWARM_PROGRESS_INTERVAL="0.05")
    return env


def swarm(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([SWARM, *args], env=env, capture_output=True, text=True, timeout=300, check=False,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r


@pytest.mark.integration
def test_backup_without_a_terminal_prints_progress_lines(backup_env: dict[str, str]) -> None:
    r = swarm(backup_env, "admin", "backup", "postgres")
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("progress: ")]
    assert lines, r.stderr
    # the step that moves the rows has a known total (the database size)
    assert any("backing up" in ln and " of " in ln and "/s" in ln and "elapsed" in ln for ln in lines), lines
    assert "progress" not in r.stdout and "backup " in r.stdout


@pytest.mark.integration
def test_backup_json_keeps_stdout_one_document_and_reports_progress_as_json_lines(
        backup_env: dict[str, str]) -> None:
    r = swarm(backup_env, "admin", "backup", "postgres", "--json")
    result = json.loads(r.stdout)  # exactly one document: anything else on stdout fails to parse
    assert result["id"] and result["size"] > 0
    events = [json.loads(ln) for ln in r.stderr.splitlines() if ln.strip()]
    assert events, r.stderr
    assert all(set(e) == {"progress"} for e in events), r.stderr
    dumping = [e["progress"] for e in events if e["progress"]["stage"].startswith("backing up")]
    assert dumping and all(p["total_bytes"] and p["total_bytes"] > 0 for p in dumping), events
    assert {"done_bytes", "rate_bytes_per_s", "elapsed_s", "percent"} <= set(dumping[-1])


@pytest.mark.integration
def test_interval_zero_turns_the_lines_off(backup_env: dict[str, str]) -> None:
    r = swarm(dict(backup_env, SWARM_PROGRESS_INTERVAL="0"), "admin", "backup", "postgres")
    assert "progress:" not in r.stderr


def test_lines_are_printed_while_nothing_advances() -> None:
    """A step that advances nothing for a while (pg_dump of a big table) still shows it is alive."""
    from swarm.ui.progress import ProgressReporter

    buf = io.StringIO()
    with ProgressReporter("lines", interval=0.02, stream=buf) as rep:
        time.sleep(0.1)
        assert buf.getvalue() == ""  # nothing before the first stage
        rep.stage("waiting for WAL")
        time.sleep(0.15)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 2 and all(ln.startswith("progress: waiting for WAL, ") for ln in lines), lines


def test_line_and_json_fields() -> None:
    from swarm.ui.progress import ProgressReporter

    now = [100.0]
    rep = ProgressReporter("json", interval=60, stream=io.StringIO(), clock=lambda: now[0])
    rep.stage("uploading")
    rep.total(4_000_000)
    rep.advance(1_000_000)
    now[0] += 2
    snap = rep.snapshot()
    assert snap == {"stage": "uploading", "done_bytes": 1_000_000, "total_bytes": 4_000_000,
                    "total_estimated": False, "percent": 25.0, "rate_bytes_per_s": 500_000,
                    "stage_elapsed_s": 2.0, "elapsed_s": 2.0}
    assert rep.line() == "progress: uploading: 1.0 MB of 4.0 MB (25%), 500.0 KB/s, 2 s elapsed"
    rep.emit()
    assert json.loads(rep._stream.getvalue()) == {"progress": snap}  # type: ignore[union-attr]


def test_terminal_bar_never_shows_an_unknown_total_as_a_question_mark() -> None:
    from swarm.ui.progress import _BytesColumn

    p = Progress()
    unknown = p.add_task("dumping", total=None, completed=1500)
    known = p.add_task("uploading", total=3000, completed=1500)
    col = _BytesColumn()
    assert col.render(p.tasks[unknown]).plain == "1.5 KB"
    assert col.render(p.tasks[known]).plain == "1.5 KB/3.0 KB"
