"""`scheduler render`: Kubernetes CronJobs validated against the Kubernetes OpenAPI schema
(kubernetes-validate, strict: unknown and mistyped fields are errors); systemd units checked by
`systemd-analyze verify`, and their OnCalendar= proven to fire when croniter says the cron
expression does; crontab lines; and a real `run-job` (what every rendered entry runs)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import kubernetes_validate
import pytest
import tomli_w
import yaml

from swarm.errors import ConfigError
from swarm.model.schedule import parse_jobs
from swarm.services.schedule.render import RenderOptions, on_calendar, render, systemd_units

SWARM = [sys.executable, "-m", "swarm.cli.main"]
TABLES = {
    "logical": {"cron": "30 1 * * *", "timezone": "Asia/Kolkata", "command": "backup postgres",
                "starting_deadline": "2h", "jitter": "5m", "retries": 2, "timeout": "3h"},
    "physical": {"cron": "0 2 * * 0", "command": "backup postgres --physical", "starting_deadline": "6h"},
    "state": {"cron": "*/15 * * * *", "command": "backup state"},
    "set_nightly": {"cron": "0 3 1-5 * *", "command": "backup set"},
    "verify": {"after": "logical", "command": "verify {latest}"},
}


def test_rendered_cronjobs_validate_against_the_kubernetes_schema() -> None:
    jobs = parse_jobs(TABLES)
    text = render("kubernetes", jobs, RenderOptions(namespace="backups"))
    docs = list(yaml.safe_load_all(text))
    assert [d["metadata"]["name"] for d in docs] == ["swarm-logical", "swarm-physical", "swarm-state",
                                                     "swarm-set-nightly"]  # verify runs inside logical's job
    version = kubernetes_validate.utils.latest_version()
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)
        spec = doc["spec"]
        assert doc["apiVersion"] == "batch/v1" and spec["concurrencyPolicy"] == "Forbid"
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        [c] = pod["containers"]
        assert c["envFrom"] == [{"secretRef": {"name": "swarm-secrets"}}]
        assert not any("SECRET" in e["name"] or "PASSWORD" in e["name"] or e["name"] == "SWARM_DB_URL"
                       for e in c["env"])  # secrets come from the Secret, never inline
        claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
        assert bool(claims) == (doc["metadata"]["name"] in ("swarm-state", "swarm-set-nightly"))
    logical = docs[0]["spec"]
    assert logical["timeZone"] == "Asia/Kolkata" and logical["startingDeadlineSeconds"] == 7200
    # the validator does reject what is wrong: an unknown field, a mistyped one
    bad = json.loads(json.dumps(docs[0]))
    bad["spec"]["concurrencyPolicy_"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)
    bad = json.loads(json.dumps(docs[0]))
    bad["spec"]["startingDeadlineSeconds"] = "7200"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, version, strict=True)


def _systemd_next(expr: str, n: int) -> list[datetime]:
    out = subprocess.run(["systemd-analyze", "calendar", f"--iterations={n}", expr], capture_output=True,
                         text=True, check=True, env={**os.environ, "TZ": "UTC"}).stdout
    times = []
    for raw in out.splitlines():
        line = raw.strip()
        if line.startswith(("Next elapse:", "Iter. #")):
            stamp = line.split(":", 1)[1].strip().split(" ", 1)[1].removesuffix(" UTC")
            times.append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
    return times


@pytest.mark.parametrize("cron", ["30 1 * * *", "0 2 * * 0", "*/15 * * * *", "0 3 1-5 * *", "5 */6 * * 1-5",
                                  "0 0 1 */3 *", "10,40 8-18 * * *"])
@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata"])
def test_systemd_on_calendar_fires_when_cron_does(cron: str, tz: str) -> None:
    assert shutil.which("systemd-analyze"), "systemd-analyze is part of the machine (systemd package)"
    job = parse_jobs({"j": {"cron": cron, "timezone": tz, "command": "backup state"}})["j"]
    expr = on_calendar(job)
    got = _systemd_next(expr, 12)
    assert got, expr
    start = got[0]
    want = [start]
    while len(want) < len(got):
        nxt = job.next_slot(want[-1])
        assert nxt is not None
        want.append(nxt)
    assert got == want, expr
    # and the first one is croniter's first after now
    assert job.next_slot(datetime.now(UTC)) == start


def test_systemd_units_verify(tmp_path: Path) -> None:
    jobs = parse_jobs(TABLES)
    swarm = str(Path(sys.executable).parent / "swarm")
    units = systemd_units(jobs, RenderOptions(swarm=swarm, config="/etc/swarm/swarm.toml"))
    tmp_path = tmp_path / "units"
    tmp_path.mkdir()
    for name, text in units.items():
        (tmp_path / name).write_text(text)
    timer = units["swarm-logical.timer"]
    assert "Persistent=true" in timer and "RandomizedDelaySec=300" in timer
    assert "OnCalendar=*-*-* 01:30:00 Asia/Kolkata" in timer
    r = subprocess.run(["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    # the check is real: a broken timer fails it
    (tmp_path / "swarm-logical.timer").write_text(timer.replace("OnCalendar=*-*-* 01:30:00", "OnCalendar=nonsense"))
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "swarm-logical.timer"),
                        str(tmp_path / "swarm-logical.service")], capture_output=True, text=True, check=False)
    assert r.returncode != 0 or "nonsense" in r.stderr


def test_cron_lines_and_refusals() -> None:
    jobs = parse_jobs(TABLES)
    text = render("cron", jobs, RenderOptions(config="/etc/swarm/swarm.toml"))
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", "SHELL"))]
    assert "CRON_TZ=Asia/Kolkata" in lines
    assert "30 1 * * * swarm --config /etc/swarm/swarm.toml admin scheduler run-job logical" in lines
    assert not any("run-job verify" in ln for ln in lines)  # chained: run by logical's run-job
    with pytest.raises(ConfigError) as ei:
        render("cron", parse_jobs({"fast": {"cron": "* * * * * */5", "command": "backup state"}}), RenderOptions())
    assert "[schedule.fast] cron" in ei.value.message
    with pytest.raises(ConfigError):
        on_calendar(parse_jobs({"j": {"cron": "0 1 1 * 1", "command": "backup state"}})["j"])


def test_run_job_records_the_run_and_runs_the_chain(tmp_path: Path) -> None:
    from swarm.config import load_settings
    from swarm.crypto.keys import create_key_file
    from swarm.services.context import open_repository

    key = create_key_file(tmp_path / "keys" / "repo.key")
    home = tmp_path / "home"
    (home / "cron").mkdir(parents=True)
    (home / "cron" / "jobs.json").write_text("[]")
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(tomli_w.dumps({
        "repository": {"url": f"file://{tmp_path / 'repo'}", "key": f"file://{key.path}"},
        "schedule": {"state": {"cron": "0 1 * * *", "command": "backup state"},
                     "check": {"after": "state", "command": "backups list"}}}))
    os.environ["SWARM_HOME"] = str(home)
    open_repository(load_settings(cfg), create=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(home)
    r = subprocess.run([*SWARM, "--config", str(cfg), "admin", "scheduler", "run-job", "state"], capture_output=True,
                       text=True, env=env, timeout=300, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    ends = [e for e in map(json.loads, r.stdout.splitlines()) if e["event"] == "run-end"]
    assert [(e["job"], e["outcome"], e["trigger"]) for e in ends] == [("state", "succeeded", "external"),
                                                                      ("check", "succeeded", "after:state")]
    h = subprocess.run([*SWARM, "--config", str(cfg), "admin", "scheduler", "history", "--json"],
                       capture_output=True, text=True, env=env, check=True)
    assert [x["job"] for x in json.loads(h.stdout)["runs"]] == ["state", "check"]
