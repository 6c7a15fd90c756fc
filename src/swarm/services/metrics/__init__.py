"""Prometheus metrics (docs/metrics.md): ``swarm admin metrics serve`` and ``metrics write``.

``SwarmCollector`` gathers the deployment's status (``swarm.services.status``) when scraped
(cached for ``ttl`` seconds, status lists the repository) and turns it into metric families.

**Absent, never zero.** A fact that does not exist yet (no backup of a kind, no archived WAL,
no server to ask, no drill) is not exported at all: a ``time() - 0`` alert would read 56 years,
and ``absent()`` is the honest test for "never happened". ``swarm_up`` is always 1 while the
exporter answers; ``swarm_metrics_scrape_success`` is 0 when gathering failed, and then no
other swarm metric is exported. ``swarm_schedule_expected_interval_seconds{kind}`` lets alert
rules follow the schedule instead of a constant.
"""
from swarm.services.metrics.collector import METRIC_NAMES, SwarmCollector, registry_for

__all__ = ["METRIC_NAMES", "SwarmCollector", "registry_for"]
