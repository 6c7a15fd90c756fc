"""``wal status`` as one use case: the archive's state, checked from the oldest physical backup's
first segment, with the configured server's lag and archiver health."""
from __future__ import annotations

from swarm.repo import Repository
from swarm.services.postgres.physical_backup import physical_backups
from swarm.services.wal.archive import WalStatus, wal_status


def archive_status(repo: Repository, db_url: str | None) -> WalStatus:
    """Gaps are searched from each timeline's oldest backup start (not only between archived
    segments); damaged manifests become warnings."""
    since: dict[int, str] = {}
    warnings: list[str] = []
    for m in physical_backups(repo, warnings=warnings):
        since.setdefault(m.physical.timeline, m.physical.start_wal)
    return wal_status(repo, db_url=db_url, since=since, warnings=warnings)
