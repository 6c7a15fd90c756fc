"""The scheduler's decisions (swarm.model.schedule) with an injected clock: due, overlap, missed
runs after downtime caught up exactly once within the starting deadline, retries with backoff
inside the window, jitter bounds, `after` chaining, and parsing of [schedule.<job>] tables."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.config import load_settings
from swarm.errors import ConfigError
from swarm.model.schedule import (
    FAILED,
    MISSED,
    SKIPPED,
    SUCCEEDED,
    Job,
    Planner,
    Run,
    kind_of,
    parse_duration,
    parse_jobs,
)

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)


def minutely(**kw) -> Job:
    return Job(name=kw.pop("name", "j"), command="backup postgres", cron="* * * * *", **kw)


def runs(actions):
    return [a for a in actions if a.verb == "run"]


def records(actions):
    return [a.record for a in actions if a.verb == "record"]


def test_due_exactly_at_the_slot_and_not_before():
    p = Planner({"j": minutely()}, since=T0)
    assert p.due(T0 + timedelta(seconds=59)) == []
    [a] = p.due(T0 + timedelta(seconds=60))
    assert (a.verb, a.slot, a.attempt, a.trigger) == ("run", T0 + timedelta(minutes=1), 1, "cron")


@settings(max_examples=200, deadline=None)
@given(down=st.integers(min_value=1, max_value=300), extra=st.integers(min_value=0, max_value=59),
       deadline=st.one_of(st.none(), st.integers(min_value=1, max_value=600)))
def test_missed_slots_recorded_once_and_caught_up_exactly_once(down, extra, deadline):
    job = minutely(starting_deadline=deadline)
    now = T0 + timedelta(minutes=down, seconds=extra)
    p = Planner({"j": job}, since=T0)
    acts = p.due(now)
    newest = T0 + timedelta(minutes=down)
    missed = [r for r in records(acts) if r.outcome == MISSED]
    within = deadline is None or extra <= deadline
    assert len(missed) == (down - 1 if within else down)
    assert len({r.slot for r in missed}) == len(missed)
    if within:
        [run] = runs(acts)
        assert run.slot == newest
        assert run.trigger == ("catch-up" if down > 1 else "cron") or extra > 60
        # asking again (the run not started yet) repeats the run but never the missed records
        again = p.due(now)
        assert records(again) == [] and [a.slot for a in runs(again)] == [newest]
        p.started(run, now)
        assert p.due(now) == []
        rec = p.finished("j", SUCCEEDED, now + timedelta(seconds=1))
        # a restarted scheduler that reads the history back does not run or record those slots again
        p2 = Planner({"j": job}, [*missed, rec], since=T0)
        assert p2.due(now) == []
    else:
        assert runs(acts) == []
        assert p.due(now) == []


def test_a_run_killed_before_its_record_is_run_again_after_restart():
    """A run is recorded when it ends: a scheduler killed mid-run leaves the slot open (autorestic's
    record-before-run consumed the slot silently)."""
    job = minutely(starting_deadline=300)
    p = Planner({"j": job}, since=T0)
    [a] = p.due(T0 + timedelta(minutes=1))
    p.started(a, T0 + timedelta(minutes=1))
    # kill -9: nothing recorded; the restarted scheduler finds the slot open and runs it once
    p2 = Planner({"j": job}, [], since=T0)
    acts = p2.due(T0 + timedelta(minutes=1, seconds=30))
    assert [x.slot for x in runs(acts)] == [T0 + timedelta(minutes=1)]


@settings(max_examples=100, deadline=None)
@given(busy_minutes=st.integers(min_value=1, max_value=30))
def test_overlap_is_skipped_and_recorded_never_run_concurrently(busy_minutes):
    p = Planner({"j": minutely()}, since=T0)
    start = T0 + timedelta(minutes=1)
    [a] = p.due(start)
    p.started(a, start)
    skipped = []
    for m in range(1, busy_minutes + 1):
        acts = p.due(start + timedelta(minutes=m))
        assert runs(acts) == []
        skipped += [r for r in records(acts) if r.outcome == SKIPPED]
    assert [r.slot for r in skipped] == [start + timedelta(minutes=m) for m in range(1, busy_minutes + 1)]
    end = start + timedelta(minutes=busy_minutes, seconds=30)
    p.finished("j", SUCCEEDED, end)
    assert p.due(end) == []
    assert [x.slot for x in runs(p.due(end + timedelta(seconds=30)))] == [start + timedelta(minutes=busy_minutes + 1)]


@settings(max_examples=300, deadline=None)
@given(jitter=st.floats(min_value=0.001, max_value=3000), minute=st.integers(min_value=0, max_value=10**6))
def test_jitter_is_within_bounds_deterministic_and_respected(jitter, minute):
    job = Job(name="j", command="backup state", cron="0 * * * *", jitter=jitter)
    slot = T0 + timedelta(hours=minute)
    off = job.jitter_offset(slot)
    assert 0 <= off < jitter
    assert off == job.jitter_offset(slot)
    p = Planner({"j": job}, since=slot - timedelta(hours=1))
    if off > 0.001:
        assert runs(p.due(slot + timedelta(seconds=off) - timedelta(microseconds=1000))) == []
    assert [a.slot for a in runs(p.due(slot + timedelta(seconds=off)))] == [slot]


@settings(max_examples=150, deadline=None)
@given(retries=st.integers(min_value=0, max_value=6), backoff=st.integers(min_value=1, max_value=40),
       run_s=st.integers(min_value=1, max_value=20), deadline=st.one_of(st.none(), st.integers(60, 3000)))
def test_failures_retried_with_backoff_inside_the_window_then_final(retries, backoff, run_s, deadline):
    """Hourly job that always fails: attempts are 1..n with n <= retries+1, each retry waits the
    doubled backoff, none starts after the window closes, and the slot ends with exactly one final
    record."""
    job = Job(name="j", command="backup postgres", cron="0 * * * *", retries=retries, retry_backoff=backoff,
              starting_deadline=deadline)
    p = Planner({"j": job}, since=T0)
    slot = T0 + timedelta(hours=1)
    window_end = job.window_end(slot)
    now = slot
    history: list[Run] = []
    starts = []
    while now < slot + timedelta(hours=1):
        acts = p.due(now)
        history += records(acts)
        for a in runs(acts):
            assert a.slot == slot
            p.started(a, now)
            starts.append((a.attempt, now))
            now += timedelta(seconds=run_s)
            history.append(p.finished("j", FAILED, now))
        now = p.next_wakeup(now)
        if now >= slot + timedelta(hours=1):
            break
    assert [s[0] for s in starts] == list(range(1, len(starts) + 1))
    assert 1 <= len(starts) <= retries + 1
    assert all(t < window_end for _, t in starts)
    for (a1, t1), (_, t2) in itertools.pairwise(starts):
        assert (t2 - t1).total_seconds() >= run_s + backoff * 2 ** (a1 - 1)
    finals = [r for r in history if r.slot == slot and r.final]
    assert len(finals) == 1 and finals[0].outcome == FAILED


def test_a_retry_then_success_ends_the_slot_and_restart_keeps_the_pending_retry():
    job = Job(name="j", command="backup postgres", cron="0 * * * *", retries=2, retry_backoff=5)
    p = Planner({"j": job}, since=T0)
    slot = T0 + timedelta(hours=1)
    [a] = p.due(slot)
    p.started(a, slot)
    rec = p.finished("j", FAILED, slot + timedelta(seconds=1), error_code="source")
    assert not rec.final
    # restart: the retry is rebuilt from the history, not lost and not duplicated
    p2 = Planner({"j": job}, [rec], since=T0)
    assert p2.due(slot + timedelta(seconds=5)) == []
    [r] = p2.due(slot + timedelta(seconds=6))
    assert (r.attempt, r.trigger) == (2, "retry")
    p2.started(r, slot + timedelta(seconds=6))
    ok = p2.finished("j", SUCCEEDED, slot + timedelta(seconds=7))
    assert ok.final and ok.attempt == 2
    assert p2.due(slot + timedelta(minutes=30)) == []


def test_after_chaining_runs_on_success_only():
    jobs = parse_jobs({"set": {"cron": "0 * * * *", "command": "backup set"},
                       "verify": {"after": "set", "command": "verify {latest}"}})
    p = Planner(jobs, since=T0)
    slot = T0 + timedelta(hours=1)
    [a] = p.due(slot)
    p.started(a, slot)
    p.finished("set", FAILED, slot + timedelta(seconds=5))
    assert runs(p.due(slot + timedelta(seconds=6))) == []
    slot2 = slot + timedelta(hours=1)
    [a] = p.due(slot2)
    p.started(a, slot2)
    set_rec = p.finished("set", SUCCEEDED, slot2 + timedelta(seconds=5))
    # a scheduler restarted between the two still runs the chained job, once
    p2 = Planner(jobs, [set_rec], since=T0)
    assert [x.job for x in runs(p2.due(slot2 + timedelta(seconds=6)))] == ["verify"]
    [b] = runs(p.due(slot2 + timedelta(seconds=6)))
    assert (b.job, b.trigger, b.slot) == ("verify", "after:set", slot2 + timedelta(seconds=5))
    p.started(b, slot2 + timedelta(seconds=6))
    rec = p.finished("verify", SUCCEEDED, slot2 + timedelta(seconds=8))
    assert runs(p.due(slot2 + timedelta(seconds=9))) == []
    p3 = Planner(jobs, [set_rec, rec], since=T0)  # the chained slot is not run again after a restart
    assert runs(p3.due(slot2 + timedelta(seconds=9))) == []


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(1, 400), st.booleans(), st.integers(1, 200)), min_size=1,
                      max_size=40),
       retries=st.integers(0, 2), deadline=st.one_of(st.none(), st.integers(30, 600)))
def test_simulation_one_final_outcome_per_slot_and_no_overlap(steps, retries, deadline):
    """Random downtime, durations and outcomes: every slot has at most one final record, a job never
    runs twice at once, and no slot is both run and missed."""
    job = Job(name="j", command="backup postgres", cron="*/2 * * * *", retries=retries, retry_backoff=10,
              starting_deadline=deadline, jitter=min(20, (deadline or 100) - 1))
    now = T0
    history: list[Run] = []
    p = Planner({"j": job}, since=T0)
    running_until = None
    for gap, ok, dur in steps:
        now += timedelta(seconds=gap)
        if running_until is not None and now >= running_until:
            history.append(p.finished("j", SUCCEEDED if ok else FAILED, running_until))
            running_until = None
        if gap > 300:  # the scheduler was killed (a run in progress leaves no record); a new one reads the history
            p = Planner({"j": job}, history, since=T0)
            running_until = None
        for a in p.due(now):
            if a.verb == "record":
                history.append(a.record)
            elif running_until is None:
                p.started(a, now)
                running_until = now + timedelta(seconds=dur)
            else:
                pytest.fail("a run was offered while one is running")
    finals: dict = {}
    for r in history:
        if r.final:
            assert r.slot not in finals, f"two final outcomes for {r.slot}: {finals[r.slot]} and {r.outcome}"
            finals[r.slot] = r.outcome


def test_parse_durations_and_kinds():
    assert parse_duration("2h") == 7200 and parse_duration("5m") == 300 and parse_duration(90) == 90
    assert parse_duration("1d") == 86400 and parse_duration("1.5s") == 1.5
    with pytest.raises(ValueError):
        parse_duration("soon")
    assert kind_of("backup postgres") == "pg-logical"
    assert kind_of("backup postgres --physical") == "pg-physical"
    assert kind_of("backup set") == "set" and kind_of("verify {latest}") is None


@pytest.mark.parametrize(("table", "words"), [
    ({"j": {"cron": "61 * * * *", "command": "backup state"}}, "[schedule.j] cron"),
    ({"j": {"cron": "* * * * *", "command": "backup state", "colour": 1}}, "[schedule.j] colour"),
    ({"j": {"cron": "* * * * *"}}, "[schedule.j] command"),
    ({"j": {"command": "backup state"}}, "[schedule.j] cron"),
    ({"j": {"cron": "* * * * *", "command": "x", "timezone": "Mars/Olympus"}}, "[schedule.j] timezone"),
    ({"j": {"cron": "* * * * *", "command": "x", "jitter": "1h", "starting_deadline": "5m"}}, "[schedule.j] jitter"),
    ({"j": {"cron": "* * * * *", "command": "x", "retries": -1}}, "[schedule.j] retries"),
    ({"j": {"cron": "* * * * *", "command": "x", "webhook": "ftp://x"}}, "[schedule.j] webhook"),
    ({"a": {"after": "b", "command": "x"}, "b": {"after": "a", "command": "x"}}, "loops"),
    ({"a": {"after": "nope", "command": "x"}}, "no job named 'nope'"),
])
def test_parse_jobs_refuses_naming_the_key(table, words):
    with pytest.raises(ConfigError) as ei:
        parse_jobs(table)
    assert words in ei.value.message and ei.value.hint


def test_settings_read_schedule_tables_and_default(tmp_path, monkeypatch):
    monkeypatch.setenv("SWARM_HOME", str(tmp_path))
    s = load_settings()
    assert s.schedule_source == "default" and {"set", "physical", "drill", "prune"} <= set(s.schedule)
    cfg = tmp_path / "swarm.toml"
    cfg.write_text('[schedule.logical]\ncron = "30 1 * * *"\ntimezone = "Asia/Kolkata"\ncommand = "backup postgres"\n'
                   'starting_deadline = "2h"\njitter = "5m"\nretries = 2\non_failure = "/bin/false"\n'
                   'webhook = "http://127.0.0.1:9000/hook"\nheartbeat = "https://hc.example/ping/abc"\n')
    s = load_settings()
    job = s.schedule["logical"]
    assert (job.starting_deadline, job.jitter, job.retries, job.timezone) == (7200, 300, 2, "Asia/Kolkata")
    # 01:30 in Kolkata is 20:00 UTC the day before
    assert job.next_slot(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) == datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
    assert job.expected_interval(T0) == 86400
    cfg.write_text('[schedule.logical]\ncron = "30 1 * *"\ncommand = "backup postgres"\n')
    with pytest.raises(ConfigError) as ei:
        load_settings()
    assert "[schedule.logical] cron" in ei.value.message


def test_downtime_after_recorded_history_is_seen_even_when_since_is_now():
    """The scheduler starts with since=now; a job with history counts from its newest recorded slot."""
    job = minutely(starting_deadline=120)
    p = Planner({"j": job}, since=T0)
    [a] = p.due(T0 + timedelta(minutes=1))
    p.started(a, T0 + timedelta(minutes=1))
    rec = p.finished("j", SUCCEEDED, T0 + timedelta(minutes=1, seconds=5))
    now = T0 + timedelta(minutes=10, seconds=30)
    p2 = Planner({"j": job}, [rec], since=now)
    acts = p2.due(now)
    assert [r.slot for r in records(acts)] == [T0 + timedelta(minutes=m) for m in range(2, 10)]
    assert [a.slot for a in runs(acts)] == [T0 + timedelta(minutes=10)]
