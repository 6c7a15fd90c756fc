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


def test_keep_leaves_it_reachable_until_cleanup_by_id(dd: DrillDeployment) -> None:
    import psycopg

    dd.backup_set()
    before = dd.buckets()
    rc, stdout, err, _ = dd.cli("admin", "drill", "--latest", "--keep")
    assert rc == 0, err
    assert "swarm admin drill cleanup --id" in stdout and "export SWARM_DB_URL=" in stdout
    rc, _, err, hist = dd.cli("admin", "drill", "history", "--json")
    assert "***" in hist["drills"][-1]["kept"]["env"]["SWARM_DB_URL"]  # no password in the repository
    kept = {"id": hist["drills"][-1]["id"], "kept": {"bucket": hist["drills"][-1]["kept"]["bucket"], "env": {
        "SWARM_DB_URL": stdout.split("export SWARM_DB_URL=", 1)[1].split()[0]}}}
    assert kept["kept"]["bucket"] in dd.buckets()
    with psycopg.connect(kept["kept"]["env"]["SWARM_DB_URL"]) as conn:
        assert conn.execute("SELECT count(*) FROM pipelines").fetchone()[0] > 0  # type: ignore[index]
    # a plain cleanup (and the next drill's sweep) leaves a kept drill alone
    rc, _, err, out = dd.cli("admin", "drill", "cleanup", "--json")
    assert rc == 0 and out["removed"] == [], (err, out)
    rc, _, err, out = dd.cli("admin", "drill", "cleanup", "--id", kept["id"], "--json")
    assert rc == 0 and [r["id"] for r in out["removed"]] == [kept["id"]], (err, out)
    assert dd.buckets() == before and not any(dd.drills_dir().iterdir())


def test_state_dir_is_swarm_home_the_scratch_state_goes_elsewhere(dd: DrillDeployment) -> None:
    """With SWARM_STATE_DIR unset, the state directory is SWARM_HOME, where drills keep their
    directories: the scratch state directory is then made outside it (never inside production's)."""
    import tempfile
    from pathlib import Path

    env = {"SWARM_HOME": str(dd.d.state), "SWARM_STATE_DIR": ""}
    rc, _, err, _ = dd.cli("admin", "backup", "set", "--json", **env)
    assert rc == 0, err
    rc, _, err, out = dd.cli("admin", "drill", "--latest", "--json", **env)
    assert rc == 0 and out["verdict"] == "pass", (err, out.get("error") if out else None)
    assert f"state {tempfile.gettempdir()}" in out["phases"][0]["detail"]
    assert not (Path(tempfile.gettempdir()) / f"swarm-drill-{out['id']}").exists()
