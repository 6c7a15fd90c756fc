"""Migrations apply in order, once each; a database at version 1 upgrades to run_artefacts
(version 2) with its data intact; run_artefacts enforces its contract."""
from __future__ import annotations

import secrets

import psycopg
import pytest

from swarm.platform.schema import SCHEMA_VERSION_TABLE, apply_migrations, current_version, latest_version, migrations
from swarm.platform.seed import seed_database
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.conn import connect, count_rows, create_database, with_dbname


def empty_db(cluster: LocalCluster) -> str:
    name = "mg_" + secrets.token_hex(4)
    create_database(cluster.url("postgres"), name)
    return with_dbname(cluster.url("postgres"), name)


def test_versions_are_in_order() -> None:
    versions = [m.version for m in migrations()]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))
    assert latest_version() >= 2 and migrations()[1].name == "run_artefacts"


def test_a_database_at_version_1_upgrades(pg_cluster: LocalCluster) -> None:
    url = empty_db(pg_cluster)
    first = migrations()[0]
    with connect(url) as conn:  # what a swarm of schema version 1 left
        conn.execute(SCHEMA_VERSION_TABLE)
        conn.execute(first.sql.encode())
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (first.version, first.name))
    seed_database(url, runs=3, size_mb=0.05, seed=1)
    assert current_version(url) == 1
    with connect(url) as conn:
        before = count_rows(conn)
    assert apply_migrations(url) == [m.version for m in migrations()[1:]]
    assert current_version(url) == latest_version()
    assert apply_migrations(url) == []  # once each
    with connect(url) as conn:
        after = count_rows(conn)
    assert after.pop("public.run_artefacts") == 0
    assert after.pop("public.schema_migrations") == latest_version()
    before.pop("public.schema_migrations")
    assert after == before


def test_run_artefacts_contract(pg_cluster: LocalCluster) -> None:
    url = empty_db(pg_cluster)
    apply_migrations(url)
    seed_database(url, runs=2, size_mb=0.01, seed=2)
    sha = "0" * 64
    with connect(url) as conn:
        a, b = [r[0] for r in conn.execute("SELECT id FROM runs ORDER BY id").fetchall()]
        conn.execute("INSERT INTO run_artefacts (run_id, key, size, sha256) VALUES (%s, %s, 1, %s)",
                     (a, f"pipeline_runs/{a}/x", sha))
    bad = [(b, f"pipeline_runs/{a}/y", 1, sha),  # under another run's prefix
           (a, f"pipeline_runs/{a}/", 1, sha),  # the prefix itself
           (a, f"elsewhere/{a}/z", 1, sha),
           (a, f"pipeline_runs/{a}/z", -1, sha),
           (a, f"pipeline_runs/{a}/z", 1, "ABC"),
           (b, f"pipeline_runs/{a}/x", 1, sha),  # one object, one row
           ("run_nosuch", "pipeline_runs/run_nosuch/z", 1, sha)]
    for row in bad:
        with pytest.raises(psycopg.errors.IntegrityError), psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO run_artefacts (run_id, key, size, sha256) VALUES (%s, %s, %s, %s)", row)
    with connect(url) as conn:  # a run's artefact rows go with it
        conn.execute("DELETE FROM runs WHERE id = %s", (a,))
        assert conn.execute("SELECT count(*) FROM run_artefacts").fetchone()[0] == 0
