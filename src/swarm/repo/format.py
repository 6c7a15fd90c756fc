"""Repository layout and format constants (see docs/design/repository-format.md)."""
from __future__ import annotations

FORMAT_VERSION = 1
CONFIG_KEY = "swarm-repo.json"
KEYS_PREFIX = "keys/"
DATA_PREFIX = "data/"
BACKUPS_PREFIX = "backups/"
LOCKS_PREFIX = "locks/"
# Features a reader must understand to read this repository; an old client refuses the rest.
SUPPORTED_FEATURES: frozenset[str] = frozenset({"framed-zstd-aesgcm"})


def dek_key(dek_id: str) -> str:
    return f"{KEYS_PREFIX}{dek_id}.json"


def data_key(backup_id: str, name: str) -> str:
    return f"{DATA_PREFIX}{backup_id}/{name}"


def manifest_key(backup_id: str) -> str:
    return f"{BACKUPS_PREFIX}{backup_id}.json"


def lock_key(name: str) -> str:
    return f"{LOCKS_PREFIX}{name}.json"
