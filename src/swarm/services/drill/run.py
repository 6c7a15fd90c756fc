"""``swarm admin drill``: prove a backup restorable end to end, and measure RTO and RPO.

``run_drill`` is the one entry point (the CLI and the scheduler call it); it returns a
``DrillResult`` and never prints. Steps, each a phase timed from the drill's start (the
disaster declared):

0. sweep: the leftovers of killed drills are torn down (``scratch.sweep_drills``);
1. plan, with no side effects: the backup set (``--set``, ``--latest``) or the recovery plan for
   ``--at`` (refused before anything is provisioned when T is outside the recoverable window,
   naming it), the scratch targets (refused when one is production's database, bucket, DR bucket
   or state directory, or already taken: the port, the bucket, the database, the directory);
2. ``provision``: the drill directory and its ``owner.json``, then the drill's record
   ``drills/<id>`` in the repository, marked ``running``, then a scratch PostgreSQL cluster on a
   free port (dev stack; or the operator's server, ``--target-db``), the scratch bucket
   (``swarm-drill-<id>``; or the operator's empty ``--target-bucket``), the state directory;
3. ``database``, ``objects``, ``state``: the three restores, run at the same time (each the
   ordinary restore of its kind, checksums verified on every read from the repository);
4. ``api``: ``swarm api serve`` on a free loopback port with the scratch ``SWARM_DB_URL``;
5. ``validation``: the ladder (``swarm.model.drill.RUNGS``), stopping at the first failure;
6. teardown, always (success, failure, Ctrl-C, SIGTERM: the CLI turns it into
   KeyboardInterrupt), unless ``keep``; then the verdict (``model.drill.judge``) and the
   result recorded under ``drills/<id>`` (with the ``running`` record of step 2, the only writes
   to the repository).

The drill directory and its ``owner.json`` are created before the ``running`` record is
written, so every ``running`` record has a directory. A kill -9 leaves: before the directory,
nothing; after it, the directory, the ``running`` record, and the scratch resources named by
``owner.json`` so far, which the next drill or ``swarm admin drill cleanup`` tears down, marking
the record ``killed`` (``drill history`` shows ``running`` until then). A Ctrl-C or SIGTERM while
the three restores run waits for them to end (a restore cannot be cancelled mid-way), then tears
down; a second SIGTERM or a kill -9 then leaves what the sweep removes.
"""
from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from swarm.clock import parse_iso, utc_iso
from swarm.errors import (
    DrillTargetIsProduction,
    DrObjectsMissing,
    Interrupted,
    NotFoundError,
    RefusedError,
    ScratchTaken,
    SwarmError,
    ValidationFailed,
)
from swarm.model.drill import (
    DEFAULT_TIER,
    RUNGS,
    Rung,
    bucket_name,
    db_name,
    dir_name,
    judge,
    ladder_verdict,
    new_drill_id,
    rpo_seconds,
    tier,
)
from swarm.model.sources import Kind
from swarm.repo import Repository
from swarm.services.drill import ladder
from swarm.services.drill.scratch import ScratchRecord, drills_root, new_record, sweep_drills, teardown
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.netutil import free_port
from swarm.sources.objects import Bucket, BucketConfig
from swarm.sources.postgres.conn import connect, database_exists, dbname_of, redact, with_dbname

API_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DrillRequest:
    """What to drill and where. Exactly one of ``set_id``, ``latest``, ``at`` (``at="now"``: all
    archived WAL). ``target_db``: a scratch server's URL (the drill creates its own database on
    it); ``target_bucket``: an empty scratch bucket on the objects endpoint; ``target_state``: a
    directory the drill creates its state directory in. Without them the drill provisions its own
    on the dev stack's endpoint (a local cluster, bucket ``swarm-drill-<id>``, a directory under
    ``$SWARM_HOME/drills``). ``copy``: the name of the copy of the repository the drill runs from
    (``swarm --repo NAME admin drill``; the ``repo`` given to ``run_drill`` is then that copy, and
    the drill reads nothing else of the repository), None for the primary; recorded in the
    drill's record (``source.copy``). With ``from_dr`` too, nothing of the primary region is
    read: PostgreSQL and the state from the copy, the bucket from the DR bucket."""

    set_id: str | None = None
    latest: bool = False
    at: str | None = None
    tier: str = DEFAULT_TIER
    from_dr: bool = False
    keep: bool = False
    target_db: str | None = None
    target_bucket: str | None = None
    target_state: Path | None = None
    port: int | None = None
    sample: int = ladder.DEFAULT_SAMPLE
    workers: int = 8
    copy: str | None = None


@dataclass
class DrillEnv:
    """The deployment around a drill, from the wiring (``services.context.drill_env``)."""

    home: Path
    production_db: str | None
    production_bucket: BucketConfig | None
    dr_bucket: Callable[[], BucketConfig] | None
    production_state: Path | None
    bucket_config: Callable[[str], BucketConfig]  # a bucket on the objects endpoint, by name
    api_command: list[str]  # how to run `swarm` (``api serve`` is appended)
    bindir: str | None = None
    work_dir: str | None = None
    server_access: Callable[[], Any] | None = None  # for --at (``services.context.server_access``)


@dataclass
class Phase:
    name: str
    seconds: float
    ok: bool
    started_s: float = 0.0  # from the drill's start
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seconds": round(self.seconds, 3), "ok": self.ok,
                "started_s": round(self.started_s, 3), "detail": self.detail}


@dataclass
class DrillResult:
    id: str
    started_at: str
    tier: str
    source: dict[str, Any]
    finished_at: str = ""
    status: str = "running"  # running | finished | interrupted | killed
    recovery_point: str | None = None
    rto_s: float | None = None
    rpo_s: float | None = None
    validated: bool = False
    verdict: str = "fail"
    reasons: list[str] = field(default_factory=list)
    failed_check: str | None = None
    phases: list[Phase] = field(default_factory=list)
    checks: dict[str, Rung] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    restored: dict[str, int] = field(default_factory=dict)  # bytes restored per store
    targets: dict[str, Any] = field(default_factory=dict)  # the tier's RTO/RPO targets
    kept: dict[str, Any] | None = None
    swept: list[dict[str, Any]] = field(default_factory=list)
    teardown: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "started_at": self.started_at, "finished_at": self.finished_at,
                "tier": self.tier, "targets": self.targets, "source": self.source,
                "recovery_point": self.recovery_point, "validated": self.validated, "verdict": self.verdict,
                "reasons": self.reasons, "failed_check": self.failed_check,
                "rto_s": None if self.rto_s is None else round(self.rto_s, 3),
                "rpo_s": None if self.rpo_s is None else round(self.rpo_s, 3),
                "phases": [p.to_dict() for p in self.phases],
                "checks": {n: (self.checks[n].to_dict() if n in self.checks else Rung(n, None).to_dict())
                           for n in RUNGS},
                "error": self.error, "restored_bytes": self.restored, "kept": self.kept,
                "swept": self.swept, "teardown": self.teardown}


# ---- planning (no side effects) ----------------------------------------------------------------

@dataclass
class _Plan:
    drill_id: str
    kind: str  # "set" | "at"
    set_id: str | None
    at: datetime
    figures: dict[str, Any]
    directory: Path
    db_url: str  # the scratch database (its server exists once provisioned)
    local_cluster: bool
    port: int
    bucket: BucketConfig
    bucket_created: bool
    state_dir: Path
    set_source: Any = None
    stack_plan: Any = None


def _same_db(a: str, b: str) -> bool:
    from urllib.parse import urlparse

    pa, pb = urlparse(a), urlparse(b)
    return ((pa.hostname or "localhost"), pa.port or 5432, dbname_of(a)) == \
        ((pb.hostname or "localhost"), pb.port or 5432, dbname_of(b))


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _bucket_exists(b: Bucket) -> bool:
    try:
        b.client.head_bucket(Bucket=b.name)
    except Exception:
        return False
    return True


def _inside(a: Path, b: Path) -> bool:
    a, b = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return a == b or b in a.parents


def _resolve_set(repo: Repository, req: DrillRequest) -> str:
    return req.set_id or choose_set(repo)


def choose_set(repo: Repository, *, pick: str = "latest", rng: random.Random | None = None) -> str:
    """The backup set a scheduled drill takes: ``latest`` (the newest, the nightly default) or
    ``random`` (any retained set, as AWS Backup's restore testing does, so old backups are proven
    too). NotFoundError when there is none. Pass the id as ``DrillRequest(set_id=...)``."""
    sets = sorted((m for m in repo.list_backups() if m.kind == Kind.SET), key=lambda m: (m.started_at, m.id))
    if not sets:
        raise NotFoundError(f"no backup set in {repo.url}", hint="Take one with `swarm admin backup set`.")
    if pick == "random":
        return (rng or random.SystemRandom()).choice(sets).id
    if pick != "latest":
        raise ValueError(f"pick must be 'latest' or 'random', not {pick!r}")
    return sets[-1].id


def plan_drill(repo: Repository, req: DrillRequest, env: DrillEnv, *, now: datetime | None = None) -> _Plan:
    """Decide everything and refuse what cannot work, before anything is provisioned."""
    from swarm.services.sets.restore import load_set

    tier(req.tier)  # ValueError for an unknown one (the CLI only offers the known)
    if sum(bool(x) for x in (req.set_id, req.latest, req.at)) != 1:
        raise RefusedError("a drill needs exactly one of --set ID, --latest or --at T",
                           hint="`swarm admin drill --latest` drills the newest backup set.")
    now = now or datetime.now(UTC)
    did = new_drill_id(now, secrets.token_hex(3))
    directory = drills_root(env.home) / dir_name(did)
    # the database
    if req.at and req.target_db:
        raise RefusedError("--at replays a base backup and WAL, which needs a local scratch cluster, not a "
                           "database server (--target-db)", hint="Drop --target-db, or drill a backup set.")
    if req.target_db:
        if env.production_db and _same_db(req.target_db, env.production_db):
            raise DrillTargetIsProduction(f"--target-db {redact(req.target_db)} is the production database",
                                          hint="Point --target-db at a scratch database server.")
        db_url = with_dbname(req.target_db, db_name(did))
        if database_exists(with_dbname(req.target_db, "postgres"), db_name(did)):
            raise ScratchTaken(f"database {db_name(did)} already exists at {redact(req.target_db)}")
        local, port = False, 0
    else:
        port = req.port or free_port()
        if not _port_free(port):
            raise ScratchTaken(f"the scratch port {port} is already taken on 127.0.0.1",
                               hint="Pick another --port, or omit it for a free one.")
        db_url = ""  # the cluster's URL (with its password) once it exists
        local = True
    # the bucket
    name = req.target_bucket or bucket_name(did)
    cfg = env.bucket_config(name)
    forbidden = []
    if env.production_bucket is not None:
        forbidden.append(("the production bucket", env.production_bucket))
    if env.dr_bucket is not None:
        with contextlib.suppress(SwarmError):
            forbidden.append(("the DR bucket", env.dr_bucket()))
    for what, prod in forbidden:
        if cfg.bucket == prod.bucket and (cfg.endpoint or "") == (prod.endpoint or ""):
            raise DrillTargetIsProduction(f"the scratch bucket {cfg.bucket} is {what}",
                                          hint="Point --target-bucket at an empty scratch bucket, or omit it.")
    b = Bucket(cfg)
    if req.target_bucket:
        b.check_access(write=True)
        resp = b.call("list versions", b.client.list_object_versions, Bucket=b.name, MaxKeys=1)
        if resp.get("Versions") or resp.get("DeleteMarkers"):
            raise ScratchTaken(f"the scratch bucket {b.name} is not empty",
                               hint="A drill restores into an empty bucket and empties it afterwards: give it one of "
                                    "its own.")
    elif _bucket_exists(b):
        raise ScratchTaken(f"the scratch bucket {b.name} already exists")
    # the state directory
    if req.target_state:
        state_dir = Path(req.target_state).expanduser().absolute() / dir_name(did)
        if env.production_state and (_inside(state_dir, env.production_state)
                                     or _inside(env.production_state, state_dir)):
            raise DrillTargetIsProduction(f"--target-state {req.target_state} lies in or around the production state "
                                          f"directory {env.production_state}",
                                          hint="Point --target-state at a scratch directory.")
        if state_dir.exists():
            raise ScratchTaken(f"the scratch state directory {state_dir} already exists")
    else:
        state_dir = directory / "state"
        if env.production_state and _inside(state_dir, env.production_state):
            # SWARM_STATE_DIR is SWARM_HOME itself: never restore inside the production state directory
            state_dir = Path(tempfile.gettempdir()) / dir_name(did)
            if state_dir.exists():
                raise ScratchTaken(f"the scratch state directory {state_dir} already exists")
    # what is restored
    if req.at:
        at = now if req.at == "now" else parse_iso(req.at)
        stack = _plan_at(repo, req, env, directory, state_dir, b, at)
        return _Plan(did, "at", None, at, {}, directory, db_url, local, port, cfg, not req.target_bucket, state_dir,
                     stack_plan=stack)
    set_id = _resolve_set(repo, req)
    m, src = load_set(repo, set_id)
    if src.method != "logical":
        raise RefusedError(f"backup set {set_id} holds a physical base backup",
                           hint=f"Drill it as a point in time: --at {src.at}.")
    if req.from_dr and env.dr_bucket is None:
        raise RefusedError("--from-dr needs the DR bucket (SWARM_DR_OBJECTS_BUCKET)")
    figures = dict(m.source.get("figures") or {})
    return _Plan(did, "set", set_id, parse_iso(src.at), figures, directory, db_url, local, port, cfg,
                 not req.target_bucket, state_dir, set_source=src)


def _plan_at(repo: Repository, req: DrillRequest, env: DrillEnv, directory: Path, state_dir: Path,
             target: Bucket, at: datetime) -> Any:
    """The whole-stack plan for --at (``sets.stack``): base backup, WAL to T (``TargetOutOfRange``
    naming the window when T is outside it), the newest state snapshot at or before T."""
    from swarm.model.targets import RecoveryTarget
    from swarm.services.postgres.pitr import plan_pitr
    from swarm.services.sets.stack import StackRestorePlan, newest_state_at
    from swarm.services.state.restore import plan_restore_state

    if env.production_bucket is None:
        raise RefusedError("a drill needs the production bucket's configuration (SWARM_OBJECTS_BUCKET)")
    source = Bucket(env.dr_bucket() if req.from_dr and env.dr_bucket else env.production_bucket)
    target_kind = RecoveryTarget("latest") if req.at == "now" else RecoveryTarget("time", utc_iso(at))
    pitr = plan_pitr(repo, target_kind, _pitr_base(directory) / "data", port=req.port or None, start=True,
                     bindir=env.bindir, primary_url=env.production_db)
    state = plan_restore_state(repo, newest_state_at(repo, at).id, state_dir, source_dir=env.production_state)
    return StackRestorePlan(at, pitr, state, source, target, req.from_dr)


def _pitr_base(directory: Path) -> Path:
    """Where an ``--at`` drill's recovered cluster lives: ``<drill dir>/pg``; as root, where the
    server user can reach it, ``/var/tmp/swarm-pg/swarm-drill-<id>`` (named by the drill, so the
    sweep of relocated throwaway clusters, which takes hash names only, leaves it to ours)."""
    from swarm.sources.postgres.cluster import RELOCATE_ROOT, running_as_root

    return RELOCATE_ROOT / directory.name if running_as_root() else directory / "pg"


# ---- running ----------------------------------------------------------------------------------

class _Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0


@contextlib.contextmanager
def _phase(res: DrillResult, clock: _Clock, name: str, reporter: Reporter) -> Iterator[Phase]:
    reporter.stage(f"drill {res.id}: {name}")
    start = clock.now()
    ph = Phase(name, 0.0, False, start)
    res.phases.append(ph)
    try:
        yield ph
        ph.ok = True
    finally:
        ph.seconds = clock.now() - start


def run_drill(repo: Repository, req: DrillRequest, env: DrillEnv, *, reporter: Reporter | None = None,
              now: Callable[[], datetime] | None = None) -> DrillResult:
    """Run one drill (see the module docstring). Raises before provisioning for what the plan
    refuses (nothing created, no record); afterwards never raises for a failed drill (the result
    says so, ``verdict`` fail, ``error`` the failure's code and message) except KeyboardInterrupt,
    re-raised after the teardown and the record."""
    reporter = reporter or NullReporter()
    wall = now or (lambda: datetime.now(UTC))
    clock = _Clock()
    started = wall()
    swept, _problems = sweep_drills(env.home, env.bucket_config)
    _mark_killed(repo, swept)
    plan = plan_drill(repo, req, env, now=started)
    t = tier(req.tier)
    res = DrillResult(plan.drill_id, utc_iso(started), t.name,
                      {"set": plan.set_id} if plan.kind == "set" else {"at": req.at if req.at == "now" else
                                                                       utc_iso(plan.at)},
                      targets={"rto_s": t.rto_s, "rpo_s": t.rpo_s}, swept=swept)
    res.source["from_dr"] = req.from_dr
    res.source["copy"] = req.copy  # which repository it ran from: a copy's name, None for the primary
    res.source["repository"] = repo.url
    rec: ScratchRecord | None = None
    interrupted = False
    try:
        rec = new_record(env.home, plan.drill_id)  # first: whatever follows is found through it
        with contextlib.suppress(SwarmError):
            repo.put_drill(res.id, res.to_dict())  # "running": a sweep of its directory marks it killed
        _provision(plan, env, rec, res, clock, reporter)
        _restore(repo, plan, req, env, rec, res, clock, reporter)
        api_url = _start_api(plan, env, rec, res, clock, reporter)
        _validate(plan, req, env, api_url, res, clock, reporter)
    except SwarmError as exc:
        res.error = {"error": exc.code, "message": exc.message, **({"hint": exc.hint} if exc.hint else {})}
    except KeyboardInterrupt:
        interrupted = True
        res.error = {"error": Interrupted.code, "message": "interrupted (Ctrl-C or SIGTERM)"}
    finally:
        # RTO: from the start (disaster declared) to the end of the last phase (validated, or failed)
        res.rto_s = max((p.started_s + p.seconds for p in res.phases), default=None)
        if rec is not None:
            if req.keep and not interrupted:
                rec.kept = True
                with contextlib.suppress(OSError):
                    rec.save()
                res.kept = {**rec.public(), "env": {"SWARM_DB_URL": rec.database_url,
                                                    "SWARM_OBJECTS_BUCKET": rec.bucket,
                                                    "SWARM_STATE_DIR": rec.state_dir},
                            "remove": f"swarm admin drill cleanup --id {res.id}"}
            else:
                t1 = time.monotonic()
                reporter.stage(f"drill {res.id}: tearing down")
                problems = teardown(rec, env.bucket_config)
                res.teardown = {"seconds": round(time.monotonic() - t1, 3), "problems": problems}
        _finish(repo, res, plan, wall, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return res


def _finish(repo: Repository, res: DrillResult, plan: _Plan, wall: Callable[[], datetime],
            interrupted: bool) -> None:
    lv = ladder_verdict(list(res.checks.values()))
    res.validated = lv.validated and res.error is None
    res.failed_check = lv.failed
    point = parse_iso(res.recovery_point) if res.recovery_point else plan.at
    res.recovery_point = utc_iso(point)
    res.rpo_s = rpo_seconds(parse_iso(res.started_at), point)
    v = judge(res.validated, res.rto_s, res.rpo_s, tier(res.tier), failed=lv.failed)
    res.verdict = v.verdict
    res.reasons = list(v.reasons)
    if res.error is not None:
        res.reasons.insert(0, f"{res.error['error']}: {res.error['message']}")
    elif lv.failed:
        rung = res.checks[lv.failed]
        res.error = {"error": ValidationFailed.code, "message": f"the {lv.failed} check failed: {rung.detail}"}
    res.status = "interrupted" if interrupted else "finished"
    res.finished_at = utc_iso(wall())
    record = res.to_dict()
    if record.get("kept"):  # the scratch cluster's password stays out of the repository
        record["kept"] = {**record["kept"], "env": {**record["kept"]["env"], "SWARM_DB_URL": redact(
            str(record["kept"]["env"].get("SWARM_DB_URL") or ""))}}
    with contextlib.suppress(SwarmError):
        repo.put_drill(res.id, record)


def _mark_killed(repo: Repository, swept: list[dict[str, Any]]) -> None:
    """A swept drill's history record still says ``running``: it was killed."""
    for s in swept:
        with contextlib.suppress(SwarmError, ValueError):
            rec = repo.get_drill(str(s["id"]))
            if rec is not None and rec.get("status") == "running":
                rec.update(status="killed", verdict="fail", validated=False,
                           error={"error": "drill-killed", "message": "the drill was killed before it finished; "
                                                                       "its scratch resources were removed"})
                repo.put_drill(str(s["id"]), rec)


def _provision(plan: _Plan, env: DrillEnv, rec: ScratchRecord, res: DrillResult, clock: _Clock,
               reporter: Reporter) -> None:
    """Each resource named in ``rec`` (saved) before it is created (see ``scratch``)."""
    from swarm.sources.postgres.cluster import LocalCluster

    with _phase(res, clock, "provision", reporter) as ph:
        rec.bucket, rec.bucket_endpoint, rec.bucket_created = plan.bucket.bucket, plan.bucket.endpoint, \
            plan.bucket_created
        rec.state_dir = str(plan.state_dir)
        if plan.local_cluster:
            rec.cluster_base = str(plan.directory / "pg" if plan.kind == "set" else _pitr_base(plan.directory))
        else:
            rec.database_url = plan.db_url
        rec.save()
        if plan.local_cluster and plan.kind == "set":
            cluster = LocalCluster(plan.directory / "pg", port=plan.port, bindir=Path(env.bindir) if env.bindir
                                   else None)
            cluster.init(fast=True)
            cluster.start()
            plan.db_url = cluster.url(db_name(plan.drill_id))
            rec.database_url = plan.db_url
            rec.save()
        if plan.kind == "at":
            base = _pitr_base(plan.directory)
            base.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
            base.mkdir(mode=0o711)
            os.chmod(base, 0o711)  # the server user enters it to create and own the data directory
        b = Bucket(plan.bucket)
        if plan.bucket_created:
            b.call("create bucket", b.client.create_bucket, Bucket=b.name)
            b.set_versioning(True)
        if plan.state_dir.parent != plan.directory:
            plan.state_dir.parent.mkdir(parents=True, exist_ok=True)
        ph.detail = f"database {redact(plan.db_url) if plan.db_url else 'by recovery'}, bucket {b.name}, " \
                    f"state {plan.state_dir}"


def _restore(repo: Repository, plan: _Plan, req: DrillRequest, env: DrillEnv, rec: ScratchRecord,
             res: DrillResult, clock: _Clock, reporter: Reporter) -> None:
    """The three restores at once; each a phase. The first failure is raised after all ended."""
    jobs: dict[str, Callable[[], dict[str, Any]]] = {
        "database": lambda: _restore_database(repo, plan, env, rec, reporter),
        "objects": lambda: _restore_objects(repo, plan, req, env, reporter),
        "state": lambda: _restore_state(repo, plan, env, reporter),
    }
    phases = {n: Phase(n, 0.0, False, clock.now()) for n in jobs}
    res.phases += list(phases.values())
    reporter.stage(f"drill {res.id}: restoring the database, the bucket and the state directory")

    def timed(name: str) -> dict[str, Any]:
        start = clock.now()
        try:
            out = jobs[name]()
            phases[name].ok = True
            return out
        finally:
            phases[name].seconds = clock.now() - start

    pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="drill-restore")
    futures: dict[str, Future[dict[str, Any]]] = {n: pool.submit(timed, n) for n in jobs}
    try:
        errors: list[tuple[str, BaseException]] = []
        for name, fut in futures.items():
            try:
                out = fut.result()
            except BaseException as exc:
                errors.append((name, exc))
                phases[name].detail = getattr(exc, "message", str(exc))
                continue
            res.restored[name] = int(out.get("bytes", 0))
            phases[name].detail = str(out.get("detail", ""))
            if name == "database" and out.get("recovery_point"):
                res.recovery_point = out["recovery_point"]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if errors:
        name, exc = errors[0]
        if isinstance(exc, SwarmError) and exc.exit_code == 5:  # integrity: the repository rung names it
            res.checks["repository"] = Rung("repository", False, expected="every object's SHA-256 as recorded",
                                            found=f"damaged ({name})", detail=exc.message)
        raise exc
    res.checks["repository"] = Rung("repository", True, expected="every object read matches its SHA-256",
                                    found={"database_bytes": res.restored.get("database", 0),
                                           "state_bytes": res.restored.get("state", 0)},
                                    detail="verified on read by the restores")


def _restore_database(repo: Repository, plan: _Plan, env: DrillEnv, rec: ScratchRecord,
                      reporter: Reporter) -> dict[str, Any]:
    if plan.kind == "at":
        return _recover_at(repo, plan, env, rec, reporter)
    from swarm.services.postgres.logical_restore import execute_restore, plan_restore

    p = plan_restore(repo, plan.set_source.parts["postgres"], plan.db_url, create=True)
    r = execute_restore(repo, p, work_dir=env.work_dir, reporter=reporter, bindir=env.bindir).to_dict()
    size = int(sum(o.size for o in p.manifest.objects))
    return {"bytes": size, "detail": f"{len(p.manifest.objects)} objects", "result": r}


def _recover_at(repo: Repository, plan: _Plan, env: DrillEnv, rec: ScratchRecord,
                reporter: Reporter) -> dict[str, Any]:
    from swarm.services.postgres.pitr import execute_pitr
    from swarm.sources.postgres.cluster import LocalCluster

    if env.server_access is None:
        raise RefusedError("--at needs the server user's access to the WAL archive")
    sp = plan.stack_plan
    access = env.server_access()
    try:
        r = execute_pitr(repo, sp.pitr, access, bindir=env.bindir, reporter=reporter)
    finally:
        with contextlib.suppress(Exception):
            access.revoke()
    dbname = dbname_of(env.production_db) if env.production_db else "postgres"
    plan.db_url = LocalCluster(sp.pitr.datadir.parent, port=r.port or 0, pgdata=sp.pitr.datadir).url(dbname)
    rec.database_url = plan.db_url
    rec.save()
    point = r.last_transaction_time
    return {"bytes": r.bytes, "detail": f"recovered to {point or utc_iso(plan.at)}, LSN {r.restored_lsn}",
            "recovery_point": utc_iso(parse_iso(point)) if point else None}


def _expected_objects(repo: Repository, plan: _Plan, env: DrillEnv, req: DrillRequest) -> list[tuple[str, int, str]]:
    """(key, size, etag) of every object live at the recovery point."""
    if plan.kind == "set":
        from swarm.services.objects.backup import _inventory_versions

        m = repo.load_manifest(plan.set_source.parts["objects"])
        return [(k, v[0].size, v[0].etag) for k, v, _d in _inventory_versions(repo, m)]
    from swarm.model.object_versions import group_by_key

    src = plan.stack_plan.bucket_source
    out = []
    for key, hist in group_by_key(src.iter_versions()):
        live = [v for v in hist if v.last_modified <= plan.at]
        if live:
            v = max(live, key=lambda x: x.last_modified)
            if not v.is_delete_marker:
                out.append((key, v.size, v.etag))
    return out


def _restore_objects(repo: Repository, plan: _Plan, req: DrillRequest, env: DrillEnv,
                     reporter: Reporter) -> dict[str, Any]:
    from swarm.services.objects.backup import restore_objects
    from swarm.services.objects.restore import restore_at

    target = Bucket(plan.bucket)
    if plan.kind == "at":
        r = restore_at(plan.stack_plan.bucket_source, target, plan.at, workers=req.workers, force=True).to_dict()
    elif req.from_dr:
        assert env.dr_bucket is not None
        r = restore_at(Bucket(env.dr_bucket()), target, plan.at, workers=req.workers, force=True).to_dict()
    else:
        assert env.production_bucket is not None
        r = restore_objects(repo, plan.set_source.parts["objects"], Bucket(env.production_bucket), target,
                            workers=req.workers).to_dict()
    if not r.get("ok", True):
        raise ValidationFailed(f"{r.get('failed_count', '?')} object(s) could not be restored into {target.name}",
                               details={"failed": r.get("failed", [])[:20]})
    expected = _expected_objects(repo, plan, env, req)
    have = {v.key: v for v in target.iter_versions() if v.is_latest and not v.is_delete_marker}
    missing = [k for k, _s, _e in expected if k not in have]
    if missing:
        where = f"the DR bucket {env.dr_bucket().bucket}" if req.from_dr and env.dr_bucket else "the source"
        raise DrObjectsMissing(f"{where} lacks {len(missing)} of the {len(expected)} objects of the recovery "
                                    f"point (first: {', '.join(missing[:3])})",
                               hint="Run `swarm admin objects replicate` and `objects replication check`: the DR "
                                    "bucket does not hold the recovery point whole.",
                               details={"missing": len(missing), "expected": len(expected)})
    plan.figures.setdefault("_objects", expected)
    return {"bytes": sum(s for _k, s, _e in expected), "detail": f"{len(expected)} objects"}


def _restore_state(repo: Repository, plan: _Plan, env: DrillEnv, reporter: Reporter) -> dict[str, Any]:
    from swarm.services.state.restore import execute_restore_state, plan_restore_state

    if plan.kind == "at":
        sp = plan.stack_plan.state
    else:
        sp = plan_restore_state(repo, plan.set_source.parts["state"], plan.state_dir,
                                source_dir=env.production_state)
    r = execute_restore_state(repo, sp, reporter=reporter).to_dict()
    plan.figures["_state_files"] = sp.to_dict()["files"]
    plan.figures["_state_result"] = r
    return {"bytes": int(r.get("bytes", 0)), "detail": f"{r.get('files', 0)} files"}


def _start_api(plan: _Plan, env: DrillEnv, rec: ScratchRecord, res: DrillResult, clock: _Clock,
               reporter: Reporter) -> str:
    with _phase(res, clock, "api", reporter) as ph:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        child_env = {k: v for k, v in os.environ.items() if k not in ("SWARM_API_TOKEN",)}
        child_env["SWARM_DB_URL"] = plan.db_url
        log = open(plan.directory / "api.log", "ab")
        try:
            proc = subprocess.Popen([*env.api_command, "api", "serve", "--host", "127.0.0.1", "--port", str(port)],
                                    env=child_env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True)
        finally:
            log.close()
        rec.api_pid, rec.api_url = proc.pid, url
        rec.save()
        deadline = time.monotonic() + API_READY_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (plan.directory / "api.log").read_text(errors="replace")[-400:]
                raise ValidationFailed(f"the scratch API did not come up on {url}: {tail.strip()}")
            time.sleep(0.1)
        ph.detail = url
    return url


def _validate(plan: _Plan, req: DrillRequest, env: DrillEnv, api_url: str, res: DrillResult, clock: _Clock,
              reporter: Reporter) -> None:
    from swarm.services.check.stack import check_stack

    with _phase(res, clock, "validation", reporter) as ph:
        exact = bool(plan.figures.get("figures_exact", True))
        figures = plan.figures
        if plan.kind == "at":
            figures = _live_figures(env) if req.at == "now" else {}
            exact = False

        def live() -> int | None:
            if not env.production_db:
                return None
            with connect(env.production_db, connect_timeout=3) as conn:
                row = conn.execute("SELECT count(*) FROM pipelines").fetchone()
            return int(row[0]) if row else None

        steps: list[Callable[[], Rung | tuple[Rung, ...]]] = [
            lambda: ladder.database_rungs(plan.db_url),
            lambda: (ladder.api_rung(api_url, figures, live) if figures else
                     Rung("api_pipelines", True, detail="no production figures recorded at this point")),
            lambda: (ladder.row_counts_rung(plan.db_url, dict(figures.get("row_counts") or {}), exact=exact)
                     if figures.get("row_counts") else
                     Rung("row_counts", True, detail="no production row counts recorded at this point")),
            lambda: ladder.integrity_rung(lambda: check_stack(plan.db_url, plan.bucket, plan.state_dir,
                                                              workers=req.workers).to_dict()),
            lambda: ladder.objects_sample_rung(Bucket(plan.bucket), list(plan.figures.get("_objects") or []),
                                               sample=req.sample),
            lambda: ladder.state_rung(plan.state_dir, int(plan.figures.get("_state_files", 0)),
                                      dict(plan.figures.get("_state_result") or {})),
        ]
        for step in steps:
            out = step()
            rungs = out if isinstance(out, tuple) else (out,)
            for r in rungs:
                if r.ok is not None:
                    res.checks[r.name] = r
            if any(r.ok is False for r in rungs):
                break
        lv = ladder_verdict(list(res.checks.values()))
        ph.detail = "validated" if lv.validated else f"{lv.failed or 'incomplete'} failed"
        if not lv.validated:
            ph.ok = False
            return


def _live_figures(env: DrillEnv) -> dict[str, Any]:
    """Production's figures now (for ``--at now``): ±1 against the scratch copy."""
    if not env.production_db:
        return {}
    from swarm.sources.postgres.conn import count_rows

    try:
        with connect(env.production_db, connect_timeout=3) as conn:
            counts = count_rows(conn)
    except SwarmError:
        return {}
    return {"pipelines_total": int(counts.get("public.pipelines", 0)), "row_counts": counts, "figures_exact": False}


def drill_history(repo: Repository) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every drill's record, oldest first, and the records that could not be read."""
    damaged: dict[str, str] = {}
    return repo.drills(damaged), damaged


def last_drill(repo: Repository) -> dict[str, Any] | None:
    """The newest finished drill (what ``status`` and metrics show), None if none finished."""
    done = [d for d in repo.drills({}) if d.get("status") != "running"]
    return done[-1] if done else None


def cleanup_drills(repo: Repository | None, env: DrillEnv, *, kept: bool = False,
                   only: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """``swarm admin drill cleanup``: tear down the leftovers of killed drills (and kept ones
    with ``kept``, or one drill with ``only``); mark their history records ``killed``."""
    removed, problems = sweep_drills(env.home, env.bucket_config, kept=kept, only=only)
    if repo is not None:
        _mark_killed(repo, removed)
    return removed, problems
