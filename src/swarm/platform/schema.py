"""Versioned migrations: ``platform/migrations/NNNN_name.sql``, applied in order, once each.

``apply_migrations`` runs every pending migration in its own transaction and records it in
``schema_migrations``; a crash mid-migration rolls that migration back, so re-running
converges.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from swarm.sources.postgres.conn import connect

SCHEMA_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    out = []
    for entry in resources.files("swarm.platform").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            num, _, rest = entry.name.partition("_")
            out.append(Migration(int(num), rest[:-4], entry.read_text()))
    return sorted(out, key=lambda m: m.version)


def latest_version() -> int:
    return migrations()[-1].version


def apply_migrations(db_url: str) -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    applied_now = []
    with connect(db_url) as conn:
        conn.execute(SCHEMA_VERSION_TABLE)
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations").fetchall()}
        for m in migrations():
            if m.version in done:
                continue
            with conn.transaction():
                conn.execute(m.sql.encode())
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (m.version, m.name))
            applied_now.append(m.version)
    return applied_now


def current_version(db_url: str) -> int | None:
    with connect(db_url) as conn:
        exists = conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return None
        row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else None
