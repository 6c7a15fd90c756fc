"""The command line as a public contract: exit codes and --json output, end to end on a
dev stack started through the CLI itself."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from swarm.platform.schema import latest_version

pytestmark = pytest.mark.integration
SWARM = str(Path(sys.executable).parent / "swarm")


def run(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([SWARM, *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == expect, f"swarm {' '.join(args)} exited {r.returncode}, expected {expect}\n" \
                                   f"stdout: {r.stdout[-2000:]}\nstderr: {r.stderr[-2000:]}"
    return r


def run_json(env: dict[str, str], *args: str, expect: int = 0) -> Any:
    return json.loads(run(env, *args, "--json", expect=expect).stdout)


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("cli-home")
    home.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "AWS_", "PG"))}
    env.update(HOME=str(home), SWARM_HOME=str(home / ".swarm"), COLUMNS="200")
    info = run_json(env, "dev", "up")
    env["_DB_URL"] = info["db_url"]
    try:
        yield env
    finally:
        subprocess.run([SWARM, "dev", "down", "--purge"], env=env, capture_output=True, timeout=120, check=False)


def test_dev_up_prints_what_a_client_needs(stack_env: dict[str, str]) -> None:
    info = run_json(stack_env, "dev", "up")  # idempotent
    for key in ("db_url", "objects_endpoint", "objects_bucket", "objects_access_key", "objects_secret_key",
                "state_dir", "repo", "dr_objects_endpoint", "dr_objects_bucket"):
        assert info[key], key
    assert info["objects_endpoint"].startswith("http://127.0.0.1:")
    assert info["db_url"] == stack_env["_DB_URL"]
    key = Path(info["key_url"].removeprefix("file://"))
    assert key.stat().st_mode & 0o777 == 0o600
    st = run_json(stack_env, "dev", "status")
    assert st["postgres"]["running"] and st["seaweedfs"]["running"] and st["seaweedfs_dr"]["running"]


def test_backup_list_show_verify_restore(stack_env: dict[str, str]) -> None:
    seeded = run_json(stack_env, "dev", "seed", "--runs", "15", "--size-mb", "1")
    assert seeded["runs"] == 15 and seeded["objects"] == 75
    b = run_json(stack_env, "admin", "backup", "postgres", "--jobs", "2")
    assert b["id"] and b["tables"] >= 8 and b["stored_size"] < b["size"]
    listed = run_json(stack_env, "admin", "backups", "list")
    assert b["id"] in [x["id"] for x in listed]
    shown = run_json(stack_env, "admin", "backups", "show", b["id"])
    assert shown["source"]["row_counts"]["public.runs"] >= 15
    v = run_json(stack_env, "admin", "verify", b["id"], "--restore-test")
    assert v["ok"] is True and v["restore_test"]["validated"] is True

    target = stack_env["_DB_URL"].rsplit("/", 1)[0] + "/cli_restored"
    dry = run_json(stack_env, "admin", "restore", "postgres", b["id"], "--target-db", target, "--create", "--dry-run")
    assert dry["dry_run"] is True
    r = run_json(stack_env, "admin", "restore", "postgres", b["id"], "--target-db", target, "--create")
    assert r["validated"] is True
    assert all(t["expected"] == t["restored"] for t in r["tables"].values())
    # the same target again: not empty → refused with exit 8, nothing changed
    err = run_json(stack_env, "admin", "restore", "postgres", b["id"], "--target-db", target, expect=8)
    assert err["error"] == "target-not-empty"
    human = run(stack_env, "admin", "restore", "postgres", b["id"], "--target-db", target, expect=8)
    assert "hint:" in human.stderr and "--force" in human.stderr
    # the restored database serves the API
    from swarm.platform.api import SwarmAPI

    status, body = SwarmAPI(target).pipelines(100, 0)
    assert status == 200 and body["total"] == 12


def test_exit_codes_for_bad_input(stack_env: dict[str, str], tmp_path: Path) -> None:
    b = run_json(stack_env, "admin", "backup", "postgres")
    assert run_json(stack_env, "admin", "backups", "show", "20990101T000000Z-pg-logical-000000", expect=9)["error"]
    assert run_json(stack_env, "admin", "verify", "not-an-id", expect=9)["error"] == "not-found"
    # wrong key: exit 4, says which key the repository needs
    other = tmp_path / "other.key"
    run(stack_env, "admin", "keys", "init", "--path", str(other))
    env = dict(stack_env, SWARM_KEY_URL=str(other))
    err = run_json(env, "admin", "backups", "list", expect=4)
    assert "wrong key" in err["message"]
    # a flipped byte: verify exits 1 and names the object
    repo_root = Path(run_json(stack_env, "dev", "up")["repo"].removeprefix("file://"))
    victim = sorted((repo_root / "data" / b["id"] / "tables").glob("*.copy"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    v = run_json(stack_env, "admin", "verify", b["id"], expect=1)
    assert v["ok"] is False and v["problems"][0]["where"] == f"tables/{victim.name}"
    # unreachable repository: exit 7 with a clear message
    env = dict(stack_env, SWARM_BACKUP_REPO="s3://nowhere/x", SWARM_REPO_S3_ENDPOINT="http://127.0.0.1:9",
               SWARM_REPO_S3_ACCESS_KEY="a", SWARM_REPO_S3_SECRET_KEY="b")
    err = run_json(env, "admin", "backups", "list", expect=7)
    assert "cannot reach" in err["message"]
    # nothing configured at all: exit 3 with the variable to set
    bare = {k: v for k, v in stack_env.items() if k not in ("SWARM_HOME",)}
    bare["SWARM_HOME"] = str(tmp_path / "empty-home")
    err = run_json(bare, "admin", "backup", "postgres", expect=3)
    assert "SWARM_DB_URL" in err["hint"]


def test_second_backup_while_one_runs_is_refused(stack_env: dict[str, str]) -> None:
    from swarm.config import load_settings
    from swarm.services.context import open_repository

    os.environ["SWARM_HOME"] = stack_env["SWARM_HOME"]
    repo = open_repository(load_settings())
    with repo.lock("backup-postgres", command="swarm admin backup postgres (test holder)"):
        err = run_json(stack_env, "admin", "backup", "postgres", expect=6)
    assert "test holder" in err["message"] and f"pid {os.getpid()}" in err["message"]


def test_api_serve(stack_env: dict[str, str]) -> None:
    import time
    import urllib.request

    from swarm.sources.netutil import free_port

    run_id = run_json(stack_env, "dev", "seed", "--runs", "1", "--size-mb", "0")["run_ids"][0]
    port = free_port()
    proc = subprocess.Popen([SWARM, "api", "serve", "--port", str(port)], env=stack_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        body = None
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    body = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.1)
        assert body == {"status": "ok", "database": "ok", "schema_version": latest_version()}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/pipelines", timeout=5) as resp:
            pipes = json.loads(resp.read())
        assert pipes["total"] == len(pipes["items"]) >= 12
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/runs?limit=1000", timeout=5) as resp:
            runs = json.loads(resp.read())
        assert runs["total"] >= 1 and run_id in [r["id"] for r in runs["items"]]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/runs/{run_id}", timeout=5) as resp:
            run_row = json.loads(resp.read())
        assert run_row["id"] == run_id and run_row["events"] >= 4
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/runs/run_nope", timeout=5)
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    finally:
        proc.terminate()
        proc.wait(10)


def test_dev_down_stops_exactly_its_processes(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    home.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "AWS_", "PG"))}
    env.update(HOME=str(home), SWARM_HOME=str(home / ".swarm"))
    run_json(env, "dev", "up")
    st = run_json(env, "dev", "status")
    pids = [st["postgres"]["pid"], st["seaweedfs"]["pid"], st["seaweedfs_dr"]["pid"]]
    down = run_json(env, "dev", "down")
    assert set(down["stopped"]) == {"postgres", "seaweedfs", "seaweedfs-dr"}
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or b"zombie" in Path(f"/proc/{pid}/status").read_bytes().lower()
    st = run_json(env, "dev", "status")
    assert not st["postgres"]["running"] and not st["seaweedfs"]["running"]
    run_json(env, "dev", "down", "--purge")
    assert not (home / ".swarm" / "dev").exists()
