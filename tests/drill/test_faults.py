"""Bad input and faults of a drill (issue 14): a damaged object, targets that are production or
taken, a DR bucket missing objects, and a drill killed mid-way then cleaned up."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

from swarm.sources.postgres.conn import with_dbname
from tests.check.conftest import SWARM
from tests.drill.conftest import DrillDeployment


def _no_drill_left(dd: DrillDeployment, before: set[str]) -> None:
    assert dd.buckets() == before
    left = list(dd.drills_dir().rglob("*")) if dd.drills_dir().exists() else []
    _, _, _, hist = dd.cli("admin", "drill", "history", "--json")
    assert not left, (left, [(h.get("status"), h.get("teardown"), h.get("error")) for h in hist["drills"]])


def test_a_damaged_object_fails_the_drill_names_it_and_is_recorded(dd: DrillDeployment) -> None:
    set_id = dd.backup_set()
    rc, _, err, out = dd.cli("admin", "backups", "show", set_id, "--json")
    assert rc == 0, err
    pg_id = out["source"]["parts"]["postgres"] if "source" in out else out["parts"]["postgres"]
    objs = sorted((p for p in (dd.root / "repo" / "data" / pg_id).rglob("*") if p.is_file()),
                  key=lambda p: p.stat().st_size)
    victim = objs[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    before = dd.buckets()
    rc, _, err, out = dd.cli("admin", "drill", "--set", set_id, "--json")
    assert rc == 1, err
    assert out["verdict"] == "fail" and out["validated"] is False
    assert out["checks"]["repository"]["ok"] is False
    assert victim.name in out["checks"]["repository"]["detail"], out["checks"]["repository"]
    assert out["error"]["error"] == "integrity" and victim.name in out["error"]["message"]
    assert out["checks"]["pg_read"]["ok"] is None  # the ladder stopped at the first failure
    _no_drill_left(dd, before)
    rc, _, err, hist = dd.cli("admin", "drill", "history", "--json")
    rec = hist["drills"][-1]
    assert rec["id"] == out["id"] and rec["verdict"] == "fail" and rec["error"]["error"] == "integrity"


def test_production_targets_are_refused_before_provisioning(dd: DrillDeployment) -> None:
    dd.backup_set()
    before = dd.buckets()
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--target-bucket", dd.d.bucket.bucket, "--json")
    assert rc == 8 and out["error"] == "drill-target-is-production", (err, out)
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--target-db", dd.d.db_url, "--json")
    assert rc == 8 and out["error"] == "drill-target-is-production", (err, out)
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--target-state", str(dd.d.state), "--json")
    assert rc == 8 and out["error"] == "drill-target-is-production", (err, out)
    _no_drill_left(dd, before)
    rc, _, _, hist = dd.cli("admin", "drill", "history", "--json")
    assert hist["drills"] == []  # a refused drill leaves no record


def test_a_taken_port_or_bucket_is_refused_before_provisioning(dd: DrillDeployment) -> None:
    dd.backup_set()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        rc, _, err, out = dd.cli("admin", "drill", "--latest", "--port", str(port), "--json")
    assert rc == 8 and out["error"] == "scratch-taken" and str(port) in out["message"], (err, out)
    taken = "taken-" + secrets.token_hex(4)
    dd.d.client.create_bucket(Bucket=taken)
    dd.d.client.put_object(Bucket=taken, Key="someone-elses", Body=b"x")
    before = dd.buckets()
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--target-bucket", taken, "--json")
    assert rc == 8 and out["error"] == "scratch-taken" and taken in out["message"], (err, out)
    _no_drill_left(dd, before)
    assert dd.d.client.get_object(Bucket=taken, Key="someone-elses")["Body"].read() == b"x"


def test_operator_targets_are_used_and_emptied(dd: DrillDeployment, tmp_path: Path) -> None:
    """--target-db (a scratch server), --target-bucket (an empty bucket), --target-state: the drill's
    database is dropped, the bucket emptied but kept, its state directory removed."""
    dd.backup_set()
    scratch_bucket = "opr-" + secrets.token_hex(4)
    dd.d.client.create_bucket(Bucket=scratch_bucket)
    dd.d.client.put_bucket_versioning(Bucket=scratch_bucket, VersioningConfiguration={"Status": "Enabled"})
    server = with_dbname(dd.d.db_url, "postgres")
    scratch_state = tmp_path / "scratch-dir"
    scratch_state.mkdir()
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--target-db", server, "--target-bucket", scratch_bucket,
                             "--target-state", str(scratch_state), "--tier", "team", "--json")
    assert rc == 0 and out["verdict"] == "pass", (err, out)
    assert out["tier"] == "team" and out["targets"]["rpo_s"] == 86400
    assert not dd.d.client.list_object_versions(Bucket=scratch_bucket).get("Versions")
    assert scratch_bucket in dd.buckets()
    assert list(scratch_state.iterdir()) == []
    import psycopg

    with psycopg.connect(server) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'swarm_drill_%'").fetchall()
    assert rows == []


def test_dr_bucket_missing_objects_fails_naming_how_many(dd: DrillDeployment) -> None:
    c = dd.d.client
    dr = "dr-" + secrets.token_hex(4)
    c.create_bucket(Bucket=dr)
    c.put_bucket_versioning(Bucket=dr, VersioningConfiguration={"Status": "Enabled"})
    keys = sorted(o["Key"] for o in c.list_objects_v2(Bucket=dd.d.bucket.bucket).get("Contents", []))
    for k in keys[2:]:  # the DR copy lacks two objects
        c.copy_object(Bucket=dr, Key=k, CopySource={"Bucket": dd.d.bucket.bucket, "Key": k})
    time.sleep(1.1)
    dd.backup_set()
    before = dd.buckets()
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--from-dr", "--json", SWARM_DR_OBJECTS_BUCKET=dr)
    assert rc == 1, err
    assert out["error"]["error"] == "dr-objects-missing", out["error"]
    assert f"lacks 2 of the {len(keys)} objects" in out["error"]["message"]
    assert [p["ok"] for p in out["phases"] if p["name"] == "objects"] == [False]
    _no_drill_left(dd, before)


def _start_drill(dd: DrillDeployment, *args: str) -> subprocess.Popen[str]:
    env = {**dd.d.env, **dd.repo_env}
    return subprocess.Popen([*SWARM, "admin", "drill", "--latest", "--json", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_scratch(dd: DrillDeployment, proc: subprocess.Popen[str], key: str) -> dict[str, object]:
    """Wait until the running drill's owner.json names ``key`` (that step has begun)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for d in dd.drills_dir().glob("swarm-drill-*") if dd.drills_dir().exists() else []:
            try:
                rec = json.loads((d / "owner.json").read_text())
            except (OSError, ValueError):
                continue
            if rec.get(key):
                return rec
        time.sleep(0.05)
    raise AssertionError(f"the drill never reached {key}")


def _postgres_running_in(base: str) -> bool:
    real = os.path.realpath(base)
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.path.realpath(f"/proc/{pid}/cwd").startswith(real):
                return True
        except OSError:
            continue
    return False


def test_kill_9_mid_drill_then_cleanup_removes_everything(dd: DrillDeployment) -> None:
    dd.backup_set()
    before = dd.buckets()
    proc = _start_drill(dd)
    rec = _wait_for_scratch(dd, proc, "api_pid")  # provisioned, restored, its API starting
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert dd.drills_dir().exists() and any(dd.drills_dir().iterdir())
    assert _postgres_running_in(str(rec["cluster_base"]))
    rc, _, err, hist = dd.cli("admin", "drill", "history", "--json")
    assert hist["drills"][-1]["status"] == "running"
    rc, _, err, out = dd.cli("admin", "drill", "cleanup", "--json")
    assert rc == 0, err
    assert [r["id"] for r in out["removed"]] == [rec["drill_id"]]
    _no_drill_left(dd, before)
    assert not _postgres_running_in(str(rec["cluster_base"]))
    api_pid = int(str(rec["api_pid"]))
    assert not Path(f"/proc/{api_pid}").exists() or b"serve" not in Path(f"/proc/{api_pid}/cmdline").read_bytes()
    rc, _, err, hist = dd.cli("admin", "drill", "history", "--json")
    assert hist["drills"][-1]["status"] == "killed" and hist["drills"][-1]["error"]["error"] == "drill-killed"


def test_sigterm_mid_drill_tears_down_and_records_it(dd: DrillDeployment) -> None:
    dd.backup_set()
    before = dd.buckets()
    proc = _start_drill(dd)
    _wait_for_scratch(dd, proc, "database_url")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    _no_drill_left(dd, before)
    _, _, _, hist = dd.cli("admin", "drill", "history", "--json")
    assert hist["drills"][-1]["status"] == "interrupted" and hist["drills"][-1]["error"]["error"] == "interrupted"
