"""One scanner for exports too: ``admin export`` leaves out an object holding a secret (by name or
by shape, as a state snapshot does), redacts a secret shape in a row, refuses a row whose shape
cannot be redacted in place, and reports each without the value; ``secrets check --export``
finds a secret's value that no shape gives away, naming the archive member."""
from __future__ import annotations

import gzip
import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from swarm.devstack.seaweed import SeaweedServer
from swarm.errors import RefusedError
from swarm.platform.seed import seed_database, seed_objects
from swarm.services.transfer.export import export_run
from swarm.services.transfer.trust import ExportSigningKey, load_signing_key
from swarm.sources.objects import Bucket
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import connect
from tests.transfer.conftest import new_bucket, new_db

from .conftest import Deployment

pytestmark = pytest.mark.integration

PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA" + "A" * 64 + "\n-----END RSA PRIVATE KEY-----\n")
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")


@dataclass
class Source:
    db_url: str
    bucket: Bucket
    run_id: str
    key: ExportSigningKey


@pytest.fixture
def source(pg_cluster: LocalCluster, seaweed: SeaweedServer, tmp_path: Path) -> Source:
    url = new_db(pg_cluster)
    _, run_rows = seed_database(url, runs=2, size_mb=0.05, seed=5)
    b = new_bucket(seaweed, "sec")
    seed_objects(b.client, b.name, run_rows, model_kb=4, workers=2, db_url=url)
    run_id = str(run_rows[0]["id"])
    prefix = f"pipeline_runs/{run_id}/"
    planted = {
        "deploy/service.pem": b"not even a key, but a secret by its name\n",  # by name
        "notes/ops.txt": f"restart notes\n{PEM}".encode(),  # by shape, text (scrubbable)
        "dumps/blob.bin": b"\x00\x01" + JWT.encode() + b"\x02",  # by shape, binary
    }
    for rel, body in planted.items():
        ctype = "text/plain" if rel.endswith(".txt") else "application/octet-stream"
        b.client.put_object(Bucket=b.name, Key=prefix + rel, Body=body, ContentType=ctype)
    with connect(url) as conn:
        conn.execute("INSERT INTO run_artefacts (run_id, key, size, sha256) VALUES (%s, %s, %s, %s)",
                     (run_id, prefix + "notes/ops.txt", len(planted["notes/ops.txt"]),
                      hashlib.sha256(planted["notes/ops.txt"]).hexdigest()))
        conn.execute("INSERT INTO run_events (run_id, seq, ts, type, payload) VALUES (%s, 100000, now(), "
                     "'tool.result', %s)", (run_id, Jsonb({"headers": {"Authorization": f"Bearer {JWT}"}})))
    home = tmp_path / "signing-home"
    home.mkdir()
    return Source(url, b, run_id, load_signing_key(home)[0])


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]


@pytest.mark.parametrize("scrub", [False, True])
def test_export_keeps_secrets_out(source: Source, tmp_path: Path, scrub: bool) -> None:
    out = tmp_path / "run.tar.gz"
    res = export_run(source.db_url, source.bucket, source.run_id, out, scrub=scrub, signing_key=source.key,
                     include_unscrubbed=True)
    left = {d["path"]: d["reason"] for d in res.secrets_left_out}
    assert left == {"deploy/service.pem": "secret by name (*.pem)",
                    "notes/ops.txt": "secret content (private key)",
                    "dumps/blob.bin": "secret content (JWT)"}
    assert res.secrets_redacted == [{"member": "rows/run_events.jsonl", "rows": 1, "kinds": ["JWT"]}]
    assert any("secrets kept out of the archive" in w for w in res.warnings)
    files = members(out)
    blob = b"".join(files.values())
    assert b"PRIVATE KEY-----" not in blob and JWT.encode() not in blob
    assert not any(n.endswith(("service.pem", "ops.txt", "blob.bin")) for n in files)
    assert b"Bearer [secret removed: JWT]" in files["rows/run_events.jsonl"]
    # the run_artefacts row of a left-out object is left out too; the manifest says what and why, not the value
    arts = [json.loads(line) for line in files["rows/run_artefacts.jsonl"].splitlines()]
    assert arts and not any(a["key"].endswith("notes/ops.txt") for a in arts)
    manifest = json.loads(files["manifest.json"])
    assert manifest["scrub"]["secrets"]["left_out"] == res.secrets_left_out
    assert manifest["counts"]["objects_left_out"] >= 3
    d = json.dumps(res.to_dict())
    assert JWT not in d and "MIIEowIBAAKCAQEA" not in d


def test_export_refuses_a_row_it_cannot_redact(source: Source, tmp_path: Path) -> None:
    with connect(source.db_url) as conn:  # the shape spans JSON structure: no one string holds it
        conn.execute("INSERT INTO run_events (run_id, seq, ts, type, payload) VALUES (%s, 100001, now(), "
                     "'tool.result', %s)", (source.run_id, Jsonb({"aws_secret_access_key": "A" * 40})))
    out = tmp_path / "run.tar.gz"
    with pytest.raises(RefusedError) as exc:
        export_run(source.db_url, source.bucket, source.run_id, out, scrub=False, signing_key=source.key)
    assert "run_events" in exc.value.message and "AWS secret access key" in exc.value.message
    assert "A" * 40 not in exc.value.message
    assert not out.exists() and not list(tmp_path.glob(".swarm-export-*"))


def test_secrets_check_scans_export_archives(source: Source, bare: Deployment, tmp_path: Path) -> None:
    jwt = bare.values["SWARM_JWT_SECRET"]  # a random value: no shape gives it away, so the export keeps it
    with connect(source.db_url) as conn:
        conn.execute("INSERT INTO run_events (run_id, seq, ts, type, payload) VALUES (%s, 100002, now(), "
                     "'checkpoint', %s)", (source.run_id, Jsonb({"env": {"SWARM_JWT_SECRET": jwt}})))
    leaky = tmp_path / "leaky.tar.gz"
    export_run(source.db_url, source.bucket, source.run_id, leaky, scrub=False, signing_key=source.key)
    code, _, _, d = bare.check("--export", str(leaky))
    assert code == 1
    assert [(f["place"], f["where"], f["path"], f["secrets"]) for f in d["findings"]] == [
        ("export", str(leaky), "rows/run_events.jsonl", ["jwt"])]
    assert {"place": "export", "where": str(leaky)}.items() <= next(
        p for p in d["scanned"] if p["place"] == "export").items()
    # a clean archive passes; a missing one is exit 9, a damaged one 5
    with connect(source.db_url) as conn:
        conn.execute("DELETE FROM run_events WHERE seq = 100002 AND run_id = %s", (source.run_id,))
    clean = tmp_path / "clean.tar.gz"
    export_run(source.db_url, source.bucket, source.run_id, clean, scrub=False, signing_key=source.key)
    code, _, _, d = bare.check("--export", str(clean))
    assert code == 0, d
    code, _, _, _ = bare.check("--export", str(tmp_path / "nope.tar.gz"))
    assert code == 9
    damaged = tmp_path / "damaged.tar.gz"
    damaged.write_bytes(gzip.compress(gzip.decompress(clean.read_bytes())[:-3000]))
    code, _, _, _ = bare.check("--export", str(damaged))
    assert code == 5
