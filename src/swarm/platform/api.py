"""swarm's read API, as far as drills and imports need it (``swarm api serve``).

    GET /healthz                 {"status": "ok", "database": "ok", "schema_version": N}
    GET /api/v1/pipelines        {"total": N, "items": [...]}   (?limit=&offset=)
    GET /api/v1/runs             {"total": N, "items": [...]}   newest first (?limit=&offset=&pipeline=)
    GET /api/v1/runs/{id}        the run, with its event, approval and denial counts and its
                                 artefacts ({"key", "size", "sha256"} per object, by key;
                                 null on a database older than schema version 2)

A small threaded stdlib server in front of a bounded connection pool (``psycopg_pool``,
``pool_size`` connections at most, checked before each use). Every request is checked, in
this order, before any database work (see ``docs/api.md``):

1. **Host** (DNS rebinding): the ``Host`` header must name the bound address, ``localhost``
   when bound to loopback, or a name given in ``allowed_hosts``; anything else gets 421 (a
   request without ``Host`` gets 400). A page on ``evil.example`` whose name was re-pointed at
   127.0.0.1 therefore cannot read the API from a browser on the same machine.
2. **Bearer token**: when a token is configured, ``Authorization: Bearer <token>`` must match
   it (compared in constant time) or the answer is 401. :func:`make_server` refuses to listen
   beyond loopback without a token (:class:`ConfigError`, exit 3).

The server holds no state besides the pool: killing it leaves nothing behind but the
pool's connections, which PostgreSQL closes when the socket goes away.
"""
from __future__ import annotations

import hmac
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from swarm.errors import ConfigError, SwarmError
from swarm.sources.postgres.conn import redact

__all__ = ["MIN_TOKEN_CHARS", "APIServer", "SwarmAPI", "is_loopback", "make_server"]

RUN_PATH = re.compile(r"^/api/v1/runs/([A-Za-z0-9_\-]{1,64})$")
MIN_TOKEN_CHARS = 32
POOL_TIMEOUT = 10.0  # seconds a request waits for a free connection before it gets 503
_HOST_RE = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>[0-9]{1,5}))?$")


def _jsonable(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    return v


def _rows(cur: Any) -> list[dict[str, Any]]:
    cols = [d.name for d in cur.description]
    return [{c: _jsonable(v) for c, v in zip(cols, row, strict=True)} for row in cur.fetchall()]


def is_loopback(host: str) -> bool:
    """True if binding ``host`` listens only on the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name that resolves elsewhere, or to several addresses


class SwarmAPI:
    """The endpoints, over a pool of at most ``pool_size`` connections to ``db_url``.

    The pool opens on first use (a request waits up to ``pool_timeout`` seconds for a
    connection, then gets 503); :meth:`close` closes it.
    """

    def __init__(self, db_url: str, *, pool_size: int = 4, pool_timeout: float = POOL_TIMEOUT) -> None:
        if pool_size < 1:
            raise ConfigError(f"the API's pool size must be at least 1, not {pool_size}")
        self.db_url = db_url
        self.pool_timeout = pool_timeout
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            db_url, min_size=1, max_size=pool_size, open=False, name="swarm-api",
            kwargs={"autocommit": True, "connect_timeout": 5, "application_name": "swarm-api"},
            check=ConnectionPool.check_connection)
        self._opened = False

    def _open(self) -> None:
        if not self._opened:
            self.pool.open(wait=False)
            self._opened = True

    def close(self) -> None:
        """Close every pooled connection (idempotent)."""
        if self._opened:
            self.pool.close(timeout=5)
            self._opened = False

    def _query(self, fn: Callable[[psycopg.Connection[Any]], tuple[int, dict[str, Any]]],
               timeout: float | None = None) -> tuple[int, dict[str, Any]]:
        self._open()
        try:
            with self.pool.connection(timeout=self.pool_timeout if timeout is None else timeout) as conn:
                return fn(conn)
        except PoolTimeout:
            return 503, {"error": "unavailable", "message": "no database connection available "
                                                            f"({redact(self.db_url)})"}
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return 503, {"error": "unavailable", "message": first}

    def healthz(self) -> tuple[int, dict[str, Any]]:
        def q(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, Any]]:
            row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
            return 200, {"status": "ok", "database": "ok", "schema_version": row[0] if row else None}

        status, body = self._query(q, timeout=3)
        if status == 503:
            return 503, {"status": "degraded", "database": body["message"]}
        return status, body

    def pipelines(self, limit: int, offset: int) -> tuple[int, dict[str, Any]]:
        def q(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, Any]]:
            total_row = conn.execute("SELECT count(*) FROM pipelines").fetchone()
            cur = conn.execute("SELECT id, name, description, owner, created_at FROM pipelines ORDER BY id "
                               "LIMIT %s OFFSET %s", (limit, offset))
            return 200, {"total": int(total_row[0]) if total_row else 0, "items": _rows(cur)}

        return self._query(q)

    def runs(self, limit: int, offset: int, pipeline: str | None) -> tuple[int, dict[str, Any]]:
        where, args = ("WHERE pipeline_id = %s", [pipeline]) if pipeline else ("", [])

        def q(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, Any]]:
            total_row = conn.execute(f"SELECT count(*) FROM runs {where}", args).fetchone()
            cur = conn.execute(f"SELECT id, pipeline_id, status, triggered_by, started_at, finished_at FROM runs "
                               f"{where} ORDER BY started_at DESC, id LIMIT %s OFFSET %s", [*args, limit, offset])
            return 200, {"total": int(total_row[0]) if total_row else 0, "items": _rows(cur)}

        return self._query(q)

    def run(self, run_id: str) -> tuple[int, dict[str, Any]]:
        def q(conn: psycopg.Connection[Any]) -> tuple[int, dict[str, Any]]:
            cur = conn.execute("SELECT r.*, (SELECT count(*) FROM run_events e WHERE e.run_id = r.id) AS events, "
                               "(SELECT count(*) FROM approvals a WHERE a.run_id = r.id) AS approvals, "
                               "(SELECT count(*) FROM denials d WHERE d.run_id = r.id) AS denials "
                               "FROM runs r WHERE r.id = %s", (run_id,))
            rows = _rows(cur)
            if not rows:
                return 404, {"error": "not-found", "message": f"run {run_id} does not exist"}
            run = rows[0]
            table = conn.execute("SELECT to_regclass('public.run_artefacts')").fetchone()
            if table is None or table[0] is None:  # a database from before schema version 2
                run["artefacts"] = None
            else:
                run["artefacts"] = _rows(conn.execute("SELECT key, size, sha256 FROM run_artefacts WHERE run_id = %s "
                                                      "ORDER BY key", (run_id,)))
            return 200, run

        return self._query(q)

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


class APIServer(ThreadingHTTPServer):
    """The HTTP server; :meth:`server_close` also closes the connection pool."""

    daemon_threads = True
    api: SwarmAPI
    token: bytes | None
    allowed_hosts: frozenset[str]

    def server_close(self) -> None:
        try:
            super().server_close()
        finally:
            self.api.close()

    def host_allowed(self, header: str | None) -> bool:
        """True if a request's ``Host`` header names this server (see the module docstring)."""
        if not header:
            return False
        m = _HOST_RE.match(header.strip())
        if not m:
            return False
        name = (m.group("v6") or m.group("name") or "").lower().rstrip(".")
        return name in self.allowed_hosts

    def token_ok(self, authorization: str | None) -> bool:
        """True if no token is configured, or ``authorization`` is ``Bearer <the token>``."""
        if self.token is None:
            return True
        scheme, _, given = (authorization or "").strip().partition(" ")
        # compare_digest over the full values: the time taken does not depend on where they differ
        return hmac.compare_digest(given.strip().encode(), self.token) and scheme.lower() == "bearer"


def _allowed_hosts(host: str, extra: Iterable[str]) -> frozenset[str]:
    """The names a ``Host`` header may carry: the bound address (not a wildcard), loopback's
    names on loopback, and ``extra``."""
    names = {h.strip().strip("[]").lower().rstrip(".") for h in extra if h.strip()}
    if host not in ("", "0.0.0.0", "::"):
        names.add(host.strip("[]").lower())
    if is_loopback(host):
        names |= {"localhost", "127.0.0.1", "::1"}
    names.discard("")
    return frozenset(names)


def make_server(db_url: str, host: str = "127.0.0.1", port: int = 8080, *, token: str | None = None,
                allowed_hosts: Iterable[str] = (), pool_size: int = 4) -> APIServer:
    """A bound, not yet serving, read API server.

    ``token`` (at least :data:`MIN_TOKEN_CHARS` characters) is required when ``host`` is not
    loopback: without one this raises :class:`ConfigError` (exit 3) before binding. With a
    token, every request needs it, on loopback too. ``allowed_hosts`` adds names accepted in
    the ``Host`` header (e.g. the DNS name clients use); the bound address, and ``localhost``
    on loopback, are always accepted. A wildcard bind (``0.0.0.0``, ``::``) accepts only the
    names in ``allowed_hosts``.
    """
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(f"the API token is {len(token)} characters; at least {MIN_TOKEN_CHARS} are required",
                          hint="Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'.")
    if token is None and not is_loopback(host):
        raise ConfigError(f"refusing to serve the API on {host} without a bearer token",
                          hint="Set SWARM_API_TOKEN (or --token-file) to a random token of at least "
                               f"{MIN_TOKEN_CHARS} characters, or listen on 127.0.0.1.")
    names = _allowed_hosts(host, allowed_hosts)
    if not names:
        raise ConfigError(f"listening on every interface ({host or '0.0.0.0'}) needs the names clients use",
                          hint="Pass --allow-host NAME (the DNS name or IP address clients connect to).")
    api = SwarmAPI(db_url, pool_size=pool_size)

    class Handler(BaseHTTPRequestHandler):
        server: APIServer

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            srv = self.server
            host_header = self.headers.get("Host")
            if not host_header:
                self._send(400, {"error": "bad_request", "message": "a Host header is required"})
                return
            if not srv.host_allowed(host_header):
                self._send(421, {"error": "misdirected", "message": "this server does not answer for that Host"})
                return
            if not srv.token_ok(self.headers.get("Authorization")):
                self._send(401, {"error": "unauthorized", "message": "a valid bearer token is required"},
                           {"WWW-Authenticate": 'Bearer realm="swarm"'})
                return
            try:
                status, body = srv.api.handle(self.path)
            except SwarmError as exc:
                status, body = 503, exc.to_dict()
            self._send(status, body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = APIServer((host, port), Handler, bind_and_activate=False)
    server.api = api
    server.token = token.encode() if token is not None else None
    server.allowed_hosts = names
    try:
        server.server_bind()
        server.server_activate()
    except BaseException:
        server.server_close()
        raise
    return server
