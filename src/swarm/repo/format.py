"""Repository layout and format constants (see docs/design/repository-format.md)."""
from __future__ import annotations

FORMAT_VERSION = 2  # 2: manifests carry refs; physical backups on the tree store (tree.json)
UPGRADABLE_VERSIONS: frozenset[int] = frozenset({1})  # `swarm admin repo upgrade` brings these to FORMAT_VERSION
CONFIG_KEY = "swarm-repo.json"
KEYS_PREFIX = "keys/"
DATA_PREFIX = "data/"
BACKUPS_PREFIX = "backups/"
LOCKS_PREFIX = "locks/"
SHARED_LOCKS_PREFIX = "locks/repository/shared-"
EXCLUSIVE_LOCK_KEY = "locks/repository/exclusive.json"
WAL_PREFIX = "wal/"
CLUSTER_KEY = "cluster.json"
DEDUP_KEY = "keys/dedup.json"
RESTORE_POINTS_PREFIX = "restore-points/"
META_KEY = "keys/meta.json"
WAL_KEYS_KEY = "keys/wal.json"  # the WAL key pair (public + wrapped private) and WAL MAC key
WAL_OBJECT_HEADER = b"SWWL\x01\x00\x00\x00"  # a WAL object sealed to the WAL public key (crypto.walbox)
TOMBSTONES_PREFIX = "tombstones/"
VERIFICATIONS_PREFIX = "verifications/"  # the latest `verify` outcome per backup (sealed)
TAGS_PREFIX = "tags/"  # a backup's tags (sealed); a tag protects a backup from prune
DRILLS_PREFIX = "drills/"  # one sealed record per DR drill (swarm admin drill)
# Never deleted by prune, whatever the listings say.
NEVER_DELETED: frozenset[str] = frozenset({"swarm-repo.json", "cluster.json", "keys/meta.json", "keys/dedup.json",
                                           "keys/wal.json"})
SEALED_METADATA = "sealed-metadata"  # manifests, restore points, tombstones sealed (swarm.repo.metadata)
# Set by the first `swarm admin keys rotate`: a wrapped key file may carry its key wrapped by more
# than one key-encryption key ("also": [{"kek_id", "wrapped"}]) and swarm-repo.json its key check for
# each ("also_keys"): a client that does not know this would misread the files, so it refuses.
MULTI_KEK = "multi-kek"
# Set by the first repack (prune --max-unused): an original pack may be gone, its live frames in
# ``packs/<n>.r<g>.pack`` behind the map ``packs/<n>.moved``; a client that does not read through
# maps would fail on reads of the backups that name it, so it refuses the repository instead.
REPACKED_PACKS = "repacked-packs"
# Set before the first run frame is written (a tree writer storing consecutive new blocks of a
# file as one frame, swarm.repo.packs; or a copy receiving packs of a repository that has it):
# a location may then name a block inside a run frame (a 7th element), which a client that
# opens one-block frames only would fail on mid-restore, so it refuses the repository instead.
RUN_FRAMES = "run-frames"
# Features a reader must understand to read this repository; an old client refuses the rest.
SUPPORTED_FEATURES: frozenset[str] = frozenset({"framed-zstd-aesgcm", SEALED_METADATA, MULTI_KEK, REPACKED_PACKS,
                                                RUN_FRAMES})
# Features a repository gains by what is done to it later, never at creation.
LATER_FEATURES: frozenset[str] = frozenset({MULTI_KEK, REPACKED_PACKS, RUN_FRAMES})
# Features a repository of FORMAT_VERSION must have: without them it is a pre-release layout that
# `swarm admin repo upgrade` converts (refused until then, never read as it is).
REQUIRED_FEATURES: frozenset[str] = frozenset({SEALED_METADATA})


def dek_key(dek_id: str) -> str:
    return f"{KEYS_PREFIX}{dek_id}.json"


def data_key(backup_id: str, name: str) -> str:
    return f"{DATA_PREFIX}{backup_id}/{name}"


def manifest_key(backup_id: str) -> str:
    return f"{BACKUPS_PREFIX}{backup_id}.json"


def lock_key(name: str) -> str:
    return f"{LOCKS_PREFIX}{name}.json"


def shared_lock_key(holder_id: str) -> str:
    return f"{SHARED_LOCKS_PREFIX}{holder_id}.json"


def wal_key(name: str) -> str:
    """Archive key of a WAL file: ``wal/<timeline>/<name>``; history files under ``wal/history/``.

    ``name`` must be a WAL archive name (checked by the caller with swarm.model.wal.classify).
    """
    if name.endswith(".history"):
        return f"{WAL_PREFIX}history/{name}"
    return f"{WAL_PREFIX}{name[:8]}/{name}"


def wal_conflict_key(name: str, stamp: str) -> str:
    return f"{WAL_PREFIX}conflicts/{name}.{stamp}"


def restore_point_key(name: str) -> str:
    return f"{RESTORE_POINTS_PREFIX}{name}.json"


def tombstone_key(backup_id: str) -> str:
    return f"{TOMBSTONES_PREFIX}{backup_id}.json"


def verification_key(backup_id: str) -> str:
    return f"{VERIFICATIONS_PREFIX}{backup_id}.json"


def tags_key(backup_id: str) -> str:
    return f"{TAGS_PREFIX}{backup_id}.json"


# ---- job history (the scheduler's runs; see docs/schedule.md) ----
JOBS_PREFIX = "jobs/"


def job_run_key(job: str, slot_stamp: str, attempt: int) -> str:
    """One record of the job history: ``jobs/<job>/<slot>-<attempt>.json``, sealed like restore points.
    ``slot_stamp`` is the slot's UTC time as ``YYYYMMDDTHHMMSSffffffZ`` (sorts by time)."""
    return f"{JOBS_PREFIX}{job}/{slot_stamp}-{attempt:03d}.json"

def drill_key(drill_id: str) -> str:
    return f"{DRILLS_PREFIX}{drill_id}.json"
