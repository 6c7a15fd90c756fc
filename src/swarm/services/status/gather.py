"""Gather a deployment's status and judge it (see ``swarm.services.status``)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from swarm.clock import Clock, SystemClock, parse_iso, utc_iso
from swarm.crypto.providers import check_available
from swarm.errors import KeyError_, KeyProviderUnreachable, SwarmError
from swarm.model.manifest import Manifest
from swarm.model.schedule import (
    CRITICAL,
    OK,
    UNKNOWN,
    WARNING,
    Job,
    Run,
    age_level,
    kind_intervals,
    worst,
)
from swarm.model.sources import Kind, SetSource
from swarm.repo import Repository

KINDS = [k.value for k in Kind]


@dataclass
class Check:
    """One judged fact: ``name`` (``backup:pg-logical``, ``wal``, ``rpo``, ``job:logical``, ...), its
    level, a one-line summary, a hint when it is not OK, and the facts behind it."""

    name: str
    level: str
    summary: str
    hint: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "level": self.level, "summary": self.summary, "hint": self.hint,
                "facts": self.facts}


@dataclass
class StatusReport:
    checked_at: str
    repository: str
    checks: list[Check]
    backups: dict[str, dict[str, Any]]  # kind → newest good backup's facts (absent kinds: none taken)
    wal: dict[str, Any] | None
    rpo_s: float | None
    window: dict[str, Any] | None
    replication: dict[str, Any] | None
    storage: dict[str, Any]
    locks: list[dict[str, Any]]
    jobs: dict[str, dict[str, Any]]
    intervals: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    last_verify: dict[str, Any] | None = None
    copies: list[dict[str, Any]] = field(default_factory=list)
    last_drill: dict[str, Any] | None = None

    @property
    def level(self) -> str:
        return worst(c.level for c in self.checks)

    @property
    def ok(self) -> bool:
        return self.level == OK

    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.level != OK]

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "ok": self.ok, "checked_at": self.checked_at, "repository": self.repository,
                "checks": [c.to_dict() for c in self.checks], "backups": self.backups, "wal": self.wal,
                "rpo_seconds": self.rpo_s, "recoverable_window": self.window, "replication": self.replication,
                "storage": self.storage, "locks": self.locks, "jobs": self.jobs,
                "expected_intervals": self.intervals, "warnings": self.warnings, "last_verify": self.last_verify,
                "copies": self.copies, "last_drill": self.last_drill}


def _kinds_of(m: Manifest) -> list[str]:
    """The kinds a backup counts for: its own, and a set's parts."""
    out = [m.kind]
    if m.kind == Kind.SET.value:
        try:
            src = m.typed_source()
        except SwarmError:
            return out
        if isinstance(src, SetSource):
            out += ["pg-physical" if src.method == "physical" else "pg-logical", "objects", "state"]
    return out


def _age(now: datetime, iso: str | None) -> float | None:
    return round((now - parse_iso(iso)).total_seconds(), 1) if iso else None


def _human(s: float) -> str:
    s = max(0.0, s)
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h" \
        if s < 172800 else f"{s / 86400:.1f} d"


def deployment_status(repo: Repository, jobs: Mapping[str, Job], *, db_url: str | None = None,
                      replication: Callable[[], Any] | None = None, clock: Clock | None = None,
                      copies: Callable[[], list[Any]] | None = None) -> StatusReport:
    """Everything ``swarm admin status`` reports, judged. Reads only.

    * each kind's newest good backup, its age against the schedule's interval (OK, WARNING past
      1.5 intervals, CRITICAL past 2.5; scheduled and never taken: WARNING); a set's parts count for
      their kinds;
    * WAL archiving (``db_url`` given): archiver failures newer than the last success are CRITICAL
      at once, as are holes in the archive; the gap to the server's current LSN;
    * the live RPO: 0 when everything the server wrote is archived, else the seconds since the last
      successful archive; without WAL archiving, the age of the newest PostgreSQL backup;
    * the recoverable window, the DR bucket's lag (``replication`` returns a ``ReplicationCheck``),
      repository bytes and dedup ratio, lock holders, and each job's last outcome (a job whose
      last slot failed is WARNING).
    """
    clock = clock or SystemClock()
    now = clock.now()
    checks: list[Check] = []
    warnings: list[str] = []
    if not _key(repo, checks):
        # Everything else needs the key (manifests are sealed): report the key, what depends on it,
        # and what a listing shows.
        ids = sorted(repo.manifest_ids())
        return StatusReport(utc_iso(now), repo.url, checks, {}, None, None, None, None,
                            {"stored_bytes": repo.stored_bytes(), "backup_bytes": None, "dedup_ratio": None,
                             "backups": len(ids)},
                            [{"mode": h.mode, "command": h.command, "host": h.host, "pid": h.pid,
                              "since": h.started_at} for h in repo.lock_holders()],
                            {}, kind_intervals(jobs, now),
                            ["nothing but the key was checked: every other check needs the key"])
    damaged: dict[str, str] = {}
    manifests = repo.list_backups(damaged)
    for bid, problem in damaged.items():
        warnings.append(f"backup {bid} is damaged and was skipped: {problem}")
    intervals = kind_intervals(jobs, now)

    # ---- backups per kind ----
    newest: dict[str, Manifest] = {}
    for m in manifests:
        for k in _kinds_of(m):
            if k not in newest or m.finished_at >= newest[k].finished_at:
                newest[k] = m
    backups: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        m = newest.get(kind)
        iv = intervals.get(kind)
        if m is None and iv is None:
            continue
        age = _age(now, m.finished_at) if m else None
        level = age_level(age, iv)
        facts: dict[str, Any] = {"kind": kind, "expected_interval_s": iv}
        if m is not None:
            facts.update({"id": m.id, "finished_at": m.finished_at, "age_s": age,
                          "duration_s": round((parse_iso(m.finished_at) - parse_iso(m.started_at)).total_seconds(),
                                              3), "bytes": m.size, "stored_bytes": m.stored_size,
                          "via_set": m.kind != kind})
            backups[kind] = facts
        sched = f"every {_human(iv)}" if iv else "not scheduled"
        if m is None:
            summary = f"{kind}: no backup yet ({sched})"
            hint = (f"Take one now (`swarm admin {_command_for(kind)}`) and check that the scheduler runs "
                    "(`swarm admin scheduler run`).")
        else:
            summary = f"{kind}: newest {m.id}, {_human(age or 0)} old ({sched})"
            hint = None if level == OK else (
                f"The newest {kind} backup is older than {1.5 if level == WARNING else 2.5}x its interval: check "
                f"the scheduler's log and job history, or run `swarm admin {_command_for(kind)}` now.")
        checks.append(Check(f"backup:{kind}", level, summary, hint, facts))

    # ---- WAL archiving, RPO, window ----
    wal_facts: dict[str, Any] | None = None
    rpo: float | None = None
    archived_at: datetime | None = None
    lag_bytes: int | None = None
    archiving = False
    try:
        from swarm.services.wal.health import archive_status

        st = archive_status(repo, db_url)
        wal_facts = st.to_dict()
        for tl in st.timelines:
            if tl.get("newest_archived_at"):
                t = parse_iso(tl["newest_archived_at"])
                archived_at = t if archived_at is None or t > archived_at else archived_at
        archiving = bool(st.timelines)
        if st.server:
            arch = st.server.get("archiver") or {}
            lag_bytes = int(st.server.get("lag_bytes") or 0)
            archiving = archiving or arch.get("archive_mode") in ("on", "always")
            if arch.get("last_archived_time"):
                t = parse_iso(str(arch["last_archived_time"]))
                archived_at = t if archived_at is None or t > archived_at else archived_at
        failing = [p for p in st.problems if "archive_command is failing" in p]
        if failing:
            checks.append(Check("wal", CRITICAL, "WAL archiving is failing: " + failing[0],
                                "Fix archive_command (`swarm admin check config` says what is wrong); until then "
                                "nothing written since the last archived segment can be recovered.", wal_facts))
        elif st.gaps or st.problems:
            what = "; ".join([f"{len(st.gaps)} segment(s) missing from the archive"] * bool(st.gaps) + st.problems)
            checks.append(Check("wal", CRITICAL, f"WAL archive: {what}",
                                "Take a new physical backup (`swarm admin backup postgres --physical`): recovery "
                                "cannot cross a hole.", wal_facts))
        elif st.conflicts or st.warnings:
            checks.append(Check("wal", WARNING, "WAL archive: " + "; ".join(
                [f"{len(st.conflicts)} conflicting segment(s)"] * bool(st.conflicts) + st.warnings),
                "See `swarm admin wal status`.", wal_facts))
        elif archiving:
            newest_seg = max((tl["newest"] for tl in st.timelines), default=None)
            age = (now - archived_at).total_seconds() if archived_at else None
            checks.append(Check("wal", OK, f"WAL archiving works: newest segment {newest_seg}"
                                + (f", {_human(age)} ago" if age is not None else "")
                                + (f"; {lag_bytes} bytes not archived yet" if lag_bytes else ""), None, wal_facts))
    except SwarmError as exc:
        checks.append(Check("wal", UNKNOWN, f"WAL archiving could not be checked: {exc.message}",
                            exc.hint or "Check SWARM_DB_URL and that the server runs.", {"error": exc.code}))

    if archiving and lag_bytes is not None:
        rpo = 0.0 if lag_bytes == 0 else round((now - archived_at).total_seconds(), 1) if archived_at else None
    else:
        pg = [newest[k] for k in ("pg-logical", "pg-physical") if k in newest]
        if pg:
            rpo = _age(now, max(m.finished_at for m in pg))
    if rpo is not None:
        checks.append(Check("rpo", OK, f"live RPO: {_human(rpo)} of committed data would be lost if the primary "
                                       "died now", None, {"rpo_s": rpo}))

    window = _window(manifests, archived_at if archiving else None, now if lag_bytes == 0 else None)

    # ---- DR replication ----
    repl: dict[str, Any] | None = None
    if replication is not None:
        try:
            res = replication()
            repl = {"in_sync": res.in_sync, "lag_s": round(res.lag_s, 1), "differences": res.difference_count,
                    "oldest_unreplicated": res.oldest_missing}
            if res.in_sync:
                checks.append(Check("replication", OK, "the DR bucket is in sync", None, repl))
            else:
                checks.append(Check("replication", WARNING,
                                    f"the DR bucket lags by {_human(res.lag_s)} ({res.difference_count} differences)",
                                    "Run `swarm admin objects replicate` (and schedule it).", repl))
        except SwarmError as exc:
            repl = {"error": exc.code, "message": exc.message}
            checks.append(Check("replication", WARNING, f"the DR bucket could not be compared: {exc.message}",
                                exc.hint, repl))

    # ---- the last verify, the off-site copies ----
    last_verify = _last_verify(repo, checks)
    last_drill = _last_drill(repo, checks, now, intervals)
    copies_out: list[dict[str, Any]] = []
    for lag in copies() if copies is not None else []:
        d = lag.to_dict()
        copies_out.append(d)
        behind = "never copied" if lag.lag_seconds is None else f"WAL {_human(lag.lag_seconds)} behind"
        checks.append(Check(f"copy:{lag.name}", lag.level,
                            f"copy {lag.name}: {behind}, {len(lag.missing_backups)} backup(s) not copied yet",
                            None if lag.level == OK else f"Run `swarm admin repo copy --to {lag.name}` (or --follow).",
                            d))

    # ---- storage, locks, jobs ----
    stored = repo.stored_bytes()
    logical = sum(m.size for m in manifests)
    storage = {"stored_bytes": stored, "backup_bytes": logical,
               "dedup_ratio": round(logical / stored, 2) if stored and logical else None, "backups": len(manifests)}
    locks = [{"mode": h.mode, "command": h.command, "host": h.host, "pid": h.pid, "since": h.started_at}
             for h in repo.lock_holders()]
    jobs_out = _jobs(repo, jobs, checks, warnings)
    return StatusReport(utc_iso(now), repo.url, checks, backups, wal_facts, rpo, window, repl, storage, locks,
                        jobs_out, intervals, warnings, last_verify=last_verify, copies=copies_out,
                        last_drill=last_drill)


def _key(repo: Repository, checks: list[Check]) -> bool:
    """The ``key`` check: ask the key provider now whether the key-encryption key can be used
    (``swarm.crypto.providers.check_available``: for AWS KMS the same ``DescribeKey`` ``KeyState``
    check every command makes before using the key). A key its provider refuses (disabled, pending
    deletion, deleted, access denied, not on the token, a changed key file) is CRITICAL, naming the
    key and the backups that are unrecoverable while it stays so; a provider that cannot be reached
    is CRITICAL too, as "unreachable" (the key may be fine). False when the key cannot be used."""
    kek, primary = repo.kek, repo.config.kek_id
    try:
        check_available(kek)
    except (KeyError_, KeyProviderUnreachable) as exc:
        ids = sorted(repo.manifest_ids())
        key_id = str(exc.details.get("key_id") or primary)
        facts: dict[str, Any] = {"key_id": key_id, "repository_key": primary, "available": False,
                                 "error": exc.code, "unrecoverable_backups": ids,
                                 **({"key_state": exc.details["key_state"]} if "key_state" in exc.details else {})}
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        if isinstance(exc, KeyProviderUnreachable):
            facts["available"] = None  # not known: the provider did not answer
            summary = (f"key {key_id}: its provider is unreachable ({exc.message}); while it stays so no backup "
                       f"can be taken or restored ({len(ids)} backup(s) depend on it)")
        else:
            summary = (f"key {key_id} is unavailable ({exc.message}): {len(ids)} backup(s) are unrecoverable "
                       "while it stays so" + (f": {shown}" if ids else ""))
        checks.append(Check("key", CRITICAL, summary, exc.hint or "Make the key usable again.", facts))
        return False
    key_id = primary if kek.key_id == primary else kek.key_id
    checks.append(Check("key", OK, f"key {key_id} is available ({kek.description})", None,
                        {"key_id": key_id, "repository_key": primary, "available": True}))
    return True


def _last_drill(repo: Repository, checks: list[Check], now: datetime, intervals: Mapping[str, float]
                ) -> dict[str, Any] | None:
    """The newest finished DR drill (``drills/``): CRITICAL when it failed, or when it is older than
    2.5 drill intervals (the schedule's ``drill`` job; nightly by default); none: not judged."""
    from swarm.services.drill.run import last_drill

    try:
        d = last_drill(repo)
    except SwarmError:
        return None
    if d is None:
        return None
    facts = {k: d.get(k) for k in ("id", "verdict", "validated", "rto_s", "rpo_s", "tier", "finished_at",
                                   "failed_check")}
    when = d.get("finished_at") or d.get("started_at")
    age = _age(now, str(when)) if when else None
    interval = intervals.get("drill", 86400.0)
    if d.get("verdict") != "pass":
        checks.append(Check("drill", CRITICAL, f"last DR drill {d.get('id')} FAILED"
                            + (f" at {d['failed_check']}" if d.get("failed_check") else ""),
                            "Run `swarm admin drill history` for the failure; fix it and drill again "
                            "(`swarm admin drill --latest`).", facts))
    elif age is not None and age > 2.5 * interval:
        checks.append(Check("drill", CRITICAL, f"last DR drill passed {_human(age)} ago, older than its schedule "
                            "allows", "Is the scheduler's drill job running? (`swarm admin scheduler history`)",
                            facts))
    else:
        checks.append(Check("drill", OK, f"last DR drill {d.get('id')} passed: RTO {d.get('rto_s')} s, RPO "
                            f"{d.get('rpo_s')} s ({d.get('tier')})", None, facts))
    return facts


def _last_verify(repo: Repository, checks: list[Check]) -> dict[str, Any] | None:
    """The newest verify record (``verifications/``): a failed one is CRITICAL until a verify passes
    again; none at all is not judged here (the verify job's own history says whether it runs)."""
    try:
        records = repo.verifications(damaged={})
    except SwarmError:
        return None
    if not records:
        return None
    backup_id, rec = max(records.items(), key=lambda kv: str(kv[1].get("verified_at", "")))
    out = {"backup_id": backup_id, **rec}
    if rec.get("ok"):
        checks.append(Check("verify", OK, f"last verify: {backup_id} passed at {rec.get('verified_at')}", None, out))
    else:
        checks.append(Check("verify", CRITICAL, f"last verify: {backup_id} FAILED at {rec.get('verified_at')} "
                                                f"({rec.get('problems', '?')} problem(s))",
                            f"Run `swarm admin verify {backup_id}` to see them; take a new backup of that kind.", out))
    return out


def _command_for(kind: str) -> str:
    return {"pg-logical": "backup postgres", "pg-physical": "backup postgres --physical",
            "objects": "backup objects", "state": "backup state", "set": "backup set"}.get(kind, "backup ...")


def _window(manifests: list[Manifest], archived_at: datetime | None, live: datetime | None) -> dict[str, Any] | None:
    """Earliest and latest restorable time: from the oldest physical backup's end to the newest archived WAL
    (continuous), or the oldest and newest logical backups (points) without WAL."""
    phys = [m for m in manifests if m.kind == Kind.PG_PHYSICAL.value]
    if phys and (archived_at or live):
        earliest = parse_iso(phys[0].finished_at)
        latest = live or archived_at
        assert latest is not None
        latest = max(latest, earliest)
        return {"earliest": utc_iso(earliest), "latest": utc_iso(latest), "continuous": True,
                "seconds": round((latest - earliest).total_seconds(), 1)}
    pts = [m for m in manifests if m.kind in (Kind.PG_LOGICAL.value, Kind.PG_PHYSICAL.value, Kind.SET.value)]
    if not pts:
        return None
    earliest, latest = parse_iso(pts[0].finished_at), parse_iso(max(m.finished_at for m in pts))
    return {"earliest": utc_iso(earliest), "latest": utc_iso(latest), "continuous": False,
            "seconds": round((latest - earliest).total_seconds(), 1)}


def _jobs(repo: Repository, jobs: Mapping[str, Job], checks: list[Check], warnings: list[str]) -> dict[str, Any]:
    damaged: dict[str, str] = {}
    history = [Run.from_dict(r) for r in repo.job_runs(damaged=damaged)]
    for key, problem in damaged.items():
        warnings.append(f"job history record {key} is damaged: {problem}")
    out: dict[str, Any] = {}
    for name in sorted(set(jobs) | {r.job for r in history}):
        mine = [r for r in history if r.job == name]
        finals = [r for r in mine if r.final and r.outcome != "skipped"]
        last = finals[-1] if finals else None
        ok = [r for r in mine if r.outcome == "succeeded"]
        out[name] = {"scheduled": name in jobs, "runs": len(mine),
                     "failures": sum(1 for r in mine if r.outcome in ("failed", "interrupted")),
                     "last": last.to_dict() if last else None,
                     "last_success": utc_iso(ok[-1].ended_at) if ok and ok[-1].ended_at else None}
        if name in jobs and last is not None and last.outcome in ("failed", "missed"):
            checks.append(Check(f"job:{name}", WARNING,
                                f"job {name}: the slot of {utc_iso(last.slot)} {last.outcome}"
                                + (f" ({last.error_code}: {last.message})" if last.error_code else
                                   f" ({last.message})" if last.message else ""),
                                "See the scheduler's log; the job runs again at its next slot.", out[name]))
    return out
