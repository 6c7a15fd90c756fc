"""swarm's read API, as far as drills and imports need it (``swarm api serve``).

    GET /healthz                 {"status": "ok", "database": "ok", "schema_version": N}
    GET /api/v1/pipelines        {"total": N, "items": [...]}   (?limit=&offset=)
    GET /api/v1/runs             {"total": N, "items": [...]}   newest first (?limit=&offset=&pipeline=)
    GET /api/v1/runs/{id}        the run, with its event, approval and denial counts

A small threaded stdlib server: one short-lived connection per request.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from swarm.errors import SwarmError
from swarm.sources.postgres.conn import connect

RUN_PATH = re.compile(r"^/api/v1/runs/([A-Za-z0-9_\-]{1,64})$")


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _rows(cur: Any) -> list[dict[str, Any]]:
    cols = [d.name for d in cur.description]
    return [{c: _jsonable(v) for c, v in zip(cols, row, strict=True)} for row in cur.fetchall()]


class SwarmAPI:
    def __init__(self, db_url: str) -> None:
        self.db_url = db_url

    def healthz(self) -> tuple[int, dict[str, Any]]:
        try:
            with connect(self.db_url, connect_timeout=3) as conn:
                row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return 200, {"status": "ok", "database": "ok", "schema_version": row[0] if row else None}
        except SwarmError as exc:
            return 503, {"status": "degraded", "database": exc.message}

    def pipelines(self, limit: int, offset: int) -> tuple[int, dict[str, Any]]:
        with connect(self.db_url) as conn:
            total_row = conn.execute("SELECT count(*) FROM pipelines").fetchone()
            cur = conn.execute("SELECT id, name, description, owner, created_at FROM pipelines ORDER BY id "
                               "LIMIT %s OFFSET %s", (limit, offset))
            return 200, {"total": int(total_row[0]) if total_row else 0, "items": _rows(cur)}

    def runs(self, limit: int, offset: int, pipeline: str | None) -> tuple[int, dict[str, Any]]:
        where, args = ("WHERE pipeline_id = %s", [pipeline]) if pipeline else ("", [])
        with connect(self.db_url) as conn:
            total_row = conn.execute(f"SELECT count(*) FROM runs {where}", args).fetchone()
            cur = conn.execute(f"SELECT id, pipeline_id, status, triggered_by, started_at, finished_at FROM runs "
                               f"{where} ORDER BY started_at DESC, id LIMIT %s OFFSET %s", [*args, limit, offset])
            return 200, {"total": int(total_row[0]) if total_row else 0, "items": _rows(cur)}

    def run(self, run_id: str) -> tuple[int, dict[str, Any]]:
        with connect(self.db_url) as conn:
            cur = conn.execute("SELECT r.*, (SELECT count(*) FROM run_events e WHERE e.run_id = r.id) AS events, "
                               "(SELECT count(*) FROM approvals a WHERE a.run_id = r.id) AS approvals, "
                               "(SELECT count(*) FROM denials d WHERE d.run_id = r.id) AS denials "
                               "FROM runs r WHERE r.id = %s", (run_id,))
            rows = _rows(cur)
        if not rows:
            return 404, {"error": "not-found", "message": f"run {run_id} does not exist"}
        return 200, rows[0]

    def handle(self, path: str) -> tuple[int, dict[str, Any]]:
        url = urlparse(path)
        if url.path == "/healthz":
            return self.healthz()
        if url.path in ("/api/v1/pipelines", "/api/v1/runs"):
            q = parse_qs(url.query)
            try:
                limit = max(1, min(1000, int(q.get("limit", ["100"])[0])))
                offset = max(0, int(q.get("offset", ["0"])[0]))
            except ValueError:
                return 400, {"error": "bad_request", "message": "limit and offset must be integers"}
            if url.path == "/api/v1/runs":
                return self.runs(limit, offset, q.get("pipeline", [None])[0])
            return self.pipelines(limit, offset)
        m = RUN_PATH.match(url.path)
        if m:
            return self.run(m.group(1))
        return 404, {"error": "not-found", "message": f"no route {url.path}"}


def make_server(db_url: str, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    api = SwarmAPI(db_url)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                status, body = api.handle(self.path)
            except SwarmError as exc:
                status, body = 503, exc.to_dict()
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)
