"""prod → scrubbed export → empty dev: the run arrives whole, and no PII arrives with it."""
from __future__ import annotations

import json
import re
import tarfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from swarm.errors import RefusedError, SwarmError
from swarm.model.archive import RunManifest
from swarm.platform.api import make_server
from swarm.scrub import VERSION as scrub_version
from swarm.scrub import Scrubber
from swarm.services.transfer.export import export_run
from swarm.services.transfer.imports import import_run
from swarm.services.transfer.trust import ExportSigningKey, Trust
from swarm.sources.postgres.conn import connect

from .conftest import Stack, objects, state

pytestmark = pytest.mark.integration
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def rows_of(db_url: str, run_id: str) -> dict[str, list[dict[str, Any]]]:
    with connect(db_url) as conn:
        def q(sql: str) -> list[dict[str, Any]]:
            return [r[0] for r in conn.execute(sql, (run_id,)).fetchall()]
        return {
            "runs": q("SELECT row_to_json(t) FROM runs t WHERE id = %s"),
            "run_events": q("SELECT row_to_json(t) FROM run_events t WHERE run_id = %s ORDER BY seq"),
            "approvals": q("SELECT row_to_json(t) FROM approvals t WHERE run_id = %s ORDER BY id"),
            "denials": q("SELECT row_to_json(t) FROM denials t WHERE run_id = %s ORDER BY id"),
        }


def pii_values(prod: Stack, run_id: str) -> list[str]:
    p = prod.persona(run_id)
    c, a = p.card, p.aadhaar
    return [p.email, p.phone, c, f"{c[:4]} {c[4:8]} {c[8:12]} {c[12:]}", a, f"{a[:4]} {a[4:8]} {a[8:]}", p.ssn]


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_scrubbed_round_trip(prod: Stack, dev: Stack, run_id: str, scrubbed_archive: Path, dev_trust: Trust) -> None:
    m = RunManifest.from_bytes(tarfile.open(scrubbed_archive).extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert m.scrubbed and not m.contains_pii and m.run_id == run_id
    assert m.scrub["scrubber_version"].startswith(f"{scrub_version} (swarm ")
    assert m.scrub["report"]["total"] > 0 and "EMAIL" in m.scrub["report"]["by_type"]
    assert any(p.startswith("rows/run_events.payload:$") for p in m.scrub["report"]["by_path"])
    assert any(p.startswith("objects/conversations/") for p in m.scrub["report"]["by_path"])
    assert m.scrub["objects"]["left_out_unscrubbable"] == ["audit/audit.pdf"]
    assert m.scrub["objects"]["kept_models"] == ["models/model.safetensors"]
    # the manifest never holds a value
    text = tarfile.open(scrubbed_archive).extractfile("manifest.json").read().decode()  # type: ignore[union-attr]
    for v in pii_values(prod, run_id):
        assert v not in text

    res = import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust)
    assert res.plan.mode == "new" and res.pipeline == "inserted"
    src, dst = rows_of(prod.db_url, run_id), rows_of(dev.db_url, run_id)
    # structure intact
    for table in src:
        assert len(src[table]) == len(dst[table]), table
    assert len(dst["run_events"]) > 20
    changed = 0
    for a, b in zip(src["run_events"], dst["run_events"], strict=True):
        assert (a["seq"], a["type"], a["ts"]) == (b["seq"], b["type"], b["ts"])
        assert set(a["payload"]) == set(b["payload"])
        if a["payload"] != b["payload"]:
            changed += 1
            assert a["type"] == "llm.call"  # only the events that carry text changed
            assert a["payload"]["model"] == b["payload"]["model"]
            assert a["payload"]["usage"] == b["payload"]["usage"]
            json.loads(b["payload"]["tool_calls"][0]["arguments"])  # nested JSON still valid
        if a["type"] in ("metric", "checkpoint", "tool.result"):
            assert a["payload"] == b["payload"]
    assert changed > 0
    run_a, run_b = src["runs"][0], dst["runs"][0]
    assert {k: run_a[k] for k in ("pipeline_id", "status", "params", "artefact_prefix", "started_at")} == \
           {k: run_b[k] for k in ("pipeline_id", "status", "params", "artefact_prefix", "started_at")}

    # no PII anywhere: the persona's values, any email, and nothing the detectors still find
    dumped = json.dumps(dst, ensure_ascii=False)
    objs = objects(dev.bucket)
    assert sorted(k.split("/", 2)[2] for k in objs) == ["conversations/conv-0001.jsonl", "models/model.safetensors",
                                                        "reports/report.md", "reports/summary.json"]
    texts = [dumped] + [v.decode() for k, v in objs.items() if not k.endswith(".safetensors")]
    for t in texts:
        for v in pii_values(prod, run_id):
            assert v not in t
        assert not EMAIL_RE.search(t), EMAIL_RE.search(t)
        check = Scrubber(b"check" * 8)
        check.scrub(t)
        assert check.report.total == 0, check.report.to_dict()
    model_key = next(k for k in objs if k.endswith(".safetensors"))
    src_model = prod.bucket.client.get_object(Bucket=prod.bucket.name, Key=model_key)["Body"].read()
    assert objs[model_key] == src_model  # models are kept as they are
    assert dev.bucket.tags(model_key) == {"swarm-class": "model"}
    json.loads(objs[next(k for k in objs if k.endswith("summary.json"))])
    for line in objs[next(k for k in objs if k.endswith(".jsonl"))].decode().splitlines():
        json.loads(line)

    # served by the read API
    server = make_server(dev.db_url, port=0)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        port = server.server_address[1]
        status, body = get_json(f"http://127.0.0.1:{port}/api/v1/runs/{run_id}")
        assert status == 200 and body["id"] == run_id and body["events"] == len(src["run_events"])
    finally:
        server.shutdown()
        server.server_close()

    # a second import of the same run is refused and changes nothing
    before = state(dev)
    with pytest.raises(RefusedError, match="already exists"):
        import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust)
    assert state(dev) == before


def test_replace_and_new_id(prod: Stack, dev: Stack, run_id: str, scrubbed_archive: Path, dev_trust: Trust) -> None:
    import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust)
    prefix = f"pipeline_runs/{run_id}/"
    dev.bucket.client.put_object(Bucket=dev.bucket.name, Key=prefix + "stale.txt", Body=b"old")
    with connect(dev.db_url) as conn:
        conn.execute("UPDATE runs SET status = 'cancelled' WHERE id = %s", (run_id,))
        n_events = conn.execute("SELECT count(*) FROM run_events").fetchone()[0]  # type: ignore[index]

    dry = import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust, replace=True, dry_run=True)
    assert dry.dry_run and dry.plan.mode == "replace" and dry.plan.stale_objects == [prefix + "stale.txt"]
    res = import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust, replace=True)
    assert res.rows_deleted["runs"] == 1 and res.stale_deleted == 1 and res.pipeline == "existing"
    with connect(dev.db_url) as conn:
        status = conn.execute("SELECT status FROM runs WHERE id = %s", (run_id,)).fetchone()[0]  # type: ignore[index]
        assert status == rows_of(prod.db_url, run_id)["runs"][0]["status"]
        assert conn.execute("SELECT count(*) FROM run_events").fetchone()[0] == n_events  # type: ignore[index]
    assert prefix + "stale.txt" not in objects(dev.bucket)

    res2 = import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust, new_id=True, fresh_id="run_00000000aa")
    new = res2.plan.run_id
    assert new == "run_00000000aa" and res2.plan.mode == "new-id"
    a, b = rows_of(dev.db_url, run_id), rows_of(dev.db_url, new)
    assert len(a["run_events"]) == len(b["run_events"]) and b["runs"][0]["artefact_prefix"] == f"pipeline_runs/{new}/"
    assert [e["payload"] for e in a["run_events"]] == [e["payload"] for e in b["run_events"]]
    ids_a = {e["id"] for e in a["run_events"]}
    assert not ids_a & {e["id"] for e in b["run_events"]}  # fresh ids from the sequence
    new_objs = objects(dev.bucket, f"pipeline_runs/{new}/")
    old_objs = objects(dev.bucket, prefix)
    assert {k.split("/", 2)[2]: v for k, v in new_objs.items()} == {k.split("/", 2)[2]: v for k, v in old_objs.items()}


def test_object_failure_rolls_back(dev: Stack, scrubbed_archive: Path, monkeypatch: pytest.MonkeyPatch,
                                   dev_trust: Trust) -> None:
    before = state(dev)
    calls = {"n": 0}
    real = dev.bucket.put_stream

    def flaky(key: str, body: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise SwarmError("injected upload failure")
        return real(key, body, **kw)

    monkeypatch.setattr(dev.bucket, "put_stream", flaky)
    with pytest.raises(SwarmError, match="injected") as ei:
        import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust)
    assert ei.value.details.get("rolled_back") is True and "objects_left" not in ei.value.details
    after = state(dev)
    assert after[0] == before[0]  # no rows
    assert objects(dev.bucket) == {}  # the two uploaded objects were removed again


def test_export_without_scrub_flags_pii(prod: Stack, run_id: str, tmp_path: Path, prod_key: ExportSigningKey) -> None:
    out = tmp_path / "raw.tar.gz"
    res = export_run(prod.db_url, prod.bucket, run_id, out, scrub=False, signing_key=prod_key)
    assert res.contains_pii and not res.scrubbed and res.warnings and "PII" in res.warnings[0]
    assert res.objects == 5 and not res.left_out  # everything, the PDF too
    with tarfile.open(out) as tf:
        m = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert m["contains_pii"] is True and m["scrubbed"] is False
        conv = tf.extractfile("objects/conversations/conv-0001.jsonl").read().decode()  # type: ignore[union-attr]
    assert prod.persona(run_id).email in conv
    assert not list(tmp_path.glob(".*"))  # no temporary file or staging directory left
    with pytest.raises(RefusedError, match="already exists"):
        export_run(prod.db_url, prod.bucket, run_id, out, scrub=False, signing_key=prod_key)

    inc = tmp_path / "inc.tar.gz"
    r2 = export_run(prod.db_url, prod.bucket, run_id, inc, scrub=True, signing_key=prod_key, include_unscrubbed=True)
    assert r2.included_unscrubbed == ["audit/audit.pdf"] and r2.contains_pii
    with tarfile.open(inc) as tf:
        m = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
    pdf = next(x for x in m["members"] if x["name"] == "objects/audit/audit.pdf")
    assert pdf["treatment"] == "unscrubbed" and m["contains_pii"] is True


def test_pipeline_name_clash_is_renamed(prod: Stack, dev: Stack, run_id: str, scrubbed_archive: Path,
                                        dev_trust: Trust) -> None:
    with connect(prod.db_url) as conn:
        pid, name = conn.execute("SELECT p.id, p.name FROM runs r JOIN pipelines p ON p.id = r.pipeline_id "
                                 "WHERE r.id = %s", (run_id,)).fetchone()  # type: ignore[misc]
    with connect(dev.db_url) as conn:
        conn.execute("INSERT INTO pipelines (id, name, owner) VALUES ('pl_dev', %s, 'dev')", (name,))
    res = import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust)
    assert res.pipeline == f"renamed:{name}-imported-{pid}"
    with connect(dev.db_url) as conn:
        row = conn.execute("SELECT name FROM pipelines WHERE id = %s", (pid,)).fetchone()
    assert row == (f"{name}-imported-{pid}",)


def test_failed_export_leaves_no_file(prod: Stack, run_id: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, prod_key: ExportSigningKey) -> None:
    calls = {"n": 0}
    real = prod.bucket.iter_get

    def dying(key: str, version_id: str | None = None) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise SwarmError("injected: connection dropped mid-object")
        return real(key, version_id)

    monkeypatch.setattr(prod.bucket, "iter_get", dying)
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / "x.tar.gz"
    with pytest.raises(SwarmError, match="injected"):
        export_run(prod.db_url, prod.bucket, run_id, out, scrub=True, signing_key=prod_key)
    assert list(out.parent.iterdir()) == []  # no archive, no temporary archive, no staging directory
