"""Open what a command needs from the settings: the repository (store + key)."""
from __future__ import annotations

from swarm.clock import Clock
from swarm.config import Settings
from swarm.crypto.keys import key_path_from_url, load_key_file
from swarm.repo import Repository
from swarm.storage.factory import S3Options, open_store


def repo_s3_options(settings: Settings) -> S3Options:
    return S3Options(endpoint=settings.repo_s3_endpoint, access_key=settings.repo_s3_access_key,
                     secret_key=settings.repo_s3_secret_key, region=settings.repo_s3_region)


def open_repository(settings: Settings, *, create: bool = False, clock: Clock | None = None,
                    check_key: bool = True) -> Repository:
    """Load the key first (a missing or wrong key fails before anything is written; with
    ``check_key=False`` the check waits for the first write or failed unwrap, see ``Repository.open``)."""
    url = settings.require("repo", "the backup repository (SWARM_BACKUP_REPO)")
    assert settings.key_url is not None
    kek = load_key_file(key_path_from_url(settings.key_url))
    store = open_store(url, repo_s3_options(settings), create=create)
    return Repository.open(store, kek, clock, create=create, check_key=check_key)
