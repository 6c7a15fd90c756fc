"""``swarm admin export`` / ``import`` as an operator runs them: exit codes and --json are the contract."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import typer

from .conftest import Stack, env_for, run_cli, state

pytestmark = pytest.mark.integration


def test_export_import_cli(cli_app: typer.Typer, prod: Stack, dev: Stack, run_id: str, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    env_for(monkeypatch, prod)
    out = tmp_path / "run.tar.gz"
    code, _, err, d = run_cli(cli_app, "admin", "export", "--run-id", run_id, "--scrub", "--output", str(out),
                              "--json")
    assert code == 0 and d["scrubbed"] is True and d["contains_pii"] is False and out.exists()
    assert d["left_out"] == ["audit/audit.pdf"] and d["scrub_report"]["total"] > 0
    assert "NOT scrubbed" not in err
    # exists: refused (8); --force replaces
    code, _, _, d = run_cli(cli_app, "admin", "export", "--run-id", run_id, "--scrub", "--output", str(out), "--json")
    assert code == 8
    code, _, _, _ = run_cli(cli_app, "admin", "export", "--run-id", run_id, "--scrub", "-o", str(out), "--force")
    assert code == 0
    # unscrubbed: loud on stderr, flagged in the result
    raw = tmp_path / "raw.tar.gz"
    code, stdout, err, _ = run_cli(cli_app, "admin", "export", "--run-id", run_id, "--output", str(raw))
    assert code == 0 and "NOT scrubbed" in err and "contains PII" in err and "NO - contains PII" in stdout
    # exports hold production rows: owner-only, whatever the umask (finding 8)
    assert (out.stat().st_mode & 0o777) == 0o600 and (raw.stat().st_mode & 0o777) == 0o600
    # unknown run: 9
    code, _, _, _ = run_cli(cli_app, "admin", "export", "--run-id", "run_nope", "--output", str(tmp_path / "x.tgz"))
    assert code == 9 and not (tmp_path / "x.tgz").exists()

    env_for(monkeypatch, dev)
    before = state(dev)
    code, _, _, d = run_cli(cli_app, "admin", "import", str(out), "--dry-run", "--json")
    assert code == 0 and d["dry_run"] is True and d["mode"] == "new" and state(dev) == before
    code, stdout, _, _ = run_cli(cli_app, "admin", "import", str(out))
    assert code == 0 and f"imported run {run_id}" in stdout and f"/api/v1/runs/{run_id}" in stdout
    code, _, _, d = run_cli(cli_app, "admin", "import", str(out), "--json")
    assert code == 8
    code, _, _, d = run_cli(cli_app, "admin", "import", str(out), "--replace", "--json")
    assert code == 0 and d["mode"] == "replace" and d["rows_deleted"]["runs"] == 1
    code, _, _, d = run_cli(cli_app, "admin", "import", str(out), "--new-id", "--json")
    assert code == 0 and d["mode"] == "new-id" and d["run_id"] != run_id and d["source_run_id"] == run_id
    code, _, _, _ = run_cli(cli_app, "admin", "import", str(out), "--new-id", "--replace")
    assert code == 2
    # damaged: 5; hostile: 8; missing: 9; unscrubbed archive: warned
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(out.read_bytes()[:-100])
    before = state(dev)
    code, _, _, _ = run_cli(cli_app, "admin", "import", str(bad))
    assert code == 5 and state(dev) == before
    (tmp_path / "junk.tar.gz").write_bytes(gzip.compress(b"x" * 10))
    code, _, _, _ = run_cli(cli_app, "admin", "import", str(tmp_path / "junk.tar.gz"))
    assert code == 5
    code, _, _, _ = run_cli(cli_app, "admin", "import", str(tmp_path / "missing.tar.gz"))
    assert code == 9
    code, _, err, d = run_cli(cli_app, "admin", "import", str(raw), "--new-id", "--json")
    assert code == 0 and d["contains_pii"] is True and "contains_pii" in err


def test_import_needs_configuration(cli_app: typer.Typer, tmp_path: Path) -> None:
    code, _, _, _ = run_cli(cli_app, "admin", "import", str(tmp_path / "a.tar.gz"))
    assert code == 3


def test_real_entry_point_json_error(tmp_path: Path) -> None:
    """Through the installed ``swarm`` (cli/main.py): the commands are wired, errors are JSON."""
    import json
    import os
    import subprocess
    import sys

    swarm = str(Path(sys.executable).parent / "swarm")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "AWS_", "PG"))}
    env.update(HOME=str(tmp_path), SWARM_HOME=str(tmp_path / ".swarm"))
    r = subprocess.run([swarm, "admin", "import", str(tmp_path / "a.tar.gz"), "--json"], env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 3, r.stderr
    assert json.loads(r.stdout)["error"] == "config"
    r = subprocess.run([swarm, "admin", "export", "--help"], env=env, capture_output=True, text=True, timeout=60,
                       check=False)
    assert r.returncode == 0 and "--scrub" in r.stdout and "--include-unscrubbed" in r.stdout
