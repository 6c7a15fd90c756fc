"""The wiring: the one place that turns ``Settings`` into what services take (an opened
repository, bucket configurations, the server user's access, a restore-test environment).
Services themselves never read ``Settings``."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarm.clock import Clock
from swarm.config import Settings
from swarm.crypto.aead import new_key
from swarm.crypto.keys import KeyProvider, LocalKeyFile, create_key_file, key_path_from_url
from swarm.crypto.providers import is_key_file_url, load_provider
from swarm.errors import ConfigError, UnavailableError
from swarm.repo import CatalogueWatch, Repository
from swarm.storage.factory import S3Options, open_store

# What only some commands need is imported where it is used: the server's archive_command
# (``wal push``, once per WAL segment) opens a repository and nothing else, and every module
# imported here is paid for at each segment (psycopg and boto3 alone cost ~0.4 s of start-up).
if TYPE_CHECKING:
    from swarm.repo.copy import CopyTarget
    from swarm.repo.rotate import RetireResult, RotationResult
    from swarm.repo.upgrade import UpgradeResult
    from swarm.services.drill import DrillEnv
    from swarm.services.repository.verify import RestoreTestEnv
    from swarm.services.state.backup import StateScope
    from swarm.services.wal.server_access import ServerAccess
    from swarm.sources.objects import BucketConfig


def repo_s3_options(settings: Settings) -> S3Options:
    return S3Options(endpoint=settings.repo_s3_endpoint, access_key=settings.repo_s3_access_key,
                     secret_key=settings.repo_s3_secret_key, region=settings.repo_s3_region,
                     storage_class=tuple(sorted(settings.storage_class.items())))


def open_repository(settings: Settings, *, create: bool = False, clock: Clock | None = None,
                    check_key: bool = True, remember: bool = True) -> Repository:
    """Load the key first (a missing or wrong key fails before anything is written; with
    ``check_key=False`` the check waits for the first write or failed unwrap, see ``Repository.open``).

    With ``remember`` (all but the server's per-segment ``wal push``/``fetch``), the repository
    compares what it lists with what this client saw before, kept under ``$SWARM_HOME/security/``
    (``swarm.repo.watch``): rollbacks and deletions are reported in ``Repository.rollback``.

    A copy (``--repo NAME``, or SWARM_BACKUP_REPO pointed at a copy's URL: ``settings.copy``) is
    opened with its own key where it has one, never created (``swarm admin repo copy`` makes it), and
    remembered apart from the primary (keyed by repository id and copy name)."""
    url = settings.require("repo", "the backup repository (SWARM_BACKUP_REPO)")
    assert settings.key_url is not None
    kek = load_provider(settings.key_url)
    if settings.copy is not None:
        create = False
    try:
        store = open_store(url, repo_s3_options(settings), create=create)
    except UnavailableError as exc:
        if settings.copy is None:
            raise
        raise type(exc)(exc.message, hint=f"Is copy {settings.copy!r} made yet? `swarm admin repo copy --to "
                                          f"{settings.copy}` makes it. {exc.hint or ''}".strip(),
                        details=exc.details) from exc
    try:
        repo = Repository.open(store, kek, clock, create=create, check_key=check_key)
    except ConfigError as exc:
        if settings.copy is None or "no swarm repository" not in exc.message:
            raise
        raise ConfigError(f"copy {settings.copy!r} ({url}) holds no repository yet",
                          hint="Make it with `swarm admin repo copy --to " + settings.copy + "`.") from None
    if remember:
        repo.watch = CatalogueWatch(settings.home / "security", copy=settings.copy)
    return repo


def copy_targets(settings: Settings, name: str | None = None) -> list[CopyTarget]:
    """The copies ``swarm admin repo copy`` writes to: the one named ``name``, or every configured copy
    (ConfigError naming the configured ones if there is none, or no such copy). Each gets its store
    (its own S3 endpoint and credentials, else the primary's) and its key provider (its own key file,
    else the primary's). The source is the primary: refused when ``--repo`` chose a copy."""
    from swarm.repo.copy import CopyTarget

    if settings.copy is not None:
        raise ConfigError(f"`repo copy` copies the primary repository to its copies; --repo {settings.copy} "
                          "(or SWARM_BACKUP_REPO pointed at a copy) does not apply",
                          hint=f"Run `swarm admin repo copy --to {settings.copy}` without --repo.")
    if not settings.copies:
        raise ConfigError(f"no copy of the repository is configured in {settings.config_path}",
                          hint="Add a [[repository.copies]] table with name and url (docs/copies.md).")
    if name is not None and name not in settings.copies:
        raise ConfigError(f"--to {name}: no copy of that name is configured (copies: "
                          f"{', '.join(sorted(settings.copies))})", hint="Give the name of a configured copy.")
    out = []
    for place in settings.copies.values():
        if name is not None and place.name != name:
            continue
        key_url = place.key_url or settings.key_url
        assert key_url is not None
        opts = S3Options(endpoint=place.s3_endpoint or settings.repo_s3_endpoint,
                         access_key=place.s3_access_key or settings.repo_s3_access_key,
                         secret_key=place.s3_secret_key or settings.repo_s3_secret_key,
                         region=place.s3_region or settings.repo_s3_region)
        out.append(CopyTarget(place.name, open_store(place.url, opts, create=True),
                              load_provider(key_url)))
    return out


def upgrade(settings: Settings, *, clock: Clock | None = None) -> UpgradeResult:
    """Upgrade the configured repository to the current format (``swarm admin repo upgrade``); the key
    is loaded and proven first. The work, and what a kill -9 leaves, is ``swarm.repo.upgrade``."""
    from swarm.repo.upgrade import upgrade_repository

    url = settings.require("repo", "the backup repository (SWARM_BACKUP_REPO)")
    assert settings.key_url is not None
    kek = load_provider(settings.key_url)
    return upgrade_repository(open_store(url, repo_s3_options(settings), create=False), kek, clock)


@dataclass
class KeyRotation:
    """What ``rotate_keys`` did: the rotation itself, and the key URL to configure from now on
    (``created``: a new key file was made for it)."""

    result: RotationResult
    to_url: str
    created: bool


def rotate_keys(settings: Settings, to_url: str | None, *, dry_run: bool = False) -> KeyRotation:
    """``swarm admin keys rotate``: rewrap every secret of the configured repository from the
    configured key (SWARM_KEY_URL) to ``to_url``. Without ``to_url`` a file key gets a new key file
    beside it (``<name>-<UTC time>.key``, not written on a dry run); a KMS key needs ``--to`` (KMS
    rotates key material under the same key id by itself). The work, and what a kill -9 leaves, is
    ``swarm.repo.rotate``; the caller points SWARM_KEY_URL at ``to_url`` afterwards."""
    from swarm.repo.rotate import rotate

    url = settings.require("repo", "the backup repository (SWARM_BACKUP_REPO)")
    assert settings.key_url is not None
    old = load_provider(settings.key_url)
    created = False
    if to_url is None:
        if not is_key_file_url(settings.key_url):
            raise ConfigError("a KMS key needs --to URL to rotate to another key",
                              hint="KMS rotates a key's material itself under the same key id (aws kms "
                                   "enable-key-rotation): nothing to rewrap. To move to another key or region, "
                                   "give --to awskms:///<key>?region=R.")
        path = key_path_from_url(settings.key_url)
        target = path.with_name(f"{path.stem}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}{path.suffix}")
        to_url = f"file://{target}"
        new: KeyProvider = LocalKeyFile(target, new_key()) if dry_run else create_key_file(target)
        created = not dry_run
    else:
        new = load_provider(to_url)
    store = open_store(url, repo_s3_options(settings), create=False)
    return KeyRotation(rotate(store, old, new, dry_run=dry_run), to_url, created)


def retire_key(settings: Settings, key_id: str) -> RetireResult:
    """``swarm admin keys retire KEY_ID``: drop a rotated-away key from the configured repository
    (``swarm.repo.rotate.retire``); the configured key must open it."""
    from swarm.repo.rotate import retire

    url = settings.require("repo", "the backup repository (SWARM_BACKUP_REPO)")
    assert settings.key_url is not None
    kek = load_provider(settings.key_url)
    return retire(open_store(url, repo_s3_options(settings), create=False), kek, key_id)


def keys_status(settings: Settings) -> dict[str, Any]:
    """``swarm admin keys status``: the repository's keys and what each wraps (no provider call), plus
    the configured key URL."""
    from swarm.repo.rotate import status as key_status

    url = settings.require("repo", "the backup repository (SWARM_BACKUP_REPO)")
    out = key_status(open_store(url, repo_s3_options(settings), create=False))
    out["configured_key_url"] = settings.key_url
    return out


def server_access(settings: Settings) -> ServerAccess:
    """The server user's access for a restore or a physical restore test: its launcher and push config
    (written or refreshed) plus a WAL read grant of its own. The caller revokes the grant when its
    restore ends (``ServerAccess.revoke``); the restored server also removes it at the end of recovery
    (``recovery_end_command``)."""
    from swarm.services.wal.server_access import server_access_for

    url = settings.require("repo", "the backup repository (SWARM_BACKUP_REPO)")
    repo = open_repository(settings, remember=False)
    extra: dict[str, str] = {}
    for name, k in (("repo_s3_endpoint", "s3_endpoint"), ("repo_s3_access_key", "s3_access_key"),
                    ("repo_s3_secret_key", "s3_secret_key"), ("repo_s3_region", "s3_region")):
        if getattr(settings, name):
            extra[k] = str(getattr(settings, name))
    access = server_access_for(url, repo.wal_key_file(read=False), settings.home, extra=extra,
                               pg_bindir=settings.pg_bindir)
    return access.grant_read(repo.wal_key_file(read=True))


def primary_config(s: Settings, bucket: str | None = None) -> BucketConfig:
    """The artefact bucket (or ``bucket`` on the same endpoint and account)."""
    from swarm.sources.objects import BucketConfig

    name = bucket or s.require("objects_bucket", "the object storage bucket (SWARM_OBJECTS_BUCKET)")
    return BucketConfig(name, s.objects_endpoint, s.objects_access_key, s.objects_secret_key, s.objects_region)


def dr_config(s: Settings, bucket: str | None = None) -> BucketConfig:
    """The DR bucket: its own endpoint and account if configured, else the primary's."""
    from swarm.sources.objects import BucketConfig

    name = bucket or s.require("dr_objects_bucket", "the DR bucket (SWARM_DR_OBJECTS_BUCKET)")
    if not s.dr_objects_endpoint and not s.dr_objects_access_key:
        # same account as the primary unless told otherwise
        return BucketConfig(name, s.objects_endpoint, s.objects_access_key, s.objects_secret_key,
                            s.objects_region)
    return BucketConfig(name, s.dr_objects_endpoint, s.dr_objects_access_key, s.dr_objects_secret_key,
                        s.dr_objects_region)


def restore_test_env(settings: Settings) -> RestoreTestEnv:
    """What ``verify --restore-test`` needs of the deployment: the server user's access (physical)
    and the bucket configuration (objects), resolved only when a test needs them."""
    from swarm.services.repository.verify import RestoreTestEnv

    return RestoreTestEnv(server_access=lambda: server_access(settings),
                          bucket_config=lambda name: primary_config(settings, name),
                          bindir=settings.pg_bindir)


def state_scope(settings: Settings) -> StateScope:
    """The state directory to snapshot (``SWARM_STATE_DIR``, default ``SWARM_HOME``) and what of it is
    swarm's own: its files when it is ``SWARM_HOME`` itself, and a local repository or key file that
    lies under it (always left out: a snapshot must not hold the repository or its key)."""
    import os
    from pathlib import Path
    from urllib.parse import unquote, urlparse

    from swarm.crypto.keys import key_path_from_url
    from swarm.model.state import tool_paths_for
    from swarm.services.state.backup import StateScope

    state_dir = Path(settings.state_dir or settings.home).expanduser()
    real = Path(os.path.realpath(state_dir))
    inner: list[str] = []
    places: list[Path] = []
    if settings.repo and urlparse(settings.repo).scheme in ("file", ""):
        places.append(Path(unquote(urlparse(settings.repo).path) or settings.repo))
    if settings.key_url:
        try:
            places.append(key_path_from_url(settings.key_url))
        except ConfigError:  # a key URL of another scheme lies nowhere under the directory
            pass
    for p in places:
        rp = Path(os.path.realpath(p.expanduser()))
        if rp != real and real in rp.parents:
            inner.append(rp.relative_to(real).as_posix())
    is_home = real == Path(os.path.realpath(settings.home))
    return StateScope(state_dir, tool_paths_for(is_home), tuple(sorted(set(inner))))


def stack_stores(settings: Settings) -> tuple[str, BucketConfig, Path]:
    """The three stores of the configured deployment (flags already folded into ``settings``):
    the database URL (``SWARM_DB_URL``), the artefact bucket (``SWARM_OBJECTS_BUCKET`` on the
    configured endpoint and account) and the state directory (``SWARM_STATE_DIR``, default
    ``SWARM_HOME``). What ``swarm admin check stack`` checks by default."""
    db_url = settings.require("db_url", "the swarm database (SWARM_DB_URL, or --db-url)")
    bucket = primary_config(settings)
    return db_url, bucket, Path(settings.state_dir or settings.home).expanduser()


def check_configuration(settings: Settings, *, wal_timeout: float = 60.0, drift_fails: bool = True) -> Any:
    """``swarm admin check config`` for the configured deployment (``swarm.services.status.config_check``):
    the repository with its key, archiving into it, the artefact bucket's policy (the built-in one) and
    the DR bucket, each step only where its settings exist. Run by ``swarm dev up`` at its end."""
    from swarm.services.status.config_check import check_config

    policy: Callable[[], Any] | None = None
    dr: Callable[[], None] | None = None
    if settings.objects_bucket:
        def policy() -> Any:
            from swarm.model.bucket_policy import default_policy
            from swarm.services.objects.common import open_bucket
            from swarm.services.objects.policy import check_policy

            return check_policy(open_bucket(primary_config(settings)), default_policy(),
                                dr_bucket=settings.dr_objects_bucket)
    if settings.dr_objects_bucket:
        def dr() -> None:
            from swarm.services.objects.common import open_bucket

            open_bucket(dr_config(settings)).check_access(write=True)
    return check_config(lambda: open_repository(settings), db_url=settings.db_url, bucket_policy=policy,
                        dr_access=dr, wal_timeout=wal_timeout, drift_fails=drift_fails)

def drill_env(settings: Settings, api_command: list[str]) -> DrillEnv:
    """What a drill needs of the deployment (``swarm.services.drill``): production's three stores
    (to refuse them as targets, and for the live figures), the DR bucket when configured, how to
    reach a scratch bucket on the objects endpoint, and how to run ``swarm api serve``."""
    from swarm.services.drill import DrillEnv

    prod_bucket = primary_config(settings) if settings.objects_bucket else None
    dr = (lambda: dr_config(settings)) if settings.dr_objects_bucket else None
    state = Path(settings.state_dir or settings.home).expanduser()
    return DrillEnv(home=settings.home, production_db=settings.db_url, production_bucket=prod_bucket, dr_bucket=dr,
                    production_state=state, bucket_config=lambda name: primary_config(settings, name),
                    api_command=api_command, bindir=settings.pg_bindir, work_dir=settings.work_dir,
                    server_access=lambda: server_access(settings))
