"""``swarm dev seed``: a realistic swarm deployment across the three stores.

PostgreSQL gets pipelines, runs, run events with JSON payloads (LLM calls with messages
and tool calls, tool results, metrics, checkpoints), approvals, denials, plugins and
feature flags; the bucket gets ``pipeline_runs/<run_id>/`` artefacts (a model, reports,
an audit PDF, conversations), each recorded in ``run_artefacts`` (key, size, SHA-256);
the state directory gets ``cron/jobs.json`` (jobs naming pipelines) and ``batch/<run_id>/``.
About one event in twelve and most conversations carry PII (emails, phone numbers, card
numbers, Aadhaar and SSN values), as production data does.

The data is generated from ``seed`` (deterministic for a given seed, size and starting
state; seeding an already seeded database adds new pipelines and runs). Rows are
loaded with COPY; ``size_mb`` is the target size of the database (calibrated on run_events).
"""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from swarm.scrub.checksums import luhn_ok, verhoeff_ok
from swarm.sources.postgres.conn import connect

EVENT_BYTES = 630  # bytes of database per event (measured: 113 MB for a 100 MB target)
PIPELINES = ["invoice-extraction", "support-triage", "kyc-review", "fraud-screening", "churn-model",
             "doc-summariser", "code-review-agent", "sales-assistant", "claims-intake", "eval-harness",
             "rag-indexer", "payments-reconciler"]
FIRST = ["Aarav", "Priya", "Daniel", "Sofia", "Wei", "Fatima", "Lucas", "Ananya", "Olivia", "Kenji", "Meera", "Noah"]
LAST = ["Sharma", "Lewis", "Garcia", "Chen", "Khan", "Iyer", "Smith", "Nakamura", "Rossi", "Patel", "Brown"]
DOMAINS = ["gmail.com", "outlook.com", "acme-corp.com", "cse.iitb.ac.in", "icloud.com", "research.medicura.health"]
MODELS = ["gpt-4.1", "claude-sonnet-4", "llama-3.1-70b", "mistral-large"]
TOOLS = ["search_orders", "lookup_customer", "send_email", "create_ticket", "charge_card", "fetch_document"]
COMMON = ("the invoice order refund account customer contract renewal policy shipment delayed approved pending "
          "review summary clause payment balance ticket escalate priority agent model token latency retry error "
          "timeout dataset feature label training eval metric threshold report audit compliance record status "
          "update request response tool call result document page section table value total amount due date").split()


def _vocabulary(n: int = 4000, seed: int = 11) -> tuple[list[str], list[float]]:
    """Common domain words plus pseudo-words, with Zipf weights: text that compresses like
    prose (about 3x with gzip), not like a 100-word loop (about 8x)."""
    rng = random.Random(seed)
    onsets = ["", "b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pr", "qu", "r",
              "s", "sh", "st", "t", "tr", "v", "w", "z"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"]
    codas = ["", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ck"]
    words = list(COMMON)
    seen = set(words)
    while len(words) < n:
        w = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(1, 4)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    rng.shuffle(words)
    weights = [1.0 / (i + 1) for i in range(len(words))]
    cum = []
    total = 0.0
    for w8 in weights:
        total += w8
        cum.append(total)
    return words, cum


WORDS, WORD_CUM = _vocabulary()


def _text(rng: random.Random, k: int) -> str:
    return " ".join(rng.choices(WORDS, cum_weights=WORD_CUM, k=k))


def _complete(body: str, valid: Callable[[str], bool]) -> str:
    """``body`` plus the one check digit that makes it pass ``valid`` (Luhn, Verhoeff)."""
    return next(body + d for d in "0123456789" if valid(body + d))


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    return _complete(body, luhn_ok)


def _aadhaar(rng: random.Random) -> str:
    body = str(rng.randrange(2, 10)) + "".join(str(rng.randrange(10)) for _ in range(10))
    return _complete(body, verhoeff_ok)


class Persona:
    def __init__(self, rng: random.Random) -> None:
        self.first, self.last = rng.choice(FIRST), rng.choice(LAST)
        self.email = f"{self.first.lower()}.{self.last.lower()}{rng.randrange(100)}@{rng.choice(DOMAINS)}"
        self.phone = rng.choice([f"+91 {rng.randrange(70000, 99999)} {rng.randrange(10000, 99999)}",
                                 f"(415) 555-{rng.randrange(1000, 9999)}", f"+44 7911 {rng.randrange(100000, 999999)}"])
        prefix = rng.choice(["4", "51", "37", "6011"])
        self.card = _luhn_complete(prefix, 15 if prefix == "37" else 16, rng)
        self.aadhaar = _aadhaar(rng)
        self.ssn = f"{rng.randrange(100, 665)}-{rng.randrange(10, 99)}-{rng.randrange(1000, 9999)}"


@dataclass
class SeedResult:
    pipelines: int
    runs: int
    events: int
    approvals: int
    denials: int
    objects: int
    object_bytes: int
    state_files: int
    run_ids: list[str]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["run_ids"] = self.run_ids[:20]
        return d


def _event_payload(rng: random.Random, kind: str, step: int, persona: Persona, pii: bool) -> dict[str, Any]:
    if kind == "llm.call":
        user_msg = rng.choice([
            "Can you check why my last invoice was charged twice?",
            "Please summarise the attached contract and list the renewal dates.",
            f"What's the status of order #{rng.randrange(100000, 999999)}?",
        ])
        if pii:
            user_msg += rng.choice([f" You can reach me at {persona.email}.", f" Call me on {persona.phone}.",
                                    f" The card was {persona.card[:4]} {persona.card[4:8]} {persona.card[8:12]} "
                                    f"{persona.card[12:]}.", f" My Aadhaar is {persona.aadhaar[:4]} "
                                    f"{persona.aadhaar[4:8]} {persona.aadhaar[8:]}."])
        answer = _text(rng, rng.randrange(40, 160)).capitalize() + "."
        return {"model": rng.choice(MODELS), "step": step, "latency_ms": round(rng.uniform(200, 4000), 1),
                "usage": {"prompt_tokens": rng.randrange(200, 8000), "completion_tokens": rng.randrange(20, 900)},
                "messages": [{"role": "system", "content": "You are a careful support agent."},
                             {"role": "user", "content": user_msg},
                             {"role": "assistant", "content": answer}],
                "tool_calls": [{"name": rng.choice(TOOLS),
                                "arguments": json.dumps({"customer_email": persona.email} if pii else
                                                        {"order_id": f"ORD-{rng.randrange(10**6)}"})}]}
    if kind == "tool.result":
        return {"tool": rng.choice(TOOLS), "step": step, "ok": rng.random() > 0.05,
                "duration_ms": rng.randrange(5, 3000), "bytes": rng.randrange(100, 10**6),
                "preview": _text(rng, rng.randrange(10, 60))}
    if kind == "metric":
        return {"step": step, "name": rng.choice(["loss", "accuracy", "f1", "reward"]),
                "value": round(rng.random(), 6), "seed": rng.randrange(10**9)}
    if kind == "checkpoint":
        return {"step": step, "path": f"s3://swarm-artefacts/checkpoints/step-{step:06d}.pt",
                "sha256": f"{rng.getrandbits(256):064x}", "size_bytes": rng.randrange(10**6, 10**10)}
    return {"step": step, "message": f"{kind} at step {step}"}


def _copy_rows(conn: Any, table: str, cols: str, rows: Iterator[tuple[Any, ...]]) -> int:
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def seed_database(db_url: str, *, runs: int, size_mb: float, seed: int = 7,
                  now: datetime | None = None) -> tuple[SeedResult, list[dict[str, Any]]]:
    """Fill the swarm schema; returns counts and the run rows (for the artefact seeding)."""
    now = now or datetime.now(UTC)
    events_total = max(runs * 8, int(size_mb * 1_000_000 / EVENT_BYTES))
    per_run = max(4, events_total // max(1, runs))
    run_rows: list[dict[str, Any]] = []
    with connect(db_url, autocommit=False) as conn:
        with conn.transaction():
            base_id = conn.execute("SELECT count(*), (SELECT count(*) FROM runs) FROM pipelines").fetchone()
            offset = int(base_id[0]) if base_id else 0
            # Same seed and same starting state give the same data; seeding again adds new rows.
            rng = random.Random(f"{seed}:{base_id[1] if base_id else 0}")
            pipes = [(f"pl_{offset + i:04d}", f"{name}-{offset + i}" if offset else name, f"The {name} pipeline",
                      f"team-{rng.choice(['ml', 'ops', 'risk', 'support'])}",
                      json.dumps({"schedule": "0 * * * *", "max_steps": rng.randrange(10, 200)}), now)
                     for i, name in enumerate(PIPELINES)]
            _copy_rows(conn, "pipelines", "id, name, description, owner, config, created_at", iter(pipes))
            for i in range(runs):
                started = now - timedelta(minutes=rng.randrange(1, 60 * 24 * 30))
                run_id = f"run_{rng.getrandbits(40):010x}"
                status = rng.choice(["succeeded"] * 6 + ["failed", "running", "cancelled"])
                run_rows.append({"id": run_id, "pipeline_id": pipes[i % len(pipes)][0], "status": status,
                                 "started_at": started, "persona_seed": rng.getrandbits(32)})
            _copy_rows(conn, "runs", "id, pipeline_id, status, triggered_by, params, artefact_prefix, started_at, "
                       "finished_at", (
                           (r["id"], r["pipeline_id"], r["status"], rng.choice(["cron", "api", "ui"]),
                            json.dumps({"temperature": 0.2, "max_tokens": 2048}), f"pipeline_runs/{r['id']}/",
                            r["started_at"], None if r["status"] == "running" else
                            r["started_at"] + timedelta(seconds=rng.randrange(10, 7200))) for r in run_rows))
            kinds = ["llm.call", "tool.result", "metric", "checkpoint", "step.started", "step.finished"]

            def events() -> Iterator[tuple[Any, ...]]:
                for r in run_rows:
                    persona = Persona(random.Random(r["persona_seed"]))
                    for seq in range(per_run):
                        kind = "run.started" if seq == 0 else rng.choice(kinds)
                        payload = _event_payload(rng, kind, seq, persona, pii=rng.random() < 0.08)
                        yield (r["id"], seq, r["started_at"] + timedelta(seconds=seq * 3), kind,
                               json.dumps(payload))

            n_events = _copy_rows(conn, "run_events", "run_id, seq, ts, type, payload", events())
            approvals = [(r["id"], r["started_at"], r["started_at"] + timedelta(minutes=5),
                          f"{rng.choice(FIRST).lower()}@acme-corp.com", rng.choice(["approved", "rejected"]),
                          "looks fine") for r in run_rows if rng.random() < 0.4]
            _copy_rows(conn, "approvals", "run_id, requested_at, decided_at, approver, decision, comment",
                       iter(approvals))
            denials = [(r["id"], r["started_at"], rng.choice(TOOLS), rng.choice(["policy", "budget", "pii"]),
                        json.dumps({"rule": f"R{rng.randrange(100)}"})) for r in run_rows if rng.random() < 0.2]
            _copy_rows(conn, "denials", "run_id, ts, tool, reason, detail", iter(denials))
            conn.execute("INSERT INTO plugins (name, version, enabled, config) VALUES "
                         "('slack-notify', '1.4.2', true, '{}'), ('pii-guard', '0.9.0', true, '{\"mode\": \"block\"}'),"
                         " ('jira-sync', '2.1.0', false, '{}') ON CONFLICT DO NOTHING")
            conn.execute("INSERT INTO feature_flags (key, enabled, rollout_percent, description) VALUES "
                         "('new-planner', true, 50, 'planner v2'), ('streaming-ui', false, 0, ''), "
                         "('strict-approvals', true, 100, 'require approval for charge_card') ON CONFLICT DO NOTHING")
    with connect(db_url) as conn:  # fresh statistics, as an operator would after a bulk load
        conn.execute("ANALYZE")
    result = SeedResult(len(pipes), runs, n_events, len(approvals), len(denials), 0, 0, 0,
                        [r["id"] for r in run_rows])
    return result, run_rows


def _pdf(text: str) -> bytes:
    """A minimal valid one-page PDF (an audit record)."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def run_artefacts(run: dict[str, Any], rng: random.Random, model_kb: int) -> list[tuple[str, bytes, str, str]]:
    """(key, body, content type, class) of one run's artefacts."""
    persona = Persona(random.Random(run["persona_seed"]))
    prefix = f"pipeline_runs/{run['id']}/"
    conv = [{"role": "user", "content": f"Hi, I'm {persona.first}. My email is {persona.email}, phone "
                                         f"{persona.phone}."},
            {"role": "assistant", "content": "Thanks, I found your account. How can I help?"},
            {"role": "user", "content": f"Please refund the charge on card {persona.card}."},
            {"role": "tool", "name": "lookup_customer", "content": json.dumps({"email": persona.email,
                                                                               "ssn": persona.ssn})}]
    model = rng.randbytes(model_kb * 1024 // 2) + bytes(model_kb * 1024 // 2)
    report = {"run_id": run["id"], "status": run["status"], "metrics": {"accuracy": round(rng.random(), 4)},
              "reviewed_by": persona.email}
    return [
        (prefix + "models/model.safetensors", model, "application/octet-stream", "model"),
        (prefix + "reports/summary.json", json.dumps(report, indent=1).encode(), "application/json", "report"),
        (prefix + "reports/report.md", f"# Run {run['id']}\n\nStatus: {run['status']}\n".encode(), "text/markdown",
         "report"),
        (prefix + "audit/audit.pdf", _pdf(f"Audit record for {run['id']}"), "application/pdf", "audit"),
        (prefix + "conversations/conv-0001.jsonl", "".join(json.dumps(m) + "\n" for m in conv).encode(),
         "application/x-ndjson", "conversation"),
    ]


def seed_objects(client: Any, bucket: str, run_rows: list[dict[str, Any]], *, model_kb: int = 64,
                 seed: int = 7, workers: int = 8, db_url: str | None = None) -> tuple[int, int]:
    """Upload every run's artefacts, tagged ``swarm-class=<class>`` (lifecycle rules filter on it);
    with ``db_url``, then record each in ``run_artefacts`` (key, size and SHA-256 of the bytes
    written), as the platform does: object first, row after.

    A crash between the uploads and the rows' transaction leaves objects that no row records
    (``swarm admin check stack`` lists them as unrecorded, which does not fail the check);
    seeding records nothing for a run whose rows it did not create. Returns (objects, bytes)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(seed + 1)
    items = [(r["id"], *a) for r in run_rows for a in run_artefacts(r, rng, model_kb)]

    def put(item: tuple[str, str, bytes, str, str]) -> int:
        _, key, body, ctype, cls = item
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=ctype, Tagging=f"swarm-class={cls}")
        return len(body)

    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(put, items))
    if db_url is not None:
        record_artefacts(db_url, ((run_id, key, body) for run_id, key, body, _, _ in items))
    return len(items), total


def record_artefacts(db_url: str, artefacts: Iterable[tuple[str, str, bytes]]) -> int:
    """Record (run id, key, bytes written) in ``run_artefacts``, in one transaction: a key
    recorded already gets the new size and checksum (the object was written again)."""
    rows = [(run_id, key, len(body), hashlib.sha256(body).hexdigest()) for run_id, key, body in artefacts]
    with connect(db_url, autocommit=False) as conn, conn.transaction(), conn.cursor() as cur:
        cur.executemany("INSERT INTO run_artefacts (run_id, key, size, sha256) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (key) DO UPDATE SET run_id = EXCLUDED.run_id, size = EXCLUDED.size, "
                        "sha256 = EXCLUDED.sha256, created_at = now()", rows)
    return len(rows)


def seed_state_dir(state_dir: Path, run_rows: list[dict[str, Any]], *, seed: int = 7) -> int:
    """cron/jobs.json and batch/<run_dir>/ for the most recent runs."""
    rng = random.Random(seed + 2)
    (state_dir / "cron").mkdir(parents=True, exist_ok=True)
    jobs = [{"id": f"job-{i:03d}", "pipeline": name, "schedule": rng.choice(["0 * * * *", "*/15 * * * *", "0 2 * * *"]),
             "enabled": rng.random() > 0.2} for i, name in enumerate(PIPELINES)]
    (state_dir / "cron" / "jobs.json").write_text(json.dumps({"version": 1, "jobs": jobs}, indent=1))
    n = 1
    for r in run_rows[:50]:
        d = state_dir / "batch" / r["id"]
        d.mkdir(parents=True, exist_ok=True)
        (d / "status.json").write_text(json.dumps({"run_id": r["id"], "status": r["status"]}))
        (d / "input.jsonl").write_text("".join(json.dumps({"i": i, "prompt": f"item {i}"}) + "\n" for i in range(20)))
        (d / "log.txt").write_text(f"run {r['id']} started\n")
        n += 3
    return n
