"""``swarm admin repo upgrade``: bring the configured repository to the current format version.

The work (and what a kill -9 leaves) is in ``swarm.repo.upgrade``; this only wires the
settings to it.
"""
from __future__ import annotations

from swarm.clock import Clock
from swarm.config import Settings
from swarm.crypto.keys import key_path_from_url, load_key_file
from swarm.repo.upgrade import UpgradeResult, upgrade_repository
from swarm.services.context import repo_s3_options
from swarm.storage.factory import open_store


def upgrade(settings: Settings, *, clock: Clock | None = None) -> UpgradeResult:
    """Upgrade the repository of ``settings`` (the key is loaded and proven first)."""
    url = settings.require("repo", "the backup repository (SWARM_BACKUP_REPO)")
    assert settings.key_url is not None
    kek = load_key_file(key_path_from_url(settings.key_url))
    return upgrade_repository(open_store(url, repo_s3_options(settings), create=False), kek, clock)
