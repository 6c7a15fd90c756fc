"""Prometheus metrics scraped over HTTP and parsed: what exists is exported, what does not is
absent (never 0), swarm_up / swarm_metrics_scrape_success say whether the exporter and its gather
work; `metrics write` for node_exporter; docs/alerts.yml only names metrics the exporter has."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import tomli_w
import yaml
from prometheus_client.parser import text_string_to_metric_families

from swarm.crypto.keys import create_key_file
from swarm.services.metrics import METRIC_NAMES

SWARM = [sys.executable, "-m", "swarm.cli.main"]
ROOT = Path(__file__).resolve().parents[2]


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _setup(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    key = create_key_file(tmp_path / "keys" / "repo.key")
    home = tmp_path / "home"
    (home / "cron").mkdir(parents=True)
    (home / "cron" / "jobs.json").write_text("[]")
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(tomli_w.dumps({
        "repository": {"url": f"file://{tmp_path / 'repo'}", "key": f"file://{key.path}"},
        "schedule": {"state": {"cron": "0 1 * * *", "command": "backup state"},
                     "logical": {"cron": "0 2 * * *", "command": "backup postgres"}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(home)
    os.environ["SWARM_HOME"] = str(home)
    from swarm.config import load_settings
    from swarm.services.context import open_repository

    open_repository(load_settings(cfg), create=True)
    subprocess.run([*SWARM, "--config", str(cfg), "admin", "backup", "state", "--json"], capture_output=True,
                   env=env, check=True, timeout=120)
    return cfg, env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_served_over_http_absent_not_zero(tmp_path: Path) -> None:
    cfg, env = _setup(tmp_path)
    port = _free_port()
    proc = subprocess.Popen([*SWARM, "--config", str(cfg), "admin", "metrics", "serve", "--port", str(port),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        text = ""
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                    text = r.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert text, proc.stderr.read() if proc.poll() is not None else "no answer"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out)["port"] == port
    m = _samples(text)
    assert m[("swarm_up", ())] == 1 and m[("swarm_metrics_scrape_success", ())] == 1
    ts = m[("swarm_backup_last_success_timestamp_seconds", (("kind", "state"),))]
    assert abs(ts - time.time()) < 600
    assert m[("swarm_backup_bytes", (("kind", "state"),))] > 0
    assert m[("swarm_schedule_expected_interval_seconds", (("kind", "state"),))] == 86400
    assert m[("swarm_schedule_expected_interval_seconds", (("kind", "pg-logical"),))] == 86400
    # absent, never zero: no logical backup, no server, no drill
    names = {k[0] for k in m}
    assert ("swarm_backup_last_success_timestamp_seconds", (("kind", "pg-logical"),)) not in m
    for absent in ("swarm_wal_archive_last_success_timestamp_seconds", "swarm_rpo_seconds",
                   "swarm_drill_last_success_timestamp_seconds", "swarm_drill_rto_seconds",
                   "swarm_wal_archive_failures_total"):
        assert absent not in names, absent
    assert names <= METRIC_NAMES | {"swarm_metrics_scrape_error"}
    assert m[("swarm_repository_bytes", ())] > 0


def test_metrics_write_textfile_and_a_failed_gather(tmp_path: Path) -> None:
    cfg, env = _setup(tmp_path)
    prom = tmp_path / "swarm.prom"
    r = subprocess.run([*SWARM, "--config", str(cfg), "admin", "metrics", "write", str(prom)], capture_output=True,
                       text=True, env=env, check=False)
    assert r.returncode == 0, r.stderr
    m = _samples(prom.read_text())
    assert m[("swarm_metrics_scrape_success", ())] == 1
    assert ("swarm_backup_last_success_timestamp_seconds", (("kind", "state"),)) in m
    # a gather that fails (the repository is gone) says so, and exports nothing else
    bad = tmp_path / "bad.toml"
    bad.write_text(tomli_w.dumps({"repository": {"url": f"file://{tmp_path / 'nowhere'}",
                                                 "key": f"file://{tmp_path / 'keys' / 'repo.key'}"}}))
    r = subprocess.run([*SWARM, "--config", str(bad), "admin", "metrics", "write", str(prom)], capture_output=True,
                       text=True, env=env, check=False)
    assert r.returncode == 1
    m = _samples(prom.read_text())
    assert m[("swarm_up", ())] == 1 and m[("swarm_metrics_scrape_success", ())] == 0
    assert {k[0] for k in m} <= {"swarm_up", "swarm_metrics_scrape_success", "swarm_metrics_scrape_duration_seconds",
                                 "swarm_metrics_scrape_error"}


def test_alert_rules_name_only_exported_metrics() -> None:
    """promtool is not installed (Debian's `prometheus` package is a 96 MB server); the rules file is
    checked for shape and for naming only metrics this exporter produces."""
    doc = yaml.safe_load((ROOT / "docs" / "alerts.yml").read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {"SwarmBackupTooOld", "SwarmWalArchivingFailing", "SwarmRpoAboveTarget"} <= {r["alert"] for r in rules}
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"} and r["labels"]["severity"]
        for name in re.findall(r"\bswarm_[a-z_]+", r["expr"]):
            assert name in METRIC_NAMES, (r["alert"], name)
