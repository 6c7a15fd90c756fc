"""``swarm admin status``: is anything at risk right now? (docs/status.md)

``deployment_status`` gathers the facts (the repository's backups and WAL archive, the server's
archiver, the job history, the DR bucket, the lock holders) and judges each against the schedule
with the pure rules of ``swarm.model.schedule`` (``age_level``, ``worst``). It reads only; it
returns a ``StatusReport`` and never prints.
"""
from swarm.services.status.gather import Check, StatusReport, deployment_status

__all__ = ["Check", "StatusReport", "deployment_status"]
