"""Table rows as COPY text: out of one exported snapshot (whole tables, or large ones by ctid
page ranges), and back in.

Every table's rows leave the server through ``copy_out`` and go straight into the
repository; none is ever written to local disk. A table below the size threshold is one
``COPY t (cols) TO STDOUT``; a large one is several ``COPY (SELECT cols FROM ONLY t WHERE
ctid >= '(a,0)' AND ctid < '(b,0)') TO STDOUT`` run in parallel (pg_dump copies each table
with one COPY, so one large table would bound the whole backup). Every connection runs
inside the same snapshot (``SET TRANSACTION SNAPSHOT``), so the parts together are exactly
the table as pg_dump would have seen it, and with pg_dump's session settings (ISO dates,
exact floats, the database's encoding, row security off so that a policy fails the backup
instead of silently dropping rows). The text format is pg_dump's: one row per line
(newlines inside values are escaped), so rows are counted by counting lines.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from swarm.errors import SourceError
from swarm.sources.postgres.conn import connect, redact

PAGE = 8192

# The tables whose rows pg_dump would dump: plain tables (partitions included; a partitioned
# parent holds no rows) outside the system schemas, minus extension members (CREATE
# EXTENSION recreates those and their rows).
TABLES_SQL = """
SELECT n.nspname, c.relname, c.relpages::bigint * 8192 AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                  AND d.deptype = 'e')
ORDER BY 3 DESC, 1, 2
"""

# pg_dump's session settings for reading data (pg_dump.c, setup_connection), so the text is
# what pg_dump writes: unambiguous dates and intervals, floats that round-trip, no timeout.
COPY_OUT_SETTINGS = ("SET DateStyle = ISO", "SET IntervalStyle = postgres", "SET extra_float_digits = 3",
                     "SET statement_timeout = 0", "SET lock_timeout = 0",
                     "SET idle_in_transaction_session_timeout = 0", "SET row_security = off")
COPY_IN_SETTINGS = ("SET synchronous_commit = off", "SET statement_timeout = 0", "SET lock_timeout = 0",
                    "SET row_security = off")

COLUMNS_SQL = """
SELECT a.attname FROM pg_attribute a
WHERE a.attrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass
  AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class TablePart:
    schema: str
    table: str
    index: int
    first_page: int
    end_page: int | None  # None: to the end of the table

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.table}"


def data_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str, int]]:
    """``(schema, table, size estimate in bytes)`` of every table whose rows a backup holds,
    largest first. The estimate (``pg_class.relpages``, kept by VACUUM / ANALYZE) takes no
    lock: ``pg_relation_size`` would wait behind any ACCESS EXCLUSIVE lock. A table never
    analysed counts as empty (one part); the split is only about speed, never correctness."""
    return [(r[0], r[1], int(r[2])) for r in conn.execute(TABLES_SQL).fetchall()]


def lock_tables(conn: psycopg.Connection[Any], tables: list[tuple[str, str]]) -> None:
    """``LOCK TABLE ... IN ACCESS SHARE MODE`` on ``tables`` in the snapshot's transaction, as
    pg_dump does: held until that transaction ends, so no TRUNCATE, DROP or ALTER can change a
    table between the snapshot and the COPY that reads it. Waits behind a lock already held."""
    try:
        for i in range(0, len(tables), 500):
            names = sql.SQL(", ").join(sql.SQL("ONLY {}.{}").format(sql.Identifier(s), sql.Identifier(t))
                                       for s, t in tables[i:i + 500])
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(names))
    except psycopg.Error as exc:
        raise SourceError(f"cannot lock the tables to back up: {str(exc).strip()}",
                          hint="Check that the server is up and no table was dropped meanwhile; "
                               "no backup was recorded. Run the backup again.") from exc


def server_encoding(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_setting('server_encoding')").fetchone()
    return str(row[0]) if row else "UTF8"


def copy_columns(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    return [r[0] for r in conn.execute(COLUMNS_SQL, (schema, table)).fetchall()]


def split_pages(schema: str, table: str, size_bytes: int, parts: int) -> list[TablePart]:
    """``parts`` page ranges covering the table; the last one is open-ended (the table may
    have grown since its size was read; rows the snapshot sees can be on any page)."""
    pages = max(1, size_bytes // PAGE)
    parts = max(1, min(parts, pages))
    step = -(-pages // parts)
    out = []
    for i in range(parts):
        first = i * step
        end = None if i == parts - 1 else (i + 1) * step
        out.append(TablePart(schema, table, i, first, end))
    return out


def _select(part: TablePart, columns: list[str]) -> sql.Composed:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    if part.first_page == 0 and part.end_page is None:  # the whole table (COPY TO never reads children)
        return sql.SQL("COPY {}.{} {}TO STDOUT").format(sql.Identifier(part.schema), sql.Identifier(part.table),
                                                      _column_list(columns))
    where = sql.SQL("ctid >= {}::tid").format(sql.Literal(f"({part.first_page},0)"))
    if part.end_page is not None:
        where = sql.SQL("{} AND ctid < {}::tid").format(where, sql.Literal(f"({part.end_page},0)"))
    return sql.SQL("COPY (SELECT {} FROM ONLY {}.{} WHERE {}) TO STDOUT").format(
        cols, sql.Identifier(part.schema), sql.Identifier(part.table), where)


class RowCounter:
    """Counts COPY text rows (lines) as the bytes stream past."""

    def __init__(self) -> None:
        self.rows = 0
        self.bytes = 0

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.rows += chunk.count(b"\n")
            self.bytes += len(chunk)
            yield chunk


def copy_out(url: str, snapshot: str, part: TablePart, columns: list[str], *,
             encoding: str | None = None) -> Iterator[bytes]:
    """Stream one part of a table as COPY text (in ``encoding``, default the server's), inside
    ``snapshot``. The connection closes when the generator ends or is closed.

    The table is locked with NOWAIT first, like pg_dump's workers: the snapshot's session
    already holds ACCESS SHARE on it, so a wait here can only be behind an ACCESS EXCLUSIVE
    request queued after that session's lock, which would wait for us in turn, forever."""
    with connect(url, autocommit=False) as conn:
        try:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
            for stmt in COPY_OUT_SETTINGS:
                conn.execute(stmt)
            if encoding:
                conn.execute(sql.SQL("SET client_encoding = {}").format(sql.Literal(encoding)))
            conn.execute(sql.SQL("LOCK TABLE ONLY {}.{} IN ACCESS SHARE MODE NOWAIT").format(
                sql.Identifier(part.schema), sql.Identifier(part.table)))
            with conn.cursor() as cur, cur.copy(_select(part, columns)) as copy:
                for data in copy:
                    yield bytes(data)
        except psycopg.Error as exc:
            raise SourceError(f"COPY of {part.qualified} (part {part.index}) failed against {redact(url)}: "
                              f"{str(exc).strip()}",
                              hint="Check that the server is up; no backup was recorded.") from exc
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.rollback()


def _column_list(columns: list[str]) -> sql.Composable:
    """``(a, b) `` or nothing for a table without columns (``COPY t () ...`` is not SQL)."""
    if not columns:
        return sql.SQL("")
    return sql.SQL("({}) ").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns))


def copy_from_statement(schema: str, table: str, columns: list[str]) -> sql.Composed:
    return sql.SQL("COPY {}.{} {}FROM STDIN").format(sql.Identifier(schema), sql.Identifier(table),
                                                   _column_list(columns))


def strip_end_marker(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """COPY text without the ``\\.`` end-of-data line (and blank lines after it) that
    pg_dump appends to each table file of a directory-format dump."""
    held = b""
    for chunk in chunks:
        held += chunk
        if len(held) > 64:
            yield held[:-16]
            held = held[-16:]
    body = held.rstrip(b"\n")
    if body == b"\\." or body.endswith(b"\n\\."):
        held = body[:-2]
    if held:
        yield held


def copy_in(url: str, statement: sql.Composed | str, chunks: Iterable[bytes], *, what: str,
            encoding: str | None = None) -> int:
    """Run ``statement`` (a ``COPY ... FROM STDIN``) fed with ``chunks`` of COPY text in
    ``encoding`` (default: the connection's); return the rows loaded. ``what`` names the
    table in errors."""
    with connect(url) as conn:
        try:
            for stmt in COPY_IN_SETTINGS:
                conn.execute(stmt)
            if encoding:
                conn.execute(sql.SQL("SET client_encoding = {}").format(sql.Literal(encoding)))
            counter = RowCounter()
            query = statement.encode() if isinstance(statement, str) else statement
            with conn.cursor() as cur, cur.copy(query) as copy:
                for chunk in counter.wrap(chunks):
                    copy.write(chunk)
            return counter.rows
        except psycopg.Error as exc:
            raise SourceError(f"loading {what} failed: {str(exc).strip()}",
                              hint="The target is partly restored; run the restore again with --force.") from exc
