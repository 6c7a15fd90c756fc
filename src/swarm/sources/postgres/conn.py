"""Connections and facts: server identity, tables, exact row counts in one snapshot.

Every psycopg error is translated here: an unreachable server becomes UnavailableError, a
connection string libpq cannot parse ConfigError, anything else SourceError, with the URL's
password never printed (libpq quotes the whole URI in its parse errors: never shown as is).
That holds for queries too: a psycopg error raised by a query inside ``with connect(...)``
(the helpers here and in ``wal.py``) leaves it as a SourceError carrying the server's message
and a hint (``query_failed``), as does ``server_facts`` on a connection opened elsewhere.
Code that catches a psycopg error itself, inside the block, still sees it first.
"""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse, urlunparse

import psycopg
from psycopg import sql

from swarm.config import urls
from swarm.errors import DatabaseNotFound, DatabaseUnavailable, SourceError

USER_TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
ORDER BY 1, 2
"""


def redact(url: str) -> str:
    """The URL with its passwords replaced by ***: in the user info, in ``?password=`` and in
    a ``password=`` of a key=value string (swarm.config.urls.redact, the one redactor)."""
    return urls.redact(url)


_SECRET_QUERY_KEYS = ("password", "sslpassword")
_CONNINFO_PASSWORD = re.compile(r"\s*\b(?:ssl)?password\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S*)", re.IGNORECASE)


def without_password(url: str) -> tuple[str, bool]:
    """``url`` with every password left out (not masked: a ``***`` pasted into a shell would
    become the password), and whether it had one. Removes the user info's ``:password``,
    ``password`` / ``sslpassword`` query parameters and a key=value string's ``password=``;
    the client then takes the password from ``PGPASSWORD`` or ``PGPASSFILE``."""
    if "://" not in url:
        stripped = _CONNINFO_PASSWORD.sub("", url).strip()
        return stripped, stripped != url.strip()
    scheme, _, rest = url.partition("://")
    had = False
    userinfo, at, rest = rest.rpartition("@")  # the user info ends at the last "@" (as urls.redact)
    if at and ":" in userinfo:
        userinfo, had = userinfo.split(":", 1)[0], True
    if "?" in rest:
        head, _, query = rest.partition("?")
        kept = []
        for item in query.split("&"):
            if unquote(item.partition("=")[0]).strip().lower() in _SECRET_QUERY_KEYS:
                had = True
            elif item:
                kept.append(item)
        rest = head + ("?" + "&".join(kept) if kept else "")
    return f"{scheme}://{userinfo}{at}{rest}", had


def dbname_of(url: str) -> str:
    return urlparse(url).path.lstrip("/") or "postgres"


def with_dbname(url: str, dbname: str) -> str:
    p = urlparse(url)
    return urlunparse(p._replace(path="/" + dbname))


@contextlib.contextmanager
def connect(url: str, *, autocommit: bool = True, connect_timeout: int = 10) -> Iterator[psycopg.Connection[Any]]:
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout,
                               application_name="swarm-backup")
    except psycopg.ProgrammingError:
        # libpq refused to parse it; settings and plan_restore check URLs first, so this is
        # a URL that reached here some other way
        problem = "libpq cannot parse it"
        try:
            urls.check_postgres_url(url)
        except urls.UrlProblem as p:
            problem = str(p)
        raise urls.invalid("postgres", url, problem, setting="the PostgreSQL URL", source="") from None
    except psycopg.OperationalError as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        msg = msg.replace(url, redact(url))
        if "does not exist" in msg and "database" in msg:
            raise DatabaseNotFound(f"database {dbname_of(url)} does not exist at {redact(url)}",
                                hint="Pass --create to create it, or check the URL.") from exc
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {redact(url)}: {msg}",
                               hint="Is the server running and the URL (SWARM_DB_URL) right?") from exc
    try:
        yield conn
    except psycopg.Error as exc:
        raise query_failed(exc, url) from exc
    finally:
        conn.close()


def query_failed(exc: psycopg.Error, url: str | None = None, what: str = "a query") -> SourceError:
    """The SourceError for a psycopg error raised by a query: the server's message (first
    line, the URL's password hidden) and a hint that depends on the SQLSTATE: a privilege the
    role lacks, or a file the server itself cannot read (PostgreSQL reports EACCES on its own
    files with the same SQLSTATE 42501), or the server gone mid-operation."""
    text = str(exc).strip()
    msg = text.splitlines()[0] if text else type(exc).__name__
    if url:
        msg = msg.replace(url, redact(url))
    where = f" at {redact(url)}" if url else ""
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        if "could not open" in msg or "could not read" in msg or "Permission denied" in msg:
            hint = ("The PostgreSQL server cannot read one of its own files: check that the data directory and "
                    "every directory above it are owned by, or readable by, the server's user (e.g. after a "
                    "chmod or a restore as another user), then run again.")
        else:
            hint = ("The role in the URL lacks a privilege this needs: connect as a superuser, or grant the role "
                    "what the message names (e.g. pg_read_all_settings / pg_monitor, EXECUTE on the function, "
                    "or the REPLICATION attribute), then run again.")
    elif isinstance(exc, psycopg.OperationalError):
        hint = "The server may have stopped or the connection dropped; check it and run again."
    else:
        hint = "Check the server's log for the statement that failed; nothing was recorded."
    return SourceError(f"PostgreSQL{where} refused {what}: {msg}", hint=hint)


@dataclass(frozen=True)
class ServerFacts:
    server_version: str
    server_version_num: int
    system_identifier: str
    database: str
    database_size: int
    in_recovery: bool
    wal_lsn: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def server_facts(conn: psycopg.Connection[Any]) -> ServerFacts:
    """The server's identity and size; a failing query raises SourceError (``query_failed``)."""
    try:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int, "
            "(SELECT system_identifier::text FROM pg_control_system()), current_database(), "
            "pg_database_size(current_database()), pg_is_in_recovery()").fetchone()
        assert row is not None
        lsn = None
        if not row[5]:
            lsn_row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
            lsn = lsn_row[0] if lsn_row else None
    except psycopg.Error as exc:
        raise query_failed(exc, what="the query for its identity (version, system identifier, size)") from exc
    return ServerFacts(row[0], row[1], row[2], row[3], int(row[4]), bool(row[5]), lsn)


def user_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    try:
        return [(r[0], r[1]) for r in conn.execute(USER_TABLES_SQL).fetchall()]
    except psycopg.Error as exc:
        raise query_failed(exc, what="listing the tables") from exc


def count_rows(conn: psycopg.Connection[Any], tables: list[tuple[str, str]] | None = None) -> dict[str, int]:
    """Exact ``count(*)`` of every user table (or of ``tables``), keyed ``schema.table``."""
    out: dict[str, int] = {}
    try:
        for schema, name in tables if tables is not None else user_tables(conn):
            q = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(name))
            row = conn.execute(q).fetchone()
            out[f"{schema}.{name}"] = int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise SourceError(f"counting rows failed: {str(exc).strip()}",
                          hint="The server may have stopped; nothing was recorded. Check it and run again.") from exc
    return out


def split_table(name: str) -> tuple[str, str]:
    schema, _, table = name.partition(".")
    return schema, table


class SnapshotSession:
    """A REPEATABLE READ transaction whose snapshot is exported for pg_dump ``--snapshot``.

    The snapshot stays valid while this session's transaction is open; close it only after
    pg_dump has started all its workers (pg_dump imports it at start). Counting rows here
    sees exactly what pg_dump dumps.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._cm = connect(url, autocommit=False)
        self.conn: psycopg.Connection[Any] | None = None
        self.snapshot = ""
        self.time = ""

    def __enter__(self) -> SnapshotSession:
        self.conn = self._cm.__enter__()
        try:
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = self.conn.execute("SELECT pg_export_snapshot(), "
                                    "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')").fetchone()
            assert row is not None
            self.snapshot = str(row[0])
            self.time = str(row[1])  # the server's clock when the snapshot was taken (UTC)
        except psycopg.Error as exc:
            self._cm.__exit__(None, None, None)
            raise SourceError(f"cannot export a snapshot from {redact(self.url)}: {exc}") from exc
        return self

    def facts(self) -> ServerFacts:
        assert self.conn is not None
        return server_facts(self.conn)

    def count_rows(self) -> dict[str, int]:
        assert self.conn is not None
        try:
            return count_rows(self.conn)
        except psycopg.Error as exc:
            raise SourceError(f"counting rows failed: {exc}".strip(),
                              hint="The server may have stopped during the backup; no backup was recorded.") \
                from exc

    def __exit__(self, *exc: Any) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.rollback()
        with contextlib.suppress(psycopg.Error):
            self._cm.__exit__(None, None, None)


def database_exists(admin_url: str, dbname: str) -> bool:
    with connect(admin_url) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone() is not None


def create_database(admin_url: str, dbname: str) -> None:
    with connect(admin_url) as conn:
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        except psycopg.Error as exc:
            raise SourceError(f"cannot create database {dbname}: {exc}".strip()) from exc


def table_counts_at(url: str) -> dict[str, int]:
    with connect(url) as conn:
        return count_rows(conn)
