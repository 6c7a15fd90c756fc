"""The drill's validation rungs, each a function returning a ``swarm.model.drill.Rung``.

They read the scratch deployment only (and, for the informational live figure, production's
pipelines count); they write nothing but the ``amcheck`` extension into the scratch database.
The order and the verdict are ``swarm.model.drill`` (``RUNGS``, ``ladder_verdict``).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarm.errors import SourceError, SwarmError
from swarm.model.drill import Rung, compare_counts
from swarm.services.postgres.physical_verify import _check_databases
from swarm.sources.objects import Bucket
from swarm.sources.postgres.conn import connect, count_rows, dbname_of, redact, with_dbname

DEFAULT_SAMPLE = 20


class _OneDatabase:
    """What ``physical_verify._check_databases`` needs of a cluster (``psql(sql, dbname)``),
    for the scratch database alone, over psycopg (a scratch server may hold other databases)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dbname = dbname_of(url)
        self.superuser = ""

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        if sql.lstrip().startswith("SELECT datname FROM pg_database"):
            return self.dbname
        try:
            with connect(with_dbname(self.url, dbname)) as conn:
                cur = conn.cursor()
                cur.execute(sql.encode())
                rows: list[Any] = []
                while True:
                    if cur.description is not None:
                        rows = cur.fetchall()
                    if not cur.nextset():
                        break
        except Exception as exc:  # psycopg's errors (the SDK stays in sources): the message is enough
            if isinstance(exc, SwarmError):
                raise
            raise SourceError(f"query on {redact(self.url)} failed: {str(exc).strip()}") from exc
        return "\n".join("|".join("" if v is None else str(v) for v in r) for r in rows)


def database_rungs(db_url: str) -> tuple[Rung, Rung]:
    """``pg_read`` (every table read end to end) and ``amcheck`` (every B-tree index checked), by
    physical verify's own check (``_check_databases``) on the scratch database."""
    problems: list[tuple[str, str]] = []
    facts: dict[str, Any] = {}

    def fail(where: str, message: str) -> None:
        problems.append((where, message))

    try:
        _check_databases(_OneDatabase(db_url), "", fail, facts)
    except SwarmError as exc:
        problems.append(("database", exc.message))
    reads = [f"{w}: {m}" for w, m in problems if "index" not in w and "amcheck" not in w]
    idx = [f"{w}: {m}" for w, m in problems if "index" in w or "amcheck" in w]
    tables = int(facts.get("tables_read", 0))
    read = Rung("pg_read", not reads, expected="every table readable", found={"tables_read": tables,
                                                                               "rows_read": facts.get("rows_read", 0)},
                detail="; ".join(reads[:5]))
    if reads:
        return read, Rung("amcheck", None)
    if not facts.get("amcheck"):
        return read, Rung("amcheck", False, expected="amcheck available", found="not installed",
                          detail=str(facts.get("note", "")))
    return read, Rung("amcheck", not idx, expected="every B-tree index valid",
                      found={"indexes_checked": facts.get("indexes_checked", 0), "failed": len(idx)},
                      detail="; ".join(idx[:5]))


def _get_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body = json.loads(r.read())
    return body if isinstance(body, dict) else {}


def api_rung(api_url: str, figures: dict[str, Any], live_pipelines: Callable[[], int | None]) -> Rung:
    """The scratch API's ``/api/v1/pipelines`` total and ``/api/v1/runs`` total against
    production's figures at the recovery point (exact when ``figures_exact``, else ±1); production's
    live total is recorded beside them (±1 is the seed's manual check; it is not held against a
    drill of an older point)."""
    exact = bool(figures.get("figures_exact", True))
    tol = 0 if exact else 1
    want_p = figures.get("pipelines_total")
    want_r = (figures.get("row_counts") or {}).get("public.runs")
    try:
        got_p = int(_get_json(f"{api_url}/api/v1/pipelines?limit=1")["total"])
        got_r = int(_get_json(f"{api_url}/api/v1/runs?limit=1")["total"])
    except (OSError, ValueError, KeyError) as exc:
        return Rung("api_pipelines", False, expected=want_p, found=None, detail=f"the API did not answer: {exc}")
    live = None
    try:
        live = live_pipelines()
    except Exception:
        live = None
    bad = []
    if want_p is not None and abs(got_p - int(want_p)) > tol:
        bad.append(f"pipelines total {got_p}, production had {want_p}")
    if want_r is not None and abs(got_r - int(want_r)) > tol:
        bad.append(f"runs total {got_r}, production had {want_r}")
    return Rung("api_pipelines", not bad, expected={"pipelines": want_p, "runs": want_r, "tolerance": tol},
                found={"pipelines": got_p, "runs": got_r, "live_production_pipelines": live,
                       "within_1_of_live": None if live is None else abs(got_p - live) <= 1},
                detail="; ".join(bad))


def row_counts_rung(db_url: str, expected: dict[str, int], *, exact: bool) -> Rung:
    """Every table's row count in the scratch database against the manifest's."""
    try:
        with connect(db_url) as conn:
            found = count_rows(conn)
    except SwarmError as exc:
        return Rung("row_counts", False, expected=len(expected), found=None, detail=exc.message)
    diff = compare_counts(expected, found, tolerance=0 if exact else 1)
    return Rung("row_counts", not diff, expected={"tables": len(expected), "rows": sum(expected.values())},
                found={"tables": len([t for t in expected if t in found]),
                       "rows": sum(found.get(t, 0) for t in expected), "differ": diff},
                detail="; ".join(f"{t}: {d['found']} rows, expected {d['expected']}"
                                 for t, d in list(diff.items())[:5]))


def integrity_rung(check: Callable[[], dict[str, Any]]) -> Rung:
    """The cross-store check of the scratch deployment (``check stack``)."""
    try:
        d = check()
    except SwarmError as exc:
        return Rung("integrity", False, detail=exc.message)
    findings = [f"{f.get('category')}: {f.get('subject')}" for f in d.get("findings", [])]
    return Rung("integrity", bool(d.get("ok")), expected="database, bucket and state directory agree",
                found={"checked": d.get("checked"), "findings": len(findings),
                       "problems": {k: v for k, v in (d.get("summary") or {}).items()
                                    if isinstance(v, dict) and v.get("count")}},
                detail="" if d.get("ok") else "; ".join(findings[:5]))


def objects_sample_rung(target: Bucket, expected: list[tuple[str, int, str]], *, sample: int = DEFAULT_SAMPLE,
                        seed: int | None = None) -> Rung:
    """A random sample of the restored objects read back in full: size, and MD5 against the ETag
    production recorded when that ETag is a plain MD5 (single-part upload). ``expected``: (key,
    size, etag) of every object the recovery point holds."""
    if not expected:
        return Rung("objects_sample", True, expected=0, found=0, detail="no objects at the recovery point")
    rnd = random.Random(seed)
    picks = rnd.sample(expected, min(sample, len(expected)))
    bad: list[str] = []
    read = 0
    for key, size, etag in picks:
        h = hashlib.md5(usedforsecurity=False)
        n = 0
        try:
            for chunk in target.iter_get(key):
                h.update(chunk)
                n += len(chunk)
        except SwarmError as exc:
            bad.append(f"{key}: {exc.message}")
            continue
        read += 1
        tag = etag.strip('"')
        if n != size:
            bad.append(f"{key}: {n} bytes, expected {size}")
        elif tag and "-" not in tag and len(tag) == 32 and h.hexdigest() != tag:
            bad.append(f"{key}: MD5 {h.hexdigest()} differs from the recorded ETag {tag}")
    return Rung("objects_sample", not bad, expected={"sampled": len(picks), "of": len(expected)},
                found={"read": read, "bad": len(bad)}, detail="; ".join(bad[:5]))


def state_rung(state_dir: Path, expected_files: int, restored: dict[str, Any]) -> Rung:
    """The restored state directory's files: as many regular files as the snapshot holds, every
    checksum verified by the restore."""
    n = 0
    for _root, _dirs, files in os.walk(state_dir):
        n += sum(1 for f in files if not os.path.islink(os.path.join(_root, f)))
    ok = n == expected_files
    return Rung("state", ok, expected={"files": expected_files},
                found={"files": n, "checksums_verified": restored.get("checksums_verified")},
                detail="" if ok else f"{n} files on disk, the snapshot holds {expected_files}")
