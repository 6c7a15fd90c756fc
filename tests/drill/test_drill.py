"""`swarm admin drill` end to end on real PostgreSQL and SeaweedFS: a set restored into scratch,
validated rung by rung, torn down, measured, and recorded in the repository's history."""
from __future__ import annotations

from tests.drill.conftest import DrillDeployment


def test_drill_latest_passes_tears_down_and_is_recorded(dd: DrillDeployment) -> None:
    set_id = dd.backup_set()
    before = dd.buckets()
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--json")
    assert rc == 0, err
    assert out["verdict"] == "pass" and out["validated"] is True, out
    assert out["source"]["set"] == set_id and out["tier"] == "enterprise"
    assert out["rto_s"] > 0 and out["rpo_s"] >= 0
    assert [p["name"] for p in out["phases"]] == ["provision", "database", "objects", "state", "api", "validation"]
    assert all(p["ok"] for p in out["phases"])
    for name, c in out["checks"].items():
        assert c["ok"] is True, (name, c)
    assert out["checks"]["api_pipelines"]["found"]["pipelines"] == out["checks"]["api_pipelines"]["expected"][
        "pipelines"] > 0
    # torn down: no scratch bucket, no drill directory
    assert dd.buckets() == before
    assert not any(dd.drills_dir().iterdir())
    rc, _, err, hist = dd.cli("admin", "drill", "history", "--json")
    assert rc == 0, err
    assert [h["id"] for h in hist["drills"]] == [out["id"]]
    assert hist["drills"][0]["verdict"] == "pass" and hist["drills"][0]["status"] == "finished"
