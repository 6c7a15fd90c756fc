"""The read API against real PostgreSQL: DNS rebinding (Host check), bearer tokens, no
unauthenticated listening beyond loopback, and a bounded connection pool (issue 10, finding 10)."""
from __future__ import annotations

import http.client
import json
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

from swarm.cli.main import main
from swarm.errors import ConfigError, ExitCode
from swarm.platform.api import make_server
from swarm.sources.postgres.conn import connect

TOKEN = secrets.token_urlsafe(32)


@contextmanager
def serving(db_url: str, **kw: Any) -> Iterator[Any]:
    server = make_server(db_url, kw.pop("host", "127.0.0.1"), 0, **kw)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def get(server: Any, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"{}")
    finally:
        conn.close()


def test_dns_rebinding_host_is_refused(swarm_db: str) -> None:
    """A page on evil.example re-pointed at 127.0.0.1 sends Host: evil.example; it must not get data."""
    with serving(swarm_db) as server:
        port = server.server_address[1]
        status, body = get(server, "/api/v1/runs", {"Host": f"evil.example:{port}"})
        assert status in (421, 403) and "items" not in body
        status, _ = get(server, "/healthz", {"Host": "evil.example"})
        assert status in (421, 403)
        for ok in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
            status, body = get(server, "/api/v1/runs", {"Host": ok})
            assert status == 200 and body["total"] > 0, (ok, body)


def test_request_without_host_header_is_refused(swarm_db: str) -> None:
    with serving(swarm_db) as server, socket.create_connection(("127.0.0.1", server.server_address[1])) as s:
        s.sendall(b"GET /api/v1/runs HTTP/1.0\r\n\r\n")
        head = s.recv(4096).split(b"\r\n", 1)[0]
    assert b" 400 " in head, head


def test_allowed_host_names(swarm_db: str) -> None:
    with serving(swarm_db, allowed_hosts=["api.swarm.internal"]) as server:
        assert get(server, "/healthz", {"Host": "api.swarm.internal:443"})[0] == 200
        assert get(server, "/healthz", {"Host": "API.swarm.internal."})[0] == 200
        assert get(server, "/healthz", {"Host": "api.swarm.internal.evil.example"})[0] == 421


def test_bearer_token_is_required_when_configured(swarm_db: str) -> None:
    with serving(swarm_db, token=TOKEN) as server:
        assert get(server, "/api/v1/runs")[0] == 401
        assert get(server, "/healthz")[0] == 401
        assert get(server, "/api/v1/runs", {"Authorization": "Bearer " + TOKEN[:-1] + "x"})[0] == 401
        assert get(server, "/api/v1/runs", {"Authorization": "Basic " + TOKEN})[0] == 401
        assert get(server, "/api/v1/runs", {"Authorization": "Bearer"})[0] == 401
        status, body = get(server, "/api/v1/runs", {"Authorization": "Bearer " + TOKEN})
        assert status == 200 and body["total"] > 0


def test_beyond_loopback_without_token_is_refused(swarm_db: str) -> None:
    with pytest.raises(ConfigError, match="without a bearer token"):
        make_server(swarm_db, "0.0.0.0", 0, allowed_hosts=["db.example"])
    with pytest.raises(ConfigError, match="at least 32"):
        make_server(swarm_db, "127.0.0.1", 0, token="short")
    # with a token it listens, and still checks Host
    with serving(swarm_db, host="0.0.0.0", token=TOKEN, allowed_hosts=["127.0.0.1"]) as server:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        assert get(server, "/healthz", auth)[0] == 200
        assert get(server, "/healthz", {**auth, "Host": "evil.example"})[0] == 421


def test_cli_refuses_to_listen_beyond_loopback_without_token(
        swarm_db: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWARM_DB_URL", swarm_db)
    monkeypatch.setattr(sys, "argv", ["swarm", "api", "serve", "--host", "0.0.0.0", "--port", "0"])

    def served(*_: object, **__: object) -> None:
        raise AssertionError("the API started serving beyond loopback without a token")

    monkeypatch.setattr(socketserver.BaseServer, "serve_forever", served)
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == int(ExitCode.CONFIG)
    assert "bearer token" in capsys.readouterr().err


def _api_backends(db_url: str) -> int:
    with connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid() AND application_name = 'swarm-api'").fetchone()
    return int(row[0]) if row else 0


def test_connections_are_pooled_and_bounded(swarm_db: str) -> None:
    """20 concurrent requests share at most pool_size connections, which outlive the requests."""
    with serving(swarm_db, pool_size=2) as server:
        with ThreadPoolExecutor(8) as ex:
            results = list(ex.map(lambda _: get(server, "/api/v1/runs?limit=5")[0], range(20)))
        assert results == [200] * 20
        n = _api_backends(swarm_db)
        assert 1 <= n <= 2, n
    deadline = time.monotonic() + 10                 # server_close closes the pool (backends exit async)
    while _api_backends(swarm_db) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _api_backends(swarm_db) == 0
