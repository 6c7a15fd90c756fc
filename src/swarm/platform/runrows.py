"""One run's rows: read them out of a swarm database, write them into another.

The platform owns the schema, so the SQL lives here. What belongs to a run is found from
the catalogue, not from a hard-coded list: the ``runs`` row, every row of every table
with a single-column foreign key to ``runs(id)`` (today ``run_events``, ``approvals``,
``denials``, ``run_artefacts``), and the ``pipelines`` row the run belongs to. An import accepts exactly that
shape and nothing else (checked in ``swarm.services.transfer.imports``): one ``runs`` row
with the run's id, one ``pipelines`` row with its pipeline's id, and child rows whose every
reference to ``runs(id)`` names that run.

Rows travel as ``row_to_json`` objects and come back through ``jsonb_populate_recordset``,
so every column type (jsonb, timestamptz, arrays) round-trips exactly. Columns filled
from a sequence or an identity (``run_events.id`` ...) are never written: the target's
sequences number the imported rows, so they cannot collide with rows already there.

Every psycopg error is translated into a ``SwarmError`` here.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from swarm.errors import SourceError
from swarm.sources.postgres.conn import connect, redact

RUNS = "runs"
PIPELINES = "pipelines"
ARTEFACTS = "run_artefacts"  # one row per object the run wrote; its ``key`` lies under the run's prefix
BATCH = 500

_REFERENCING_SQL = """
SELECT c.conrelid::regclass::text, a.attname
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
WHERE c.contype = 'f' AND c.confrelid = 'public.runs'::regclass AND cardinality(c.conkey) = 1
ORDER BY 1
"""
_COLUMNS_SQL = """
SELECT column_name, (column_default LIKE 'nextval(%%' OR is_identity = 'YES' OR is_generated = 'ALWAYS')
FROM information_schema.columns
WHERE table_schema = 'public' AND table_name = %s
ORDER BY ordinal_position
"""
_PK_SQL = """
SELECT a.attname FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY array_position(i.indkey, a.attnum)
"""


def _fail(what: str, exc: psycopg.Error) -> SourceError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return SourceError(f"{what}: {msg}")


def referencing_tables(conn: Any) -> dict[str, str]:
    """Table -> its column referencing ``runs(id)`` (the first, by name, if it has several:
    :func:`run_reference_columns` lists them all)."""
    return {table: cols[0] for table, cols in run_reference_columns(conn).items()}


def run_reference_columns(conn: Any) -> dict[str, list[str]]:
    """Table -> every column of it with a single-column foreign key to ``runs(id)``, sorted."""
    out: dict[str, list[str]] = {}
    for table, col in conn.execute(_REFERENCING_SQL).fetchall():
        out.setdefault(str(table).removeprefix("public."), []).append(str(col))
    return {t: sorted(set(cols)) for t, cols in out.items()}


def columns(conn: Any, table: str) -> tuple[list[str], list[str]]:
    """(all columns, columns filled by a sequence / identity / generation) of ``table``."""
    rows = conn.execute(_COLUMNS_SQL, (table,)).fetchall()
    return [r[0] for r in rows], [r[0] for r in rows if r[1]]


def _order(conn: Any, table: str) -> sql.Composable:
    pk = [r[0] for r in conn.execute(_PK_SQL, (f"public.{table}",)).fetchall()]
    if not pk:
        return sql.SQL("ctid")
    return sql.SQL(", ").join(sql.Identifier(c) for c in pk)


class RunReader:
    """A read-only REPEATABLE READ snapshot of one database: the rows of one run, all from the
    same instant."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._cm = connect(db_url, autocommit=False)
        self.conn: Any = None

    def __enter__(self) -> RunReader:
        self.conn = self._cm.__enter__()
        try:
            self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        except psycopg.Error as exc:
            self._cm.__exit__(None, None, None)
            raise _fail(f"cannot open a snapshot of {redact(self.db_url)}", exc) from exc
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.conn.rollback()
        except psycopg.Error:
            pass
        self._cm.__exit__(None, None, None)

    def schema_version(self) -> int | None:
        try:
            exists = self.conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()
            if not exists or exists[0] is None:
                return None
            row = self.conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        except psycopg.Error as exc:
            raise _fail("reading the schema version", exc) from exc
        return int(row[0]) if row and row[0] is not None else None

    def run(self, run_id: str) -> dict[str, Any] | None:
        rows = list(self.rows(RUNS, "id", run_id))
        return rows[0] if rows else None

    def referencing_tables(self) -> dict[str, str]:
        try:
            return referencing_tables(self.conn)
        except psycopg.Error as exc:
            raise _fail("reading the foreign keys to runs", exc) from exc

    def rows(self, table: str, column: str, value: str) -> Iterator[dict[str, Any]]:
        """Rows of ``table`` where ``column = value``, in primary key order, streamed."""
        try:
            q = sql.SQL("SELECT row_to_json(t)::text FROM public.{} t WHERE t.{} = %s ORDER BY {}").format(
                sql.Identifier(table), sql.Identifier(column), _order(self.conn, table))
            with self.conn.cursor(name=f"swarm_export_{table}") as cur:
                cur.itersize = 1000
                cur.execute(q, (value,))
                for (text,) in cur:
                    yield json.loads(text)
        except psycopg.Error as exc:
            raise _fail(f"reading {table} rows", exc) from exc


class RunWriter:
    """One transaction on the target database. Nothing is visible until :meth:`commit`;
    leaving the context without it rolls everything back (as does a crash: the server drops
    the transaction with the connection)."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._cm = connect(db_url, autocommit=False)
        self.conn: Any = None
        self.committed = False

    def __enter__(self) -> RunWriter:
        self.conn = self._cm.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self.committed:
            try:
                self.conn.rollback()
            except psycopg.Error:
                pass
        self._cm.__exit__(None, None, None)

    def _do(self, what: str, q: Any, params: Any = None) -> Any:
        try:
            return self.conn.execute(q, params)
        except psycopg.Error as exc:
            raise _fail(what, exc) from exc

    def schema_version(self) -> int | None:
        exists = self._do("reading the schema version", "SELECT to_regclass('public.schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return None
        row = self._do("reading the schema version", "SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def referencing_tables(self) -> dict[str, str]:
        try:
            return referencing_tables(self.conn)
        except psycopg.Error as exc:
            raise _fail("reading the foreign keys to runs", exc) from exc

    def run_reference_columns(self) -> dict[str, list[str]]:
        try:
            return run_reference_columns(self.conn)
        except psycopg.Error as exc:
            raise _fail("reading the foreign keys to runs", exc) from exc

    def run_exists(self, run_id: str) -> bool:
        return self._do("looking up the run", "SELECT 1 FROM runs WHERE id = %s", (run_id,)).fetchone() is not None

    def pipeline(self, pipeline_id: str) -> dict[str, Any] | None:
        row = self._do("looking up the pipeline", "SELECT row_to_json(p)::text FROM pipelines p WHERE id = %s",
                       (pipeline_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def name_taken(self, name: str) -> bool:
        return self._do("looking up the pipeline name", "SELECT 1 FROM pipelines WHERE name = %s",
                        (name,)).fetchone() is not None

    def lock_run(self, run_id: str) -> None:
        """Serialise imports of the same run id until this transaction ends."""
        self._do("taking the run lock", "SELECT pg_advisory_xact_lock(hashtext('swarm-import:' || %s))", (run_id,))

    def delete_run(self, run_id: str, referencing: dict[str, str]) -> dict[str, int]:
        """Delete the run and every row referencing it; returns rows deleted per table."""
        out: dict[str, int] = {}
        for table, col in referencing.items():
            cur = self._do(f"deleting {table} rows", sql.SQL("DELETE FROM public.{} WHERE {} = %s").format(
                sql.Identifier(table), sql.Identifier(col)), (run_id,))
            out[table] = int(cur.rowcount)
        cur = self._do("deleting the run", "DELETE FROM runs WHERE id = %s", (run_id,))
        out[RUNS] = int(cur.rowcount)
        return out

    def insert_rows(self, table: str, rows: Iterable[dict[str, Any]]) -> int:
        """Insert ``rows`` (``row_to_json`` objects) into ``table``, without the columns a
        sequence or identity fills. Returns the number inserted."""
        try:
            cols, generated = columns(self.conn, table)
        except psycopg.Error as exc:
            raise _fail(f"reading the columns of {table}", exc) from exc
        if not cols:
            raise SourceError(f"table {table} does not exist in {redact(self.db_url)}",
                              hint="The target's schema differs from the export's; apply migrations.")
        keep = [c for c in cols if c not in generated]
        ident = sql.SQL(", ").join(sql.Identifier(c) for c in keep)
        q = sql.SQL("INSERT INTO public.{t} ({c}) SELECT {c} FROM jsonb_populate_recordset(NULL::public.{t}, "
                    "%s::jsonb)").format(t=sql.Identifier(table), c=ident)
        n = 0
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                n += self._insert(table, q, batch)
                batch = []
        if batch:
            n += self._insert(table, q, batch)
        return n

    def _insert(self, table: str, q: Any, batch: list[dict[str, Any]]) -> int:
        cur = self._do(f"inserting {table} rows", q, (json.dumps(batch),))
        return int(cur.rowcount)

    def commit(self) -> None:
        try:
            self.conn.commit()
        except psycopg.Error as exc:
            raise _fail("committing the import", exc) from exc
        self.committed = True
