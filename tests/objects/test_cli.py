"""The commands as an operator runs them: exit codes and --json output are the contract."""
from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer

from swarm.crypto.keys import create_key_file
from swarm.devstack.seaweed import SeaweedServer
from swarm.sources.objects import Bucket

from .conftest import env_for, get, new_bucket, put, run_cli


def test_policy_check_apply_check(cli_app: typer.Typer, seaweed: SeaweedServer, monkeypatch: pytest.MonkeyPatch,
                                  tmp_path: Path) -> None:
    b = new_bucket(seaweed, versioned=False, prefix="clipol")
    env_for(monkeypatch, b)
    monkeypatch.setenv("SWARM_DR_OBJECTS_BUCKET", "dr-" + b.name)
    code, _, d = run_cli(cli_app, "admin", "objects", "policy", "check", "--json")
    assert code == 1 and d["in_sync"] is False
    code, _, d = run_cli(cli_app, "admin", "objects", "policy", "apply", "--dry-run", "--json")
    assert code == 0 and d["mode"] == "dry-run" and b.versioning() is None
    code, _, d = run_cli(cli_app, "admin", "objects", "policy", "apply", "--json")
    assert code == 0, d
    rules = {r["rule"]: r for r in d["rules"]}
    assert rules["replication"]["status"] == "unsupported" and "replicate" in rules["replication"]["instead"]
    code, out, _ = run_cli(cli_app, "admin", "objects", "policy", "check")
    assert code == 0 and "unsupported" in out
    custom = tmp_path / "policy.toml"
    custom.write_text("[[lifecycle.rules]]\nid='x'\nexpire_days=3\n[replication]\nenabled=false\n")
    code, _, d = run_cli(cli_app, "admin", "objects", "policy", "check", "--policy", str(custom), "--json")
    assert code == 1 and {r["rule"] for r in d["rules"] if r["status"] == "drifted"} >= {"lifecycle:x"}
    bad = tmp_path / "bad.toml"
    bad.write_text("[[lifecycle.rules]]\nid='x'\n")
    code, _, d = run_cli(cli_app, "admin", "objects", "policy", "check", "--policy", str(bad), "--json")
    assert code == 3


def test_replicate_and_check(cli_app: typer.Typer, src: Bucket, dr_remote: Bucket,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    env_for(monkeypatch, src, dr_remote)
    for i in range(6):
        put(src, f"r/{i}", f"v{i}".encode())
    code, _, d = run_cli(cli_app, "admin", "objects", "replicate", "--json")
    assert code == 0 and d["versions_copied"] == 6 and d["failed"] == [] and d["server_side"] is False
    code, _, d = run_cli(cli_app, "admin", "objects", "replication", "check", "--json")
    assert code == 0 and d["in_sync"] and d["counts"]["dr_versions"] == 6
    put(dr_remote, "r/0", b"planted")
    code, _, d = run_cli(cli_app, "admin", "objects", "replication", "check", "--json")
    assert code == 1 and d["differences"][0]["key"] == "r/0" and d["differences"][0]["kind"] == "latest_differs"
    code, out, _ = run_cli(cli_app, "admin", "objects", "replication", "check")
    assert code == 1 and "difference" in out
    # wrong DR credentials: a clear error before anything is copied
    monkeypatch.setenv("SWARM_DR_OBJECTS_SECRET_KEY", "wrong")
    put(src, "r/new", b"n")
    code, _, d = run_cli(cli_app, "admin", "objects", "replicate", "--json")
    assert code == 3 and get(dr_remote, "r/new") is None


def test_demo_accidental_delete_and_restore_to_a_time(cli_app: typer.Typer, src: Bucket,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    env_for(monkeypatch, src)
    put(src, "pipeline_runs/r1/audit/audit.pdf", b"%PDF audit")
    put(src, "pipeline_runs/r1/reports/summary.json", b'{"ok": true}')
    time.sleep(1.1)
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    time.sleep(1.1)
    src.add_delete_marker("pipeline_runs/r1/audit/audit.pdf")  # the accident
    code, _, d = run_cli(cli_app, "admin", "objects", "versions", "pipeline_runs/r1/audit/audit.pdf", "--json")
    assert code == 0 and d["versions"][0]["delete_marker"] and d["versions"][0]["is_latest"]
    code, _, d = run_cli(cli_app, "admin", "objects", "undelete", "pipeline_runs/r1/audit/audit.pdf", "--json")
    assert code == 0 and d["undeleted"] == 1 and get(src, "pipeline_runs/r1/audit/audit.pdf") == b"%PDF audit"
    code, _, d = run_cli(cli_app, "admin", "objects", "undelete", "pipeline_runs/r1/audit/audit.pdf", "--json")
    assert code == 9  # not deleted any more: nothing to undelete
    # a bad afternoon: overwrite and a new key, then back to T
    put(src, "pipeline_runs/r1/reports/summary.json", b"garbage")
    put(src, "pipeline_runs/r2/models/junk.bin", b"junk")
    code, _, d = run_cli(cli_app, "admin", "objects", "restore", "--at", at, "--dry-run", "--json")
    assert code == 0 and d["dry_run"] and d["plan"]["copy"] == 1 and d["plan"]["delete"] == 1
    assert get(src, "pipeline_runs/r2/models/junk.bin") == b"junk"
    code, out, _ = run_cli(cli_app, "admin", "objects", "restore", "--at", at)
    assert code == 0 and "copy 1" in out
    assert get(src, "pipeline_runs/r1/reports/summary.json") == b'{"ok": true}'
    assert get(src, "pipeline_runs/r2/models/junk.bin") is None
    code, _, _ = run_cli(cli_app, "admin", "objects", "restore", "--at", "yesterday-ish")
    assert code == 2


def test_backup_and_restore_objects(cli_app: typer.Typer, src: Bucket, monkeypatch: pytest.MonkeyPatch,
                                    tmp_path: Path) -> None:
    key = create_key_file(tmp_path / "k" / "repo.key")
    env_for(monkeypatch, src, repo=f"file://{tmp_path / 'repo'}", key_url=str(key.path))
    put(src, "b/1", b"one")
    time.sleep(1.1)
    code, _, d = run_cli(cli_app, "admin", "backup", "objects", "--copy-data", "--json")
    assert code == 0 and d["keys"] == 1 and d["versions_stored"] == 1
    bid = d["id"]
    put(src, "b/1", b"changed")
    code, _, d = run_cli(cli_app, "admin", "restore", "objects", bid, "--dry-run", "--json")
    assert code == 0 and d["counts"]["would_restore"] == 1 and get(src, "b/1") == b"changed"
    code, _, d = run_cli(cli_app, "admin", "restore", "objects", bid, "--json")
    assert code == 0 and get(src, "b/1") == b"one"
    code, _, d = run_cli(cli_app, "admin", "restore", "objects", "20200101T000000Z-objects-000000", "--json")
    assert code == 9


def test_config_and_versioning_errors(cli_app: typer.Typer, seaweed: SeaweedServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, _ = run_cli(cli_app, "admin", "objects", "versions", "x", "--json")
    assert code == 3  # no bucket configured
    plain = new_bucket(seaweed, versioned=False, prefix="cliplain")
    env_for(monkeypatch, plain)
    code, _, _ = run_cli(cli_app, "admin", "objects", "restore", "--at", "2026-01-01T00:00:00Z")
    assert code == 8
