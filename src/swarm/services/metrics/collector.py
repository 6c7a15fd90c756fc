"""The collector behind ``swarm admin metrics`` (see ``swarm.services.metrics``)."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CollectorRegistry, CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from swarm.clock import parse_iso
from swarm.errors import SwarmError

# Every metric family this exporter may produce (the names a rule may use; docs/metrics.md).
METRIC_NAMES = frozenset({
    "swarm_up", "swarm_metrics_scrape_success", "swarm_metrics_scrape_duration_seconds",
    "swarm_backup_last_success_timestamp_seconds", "swarm_backup_duration_seconds", "swarm_backup_bytes",
    "swarm_backup_age_seconds", "swarm_schedule_expected_interval_seconds",
    "swarm_wal_archive_last_success_timestamp_seconds", "swarm_wal_archive_failures_total",
    "swarm_wal_archive_failing", "swarm_wal_archive_lag_bytes", "swarm_rpo_seconds",
    "swarm_recovery_window_seconds", "swarm_drill_last_success_timestamp_seconds", "swarm_drill_rto_seconds",
    "swarm_repository_bytes", "swarm_replication_lag_seconds", "swarm_job_failures_total",
    "swarm_job_last_success_timestamp_seconds", "swarm_status_level", "swarm_repo_copy_lag_seconds",
    "swarm_drill_rpo_seconds", "swarm_key_available",
})
LEVELS = {"OK": 0, "UNKNOWN": 1, "WARNING": 2, "CRITICAL": 3}


class SwarmCollector(Collector):
    """Metric families from ``gather()`` (a ``StatusReport``), cached ``ttl`` seconds. A failed gather
    exports ``swarm_up 1`` and ``swarm_metrics_scrape_success 0`` only."""

    def __init__(self, gather: Callable[[], Any], *, ttl: float = 15.0) -> None:
        self._gather = gather
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self._ttl:
                self._cached = (now, self._families())
            yield from self._cached[1]

    def _families(self) -> list[Metric]:
        up = GaugeMetricFamily("swarm_up", "1 while the swarm exporter answers (a dead exporter is absent)")
        up.add_metric([], 1)
        ok = GaugeMetricFamily("swarm_metrics_scrape_success",
                               "1 if the last gather of the deployment's status succeeded; 0 and no other "
                               "swarm metric when it failed")
        took = GaugeMetricFamily("swarm_metrics_scrape_duration_seconds", "Seconds the last gather took")
        t0 = time.monotonic()
        try:
            rep = self._gather()
        except SwarmError as exc:
            ok.add_metric([], 0)
            took.add_metric([], time.monotonic() - t0)
            err = GaugeMetricFamily("swarm_metrics_scrape_error", "The error of the failed gather (its code)",
                                    labels=["error"])
            err.add_metric([exc.code], 1)
            return [up, ok, took, err]
        ok.add_metric([], 1)
        took.add_metric([], time.monotonic() - t0)
        return [up, ok, took, *families(rep)]


def families(rep: Any) -> list[Metric]:
    """The status report as metric families; a fact that does not exist is left out, never 0."""
    out: list[Metric] = []

    def gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=labels)
        out.append(g)
        return g

    level = gauge("swarm_status_level", "The status's level: 0 OK, 1 UNKNOWN, 2 WARNING, 3 CRITICAL "
                                        "(`swarm admin status`)")
    level.add_metric([], LEVELS[rep.level])
    key = next((c for c in rep.checks if c.name == "key"), None)
    if key is not None and key.facts.get("available") is not None:  # unreachable: not known, so absent
        gauge("swarm_key_available", "1 if the key provider lets the repository's key-encryption key be used, 0 "
                                      "if it refuses it (disabled, deleted, access denied): backups are "
                                      "unrecoverable while 0", ["key_id"]).add_metric(
            [str(key.facts["key_id"])], 1 if key.facts["available"] else 0)
    last = gauge("swarm_backup_last_success_timestamp_seconds",
                 "Unix time the newest good backup of the kind finished (a set's parts count for their kinds)",
                 ["kind"])
    age = gauge("swarm_backup_age_seconds", "Seconds since the newest good backup of the kind finished", ["kind"])
    dur = gauge("swarm_backup_duration_seconds", "Seconds the newest good backup of the kind took", ["kind"])
    size = gauge("swarm_backup_bytes", "Bytes the newest good backup of the kind holds (before compression)",
                 ["kind"])
    for kind, b in sorted(rep.backups.items()):
        last.add_metric([kind], parse_iso(b["finished_at"]).timestamp())
        if b.get("age_s") is not None:
            age.add_metric([kind], b["age_s"])
        if not b.get("via_set"):
            dur.add_metric([kind], b["duration_s"])
            size.add_metric([kind], b["bytes"])
    iv = gauge("swarm_schedule_expected_interval_seconds",
               "The longest gap between scheduled runs producing the kind ([schedule.<job>]); alert on "
               "age > 1.5 x this", ["kind"])
    for kind, seconds in sorted(rep.intervals.items()):
        iv.add_metric([kind], seconds)

    wal = rep.wal or {}
    server = wal.get("server") or {}
    arch = server.get("archiver") or {}
    last_ok = arch.get("last_archived_time")
    if not last_ok:
        times = [t.get("newest_archived_at") for t in wal.get("timelines") or [] if t.get("newest_archived_at")]
        last_ok = max(times) if times else None
    if last_ok:
        gauge("swarm_wal_archive_last_success_timestamp_seconds",
              "Unix time of the last successful WAL archive").add_metric([], parse_iso(str(last_ok)).timestamp())
    if arch:
        c = CounterMetricFamily("swarm_wal_archive_failures", "Failed archive_command runs (pg_stat_archiver)")
        c.add_metric([], float(arch.get("failed_count") or 0))
        out.append(c)
        gauge("swarm_wal_archive_failing", "1 if archiving failed and has not succeeded since").add_metric(
            [], 1 if arch.get("failing") else 0)
    if server.get("lag_bytes") is not None:
        gauge("swarm_wal_archive_lag_bytes", "Bytes of WAL the server wrote that are not archived yet").add_metric(
            [], server["lag_bytes"])
    if rep.rpo_s is not None:
        gauge("swarm_rpo_seconds", "Live RPO: seconds of committed data lost if the primary died now").add_metric(
            [], rep.rpo_s)
    if rep.window:
        gauge("swarm_recovery_window_seconds", "Seconds between the earliest and the latest restorable time"
              ).add_metric([], rep.window["seconds"])
    gauge("swarm_repository_bytes", "Bytes the repository's store holds").add_metric(
        [], rep.storage["stored_bytes"])
    if rep.replication and rep.replication.get("lag_s") is not None:
        gauge("swarm_replication_lag_seconds", "How far the DR bucket is behind (0 in sync)").add_metric(
            [], rep.replication["lag_s"])
    cl = gauge("swarm_repo_copy_lag_seconds", "Seconds the copy's newest WAL lags the primary's", ["copy"])
    for c in getattr(rep, "copies", []):
        if c.get("lag_seconds") is not None:
            cl.add_metric([c["name"]], c["lag_seconds"])
    fails = CounterMetricFamily("swarm_job_failures", "Failed or interrupted runs of the job (job history)",
                                labels=["job"])
    job_ok = gauge("swarm_job_last_success_timestamp_seconds", "Unix time the job last succeeded", ["job"])
    for name, j in sorted(rep.jobs.items()):
        fails.add_metric([name], float(j["failures"]))
        if j.get("last_success"):
            job_ok.add_metric([name], parse_iso(j["last_success"]).timestamp())
    out.append(fails)
    drill = getattr(rep, "last_drill", None)  # absent until a drill has finished
    if drill and drill.get("rto_s") is not None:
        gauge("swarm_drill_rto_seconds", "RTO the last DR drill measured").add_metric([], float(drill["rto_s"]))
    if drill and drill.get("rpo_s") is not None:
        gauge("swarm_drill_rpo_seconds", "RPO the last DR drill measured").add_metric([], float(drill["rpo_s"]))
    if drill and drill.get("verdict") == "pass" and drill.get("finished_at"):
        gauge("swarm_drill_last_success_timestamp_seconds", "Unix time the last passing DR drill ended").add_metric(
            [], parse_iso(str(drill["finished_at"])).timestamp())
    return [m for m in out if m.samples]


def registry_for(gather: Callable[[], Any], *, ttl: float = 15.0) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(SwarmCollector(gather, ttl=ttl))
    return reg
