"""The default schedule with and without ``[[repository.copies]]``: with copies, `repo copy` runs after
each backup set and hourly; without, there is no such job; an operator's own [schedule] tables are
never changed by copies. Pure (settings from a file, the Planner fed times)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from swarm.config import load_settings
from swarm.model.schedule import DEFAULT_SCHEDULE, SUCCEEDED, Planner, default_schedule, parse_jobs

BASE = """
[repository]
url = "file:///srv/primary"
"""
COPY = """
[[repository.copies]]
name = "offsite"
url = "file:///mnt/offsite"
"""


def _copy_jobs(jobs: dict) -> list:  # type: ignore[type-arg]
    return [j for j in jobs.values() if j.command.split()[:2] == ["repo", "copy"]]


def test_without_copies_the_default_table_has_no_copy_job(tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(BASE)
    s = load_settings(cfg)
    assert s.schedule_source == "default" and _copy_jobs(s.schedule) == []
    assert set(s.schedule) == set(DEFAULT_SCHEDULE)


def test_with_copies_repo_copy_runs_after_the_set_and_hourly(tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(BASE + COPY)
    s = load_settings(cfg)
    [job] = _copy_jobs(s.schedule)
    assert job.command == "repo copy" and job.after == "set" and job.enabled
    assert job.expected_interval(datetime(2026, 11, 27, tzinfo=UTC)) == 3600
    # every job of the table without copies is there, unchanged
    plain = parse_jobs(None)
    assert {n: j for n, j in s.schedule.items() if n in plain} == plain
    # the same with --repo NAME (a command run against the copy sees the same table)
    assert _copy_jobs(load_settings(cfg, copy="offsite").schedule) == [job]


def test_an_operators_schedule_is_not_changed_by_copies(tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(BASE + COPY + """
[schedule.nightly]
cron = "0 3 * * *"
command = "backup set"
""")
    s = load_settings(cfg)
    assert s.schedule_source == "file" and list(s.schedule) == ["nightly"]


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1)),
       st.integers(min_value=0, max_value=3599))
def test_copy_job_runs_within_the_hour_and_right_after_each_set(start: datetime, set_took: int) -> None:
    jobs = parse_jobs(default_schedule(copies=["offsite"]))
    now = start.replace(tzinfo=UTC)
    copy = jobs["copy"]
    nxt = copy.next_slot(now)
    assert nxt is not None and timedelta(0) < nxt - now <= timedelta(hours=1)
    # a backup set that succeeds gives `repo copy` a slot at once, whatever the hour
    p = Planner(jobs, since=now)
    set_slot = now
    p.started(_run_action(p, "set", set_slot), now)
    ended = now + timedelta(seconds=set_took)
    p.finished("set", SUCCEEDED, ended)
    [first] = [a for a in p.due(ended) if a.verb == "run" and a.job == "copy"]
    if first.trigger != "after:set":  # an hourly slot came due meanwhile: it runs, the chained one next
        p.started(first, ended)
        p.finished("copy", SUCCEEDED, ended + timedelta(seconds=30))
        [first] = [a for a in p.due(ended + timedelta(seconds=30)) if a.verb == "run" and a.job == "copy"]
    assert (first.trigger, first.slot) == ("after:set", ended)
    assert _copy_jobs(parse_jobs(default_schedule(copies=[]))) == []


def _run_action(p: Planner, job: str, slot: datetime):  # type: ignore[no-untyped-def]
    from swarm.model.schedule import Action

    return Action("run", job, slot, 1, "cron")


def test_with_copies_each_copy_is_pruned_daily_by_a_job_run_against_it(tmp_path: Path) -> None:
    from swarm.services.schedule.runner import job_argv

    cfg = tmp_path / "swarm.toml"
    cfg.write_text(BASE + COPY + COPY.replace("offsite", "usb").replace("/mnt/usb", "/mnt/usb"))
    s = load_settings(cfg)
    prunes = {n: j for n, j in s.schedule.items() if j.command == "prune"}
    assert set(prunes) == {"prune", "prune-offsite", "prune-usb"}
    assert prunes["prune"].repo is None and prunes["prune-usb"].repo == "usb"
    # an hour after the primary's prune, so neither waits for the other's exclusive lock
    assert prunes["prune-offsite"].cron != prunes["prune"].cron
    argv = job_argv(prunes["prune-offsite"], None, config=cfg)  # type: ignore[arg-type]
    assert argv[argv.index("--repo"):argv.index("admin") + 2] == ["--repo", "offsite", "admin", "prune"]
    assert "--repo" not in job_argv(prunes["prune"], None, config=cfg)  # type: ignore[arg-type]


def test_a_job_on_a_copy_adds_no_backup_of_the_primarys_kind(tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(BASE + COPY + '[schedule.copy-state]\ncron = "0 3 * * *"\ncommand = "backup state"\n'
                   'repo = "offsite"\n')
    job = load_settings(cfg).schedule["copy-state"]
    assert job.repo == "offsite" and job.kind is None  # `status` does not count it as the primary's state backup


def test_a_job_naming_an_unknown_copy_or_latest_on_a_copy_is_refused(tmp_path: Path) -> None:
    import pytest

    from swarm.errors import ConfigError

    cfg = tmp_path / "swarm.toml"
    cfg.write_text(BASE + COPY + '[schedule.p]\ncron = "0 6 * * *"\ncommand = "prune"\nrepo = "nowhere"\n')
    with pytest.raises(ConfigError, match=r"\[schedule\.p\] repo .*no copy named 'nowhere' \(copies: offsite\)"):
        load_settings(cfg)
    cfg.write_text(BASE + COPY + '[schedule.v]\ncron = "0 6 * * *"\ncommand = "verify {latest}"\nrepo = "offsite"\n')
    with pytest.raises(ConfigError, match=r"\[schedule\.v\] repo .*\{latest\}"):
        load_settings(cfg)
