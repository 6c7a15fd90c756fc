"""`swarm --repo NAME admin drill --latest --from-dr`: the primary region is gone (its repository
moved away, its bucket deleted); the drill restores PostgreSQL and the state from the copy of the
repository and the bucket from the DR bucket, passes, writes nothing where the primary repository
was, and its record (in the copy) names the copy it ran from; `drill history` shows it."""
from __future__ import annotations

import json
import secrets
import subprocess

import tomli_w

from swarm.crypto.keys import create_key_file
from tests.drill.conftest import DrillDeployment


def _delete_bucket(client, bucket: str) -> None:  # type: ignore[no-untyped-def]
    resp = client.list_object_versions(Bucket=bucket)
    for v in resp.get("Versions", []) + resp.get("DeleteMarkers", []):
        client.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    client.delete_bucket(Bucket=bucket)


def test_drill_from_dr_with_a_copy_reads_only_the_copy_and_the_dr_bucket(dd: DrillDeployment) -> None:
    root = dd.root
    primary, far = root / "repo", root / "far"
    far_key = create_key_file(root / "keys" / "far.key")
    cfg = root / "swarm.toml"
    cfg.write_text(tomli_w.dumps({"repository": {
        "url": f"file://{primary}", "key": dd.repo_env["SWARM_KEY_URL"],
        "copies": [{"name": "far", "url": f"file://{far}", "key": f"file://{far_key.path}"}]}}))
    c = dd.d.client
    dr = "dr-" + secrets.token_hex(4)
    c.create_bucket(Bucket=dr)
    c.put_bucket_versioning(Bucket=dr, VersioningConfiguration={"Status": "Enabled"})
    env = {"SWARM_CONFIG": str(cfg), "SWARM_DR_OBJECTS_BUCKET": dr}

    def cli(*args: str) -> tuple[int, str, str, object]:
        return dd.d.cli(*args, **env)

    rc, _, err, _ = cli("admin", "objects", "replicate", "--json")
    assert rc == 0, err
    rc, _, err, out = cli("admin", "backup", "set", "--json")
    assert rc == 0, err
    set_id = out["id"]  # type: ignore[index]
    rc, _, err, out = cli("admin", "repo", "copy", "--json")
    assert rc == 0 and out["ok"], (err, out)  # type: ignore[index]
    # the primary region is lost: its repository and its bucket are gone
    primary.rename(root / "repo-gone")
    _delete_bucket(c, dd.d.bucket.bucket)
    rc, _, err, out = cli("admin", "backups", "list", "--json")
    assert rc != 0  # nothing left of the primary repository
    before = dd.buckets()
    rc, _, err, out = cli("--repo", "far", "admin", "drill", "--latest", "--from-dr", "--json")
    assert rc == 0, (err, out)
    d: dict = out  # type: ignore[assignment]
    assert d["verdict"] == "pass" and d["validated"] is True, d
    assert d["source"]["set"] == set_id and d["source"]["from_dr"] is True
    assert d["source"]["copy"] == "far" and d["source"]["repository"] == f"file://{far}"
    assert not primary.exists()  # nothing was written where the primary repository was
    assert dd.buckets() == before
    # the record is in the copy, and names it
    rc, _, err, hist = cli("--repo", "far", "admin", "drill", "history", "--json")
    assert rc == 0, err
    rec = hist["drills"][-1]  # type: ignore[index]
    assert rec["id"] == d["id"] and rec["source"]["copy"] == "far" and rec["source"]["from_dr"] is True
    text = subprocess.run([*_swarm(), "--repo", "far", "admin", "drill", "history"], capture_output=True, text=True,
                          env={**dd.d.env, **env, "COLUMNS": "200"}, timeout=120, check=False)
    assert text.returncode == 0, text.stderr
    assert "copy far + DR bucket" in text.stdout


def _swarm() -> list[str]:
    from tests.check.conftest import SWARM

    return list(SWARM)


def test_history_json_of_an_older_record_without_a_copy_says_primary() -> None:
    from swarm.ui.views.drill import _repository

    assert _repository({"set": "x", "from_dr": False}) == "primary"
    assert _repository({"set": "x", "from_dr": True, "copy": None}) == "primary + DR bucket"
    assert json.loads(json.dumps({"copy": "far"}))["copy"] == "far"
