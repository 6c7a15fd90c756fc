"""``swarm admin scheduler run``: the long-running loop that runs due jobs (docs/schedule.md).

The decisions are ``swarm.model.schedule.Planner``'s; this module carries them out:

1. on start, the job history is read back from the repository (``Repository.job_runs``), so
   slots that passed while no scheduler ran are found (recorded ``missed``; the newest caught up
   once within ``starting_deadline``) and pending retries resume;
2. a due run starts ``swarm admin <command> --json`` as a child process (its own locks protect it
   from any other writer: a per-kind lock held elsewhere exits 6, recorded as ``skipped``);
3. when the child ends, its record (start, end, outcome, error code, backup id) is written to the
   repository, then the hooks run: ``on_failure`` (a command, given the record as JSON on stdin)
   and ``webhook`` (POSTed the record) after a slot's final failure or a missed slot, and
   ``heartbeat`` (pinged) after a success.

A kill -9 of the scheduler between 2 and 3 leaves no record: the slot stays open and the next
scheduler runs it again (if still within its deadline); a child that outlived its scheduler
holds its own lock, so the second run waits for it or is skipped. SIGTERM (``stop``) starts no
new run, lets the running ones finish for ``grace`` seconds, then terminates them and records
them ``interrupted``. The loop never deletes anything: removing or changing a job only changes
what runs next.
"""
from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from swarm.clock import Clock, SystemClock, utc_iso
from swarm.model.schedule import (
    FAILED,
    INTERRUPTED,
    MISSED,
    SKIPPED,
    SUCCEEDED,
    Action,
    Job,
    Planner,
    Run,
)
from swarm.repo import Repository

Log = Callable[[dict[str, Any]], None]
HOOK_TIMEOUT_S = 10.0
LOCK_HELD_EXIT = 6
INTERRUPTED_EXIT = 130


@dataclass
class _Child:
    action: Action
    proc: subprocess.Popen[str]
    started_at: datetime
    thread: threading.Thread
    result: dict[str, Any] = field(default_factory=dict)
    terminated: bool = False


@dataclass
class SchedulerSummary:
    started_at: str
    stopped_at: str = ""
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    missed: int = 0
    interrupted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def job_argv(job: Job, repo: Repository, *, config: Path | None) -> list[str]:
    """The child's command line: ``swarm [--config C] [--repo COPY] admin <command words> --json``;
    ``{latest}`` in the command becomes the newest backup's id (``verify {latest}``). ValueError if
    there is none. A job with ``repo`` runs against that copy (``swarm --repo NAME``)."""
    words = shlex.split(job.command)
    if "{latest}" in words:
        backups = repo.list_backups({})
        if not backups:
            raise ValueError("no backup to put in {latest}")
        latest = max(backups, key=lambda m: (m.finished_at, m.id)).id
        words = [latest if w == "{latest}" else w for w in words]
    base = [sys.executable, "-m", "swarm.cli.main"]
    if config is not None:
        base += ["--config", str(config)]
    if job.repo is not None:
        base += ["--repo", job.repo]
    return [*base, "admin", *words, *([] if "--json" in words else ["--json"])]


class Scheduler:
    """Runs ``jobs`` until ``stop()``; every decision is the planner's. ``log`` receives one dict per
    event (the CLI prints them as JSON lines); nothing here prints."""

    def __init__(self, jobs: Mapping[str, Job], repo: Repository, *, log: Log, config: Path | None = None,
                 clock: Clock | None = None, grace: float = 60.0, poll: float = 1.0,
                 argv: Callable[[Job, Repository], list[str]] | None = None) -> None:
        self.jobs = dict(jobs)
        self.repo = repo
        self.log = log
        self.config = config
        self.clock = clock or SystemClock()
        self.grace = grace
        self.poll = poll
        self.argv = argv or (lambda job, repo: job_argv(job, repo, config=self.config))
        self._stop = threading.Event()
        self._children: dict[str, _Child] = {}
        self.summary = SchedulerSummary(utc_iso(self.clock.now()))

    def stop(self) -> None:
        """Start no new run; running ones get ``grace`` seconds to finish (``run`` returns after)."""
        self._stop.set()

    def _event(self, event: str, **facts: Any) -> None:
        self.log({"ts": utc_iso(self.clock.now()), "event": event, **facts})

    def run(self, *, until: float | None = None) -> SchedulerSummary:
        """The loop. ``until`` (monotonic seconds from now) bounds it, for tests and demos."""
        damaged: dict[str, str] = {}
        history = [Run.from_dict(r) for r in self.repo.job_runs(damaged=damaged)]
        for key, problem in damaged.items():
            self._event("history-damaged", key=key, problem=problem)
        start = self.clock.now()
        planner = Planner(self.jobs, history, since=start)
        self._event("scheduler-start", jobs={n: {"cron": j.cron, "after": j.after, "command": j.command,
                                                 "timezone": j.timezone} for n, j in planner.jobs.items()},
                    history=len(history), pid=os.getpid())
        deadline = None if until is None else self.clock.monotonic() + until
        while not self._stop.is_set():
            if deadline is not None and self.clock.monotonic() >= deadline:
                break
            now = self.clock.now()
            self._reap(planner)
            for action in planner.due(now):
                if action.verb == "record":
                    assert action.record is not None
                    self._record(action.record)
                elif action.job not in self._children:
                    self._start(planner, action)
            wake = planner.next_wakeup(self.clock.now())
            wait = max(0.05, min(self.poll, (wake - self.clock.now()).total_seconds()))
            self._stop.wait(wait)
        self._shutdown(planner)
        self.summary.stopped_at = utc_iso(self.clock.now())
        self._event("scheduler-stop", **self.summary.to_dict())
        return self.summary

    # ---- runs ----
    def _start(self, planner: Planner, action: Action) -> None:
        job = self.jobs[action.job]
        now = self.clock.now()
        try:
            argv = self.argv(job, self.repo)
        except ValueError as exc:
            planner.started(action, now)
            rec = planner.finished(job.name, FAILED, now, started_at=now, error_code="backup-not-found",
                                   message=str(exc))
            self._record(rec)
            return
        planner.started(action, now)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        child = _Child(action, proc, now, threading.Thread(target=lambda: None))

        def collect() -> None:
            try:
                out, err = proc.communicate(timeout=job.timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                out, err = proc.communicate()
                child.result["timeout"] = True
            child.result.update({"stdout": out, "stderr": err, "rc": proc.returncode})

        child.thread = threading.Thread(target=collect, name=f"job-{job.name}", daemon=True)
        child.thread.start()
        self._children[job.name] = child
        self.summary.runs += 1
        self._event("run-start", job=job.name, slot=utc_iso(action.slot), attempt=action.attempt,
                    trigger=action.trigger, argv=argv[argv.index("admin"):], pid=proc.pid)

    def _reap(self, planner: Planner) -> None:
        for name, child in list(self._children.items()):
            if child.thread.is_alive():
                continue
            del self._children[name]
            rc = int(child.result.get("rc", -1))
            outcome, code, msg, backup_id = classify(child.result, terminated=child.terminated)
            rec = planner.finished(name, outcome, self.clock.now(), started_at=child.started_at, error_code=code,
                                   message=msg, backup_id=backup_id, exit_code=rc)
            self._record(rec)

    def _shutdown(self, planner: Planner) -> None:
        if not self._children:
            return
        self._event("scheduler-stopping", running=sorted(self._children), grace_s=self.grace)
        end = self.clock.monotonic() + self.grace
        while self._children and self.clock.monotonic() < end:
            self._reap(planner)
            if self._children:
                next(iter(self._children.values())).thread.join(0.2)
        for child in self._children.values():
            child.terminated = True
            try:
                os.killpg(child.proc.pid, signal.SIGTERM)  # the child cleans up and releases its locks
            except ProcessLookupError:
                pass
        for child in self._children.values():
            child.thread.join(self.grace)
        self._reap(planner)

    # ---- one job now (cron, systemd and Kubernetes run jobs this way) ----
    def run_job(self, name: str, *, chain: bool = True, trigger: str = "external") -> list[Run]:
        """Run job ``name`` once, now, in the foreground, as the external schedulers (cron, systemd
        timers, Kubernetes CronJobs rendered by ``render``) do: retried with backoff within its
        window, recorded in the job history, hooks called; on success the jobs chained ``after`` it
        run next (``chain``). Returns the records written, in order. The slot is the start time."""
        job = self.jobs[name]
        slot = self.clock.now().replace(microsecond=0)
        window = job.window_end(slot) if job.cron else None
        if job.starting_deadline is not None:
            window = min(w for w in (window, slot + timedelta(seconds=job.starting_deadline)) if w is not None)
        out: list[Run] = []
        attempt = 1
        while True:
            started = self.clock.now()
            try:
                argv = self.argv(job, self.repo)
            except ValueError as exc:
                rec = Run(name, slot, FAILED, attempt, trigger, started, started, "backup-not-found", str(exc))
                self._record(rec)
                return [*out, rec]
            self._event("run-start", job=name, slot=utc_iso(slot), attempt=attempt, trigger=trigger,
                        argv=argv[argv.index("admin"):])
            result: dict[str, Any] = {}
            try:
                p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                   timeout=job.timeout, check=False)
                result = {"rc": p.returncode, "stdout": p.stdout, "stderr": p.stderr}
            except subprocess.TimeoutExpired as exc:
                result = {"rc": -1, "stdout": exc.stdout or "", "stderr": exc.stderr or "", "timeout": True}
            outcome, code, msg, backup_id = classify(result)
            ended = self.clock.now()
            retry_at = ended + timedelta(seconds=job.backoff(attempt))
            again = (outcome in (FAILED, INTERRUPTED) and attempt <= job.retries
                     and (window is None or retry_at < window))
            rec = Run(name, slot, outcome, attempt, trigger if attempt == 1 else "retry", started, ended, code, msg,
                      backup_id, int(result["rc"]), final=not again)
            self._record(rec)
            out.append(rec)
            if not again:
                break
            self._stop.wait(max(0.0, (retry_at - self.clock.now()).total_seconds()))
            attempt += 1
        if chain and out[-1].outcome == SUCCEEDED:
            for other in self.jobs.values():
                if other.after == name and other.enabled:
                    out += self.run_job(other.name, chain=True, trigger=f"after:{name}")
        return out

    # ---- records and hooks ----
    def _record(self, rec: Run) -> None:
        body = rec.to_dict()
        try:
            self.repo.put_job_run(body)
        except Exception as exc:  # the record is lost, the loop is not: said in the log
            self._event("record-failed", job=rec.job, slot=body["slot"], error=str(exc))
        counter = {SUCCEEDED: "succeeded", FAILED: "failed", SKIPPED: "skipped", MISSED: "missed",
                   INTERRUPTED: "interrupted"}[rec.outcome]
        setattr(self.summary, counter, getattr(self.summary, counter) + 1)
        self._event({SKIPPED: "slot-skipped", MISSED: "slot-missed"}.get(rec.outcome, "run-end"), **body)
        job = self.jobs.get(rec.job)
        if job is None:
            return
        if rec.final and rec.outcome in (FAILED, MISSED, INTERRUPTED):
            if job.on_failure:
                self._hook_command(job, body)
            if job.webhook:
                self._hook_post(job, job.webhook, body, "webhook")
        if rec.outcome == SUCCEEDED and job.heartbeat:
            self._hook_post(job, job.heartbeat, body, "heartbeat")

    def _hook_command(self, job: Job, body: dict[str, Any]) -> None:
        assert job.on_failure is not None
        env = {**os.environ, "SWARM_JOB": job.name, "SWARM_JOB_OUTCOME": str(body["outcome"]),
               "SWARM_JOB_ERROR": str(body.get("error_code") or "")}
        try:
            r = subprocess.run(shlex.split(job.on_failure), input=json.dumps(body), text=True, capture_output=True,
                               timeout=HOOK_TIMEOUT_S * 6, env=env, check=False)
            self._event("hook", job=job.name, hook="on_failure", exit_code=r.returncode,
                        ok=r.returncode == 0, stderr=_tail(r.stderr))
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            self._event("hook", job=job.name, hook="on_failure", ok=False, error=str(exc))

    def _hook_post(self, job: Job, url: str, body: dict[str, Any], hook: str) -> None:
        req = urllib.request.Request(url, data=json.dumps({"job": job.name, "run": body}).encode(),
                                     headers={"Content-Type": "application/json", "User-Agent": "swarm-scheduler"},
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=HOOK_TIMEOUT_S) as resp:
                self._event("hook", job=job.name, hook=hook, status=resp.status, ok=200 <= resp.status < 300)
        except Exception as exc:
            self._event("hook", job=job.name, hook=hook, ok=False, error=str(exc))


def classify(result: Mapping[str, Any], *, terminated: bool = False) -> tuple[str, str | None, str | None,
                                                                          str | None]:
    """(outcome, error code, message, backup id) of a finished child from its exit code and ``--json``
    output: 0 succeeded; 130/SIGTERM (or ``terminated``) interrupted; 6 (lock held elsewhere)
    skipped; anything else failed, with the error's code and message."""
    rc = int(result.get("rc", -1))
    doc = _last_json(result.get("stdout") or "")
    backup_id = doc.get("id") if isinstance(doc.get("id"), str) else None
    if rc == 0:
        return SUCCEEDED, None, None, backup_id
    if terminated or rc in (INTERRUPTED_EXIT, -signal.SIGTERM):
        return INTERRUPTED, "interrupted", "stopped by the scheduler's shutdown", backup_id
    if rc == LOCK_HELD_EXIT:
        return SKIPPED, str(doc.get("error") or "lock-held"), str(doc.get("message") or
                                                                 "another process holds the lock"), None
    code = str(doc.get("error") or ("timeout" if result.get("timeout") else "failed"))
    message = doc.get("message")
    if not message and isinstance(doc.get("problems"), list) and doc["problems"]:
        first = doc["problems"][0]
        message = first if isinstance(first, str) else json.dumps(first, default=str)
    return FAILED, code, str(message or _tail(result.get("stderr") or "") or f"exit {rc}"), backup_id


def _last_json(text: str) -> dict[str, Any]:
    """The JSON document a ``--json`` command printed (the whole stdout), or {}."""
    try:
        doc = json.loads(text)
        return doc if isinstance(doc, dict) else {}
    except ValueError:
        return {}


def _tail(text: str, n: int = 400) -> str:
    text = text.strip()
    return text[-n:]
