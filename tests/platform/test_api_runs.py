"""GET /api/v1/runs/{id} lists the run's artefacts (run_artefacts, schema version 2)."""
from __future__ import annotations

import hashlib

from swarm.platform.seed import record_artefacts
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import connect

from ..conftest import new_database
from .test_api_security import get, serving


def test_a_run_lists_its_artefacts(pg_cluster: LocalCluster) -> None:
    url = new_database(pg_cluster, runs=3, size_mb=0.05)
    with connect(url) as conn:
        run_id, other = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id LIMIT 2").fetchall()]
    bodies = {f"pipeline_runs/{run_id}/reports/report.md": b"# report\n",
              f"pipeline_runs/{run_id}/models/model.safetensors": bytes(1000)}
    record_artefacts(url, [(run_id, k, b) for k, b in bodies.items()]
                     + [(other, f"pipeline_runs/{other}/x.json", b"{}")])
    with serving(url) as server:
        status, body = get(server, f"/api/v1/runs/{run_id}", {"Host": "localhost"})
        assert status == 200, body
        assert body["id"] == run_id and body["artefact_prefix"] == f"pipeline_runs/{run_id}/"
        assert body["artefacts"] == [{"key": k, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()}
                                     for k, b in sorted(bodies.items())]
        status, body = get(server, f"/api/v1/runs/{other}", {"Host": "localhost"})
        assert status == 200 and [a["key"] for a in body["artefacts"]] == [f"pipeline_runs/{other}/x.json"]
        status, body = get(server, "/api/v1/runs/run_nosuchrun", {"Host": "localhost"})
        assert status == 404 and body["error"] == "not-found"


def test_a_run_without_artefacts_and_an_old_schema(pg_cluster: LocalCluster) -> None:
    url = new_database(pg_cluster, runs=1, size_mb=0.01)
    with connect(url) as conn:
        run_id = conn.execute("SELECT id FROM runs").fetchone()[0]
    with serving(url) as server:
        status, body = get(server, f"/api/v1/runs/{run_id}", {"Host": "localhost"})
        assert status == 200 and body["artefacts"] == []
        with connect(url) as conn:  # a database from before schema version 2 answers null, not an error
            conn.execute("DROP TABLE run_artefacts")
        status, body = get(server, f"/api/v1/runs/{run_id}", {"Host": "localhost"})
        assert status == 200 and body["artefacts"] is None
