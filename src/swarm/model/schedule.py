"""Schedules as pure decisions: which job is due now, which slot was missed, skipped or retried.

A **job** (``[schedule.<name>]`` in ``swarm.toml``, ``parse_jobs``) runs a ``swarm admin``
command on a cron expression (``croniter``; 5 fields, or 6 with seconds *last*), in a time zone,
and/or ``after`` another job succeeded. Each cron time is a **slot**. The rules, applied by
``Planner`` from the job history alone (nothing here reads a clock or does I/O; time is passed in):

* **one slot, one outcome.** A slot ends as ``succeeded``, ``failed`` (retries used up),
  ``skipped`` (the job was still running: Kubernetes' ``concurrencyPolicy: Forbid``) or
  ``missed`` (the scheduler was down past its ``starting_deadline``). A run is recorded when it
  ends, never before (autorestic records a run before it happens, so a crash silently consumes
  the slot): a scheduler killed mid-run finds the slot still open and runs it again.
* **catch-up exactly once.** After downtime, every slot that passed unseen is ``missed``, except
  the newest one, which runs once if it is still within ``starting_deadline`` of its time (no
  deadline: always). The next slot is computed from the last handled one, never from "now"
  alone, so nothing is lost and nothing runs twice (Velero's rule).
* **jitter.** A slot runs at ``slot + offset`` with ``0 <= offset < jitter``, the offset a
  deterministic hash of the job and the slot (so a restarted scheduler picks the same one).
  ``jitter`` must be smaller than ``starting_deadline``.
* **retries with backoff within the window.** A failed (or interrupted) attempt is retried
  after ``retry_backoff * 2**(attempt-1)`` if that time is still inside the slot's window: before
  the job's next slot, and within ``starting_deadline`` of the slot when one is set. A retry that
  would leave the window is not made; the slot is ``failed``.
* **chaining.** A job with ``after = "other"`` gets a slot (the time ``other`` ended) each time
  ``other`` succeeds; a failure of ``other`` triggers nothing.
* **schedules never delete backups.** Removing or changing a job only changes what runs next;
  its history stays in the repository and no backup is touched.
"""
from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from swarm.errors import ConfigError

# Outcomes of one run or slot, as recorded in the job history.
SUCCEEDED = "succeeded"
FAILED = "failed"
INTERRUPTED = "interrupted"
SKIPPED = "skipped"
MISSED = "missed"
FINAL_OUTCOMES = frozenset({SUCCEEDED, FAILED, SKIPPED, MISSED})

KEYS = frozenset({"cron", "after", "timezone", "command", "starting_deadline", "jitter", "retries",
                  "retry_backoff", "on_failure", "webhook", "heartbeat", "timeout", "enabled", "repo"})

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SCALE = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float) -> float:
    """Seconds from ``90``, ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``; ValueError if malformed or negative."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"{text!r} is negative")
        return float(text)
    m = _DURATION.match(str(text).lower())
    if not m:
        raise ValueError(f"{text!r} is not a duration (e.g. 90, 90s, 5m, 2h, 1d)")
    return float(m.group(1)) * _SCALE[m.group(2)]


@dataclass(frozen=True)
class Job:
    """One ``[schedule.<name>]`` table, validated. Durations are seconds."""

    name: str
    command: str
    cron: str | None = None
    after: str | None = None
    timezone: str = "UTC"
    starting_deadline: float | None = None
    jitter: float = 0.0
    retries: int = 0
    retry_backoff: float = 60.0
    on_failure: str | None = None
    webhook: str | None = None
    heartbeat: str | None = None
    timeout: float | None = None
    enabled: bool = True
    repo: str | None = None  # a copy's name: the command runs as `swarm --repo NAME admin ...`

    @property
    def kind(self) -> str | None:
        """The backup kind the job adds to the primary repository; None for a job run on a copy."""
        return None if self.repo else kind_of(self.command)

    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def slots_between(self, start: datetime, end: datetime, limit: int = 100_000) -> list[datetime]:
        """Cron slots ``t`` with ``start < t <= end`` (UTC), oldest first; at most ``limit`` (the newest kept)."""
        if not self.cron or end <= start:
            return []
        it = croniter(self.cron, start.astimezone(self.tz()))
        out: list[datetime] = []
        while True:
            t = it.get_next(datetime).astimezone(UTC)
            if t > end:
                return out
            out.append(t)
            if len(out) > limit:
                out.pop(0)

    def next_slot(self, after: datetime) -> datetime | None:
        """The first cron slot strictly after ``after`` (UTC); None without a cron expression."""
        if not self.cron:
            return None
        return croniter(self.cron, after.astimezone(self.tz())).get_next(datetime).astimezone(UTC)  # type: ignore[no-any-return]

    def expected_interval(self, around: datetime) -> float | None:
        """The longest gap in seconds between consecutive slots over the next 8 (a weekday-only job's
        weekend counts); None for a job without a cron expression."""
        if not self.cron:
            return None
        it = croniter(self.cron, around.astimezone(self.tz()))
        times: list[datetime] = [it.get_next(datetime) for _ in range(9)]
        return float(max((b - a).total_seconds() for a, b in itertools.pairwise(times)))

    def jitter_offset(self, slot: datetime) -> float:
        """Seconds after ``slot`` this slot runs: ``0 <= offset < jitter``, a hash of job and slot."""
        if self.jitter <= 0:
            return 0.0
        h = hashlib.sha256(f"{self.name}\0{slot.astimezone(UTC).isoformat()}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 * self.jitter

    def window_end(self, slot: datetime) -> datetime:
        """Until when a slot may still start or be retried: the next cron slot, and no later than
        ``starting_deadline`` after the slot (a chained slot without a deadline: one day)."""
        ends = []
        nxt = self.next_slot(slot)
        if nxt is not None:
            ends.append(nxt)
        if self.starting_deadline is not None:
            ends.append(slot + timedelta(seconds=self.starting_deadline))
        if not ends:
            ends.append(slot + timedelta(days=1))
        return min(ends)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based) before the next one."""
        return float(self.retry_backoff * 2 ** (attempt - 1))


# Commands the scheduler may run (words after `swarm admin`), and the backup kind each produces.
_KINDS: tuple[tuple[str, str], ...] = (
    ("backup postgres --physical", "pg-physical"),
    ("backup postgres", "pg-logical"),
    ("backup objects", "objects"),
    ("backup state", "state"),
    ("backup set", "set"),
)


def kind_of(command: str) -> str | None:
    """The backup kind a command produces (``backup postgres --physical`` → ``pg-physical``), or None."""
    words = command.split()
    for prefix, kind in _KINDS:
        p = prefix.split()
        flags = [w for w in p if w.startswith("--")]
        plain = [w for w in p if not w.startswith("--")]
        if words[:len(plain)] == plain and all(f in words for f in flags):
            return kind
    return None


# The seed's table: what runs when swarm.toml has no [schedule] tables. The nightly logical and state
# backups are taken together as a backup set (with the bucket's inventory at the same point), which
# the nightly drill then proves restorable; a set's parts count for their kinds in `status`.
DEFAULT_SCHEDULE: dict[str, dict[str, Any]] = {
    "set": {"cron": "0 1 * * *", "command": "backup set", "starting_deadline": "2h", "retries": 2, "jitter": "5m"},
    "physical": {"cron": "0 2 * * 0", "command": "backup postgres --physical", "starting_deadline": "6h",
                 "retries": 2, "jitter": "5m"},
    "replication-check": {"cron": "0 * * * *", "command": "objects replication check",
                          "starting_deadline": "30m"},
    "verify": {"cron": "0 4 * * *", "command": "verify {latest}", "starting_deadline": "4h"},
    "drill": {"after": "set", "command": "drill --latest"},
    "prune": {"cron": "0 5 * * *", "command": "prune", "starting_deadline": "6h"},
}

# Added to the seed's table when swarm.toml has [[repository.copies]] (docs/copies.md): `repo copy`
# after each backup set (the new set reaches the copies at once) and hourly (the weekly physical
# backup, WAL, tags and drill records follow within the hour). WAL reaching the copies every
# wal_interval (60 s) is the job of a long-running `swarm admin repo copy --follow` (a systemd
# service beside the scheduler, docs/copies.md "Schedule"), not of a scheduled job: the scheduler
# runs each job to its end.
COPY_SCHEDULE: dict[str, dict[str, Any]] = {
    "copy": {"cron": "15 * * * *", "after": "set", "command": "repo copy", "starting_deadline": "45m",
             "retries": 2, "retry_backoff": "2m"},
}


def copy_prune_job(copy: str) -> dict[str, Any]:
    """The default prune of one copy (its own retention, or the top-level one): an hour after the
    primary's, so the two never wait for each other's exclusive lock."""
    return {"cron": "0 6 * * *", "command": "prune", "repo": copy, "starting_deadline": "6h"}


def default_schedule(*, copies: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """The seed's table (``DEFAULT_SCHEDULE``); with copies configured, also ``COPY_SCHEDULE`` and a
    daily ``prune-<copy>`` per copy (``copy_prune_job``)."""
    if not copies:
        return dict(DEFAULT_SCHEDULE)
    return {**DEFAULT_SCHEDULE, **COPY_SCHEDULE, **{f"prune-{c}": copy_prune_job(c) for c in sorted(copies)}}


def parse_jobs(tables: Mapping[str, Any] | None, *, where: str = "swarm.toml", copies: Collection[str] = (),
               ) -> dict[str, Job]:
    """Validate ``[schedule.<job>]`` tables into jobs; ConfigError (exit 3) naming the table and key.
    ``tables`` None: the default table (``default_schedule(copies=copies)``).

    Rules: a job needs ``command`` and ``cron`` and/or ``after``; ``after`` names another job and
    no chain loops; ``timezone`` is an IANA name; durations are ``90``/``90s``/``5m``/``2h``/``1d``;
    ``jitter`` < ``starting_deadline``; ``repo`` is a copy's name and the command then has no
    ``{latest}`` (it names the primary's newest backup, which the copy may not hold yet; whether the
    copy exists is checked where the copies are known, ``swarm.config``); unknown keys are refused."""
    if tables is None:
        tables = default_schedule(copies=copies)
    if not isinstance(tables, Mapping):
        raise ConfigError(f"[schedule] in {where} must hold tables ([schedule.<job>])",
                          hint="Write e.g. [schedule.logical] with cron = \"30 1 * * *\" and command = "
                               "\"backup postgres\" (docs/schedule.md).")
    jobs: dict[str, Job] = {}
    for name, table in tables.items():
        def bad(key: str, problem: str, name: str = name) -> ConfigError:
            return ConfigError(f"[schedule.{name}] {key} in {where}: {problem}",
                               hint="See docs/schedule.md for the keys of a schedule table.")
        if not _NAME.match(name):
            raise bad("", "a job name is letters, digits, '-' and '_' (at most 64)")
        if not isinstance(table, Mapping):
            raise bad("", "is not a table")
        unknown = sorted(set(table) - KEYS)
        if unknown:
            raise bad(unknown[0], f"unknown key (known: {', '.join(sorted(KEYS))})")
        command = table.get("command")
        if not isinstance(command, str) or not command.strip():
            raise bad("command", "missing (the words after `swarm admin`, e.g. \"backup postgres\")")
        cron = table.get("cron")
        after = table.get("after")
        if cron is None and after is None:
            raise bad("cron", "a job needs cron = \"...\" or after = \"<job>\"")
        if cron is not None and (not isinstance(cron, str) or not croniter.is_valid(cron)):
            raise bad("cron", f"{cron!r} is not a cron expression (5 fields, or 6 with seconds last)")
        if after is not None and not isinstance(after, str):
            raise bad("after", "must be a job name")
        tz = table.get("timezone", "UTC")
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise bad("timezone", f"{tz!r} is not a time zone (an IANA name such as \"Asia/Kolkata\")") from None
        durations: dict[str, float | None] = {}
        for key in ("starting_deadline", "jitter", "retry_backoff", "timeout"):
            if key in table:
                try:
                    durations[key] = parse_duration(table[key])
                except ValueError as exc:
                    raise bad(key, str(exc)) from None
        retries = table.get("retries", 0)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise bad("retries", f"{retries!r} is not a count (0 or more)")
        deadline = durations.get("starting_deadline")
        jitter = durations.get("jitter") or 0.0
        if deadline is not None and jitter >= deadline:
            raise bad("jitter", f"must be smaller than starting_deadline ({jitter:g}s >= {deadline:g}s)")
        for key in ("on_failure", "webhook", "heartbeat"):
            if key in table and not isinstance(table[key], str):
                raise bad(key, "must be a string")
        for key in ("webhook", "heartbeat"):
            if key in table and not str(table[key]).startswith(("http://", "https://")):
                raise bad(key, f"{table[key]!r} is not an http(s) URL")
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise bad("enabled", "must be true or false")
        repo = table.get("repo")
        if repo is not None and (not isinstance(repo, str) or not _NAME.match(repo)):
            raise bad("repo", f"{repo!r} is not a copy's name (a [[repository.copies]] name)")
        if repo is not None and "{latest}" in command:
            raise bad("repo", "{latest} names the primary's newest backup, which the copy may not hold yet; "
                              "give the backup id, or run the job on the primary")
        jobs[name] = Job(name=name, command=command.strip(), cron=cron, after=after, timezone=str(tz),
                         starting_deadline=deadline, jitter=jitter, retries=retries,
                         retry_backoff=durations.get("retry_backoff") or 60.0,
                         on_failure=table.get("on_failure"), webhook=table.get("webhook"),
                         heartbeat=table.get("heartbeat"), timeout=durations.get("timeout"), enabled=enabled,
                         repo=repo)
    for job in jobs.values():
        if job.after is not None and job.after not in jobs:
            raise ConfigError(f"[schedule.{job.name}] after in {where}: no job named {job.after!r}",
                              hint=f"Known jobs: {', '.join(sorted(jobs))}.")
        seen = [job.name]
        nxt = job.after
        while nxt is not None:
            if nxt in seen:
                raise ConfigError(f"[schedule.{job.name}] after in {where}: the chain loops "
                                  f"({' -> '.join([*seen, nxt])})", hint="Start one job of the chain on cron.")
            seen.append(nxt)
            nxt = jobs[nxt].after
    return jobs


# ---- history ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One record of the job history: a run that ended, or a slot that was skipped or missed.

    ``slot`` identifies the slot (its cron time, or for a chained run the time its trigger ended);
    ``attempt`` counts from 1 (0 for skipped and missed slots); ``trigger`` is ``cron``,
    ``catch-up``, ``retry`` or ``after:<job>``."""

    job: str
    slot: datetime
    outcome: str
    attempt: int = 0
    trigger: str = "cron"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error_code: str | None = None
    message: str | None = None
    backup_id: str | None = None
    exit_code: int | None = None
    final: bool = True  # False for a failed or interrupted attempt that will be retried

    def to_dict(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.astimezone(UTC).isoformat().replace("+00:00", "Z") if d else None
        return {"job": self.job, "slot": iso(self.slot), "outcome": self.outcome, "attempt": self.attempt,
                "trigger": self.trigger, "started_at": iso(self.started_at), "ended_at": iso(self.ended_at),
                "error_code": self.error_code, "message": self.message, "backup_id": self.backup_id,
                "exit_code": self.exit_code, "final": self.final}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Run:
        def dt(v: Any) -> datetime | None:
            if not v:
                return None
            t = datetime.fromisoformat(str(v).replace("Z", "+00:00"))
            return t if t.tzinfo else t.replace(tzinfo=UTC)
        slot = dt(d.get("slot"))
        if slot is None:
            raise ValueError("a run record without a slot")
        return cls(job=str(d["job"]), slot=slot, outcome=str(d["outcome"]), attempt=int(d.get("attempt") or 0),
                   trigger=str(d.get("trigger") or "cron"), started_at=dt(d.get("started_at")),
                   ended_at=dt(d.get("ended_at")), error_code=d.get("error_code"), message=d.get("message"),
                   backup_id=d.get("backup_id"), exit_code=d.get("exit_code"), final=bool(d.get("final", True)))


@dataclass(frozen=True)
class Action:
    """What the planner wants done now: ``run`` (start attempt ``attempt`` of ``slot``), or record
    a ``skipped`` or ``missed`` slot (``record`` holds the record to write)."""

    verb: str  # "run" | "record"
    job: str
    slot: datetime
    attempt: int = 1
    trigger: str = "cron"
    record: Run | None = None


@dataclass
class JobState:
    """What the planner knows of one job (rebuilt from the history on start)."""

    handled: datetime | None = None  # newest cron slot with a final outcome, or started and then left open
    running: tuple[datetime, int, str] | None = None  # (slot, attempt, trigger) of the run in progress
    retry: tuple[datetime, int, datetime, str] | None = None  # (slot, next attempt, not before, trigger)
    chained: list[datetime] = field(default_factory=list)  # pending `after` slots (trigger end times)


class Planner:
    """The scheduler's decisions for a set of jobs. ``due(now)`` says what to do at ``now``;
    ``started``/``finished`` tell it what happened. No clock, no I/O: the caller passes the time
    and writes the records ``due`` and ``finished`` return.

    ``since`` is where a job with no cron history starts counting slots (the scheduler's first
    start): slots before it were never this scheduler's to run and are not reported missed. A job
    with history counts from its newest recorded slot, so downtime is seen as missed slots."""

    def __init__(self, jobs: Mapping[str, Job], history: Iterable[Run] = (), *, since: datetime) -> None:
        self.jobs = {n: j for n, j in jobs.items() if j.enabled}
        self.state: dict[str, JobState] = {n: JobState() for n in self.jobs}
        self.since = since
        for run in sorted(history, key=lambda r: (r.slot, r.attempt)):
            self._replay(run)
        for st in self.state.values():
            if st.handled is None:  # no cron history: count from the first start
                st.handled = since

    def _replay(self, run: Run) -> None:
        st = self.state.get(run.job)
        job = self.jobs.get(run.job)
        if st is None or job is None:
            return  # a job removed from the schedule: its history stays, it plans nothing
        if run.outcome == SUCCEEDED and run.ended_at is not None and run.ended_at >= self.since:
            for other in self.jobs.values():  # chained slots it gave, until their own records are replayed
                if other.after == run.job:
                    self.state[other.name].chained.append(run.ended_at)
        if run.trigger.startswith("after:"):
            if run.final or run.outcome in (SKIPPED, MISSED):
                st.chained = [s for s in st.chained if s != run.slot]
                if st.retry and st.retry[0] == run.slot:
                    st.retry = None
            elif run.outcome in (FAILED, INTERRUPTED):
                st.retry = (run.slot, run.attempt + 1, _after(run) + timedelta(seconds=job.backoff(run.attempt)),
                            run.trigger)
            return
        if st.handled is None or run.slot > st.handled:
            st.handled = run.slot
        if run.final or run.outcome in (SKIPPED, MISSED, SUCCEEDED):
            if st.retry and st.retry[0] <= run.slot:
                st.retry = None
        elif run.outcome in (FAILED, INTERRUPTED):
            st.retry = (run.slot, run.attempt + 1, _after(run) + timedelta(seconds=job.backoff(run.attempt)),
                        run.trigger if run.trigger != "cron" else "retry")

    def due(self, now: datetime) -> list[Action]:
        """Everything to do at ``now``, in order: missed and skipped slots to record, runs to start.
        Calling it again at the same ``now`` without acting returns the same runs, but a slot is
        reported missed or skipped only once (the state moves past it)."""
        out: list[Action] = []
        for name, job in self.jobs.items():
            st = self.state[name]
            # retries of a failed attempt, within the slot's window
            if st.retry is not None and st.running is None:
                slot, attempt, not_before, trigger = st.retry
                if now >= _window_end(job, slot, trigger):
                    out.append(Action("record", name, slot, attempt, trigger,
                                      Run(name, slot, FAILED, attempt - 1, trigger, ended_at=now,
                                          error_code="window-closed",
                                          message="retries stopped: the slot's window closed")))
                    st.retry = None
                elif now >= not_before:
                    out.append(Action("run", name, slot, attempt, "retry" if trigger == "cron" else trigger))
            # cron slots
            if job.cron and st.handled is not None:
                slots = job.slots_between(st.handled, now)
                newest = slots[-1] if slots else None
                for s in slots[:-1]:
                    out.append(self._missed(job, s, now, "the scheduler was not running at that time"))
                    st.handled = s
                if newest is not None:
                    start_at = newest + timedelta(seconds=job.jitter_offset(newest))
                    late = (now - newest).total_seconds()
                    if job.starting_deadline is not None and late > job.starting_deadline:
                        out.append(self._missed(job, newest, now,
                                                f"started {late:.0f}s late, past starting_deadline "
                                                f"{job.starting_deadline:g}s"))
                        st.handled = newest
                    elif st.running is not None:
                        out.append(Action("record", name, newest, 0, "cron",
                                          Run(name, newest, SKIPPED, 0, "cron", ended_at=now,
                                              message="the previous run was still running")))
                        st.handled = newest
                    elif now >= start_at and not any(a.verb == "run" and a.job == name for a in out):
                        trigger = "catch-up" if len(slots) > 1 or late > max(job.jitter, 0) + 60 else "cron"
                        out.append(Action("run", name, newest, 1, trigger))
            # chained slots
            for s in list(st.chained):
                if now >= _window_end(job, s, f"after:{job.after}"):
                    out.append(Action("record", name, s, 0, f"after:{job.after}",
                                      Run(name, s, MISSED, 0, f"after:{job.after}", ended_at=now,
                                          message="not started within starting_deadline of its trigger")))
                    st.chained.remove(s)
                elif st.running is not None:
                    out.append(Action("record", name, s, 0, f"after:{job.after}",
                                      Run(name, s, SKIPPED, 0, f"after:{job.after}", ended_at=now,
                                          message="the previous run was still running")))
                    st.chained.remove(s)
                elif not any(a.verb == "run" and a.job == name for a in out):
                    out.append(Action("run", name, s, 1, f"after:{job.after}"))
                    break
        return out

    def _missed(self, job: Job, slot: datetime, now: datetime, why: str) -> Action:
        return Action("record", job.name, slot, 0, "cron", Run(job.name, slot, MISSED, 0, "cron", ended_at=now,
                                                               message=why))

    def started(self, action: Action, now: datetime) -> None:
        """A run of ``action`` started at ``now``: the job is running; its slot is taken (in memory
        only: the record is written when the run ends, so a crash leaves the slot open)."""
        st = self.state[action.job]
        st.running = (action.slot, action.attempt, action.trigger)
        if action.trigger.startswith("after:"):
            st.chained = [s for s in st.chained if s != action.slot]
        elif st.handled is None or action.slot > st.handled:
            st.handled = action.slot
        if st.retry and st.retry[0] == action.slot:
            st.retry = None

    def finished(self, job_name: str, outcome: str, now: datetime, *, started_at: datetime | None = None,
                 error_code: str | None = None, message: str | None = None, backup_id: str | None = None,
                 exit_code: int | None = None) -> Run:
        """The run in progress of ``job_name`` ended with ``outcome``; returns the record to write
        (``final`` False when a retry is planned). A success gives every ``after`` job a slot."""
        st = self.state[job_name]
        job = self.jobs[job_name]
        assert st.running is not None, f"{job_name} is not running"
        slot, attempt, trigger = st.running
        st.running = None
        final = True
        if outcome in (FAILED, INTERRUPTED) and attempt <= job.retries:
            retry_at = now + timedelta(seconds=job.backoff(attempt))
            if retry_at < _window_end(job, slot, trigger):
                st.retry = (slot, attempt + 1, retry_at, trigger)
                final = False
        if outcome == SUCCEEDED:
            for other in self.jobs.values():
                if other.after == job_name:
                    self.state[other.name].chained.append(now)
        return Run(job_name, slot, outcome, attempt, trigger, started_at=started_at, ended_at=now,
                   error_code=error_code, message=message, backup_id=backup_id, exit_code=exit_code, final=final)

    def next_wakeup(self, now: datetime) -> datetime:
        """When ``due`` may next have something to do (at most one hour ahead)."""
        cands = [now + timedelta(hours=1)]
        for name, job in self.jobs.items():
            st = self.state[name]
            if st.retry is not None:
                cands.append(max(now, st.retry[2]))
                cands.append(_window_end(job, st.retry[0], st.retry[3]))
            if st.chained and st.running is None:
                cands.append(now)
            if job.cron:
                nxt = job.next_slot(max(now, st.handled) if st.handled else now)
                if nxt is not None:
                    cands.append(nxt + timedelta(seconds=job.jitter_offset(nxt)))
                if st.handled is not None and st.running is None:
                    pending = job.slots_between(st.handled, now)
                    if pending:
                        cands.append(pending[-1] + timedelta(seconds=job.jitter_offset(pending[-1])))
        return max(now, min(cands))


def _after(run: Run) -> datetime:
    return run.ended_at or run.started_at or run.slot


def _window_end(job: Job, slot: datetime, trigger: str) -> datetime:
    if trigger.startswith("after:"):
        return slot + timedelta(seconds=job.starting_deadline if job.starting_deadline is not None else 86400)
    return job.window_end(slot)


def final_outcomes(history: Sequence[Run]) -> dict[tuple[str, datetime], str]:
    """(job, slot) → the slot's final outcome, for every slot that has one."""
    out: dict[tuple[str, datetime], str] = {}
    for r in history:
        if r.final:
            out[(r.job, r.slot)] = r.outcome
    return out



# ---- status levels (``swarm admin status``) --------------------------------------------------------
OK, WARNING, CRITICAL, UNKNOWN = "OK", "WARNING", "CRITICAL", "UNKNOWN"
_RANK = {OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}
WARN_FACTOR = 1.5  # a backup older than 1.5 expected intervals is WARNING
CRIT_FACTOR = 2.5  # older than 2.5 intervals is CRITICAL


def age_level(age_s: float | None, interval_s: float | None) -> str:
    """The level of a newest backup ``age_s`` old against its schedule's interval: OK up to 1.5
    intervals, WARNING past 1.5, CRITICAL past 2.5. Never taken (``age_s`` None) is WARNING when it is
    scheduled (a job that has never run is at most WARNING), OK when not; unscheduled is always OK."""
    if interval_s is None:
        return OK
    if age_s is None:
        return WARNING
    if age_s > CRIT_FACTOR * interval_s:
        return CRITICAL
    if age_s > WARN_FACTOR * interval_s:
        return WARNING
    return OK


def worst(levels: Iterable[str]) -> str:
    """The most severe level (CRITICAL > WARNING > UNKNOWN > OK); OK for none."""
    return max(levels, key=lambda lv: _RANK[lv], default=OK)


def kind_intervals(jobs: Mapping[str, Job], around: datetime) -> dict[str, float]:
    """Backup kind → the shortest expected interval of the jobs producing it. A ``backup set`` job
    counts for its parts (``pg-logical``, or ``pg-physical`` with ``--physical``; ``objects``;
    ``state``) and for ``set``; a chained job has the interval of the job it follows."""
    out: dict[str, float] = {}

    def interval(job: Job, depth: int = 0) -> float | None:
        if job.cron:
            return job.expected_interval(around)
        if job.after and job.after in jobs and depth < len(jobs):
            return interval(jobs[job.after], depth + 1)
        return None

    for job in jobs.values():
        if not job.enabled:
            continue
        kind = job.kind
        iv = interval(job)
        if kind is None or iv is None:
            continue
        kinds = [kind]
        if kind == "set":
            kinds += ["pg-physical" if "--physical" in job.command.split() else "pg-logical", "objects", "state"]
        for k in kinds:
            out[k] = min(out.get(k, iv), iv)
    return out
