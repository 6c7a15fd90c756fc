"""Parallel COPY of large tables: out of one exported snapshot by ctid page ranges, and back in.

pg_dump copies each table with one COPY, so one large table bounds the whole dump (and
pg_restore likewise loads it with one COPY). For tables above a threshold we instead run
several ``COPY (SELECT cols FROM ONLY t WHERE ctid >= '(a,0)' AND ctid < '(b,0)') TO STDOUT``
in parallel, every connection inside the same snapshot (``SET TRANSACTION SNAPSHOT``), so the
parts together are exactly the table as pg_dump would have seen it. The text format is
pg_dump's: one row per line (newlines inside values are escaped), so rows are counted by
counting lines.
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

LARGE_TABLES_SQL = """
SELECT n.nspname, c.relname, c.relpages::bigint * 8192 AS bytes
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
  AND c.relpages::bigint * 8192 >= %s
ORDER BY 3 DESC
"""

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


def large_tables(conn: psycopg.Connection[Any], min_bytes: int) -> list[tuple[str, str, int]]:
    """Tables whose size estimate (``pg_class.relpages``, kept by VACUUM / ANALYZE) reaches
    ``min_bytes``. The estimate takes no lock: ``pg_relation_size`` would wait behind any
    ACCESS EXCLUSIVE lock before pg_dump even started. A table never analysed counts as
    small and is dumped by pg_dump; the split is only about speed, never correctness."""
    return [(r[0], r[1], int(r[2])) for r in conn.execute(LARGE_TABLES_SQL, (min_bytes,)).fetchall()]


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


def copy_out(url: str, snapshot: str, part: TablePart, columns: list[str]) -> Iterator[bytes]:
    """Stream one part of a table as COPY text, inside ``snapshot``. The connection closes
    when the generator ends or is closed."""
    with connect(url, autocommit=False) as conn:
        try:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
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


def copy_in(url: str, schema: str, table: str, columns: list[str], chunks: Iterable[bytes]) -> int:
    """Load COPY text into ``schema.table``; return the rows loaded."""
    stmt = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    with connect(url) as conn:
        try:
            conn.execute("SET synchronous_commit = off")
            counter = RowCounter()
            with conn.cursor() as cur, cur.copy(stmt) as copy:
                for chunk in counter.wrap(chunks):
                    copy.write(chunk)
            return counter.rows
        except psycopg.Error as exc:
            raise SourceError(f"loading {schema}.{table} failed: {str(exc).strip()}",
                              hint="The target is partly restored; run the restore again with --force.") from exc
