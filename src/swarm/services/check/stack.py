"""``swarm admin check stack``: do a deployment's database, bucket and state directory agree?

:func:`check_stack` takes the three stores (a database URL, a bucket configuration, a state
directory), gathers the facts :mod:`swarm.model.integrity` compares, and returns a
:class:`StackCheckResult` (whose ``to_dict()`` is what ``--json`` prints and what a
whole-stack restore puts under ``integrity``). It writes nothing anywhere.

Order, chosen so that a deployment in use shows as few false disagreements as possible
(the platform creates a run's row before its objects and batch directory, a pipeline before
the cron jobs naming it, and an object before the ``run_artefacts`` row recording it):

1. preflight, before any long work: the state directory exists (else ``state-dir-missing``,
   exit 9), the database answers and has ``run_artefacts`` (schema version 2; else exit 7 /
   8), the bucket answers (exit 7, or 9 if it does not exist);
2. the state directory is read (``batch/*/`` names, ``cron/jobs.json``), then the bucket is
   listed under ``pipeline_runs/`` (latest versions only: what the deployment serves);
3. the database is read in one REPEATABLE READ, READ ONLY transaction (run and pipeline ids,
   every ``run_artefacts`` row): everything the state and listing name was created before;
4. checksums: S3's ETag is the MD5 of a single-part upload and something else for a multipart
   or SSE-KMS one, so it cannot prove a SHA-256. Every recorded object whose size matches
   its row is read once, streamed (1 MiB chunks), by ``workers`` threads at once, and
   hashed; an object that vanished since the listing counts as missing. This costs one GET
   per artefact and every recorded byte across the network (about the bucket's read
   bandwidth: 10 GB at 100 MB/s is 100 s); ``read_checksums=False`` (``--sizes-only``)
   skips it and reports those artefacts as ``unverified``. Orphan and unrecorded objects
   are never read (their size is all the report needs).

Memory: the ids of every run and pipeline, every ``run_artefacts`` row and every listed key
are held at once (about 200 bytes each: a million artefacts is some 200 MB), plus
``workers`` × 1 MiB of object data in flight.

On a deployment in use the result is a best effort (a run writing artefacts during the check
can show as unrecorded objects, which do not fail it); on a restored or quiescent deployment
it is exact. A kill -9 at any point leaves nothing behind: nothing is written.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import NotFoundError, RefusedError, StateDirMissing
from swarm.model.integrity import (
    RUN_PREFIX,
    Artefact,
    CronJob,
    IntegrityReport,
    StackFacts,
    StoredObject,
    check,
)
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.objects import Bucket, BucketConfig
from swarm.sources.postgres.conn import connect, redact

DEFAULT_WORKERS = 8
JOBS_FILE = "cron/jobs.json"
BATCH_DIR = "batch"


@dataclass
class StackCheckResult:
    """The verdict on one deployment; ``ok`` only when all three stores agree."""

    target: dict[str, Any]
    report: IntegrityReport
    checksums: str  # "read": every matching-size artefact was hashed; "sizes-only": none was
    objects_read: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.report.ok

    def to_dict(self) -> dict[str, Any]:
        d = self.report.to_dict()
        return {"ok": d.pop("ok"), "target": self.target, "checksums": self.checksums,
                "objects_read": self.objects_read, "bytes_read": self.bytes_read, "seconds": round(self.seconds, 2),
                "timings": {k: round(v, 2) for k, v in self.timings.items()}, **d}


# ---- the state directory ---------------------------------------------------------------------------
def read_state(state_dir: Path) -> tuple[list[str], list[CronJob], list[tuple[str, str]]]:
    """(batch run dir names, cron jobs, problems) of a state directory.

    ``batch/`` entries that are not directories (files, symlinks, sockets) are ignored; a
    missing ``batch/`` or ``cron/jobs.json`` means none. A ``jobs.json`` that cannot be read,
    is not JSON, or has no ``jobs`` list of objects with a ``pipeline`` is a problem (which
    fails the check), as is a ``batch/`` that cannot be listed."""
    problems: list[tuple[str, str]] = []
    dirs: list[str] = []
    batch = state_dir / BATCH_DIR
    try:
        with os.scandir(batch) as it:
            dirs = sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        problems.append((BATCH_DIR, "batch is not a directory"))
    except OSError as exc:
        problems.append((BATCH_DIR, f"cannot list batch/: {exc.strerror or exc}"))
    jobs: list[CronJob] = []
    path = state_dir / JOBS_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return dirs, jobs, problems
    except OSError as exc:
        problems.append((JOBS_FILE, f"cannot read it: {exc.strerror or exc}"))
        return dirs, jobs, problems
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append((JOBS_FILE, f"not valid JSON: {exc}"))
        return dirs, jobs, problems
    entries = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        problems.append((JOBS_FILE, 'no "jobs" list (expected {"version": 1, "jobs": [...]})'))
        return dirs, jobs, problems
    for i, job in enumerate(entries):
        if not isinstance(job, dict) or not isinstance(job.get("pipeline"), str):
            problems.append((f"{JOBS_FILE}#jobs[{i}]", 'a job without a "pipeline" name'))
            continue
        jobs.append(CronJob(str(job.get("id") or f"jobs[{i}]"), job["pipeline"]))
    return dirs, jobs, problems


# ---- the bucket ------------------------------------------------------------------------------------
def list_run_objects(bucket: Bucket) -> list[tuple[str, int]]:
    """(key, size) of every live object under ``pipeline_runs/`` (latest versions)."""
    out: list[tuple[str, int]] = []
    kw: dict[str, Any] = {"Bucket": bucket.name, "Prefix": RUN_PREFIX, "MaxKeys": 1000}
    while True:
        resp = bucket.call(f"list {RUN_PREFIX}", bucket.client.list_objects_v2, **kw)
        out += [(str(item["Key"]), int(item.get("Size") or 0)) for item in resp.get("Contents", [])]
        if not resp.get("IsTruncated") or not resp.get("NextContinuationToken"):
            return out
        kw["ContinuationToken"] = resp["NextContinuationToken"]


def _sha256(bucket: Bucket, key: str, reporter: Reporter) -> tuple[str | None, int]:
    """(hex SHA-256, bytes read) of the live object ``key``; (None, 0) if it is gone."""
    h = hashlib.sha256()
    n = 0
    try:
        for chunk in bucket.iter_get(key):
            h.update(chunk)
            n += len(chunk)
            reporter.advance(len(chunk))
    except NotFoundError:
        return None, n
    return h.hexdigest(), n


# ---- the database ----------------------------------------------------------------------------------
def _preflight_db(db_url: str) -> None:
    with connect(db_url) as conn:
        row = conn.execute("SELECT to_regclass('public.run_artefacts') IS NOT NULL, "
                           "to_regclass('public.schema_migrations') IS NOT NULL").fetchone()
        has_artefacts, has_schema = bool(row and row[0]), bool(row and row[1])
        if has_artefacts:
            return
        if not has_schema:
            raise RefusedError(f"{redact(db_url)} has no swarm schema", hint="Is this a swarm database? Check the "
                                                                           "URL (--db-url / SWARM_DB_URL).")
        v = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    raise RefusedError(f"{redact(db_url)} is at swarm schema version {v[0] if v else '?'}, which records no "
                       "run artefacts (run_artefacts comes with version 2)",
                       hint="Apply the pending migrations (`swarm dev up` does on the dev stack), then check "
                            "again. Runs from before version 2 record no artefacts; their objects are listed as "
                            "unrecorded.")


def read_database(db_url: str) -> tuple[frozenset[str], dict[str, str], list[Artefact]]:
    """(run ids, pipeline id → name, run_artefacts rows), all from one snapshot."""
    with connect(db_url, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        runs = frozenset(str(r[0]) for r in conn.execute("SELECT id FROM runs").fetchall())
        pipelines = {str(r[0]): str(r[1]) for r in conn.execute("SELECT id, name FROM pipelines").fetchall()}
        artefacts = [Artefact(str(r[0]), str(r[1]), int(r[2]), str(r[3])) for r in conn.execute(
            "SELECT run_id, key, size, sha256 FROM run_artefacts ORDER BY key").fetchall()]
        conn.rollback()
    return runs, pipelines, artefacts


# ---- the check -------------------------------------------------------------------------------------
def check_stack(db_url: str, bucket: BucketConfig, state_dir: Path, *, reporter: Reporter | None = None,
                workers: int = DEFAULT_WORKERS, read_checksums: bool = True) -> StackCheckResult:
    """Compare the three stores; see the module docstring for the steps, the cost and the
    errors raised before any long work. Disagreement is not an error: it is the result's
    ``ok`` (False) and ``report``."""
    if workers < 1:
        raise ValueError("workers must be at least 1")
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    state_dir = state_dir.expanduser()
    if not state_dir.is_dir():
        raise StateDirMissing(f"state directory {state_dir} does not exist or is not a directory",
                              hint="Pass --state-dir DIR (or set SWARM_STATE_DIR) to the deployment's state "
                                   "directory, the one holding cron/ and batch/.")
    reporter.stage("connecting to the database and the bucket")
    _preflight_db(db_url)
    b = Bucket(bucket, pool=max(workers, 4))
    b.check_access()
    timings["preflight"] = time.monotonic() - t0

    t = time.monotonic()
    reporter.stage(f"reading the state directory {state_dir}")
    batch_dirs, jobs, problems = read_state(state_dir)
    reporter.stage(f"listing {RUN_PREFIX} in bucket {b.name}")
    listed = list_run_objects(b)
    timings["state_and_listing"] = time.monotonic() - t

    t = time.monotonic()
    reporter.stage("reading runs, pipelines and run_artefacts")
    runs, pipelines, artefacts = read_database(db_url)
    timings["database"] = time.monotonic() - t

    t = time.monotonic()
    sizes = dict(listed)
    digests: dict[str, str | None] = {}
    objects_read = bytes_read = 0
    if read_checksums:
        todo = sorted({a.key for a in artefacts if sizes.get(a.key) == a.size})
        reporter.stage(f"reading {len(todo)} artefact(s) to compare their SHA-256")
        reporter.total(sum(sizes[k] for k in todo))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check-read") as pool:
            for key, (digest, n) in zip(todo, pool.map(lambda k: _sha256(b, k, reporter), todo), strict=True):
                digests[key] = digest
                objects_read += 1
                bytes_read += n
    timings["checksums"] = time.monotonic() - t

    objects = tuple(StoredObject(k, s, digests.get(k)) for k, s in listed
                    if not (k in digests and digests[k] is None))  # gone since the listing: missing
    facts = StackFacts(runs, pipelines, tuple(artefacts), objects, tuple(batch_dirs), tuple(jobs), tuple(problems))
    report = check(facts)
    target = {"database": redact(db_url), "bucket": bucket.public(), "state_dir": str(state_dir)}
    return StackCheckResult(target, report, "read" if read_checksums else "sizes-only", objects_read, bytes_read,
                            time.monotonic() - t0, timings)
