"""``swarm admin check stack`` end to end, against real PostgreSQL, SeaweedFS and a state directory:
a seeded deployment agrees; each kind of disagreement is found and named; bad input gives the
documented exit codes."""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

from swarm.errors import ExitCode
from swarm.platform.seed import PIPELINES
from swarm.services.check import check_stack
from swarm.services.reporting import RecordingReporter
from swarm.sources.postgres.conn import connect

from .conftest import Deployment

CHECK = ("admin", "check", "stack")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def artefacts(d: Deployment) -> dict[str, tuple[int, str]]:
    with connect(d.db_url) as conn:
        return {r[0]: (int(r[1]), r[2]) for r in conn.execute("SELECT key, size, sha256 FROM run_artefacts")}


def test_a_seeded_deployment_agrees(deployment: Deployment) -> None:
    d = deployment
    recorded = artefacts(d)
    assert sorted(recorded) == d.keys() and len(recorded) == 5 * len(d.run_rows)  # seed records every object
    code, out, err, data = d.cli(*CHECK, "--json")
    assert code == 0, (out, err)
    assert data["ok"] is True and data["checksums"] == "read" and data["checksums_verified"] is True
    assert data["findings"] == []
    assert all(v["count"] == 0 for v in data["summary"].values())
    c = data["checked"]
    assert c["artefacts"] == c["artefacts_agreeing"] == c["objects"] == len(recorded)
    assert c["runs"] == len(d.run_rows) and c["batch_dirs"] == len(d.run_rows) and c["cron_jobs"] == len(PIPELINES)
    assert data["objects_read"] == len(recorded) and data["bytes_read"] == sum(s for s, _ in recorded.values())
    assert data["target"]["bucket"]["bucket"] == d.bucket.bucket and data["target"]["state_dir"] == str(d.state)
    code, out, _, _ = d.cli(*CHECK)
    assert code == 0 and "OK" in out and "agree" in out


def test_flags_name_another_deployment(deployment: Deployment) -> None:
    """--db-url, --bucket and --state-dir override the configured deployment."""
    d = deployment
    code, out, err, data = d.cli(*CHECK, "--db-url", d.db_url, "--bucket", d.bucket.bucket, "--state-dir",
                                 str(d.state), "--json", SWARM_DB_URL="postgresql://nobody@127.0.0.1:1/none",
                                 SWARM_OBJECTS_BUCKET="no-such-bucket", SWARM_STATE_DIR="/nonexistent")
    assert code == 0, (out, err)
    assert data["ok"]


def test_a_deleted_object_is_named(deployment: Deployment) -> None:
    d = deployment
    key = d.keys()[3]
    size = artefacts(d)[key][0]
    d.client.delete_object(Bucket=d.bucket.bucket, Key=key)
    code, out, err, data = d.cli(*CHECK, "--json")
    assert code == int(ExitCode.FAILED), (out, err)
    assert data["ok"] is False
    assert [f["subject"] for f in data["findings"]] == [key]
    assert data["findings"][0]["category"] == "missing_object"
    assert data["summary"]["missing_object"] == {"count": 1, "bytes": size}
    code, out, err, _ = d.cli(*CHECK)
    assert code == 1 and "FAILED" in out and key in out and "hint:" in err


def test_changed_bytes_of_the_same_size_are_a_checksum_mismatch(deployment: Deployment) -> None:
    d = deployment
    key = next(k for k in d.keys() if k.endswith("summary.json"))
    body = d.client.get_object(Bucket=d.bucket.bucket, Key=key)["Body"].read()
    changed = body.replace(b"accuracy", b"ACCURACY")
    assert len(changed) == len(body) and changed != body
    d.client.put_object(Bucket=d.bucket.bucket, Key=key, Body=changed)
    code, out, err, data = d.cli(*CHECK, "--json")
    assert code == 1, (out, err)
    assert [(f["category"], f["subject"]) for f in data["findings"]] == [("checksum_mismatch", key)]
    f = data["findings"][0]
    assert f["expected_sha256"] == artefacts(d)[key][1] and f["actual_sha256"] != f["expected_sha256"]
    # sizes alone cannot see it: --sizes-only passes, and says the checksums were not verified
    code, _, _, data = d.cli(*CHECK, "--sizes-only", "--json")
    assert code == 0 and data["checksums"] == "sizes-only" and data["checksums_verified"] is False
    assert data["objects_read"] == 0 and data["summary"]["unverified"]["count"] == data["checked"]["artefacts"]


def test_a_truncated_object_is_a_size_mismatch(deployment: Deployment) -> None:
    d = deployment
    key = next(k for k in d.keys() if k.endswith("model.safetensors"))
    d.client.put_object(Bucket=d.bucket.bucket, Key=key, Body=b"short")
    code, _, _, data = d.cli(*CHECK, "--json")
    assert code == 1
    assert [(f["category"], f["subject"], f["actual_size"]) for f in data["findings"]] == [
        ("size_mismatch", key, 5)]


def test_a_batch_dir_of_no_run_is_named(deployment: Deployment) -> None:
    d = deployment
    (d.state / "batch" / "run_doesnotexist").mkdir()
    (d.state / "batch" / "notes.txt").write_text("not a run dir: ignored")
    (d.state / "batch" / "link").symlink_to(d.state / "batch" / "run_doesnotexist")  # not a directory: ignored
    code, out, err, data = d.cli(*CHECK, "--json")
    assert code == 1, (out, err)
    assert [(f["category"], f["subject"]) for f in data["findings"]] == [("orphan_batch_dir", "run_doesnotexist")]
    code, out, _, _ = d.cli(*CHECK)
    assert "batch/run_doesnotexist/" in out


def test_a_cron_job_of_no_pipeline_is_named(deployment: Deployment) -> None:
    d = deployment
    jobs_file = d.state / "cron" / "jobs.json"
    doc = json.loads(jobs_file.read_text())
    doc["jobs"].append({"id": "job-ghost", "pipeline": "ghost-pipeline", "schedule": "0 * * * *", "enabled": True})
    jobs_file.write_text(json.dumps(doc))
    code, out, err, data = d.cli(*CHECK, "--json")
    assert code == 1, (out, err)
    assert [(f["category"], f["subject"], f["pipeline"]) for f in data["findings"]] == [
        ("orphan_cron_job", "job-ghost", "ghost-pipeline")]
    jobs_file.write_text("{not json")
    code, _, _, data = d.cli(*CHECK, "--json")
    assert code == 1 and [f["category"] for f in data["findings"]] == ["state_unreadable"]


def test_orphan_objects_are_listed_and_unrecorded_ones_do_not_fail(deployment: Deployment) -> None:
    d = deployment
    orphan = "pipeline_runs/run_gone000000/reports/summary.json"
    d.client.put_object(Bucket=d.bucket.bucket, Key=orphan, Body=b"{}")
    d.client.put_object(Bucket=d.bucket.bucket, Key="elsewhere/not-checked.txt", Body=b"x")
    extra = f"pipeline_runs/{d.run_rows[0]['id']}/reports/late.md"
    d.client.put_object(Bucket=d.bucket.bucket, Key=extra, Body=b"written, not yet recorded")
    code, out, err, data = d.cli(*CHECK, "--json")
    assert code == 1, (out, err)
    assert [(f["category"], f["subject"]) for f in data["findings"]] == [("orphan_object", orphan),
                                                                         ("unrecorded_object", extra)]
    assert data["summary"]["orphan_object"] == {"count": 1, "bytes": 2}
    d.client.delete_object(Bucket=d.bucket.bucket, Key=orphan)
    code, out, _, _ = d.cli(*CHECK)
    assert code == 0 and extra in out and "not a failure" in out


def test_the_service_returns_a_result_for_restores(deployment: Deployment) -> None:
    """What `restore set` / `restore stack` embed under `integrity`: a plain dict; progress is reported."""
    d = deployment
    d.client.delete_object(Bucket=d.bucket.bucket, Key=d.keys()[0])
    rec = RecordingReporter()
    res = check_stack(d.db_url, d.bucket, d.state, reporter=rec, workers=2)
    assert not res.ok
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["ok"] is False and doc["summary"]["missing_object"]["count"] == 1
    assert {"target", "checked", "summary", "findings", "checksums", "seconds", "timings"} <= set(doc)
    assert any("reading" in s and "SHA-256" in s for s in rec.stages)
    assert rec.done == res.bytes_read > 0


# ---- bad input --------------------------------------------------------------------------------------
def test_unreachable_database(deployment: Deployment) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/swarm"
    code, out, err, data = deployment.cli(*CHECK, "--db-url", url, "--json")
    assert code == int(ExitCode.UNAVAILABLE), (out, err)
    assert data["error"] == "database-unavailable" and "cannot connect to PostgreSQL" in data["message"]


def test_a_database_without_run_artefacts_is_refused(deployment: Deployment) -> None:
    with connect(deployment.db_url) as conn:
        conn.execute("DROP TABLE run_artefacts")
        conn.execute("DELETE FROM schema_migrations WHERE version = 2")
    code, out, err, data = deployment.cli(*CHECK, "--json")
    assert code == int(ExitCode.REFUSED), (out, err)
    assert "schema version 1" in data["message"] and "migrations" in data["hint"]


def test_unreachable_bucket(deployment: Deployment) -> None:
    code, out, err, data = deployment.cli(*CHECK, "--json", SWARM_OBJECTS_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert code == int(ExitCode.UNAVAILABLE), (out, err)
    assert "cannot reach" in data["message"]


def test_missing_bucket(deployment: Deployment) -> None:
    code, out, err, data = deployment.cli(*CHECK, "--bucket", "no-such-bucket-here", "--json")
    assert code == int(ExitCode.NOT_FOUND), (out, err)
    assert "does not exist" in data["message"]


def test_missing_state_dir(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment
    code, out, err, data = d.cli(*CHECK, "--state-dir", str(tmp_path / "nowhere"), "--json")
    assert code == int(ExitCode.NOT_FOUND), (out, err)
    assert data["error"] == "state-dir-missing" and "nowhere" in data["message"]
    shutil.rmtree(d.state)
    d.state.write_text("a file, not a directory")
    code, _, err, _ = d.cli(*CHECK)
    assert code == int(ExitCode.NOT_FOUND) and "not a directory" in err


def test_no_database_configured(deployment: Deployment) -> None:
    code, _, err, _ = deployment.cli(*CHECK, SWARM_DB_URL="")
    assert code == int(ExitCode.CONFIG), err


def test_dev_seed_records_what_it_writes(deployment: Deployment) -> None:
    """`swarm dev seed` (the command) fills run_artefacts for every object it writes: the stores agree."""
    d = deployment
    before = len(artefacts(d))
    code, out, err, data = d.cli("dev", "seed", "--runs", "2", "--size-mb", "0", "--model-kb", "1", "--json")
    assert code == 0, (out, err)
    assert len(artefacts(d)) == before + data["objects"] == len(d.keys())
    code, out, err, data = d.cli(*CHECK, "--json")
    assert code == 0 and data["ok"], data["findings"]
