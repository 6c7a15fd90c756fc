"""The Repository facade: init/open, write a backup, list and read backups, locks.

Write protocol of one backup (``begin_backup`` → ``put_object``* → ``commit``):

1. a fresh data key (DEK) is wrapped by the KEK and written to ``keys/<dek_id>.json``;
2. each object is streamed to ``data/<backup_id>/<name>`` (framed, compressed, sealed);
3. the manifest, listing every object with its SHA-256, is written to
   ``backups/<backup_id>.json`` with a conditional put, last.

A crash before step 3 leaves a DEK file and data objects but no manifest: the backup does
not exist for ``list``, ``verify`` or ``restore``; ``abort`` (called on any error) and
``prune`` remove the leftovers.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from swarm import __version__
from swarm.clock import Clock, SystemClock, utc_iso
from swarm.crypto import walbox
from swarm.crypto.aead import OpenFailed, new_key
from swarm.crypto.keys import KeyProvider, WalOnlyKey, wal_key_doc
from swarm.errors import (
    BackupNotFound,
    ClusterMismatch,
    ConfigError,
    FormatUnsupported,
    IntegrityError,
    KeyError_,
    KeyMismatch,
    KeyMissing,
    KeyUnavailable,
    NotFoundError,
    RestorePointExists,
    SwarmError,
    WalConflict,
)
from swarm.model.catalogue import CatalogueState, Finding, accept, advance, findings, partial_progress
from swarm.model.ids import check_backup_id, is_backup_id, new_backup_id
from swarm.model.manifest import Manifest, ObjectEntry
from swarm.model.refs import DataRef, Refs
from swarm.model.wal import DEFAULT_SEGMENT_SIZE, Segment, parse_segment
from swarm.repo.format import (
    BACKUPS_PREFIX,
    CLUSTER_KEY,
    CONFIG_KEY,
    DATA_PREFIX,
    DEDUP_KEY,
    DRILLS_PREFIX,
    FORMAT_VERSION,
    JOBS_PREFIX,
    KEYS_PREFIX,
    LATER_FEATURES,
    META_KEY,
    NEVER_DELETED,
    REPACKED_PACKS,
    REQUIRED_FEATURES,
    RESTORE_POINTS_PREFIX,
    SUPPORTED_FEATURES,
    TAGS_PREFIX,
    TOMBSTONES_PREFIX,
    UPGRADABLE_VERSIONS,
    VERIFICATIONS_PREFIX,
    WAL_KEYS_KEY,
    WAL_OBJECT_HEADER,
    WAL_PREFIX,
    data_key,
    dek_key,
    drill_key,
    job_run_key,
    manifest_key,
    restore_point_key,
    tags_key,
    tombstone_key,
    verification_key,
    wal_conflict_key,
    wal_key,
)
from swarm.repo.locks import (
    ExclusiveLock,
    Holder,
    RepoLock,
    SharedLock,
    WriterLock,
    hold_wal_lease,
    shared_holders,
    wal_lease_id,
)
from swarm.repo.metadata import MetadataUnreadable, metadata_key, open_metadata, seal_metadata
from swarm.repo.objects import WriteStats, decode_stream, encode_stream
from swarm.repo.packs import (
    Location,
    PackMap,
    PackUpload,
    compact,
    moved_name,
    open_located,
    open_run,
    pack_name,
    pack_number,
    run_block,
)
from swarm.repo.watch import CatalogueWatch
from swarm.storage.base import ObjectExists, ObjectInfo, ObjectNotFound, Store


@dataclass(frozen=True)
class RepoConfig:
    repo_id: str
    format_version: int
    created_at: str
    kek_id: str
    key_check: str
    features: tuple[str, ...]
    # Other key-encryption keys that still open this repository (kept by `keys rotate` until `keys
    # retire`): (kek_id, key_check) each. Only with the ``multi-kek`` feature.
    also: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> bytes:
        body: dict[str, Any] = {"format_version": self.format_version, "repo_id": self.repo_id,
                                "created_at": self.created_at, "kek_id": self.kek_id, "key_check": self.key_check,
                                "features": list(self.features)}
        if self.also:
            body["also_keys"] = [{"kek_id": k, "key_check": c} for k, c in self.also]
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RepoConfig:
        """Parse ``swarm-repo.json``; ValueError / KeyError / TypeError when it is malformed."""
        d: dict[str, Any] = json.loads(raw)
        return cls(d["repo_id"], int(d["format_version"]), d["created_at"], d["kek_id"], d["key_check"],
                   tuple(d.get("features", ())),
                   tuple((str(a["kek_id"]), str(a["key_check"])) for a in d.get("also_keys", ())))

    def key_ids(self) -> list[str]:
        """Every key-encryption key that opens the repository, the primary first."""
        return [self.kek_id, *(k for k, _ in self.also)]

    def key_check_for(self, kek_id: str) -> str:
        """The key check wrapped by ``kek_id`` (the primary's when it is none of them: it then fails)."""
        return next((c for k, c in self.also if k == kek_id), self.key_check) if kek_id != self.kek_id \
            else self.key_check


def unwrap_body(kek: KeyProvider, body: dict[str, Any], context: bytes) -> bytes:
    """Unwrap a wrapped key file's secret with ``kek``: ``wrapped`` when it is by ``kek`` (or the file
    has no other wrap), else the ``also`` entry made by ``kek``. KeyError_ as the provider raises it
    when none is; KeyError / ValueError when the body is malformed."""
    also = body.get("also") or []
    if also and body.get("kek_id") != kek.key_id:
        for entry in also:
            if entry.get("kek_id") == kek.key_id:
                return kek.unwrap(base64.b64decode(entry["wrapped"]), context)
    return kek.unwrap(base64.b64decode(body["wrapped"]), context)


# The unwrapped WAL data key per (repository, KEK, data key id), shared by every Repository of
# this process: push + push-ahead and fetch + prefetch call the key provider once, not per segment.
_WAL_DEKS: dict[tuple[str, str, str], bytes] = {}


@dataclass(frozen=True)
class WalKeys:
    """The repository's WAL keys as this process holds them: the public key and MAC key always,
    the private key only with the key-encryption key or a WAL read key (``swarm.crypto.walbox``)."""

    public: bytes
    mac_key: bytes
    private: bytes | None


_WAL_HEAD = len(WAL_OBJECT_HEADER) + 32 + walbox.BOX_SIZE  # header, MAC of the plaintext, data key box
# The unwrapped WAL keys per (repository, KEK), shared by every Repository of this process (push + push-ahead,
# fetch + prefetch): the key provider is called once, not per segment.
_WAL_KEYS_CACHE: dict[tuple[str, str], WalKeys] = {}


@dataclass(frozen=True)
class WalFile:
    """One object of the WAL archive, as ``Repository.wal_files`` lists it."""

    name: str
    modified: datetime | None
    conflict: bool


class HeldLock(Protocol):
    """A lock a writer holds (``WriterLock``, ``RepoLock``, ...): checked before each write and at commit."""

    def ensure_held(self, *, check_store: bool = False) -> None: ...


class _PackForwarding:
    """The repository's view of its store: an original pack that repack replaced
    (``data/<b>/packs/<n>.pack`` gone, its map ``packs/<n>.moved`` present) still answers ``stat``
    (with its original size) and ``get_range`` (translated through the map into the repacked pack),
    so every reader that locates blocks by ``Location`` (restore, verify, check, dedup) is unchanged.
    Everything else goes to the store as it is; listings show what is really stored."""

    def __init__(self, inner: Store, load: Any) -> None:
        self._inner = inner
        self._load = load  # (backup_id, n, fresh) -> PackMap | None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @staticmethod
    def _parse(key: str) -> tuple[str, int] | None:
        if not key.startswith(DATA_PREFIX):
            return None
        backup_id, _, name = key[len(DATA_PREFIX):].partition("/")
        n = pack_number(name)
        return None if n is None else (backup_id, n)

    def stat(self, key: str) -> ObjectInfo | None:
        info = self._inner.stat(key)
        parsed = None if info is not None else self._parse(key)
        if parsed is None:
            return info
        m = self._load(*parsed, fresh=False)
        to = None if m is None else self._inner.stat(data_key(parsed[0], m.to))
        return None if m is None or to is None else ObjectInfo(key, m.size, to.modified)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        try:
            return bytes(self._inner.get_range(key, offset, length))
        except ObjectNotFound:
            parsed = self._parse(key)
            if parsed is None:
                raise
        for fresh in (False, True):  # a later repack may have replaced the generation this client read
            m = self._load(*parsed, fresh=fresh)
            if m is None:
                break
            new = m.translate(offset, length, where=key)
            with contextlib.suppress(ObjectNotFound):
                return bytes(self._inner.get_range(data_key(parsed[0], m.to), new, length))
        raise ObjectNotFound(key)


class Repository:
    def __init__(self, store: Store, kek: KeyProvider, config: RepoConfig, clock: Clock | None = None, *,
                 key_checked: bool = True) -> None:
        self._store: Store = _PackForwarding(store, self.pack_map)  # type: ignore[assignment]
        self._pack_maps: dict[tuple[str, int], PackMap | None] = {}
        # offsets of the frames ``present_blocks`` handed to a writer, per (backup, pack n): what it may reference
        self._known_offsets: dict[tuple[str, int], set[int]] = {}
        self._key_checked = key_checked
        self.kek = kek
        self.config = config
        self.clock = clock or SystemClock()
        self._deks: dict[str, bytes] = {}
        self._dedup_key: bytes | None = None
        self._meta_key: bytes | None = None
        self._wal_keys: WalKeys | None = None
        self._cluster: dict[str, Any] | None = None
        # What this client remembers of the repository (rollback detection); None: not checked.
        self.watch: CatalogueWatch | None = None
        # Signs of rollback or deletion found by listings (``swarm.model.catalogue.findings``).
        self.rollback: list[Finding] = []

    # ---- lifecycle -------------------------------------------------------------------------
    @classmethod
    def init(cls, store: Store, kek: KeyProvider, clock: Clock | None = None) -> Repository:
        """Create a repository in an empty location. Refuses if one exists there."""
        clock = clock or SystemClock()
        repo_id = str(uuid.uuid4())
        check = kek.wrap(secrets.token_bytes(32), _check_ctx(repo_id))
        cfg = RepoConfig(repo_id, FORMAT_VERSION, utc_iso(clock.now()), kek.key_id,
                         base64.b64encode(check).decode(), tuple(sorted(SUPPORTED_FEATURES - LATER_FEATURES)))
        try:
            store.put(CONFIG_KEY, cfg.to_json(), if_absent=True)
        except ObjectExists as exc:
            raise ConfigError(f"a repository already exists at {store.url}",
                              hint="Open it as it is; init only creates new repositories.") from exc
        return cls(store, kek, cfg, clock)

    @classmethod
    def open(cls, store: Store, kek: KeyProvider, clock: Clock | None = None, *,
             create: bool = False, for_upgrade: bool = False, check_key: bool = True) -> Repository:
        """Open and check a repository: format version, features, and that ``kek`` is its key.

        A repository of an older format version (``UPGRADABLE_VERSIONS``) is refused
        (IntegrityError, exit 5, naming ``swarm admin repo upgrade``) before anything is
        read or written, unless ``for_upgrade`` (only ``swarm.repo.upgrade`` passes it).

        ``check_key=False`` (``wal push`` / ``wal fetch``, one process per segment) defers the key
        check: it then runs before the first write that wraps a key with ``kek`` and when an unwrap
        fails, so a wrong key is still reported as such before anything is written, and the common
        push calls the key provider once (to unwrap the WAL data key) instead of twice."""
        try:
            raw = store.get(CONFIG_KEY)
        except ObjectNotFound:
            if create:
                return cls.init(store, kek, clock)
            raise ConfigError(f"no swarm repository at {store.url}",
                              hint="Check SWARM_BACKUP_REPO. A new repository is created by the first "
                                   "backup.") from None
        try:
            cfg = RepoConfig.from_json(raw)
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{CONFIG_KEY} at {store.url} is damaged") from exc
        if cfg.format_version > FORMAT_VERSION or set(cfg.features) - SUPPORTED_FEATURES:
            raise FormatUnsupported(
                f"repository at {store.url} uses format {cfg.format_version} with features "
                f"{sorted(set(cfg.features) - SUPPORTED_FEATURES)} that this swarm ({__version__}) does not know",
                hint="Upgrade swarm before using this repository.")
        prerelease = cfg.format_version == FORMAT_VERSION and not REQUIRED_FEATURES <= set(cfg.features)
        if prerelease and not for_upgrade:
            raise FormatUnsupported(
                f"repository at {store.url} was written by a pre-release swarm: its manifests and restore points "
                "are not sealed (encrypted and authenticated)",
                hint="Run `swarm admin repo upgrade` once, where you trust the repository's storage (it seals what is "
                     "there now; safe to re-run if interrupted). Nothing was written.",
                details={"format_version": cfg.format_version, "missing_features": sorted(REQUIRED_FEATURES)})
        if cfg.format_version < FORMAT_VERSION and not for_upgrade:
            older = cfg.format_version in UPGRADABLE_VERSIONS
            raise FormatUnsupported(
                f"repository at {store.url} uses format version {cfg.format_version}; this swarm ({__version__}) "
                f"uses version {FORMAT_VERSION}",
                hint=("Run `swarm admin repo upgrade` once (it adds references to every manifest, then the "
                      "version; safe to re-run if interrupted). Nothing was written." if older else
                      "This version cannot be upgraded by this swarm."),
                details={"format_version": cfg.format_version, "supported": FORMAT_VERSION})
        repo = cls(store, kek, cfg, clock, key_checked=False)
        if check_key:
            repo._check_key()
        return repo

    def _check_key(self) -> None:
        """Prove ``kek`` is this repository's key (unwrap ``key_check``); KeyError_ naming both ids if not."""
        if isinstance(self.kek, WalOnlyKey):  # the server user's key: it never wraps or unwraps data keys
            raise self.kek._refuse()
        if self._key_checked:
            return
        cfg = self.config
        try:
            check = cfg.key_check_for(self.kek.key_id) if cfg.also else cfg.key_check
            self.kek.unwrap(base64.b64decode(check), _check_ctx(cfg.repo_id))
        except KeyUnavailable as exc:  # the provider refuses the key: say so, and what depends on it
            ids = sorted(self.manifest_ids())
            shown = ", ".join(ids[:20]) + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")
            raise type(exc)(
                f"{exc.message}. The repository at {self._store.url} (created with {cfg.kek_id}) cannot be "
                f"used: {len(ids)} backup(s) are unrecoverable while the key stays unavailable"
                + (f": {shown}" if ids else ""),
                hint=exc.hint, details={**exc.details, "key": cfg.kek_id, "unrecoverable_backups": ids}) from exc
        except KeyError_ as exc:
            raise KeyMismatch(
                f"wrong key for the repository at {self._store.url}: it was created with {cfg.kek_id}, "
                f"the configured key is {self.kek.key_id}",
                hint="Point SWARM_KEY_URL (or [repository] key in swarm.toml) at the key file this repository "
                     "was created with. Nothing was written.") from exc
        self._key_checked = True

    def _check_key_after(self, exc: BaseException) -> None:
        """After an unwrap failed: a key its provider refuses (revoked, unavailable) is checked again
        so the error names it and the backups that depend on it, even in a process that proved the key
        earlier; any other failure gets the usual (possibly deferred) check."""
        if isinstance(exc, KeyUnavailable):
            self._key_checked = False
            self._check_key()
            raise exc
        self._check_key()

    @property
    def url(self) -> str:
        return self._store.url

    # ---- keys ------------------------------------------------------------------------------
    def _new_dek(self) -> tuple[str, bytes]:
        self._check_key()
        dek_id = "dek-" + secrets.token_hex(8)
        dek = new_key()
        wrapped = self.kek.wrap(dek, _dek_ctx(self.config.repo_id, dek_id))
        body = {"dek_id": dek_id, "kek_id": self.kek.key_id, "created_at": utc_iso(self.clock.now()),
                "wrapped": base64.b64encode(wrapped).decode()}
        self._store.put(dek_key(dek_id), json.dumps(body).encode(), if_absent=True)
        self._deks[dek_id] = dek
        return dek_id, dek

    def dek(self, dek_id: str) -> bytes:
        if dek_id not in self._deks:
            try:
                body = json.loads(self._store.get(dek_key(dek_id)))
                base64.b64decode(body["wrapped"])
            except ObjectNotFound as exc:
                raise IntegrityError(f"data key {dek_id} is missing from the repository",
                                     hint="Every backup sealed with it is unreadable.") from exc
            except (ValueError, KeyError) as exc:
                raise IntegrityError(f"data key file for {dek_id} is damaged") from exc
            try:
                self._deks[dek_id] = unwrap_body(self.kek, body, _dek_ctx(self.config.repo_id, dek_id))
            except KeyError_ as exc:
                self._check_key_after(exc)  # a deferred check names a wrong or revoked key as such
                # The KEK was proven right when the repository was opened, so this file is damaged.
                raise IntegrityError(f"data key file {dek_key(dek_id)} is damaged: it does not unwrap with the "
                                     "repository's key", hint="Backups sealed with it cannot be read.") from exc
        return self._deks[dek_id]

    def _object_ctx(self, backup_id: str, name: str) -> bytes:
        return f"swarm-obj/1\0{self.config.repo_id}\0{backup_id}/{name}\0".encode()

    # ---- repository secrets and cluster identity --------------------------------------------
    def _wrapped_secret(self, key: str, purpose: str, damaged: str) -> bytes:
        """A 32-byte repository secret kept at ``key`` wrapped by the KEK (context ``purpose`` + repo id),
        created with a conditional put by the first process that needs it (a racing creator's wins).
        IntegrityError saying ``damaged`` if it does not unwrap (the KEK having been proven right)."""
        ctx = f"{purpose}\0{self.config.repo_id}".encode()
        try:
            raw = self._store.get(key)
        except ObjectNotFound:
            self._check_key()
            body = {"kek_id": self.kek.key_id, "created_at": utc_iso(self.clock.now()),
                    "wrapped": base64.b64encode(self.kek.wrap(secrets.token_bytes(32), ctx)).decode()}
            with contextlib.suppress(ObjectExists):  # another writer created it first: use theirs
                self._store.put(key, json.dumps(body).encode(), if_absent=True)
            raw = self._store.get(key)
        try:
            return unwrap_body(self.kek, json.loads(raw), ctx)
        except (ValueError, KeyError, KeyError_) as exc:
            self._check_key_after(exc)
            raise IntegrityError(f"{key} is damaged: {damaged}",
                                 hint=f"Restore {key} from a copy of the repository.") from exc

    def dedup_key(self) -> bytes:
        """The keyed-hash secret that names blocks (``keys/dedup.json``)."""
        if self._dedup_key is None:
            self._dedup_key = self._wrapped_secret(DEDUP_KEY, "swarm-dedup", "physical backups and state "
                                                                             "snapshots cannot be read")
        return self._dedup_key

    def _metadata_key(self) -> bytes:
        """The key sealing manifests, restore points and tombstones (``swarm.repo.metadata``), derived
        from the metadata secret ``keys/meta.json``.

        Deleting ``keys/meta.json`` cannot make forged metadata acceptable: a new random secret is
        created, and every existing manifest then fails to open (reported as damaged)."""
        if self._meta_key is None:
            self._meta_key = metadata_key(self._wrapped_secret(META_KEY, "swarm-meta", "no manifest or restore "
                                                                                      "point can be authenticated"))
        return self._meta_key

    def _put_sealed(self, key: str, plain: bytes, *, if_absent: bool = False) -> None:
        """Seal ``plain`` for ``key`` and store it (one atomic put)."""
        self._store.put(key, seal_metadata(self._metadata_key(), self.config.repo_id, key, plain),
                        if_absent=if_absent)

    def _get_sealed(self, key: str, what: str) -> bytes:
        """The plaintext of the sealed object at ``key``; ObjectNotFound if absent, IntegrityError naming
        ``what`` if it does not open."""
        raw = self._store.get(key)
        try:
            return open_metadata(self._metadata_key(), self.config.repo_id, key, raw)
        except MetadataUnreadable as exc:
            raise IntegrityError(f"{what} ({key}) cannot be trusted: {exc}",
                                 hint="Do not use it. If the repository's storage was written by someone else, "
                                      "treat it as compromised; otherwise restore the file from a copy.") from None

    def cluster_identity(self) -> dict[str, Any] | None:
        """``cluster.json``: the PostgreSQL cluster whose WAL and physical backups this repository holds."""
        if self._cluster is None:
            try:
                self._cluster = dict(json.loads(self._store.get(CLUSTER_KEY)))
            except ObjectNotFound:
                return None
            except ValueError as exc:
                raise IntegrityError(f"{CLUSTER_KEY} in {self.url} is damaged") from exc
        return self._cluster

    def bind_cluster(self, system_identifier: str, **facts: Any) -> dict[str, Any]:
        """Record the cluster on first use; refuse (RefusedError) a different one afterwards.

        Plain JSON, written by whoever archives first (the server user's ``wal push`` holds no key
        that could authenticate it). Records written before WAL was sealed to the WAL public key
        also name ``wal_dek_id``, the data key those WAL files are sealed with.
        """
        ident = self.cluster_identity()
        if ident is None:
            body = {"system_identifier": str(system_identifier), "created_at": utc_iso(self.clock.now()), **facts}
            with contextlib.suppress(ObjectExists):
                self._store.put(CLUSTER_KEY, json.dumps(body, indent=1).encode(), if_absent=True)
            self._cluster = None
            ident = self.cluster_identity()
            assert ident is not None
        if str(ident["system_identifier"]) != str(system_identifier):
            raise ClusterMismatch(
                f"the repository at {self.url} belongs to PostgreSQL cluster {ident['system_identifier']}, "
                f"not to cluster {system_identifier}",
                hint="Each cluster needs its own repository (or prefix): point SWARM_BACKUP_REPO elsewhere. "
                     "Nothing was written.", details={"repository_cluster": str(ident["system_identifier"]),
                                                       "this_cluster": str(system_identifier)})
        return ident

    # ---- WAL archive ------------------------------------------------------------------------
    def _wal_ctx(self, name: str) -> bytes:
        return f"swarm-wal/1\0{self.config.repo_id}\0{name}\0".encode()

    def wal_keys(self) -> WalKeys:
        """The WAL keys. With a WAL-only key (the server user) they come from that key file, which must
        name this repository. With the key-encryption key, from ``keys/wal.json`` (created on first use
        with a conditional put): the private and MAC keys unwrapped, and the public key proven to be the
        private key's, so a key pair swapped in by someone without the KEK is reported, never used."""
        if self._wal_keys is None:
            if isinstance(self.kek, WalOnlyKey):
                if self.kek.repo_id != self.config.repo_id:
                    raise KeyMismatch(f"{self.kek.description} belongs to repository {self.kek.repo_id}, not to "
                                      f"{self.url} ({self.config.repo_id})",
                                      hint="Let swarm rewrite the server user's files: run the restore (or "
                                           "`swarm dev up`) again.")
                self._wal_keys = WalKeys(self.kek.wal_public, self.kek.wal_mac_key, self.kek.wal_private)
            else:
                cache_key = (self.config.repo_id, self.kek.key_id)
                if cache_key not in _WAL_KEYS_CACHE:
                    _WAL_KEYS_CACHE[cache_key] = self._load_wal_keys()
                self._wal_keys = _WAL_KEYS_CACHE[cache_key]
        return self._wal_keys

    def _load_wal_keys(self) -> WalKeys:
        ctx = f"swarm-wal-keys\0{self.config.repo_id}".encode()
        try:
            raw = self._store.get(WAL_KEYS_KEY)
        except ObjectNotFound:
            self._check_key()
            private = walbox.new_private_key()
            secret = private + secrets.token_bytes(32)
            body = {"kek_id": self.kek.key_id, "created_at": utc_iso(self.clock.now()),
                    "public": base64.b64encode(walbox.public_of(private)).decode(),
                    "wrapped": base64.b64encode(self.kek.wrap(secret, ctx)).decode()}
            with contextlib.suppress(ObjectExists):  # another writer created it first: use theirs
                self._store.put(WAL_KEYS_KEY, json.dumps(body, indent=1).encode(), if_absent=True)
            raw = self._store.get(WAL_KEYS_KEY)
        try:
            body = json.loads(raw)
            secret = unwrap_body(self.kek, body, ctx)
            public = base64.b64decode(body["public"])
            if len(secret) != 64 or walbox.public_of(secret[:32]) != public:
                raise ValueError("its public key is not its private key's")
        except (ValueError, KeyError, TypeError, KeyError_) as exc:
            self._check_key_after(exc)
            raise IntegrityError(f"{WAL_KEYS_KEY} is damaged ({exc})",
                                 hint="The WAL archive cannot be written or read; restore the file from a copy "
                                      "of the repository.") from exc
        return WalKeys(public, secret[32:], secret[:32])

    def wal_key_file(self, *, read: bool) -> bytes:
        """The bytes of the key file the PostgreSQL server user gets (``swarm.crypto.keys.WalOnlyKey``):
        the WAL public and MAC keys, and with ``read`` the private key (for one restore only)."""
        keys = self.wal_keys()
        if read and keys.private is None:
            raise KeyMissing("this process holds no WAL private key to hand on")
        return wal_key_doc(self.config.repo_id, keys.public, keys.mac_key, keys.private if read else None)

    def _wal_box_ad(self, name: str, tag: bytes) -> bytes:
        return f"swarm-wal-box/1\0{self.config.repo_id}\0{name}\0".encode() + tag

    def _seal_wal(self, name: str, data: bytes) -> tuple[bytes, bytes]:
        """(stored bytes, MAC) of a WAL file: header, MAC of the plaintext, the data key sealed to the WAL
        public key, then the framed object under that data key (docs/design/repository-format.md)."""
        keys = self.wal_keys()
        tag = walbox.mac(keys.mac_key, data)
        dk = new_key()
        head = WAL_OBJECT_HEADER + tag + walbox.seal_to(keys.public, dk, self._wal_box_ad(name, tag))
        return head + b"".join(encode_stream([data], dk, self._wal_ctx(name), WriteStats())), tag

    def _wal_dek(self) -> tuple[str, bytes]:
        ident = self.cluster_identity()
        if ident is None:
            raise NotFoundError(f"no WAL has been archived to {self.url} yet (no {CLUSTER_KEY})",
                                hint="Configure archive_command = 'swarm admin wal push %p' or take a physical "
                                     "backup first.")
        dek_id = str(ident["wal_dek_id"])
        cache_key = (self.config.repo_id, self.kek.key_id, dek_id)
        dek = _WAL_DEKS.get(cache_key)
        if dek is None:
            dek = _WAL_DEKS[cache_key] = self.dek(dek_id)
        return dek_id, dek

    def put_wal(self, name: str, data: bytes, *, overwrite: bool = False) -> str:
        """Store a WAL file. Returns ``stored``, ``duplicate`` (same content already there).

        A different file under the same name is kept beside it (``wal/conflicts/``) and
        refused with RefusedError: the archive never silently replaces WAL.
        """
        blob, tag = self._seal_wal(name, data)
        key = wal_key(name)
        try:
            self._store.put(key, blob, if_absent=not overwrite)
            if name.endswith(".partial"):
                self._watch_catalogue(CatalogueState(partials={name: partial_progress(data)}), backups=False,
                                      restore_points=False)
            return "stored"
        except ObjectExists:
            pass
        head = self._store.get_range(key, 0, _WAL_HEAD)
        if head.startswith(WAL_OBJECT_HEADER):
            if hmac.compare_digest(head[len(WAL_OBJECT_HEADER):len(WAL_OBJECT_HEADER) + 32], tag):
                return "duplicate"  # same plaintext (the MAC key is the repository's: nobody else can match it)
        elif self.get_wal(name) == data:  # a file sealed before WAL keys existed
            return "duplicate"
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%S%fZ")
        self._store.put(wal_conflict_key(name, stamp), blob)
        raise WalConflict(f"WAL file {name} is already archived with different content",
                           hint=f"Both are kept for inspection ({key} and {wal_conflict_key(name, stamp)}). "
                                "Two clusters may be archiving into one repository, or a restored cluster was "
                                "not promoted to a new timeline.", details={"name": name})

    def get_wal(self, name: str) -> bytes:
        """The plaintext of an archived WAL file; NotFoundError if it is not archived,
        IntegrityError if it is damaged."""
        data = self.find_wal(name)
        if data is None:
            raise NotFoundError(f"WAL file {name} is not archived in {self.url}",
                                hint="`swarm admin wal status` shows what the archive holds.")
        return data

    def find_wal(self, name: str) -> bytes | None:
        """The plaintext of an archived WAL file, or None if it is not archived."""
        key = wal_key(name)
        try:
            raw = self._store.get(key)
        except ObjectNotFound:
            return None
        if raw.startswith(WAL_OBJECT_HEADER):
            data = self._open_wal(name, raw)
        else:  # sealed with the repository's WAL data key, before WAL keys existed
            _dek_id, dek = self._wal_dek()
            data = b"".join(decode_stream(iter([raw]), dek, self._wal_ctx(name), name=key))
        if name.endswith(".partial"):
            rolled = self._watch_catalogue(CatalogueState(partials={name: partial_progress(data)}), backups=False,
                                           restore_points=False)
            if rolled:
                raise IntegrityError(rolled[0].problem, hint="Recovering from it would silently stop short of WAL "
                                     "that was archived. Find who wrote the repository's storage; if this is "
                                     "understood, `swarm admin repo accept-rollback` accepts what is there now.",
                                     details={"finding": rolled[0].to_dict()})
        return data

    def _open_wal(self, name: str, raw: bytes) -> bytes:
        keys = self.wal_keys()
        if keys.private is None:
            assert isinstance(self.kek, WalOnlyKey)
            raise self.kek._refuse()
        key = wal_key(name)
        if len(raw) < _WAL_HEAD:
            raise IntegrityError(f"WAL file {key} is truncated")
        n = len(WAL_OBJECT_HEADER)
        tag, box = raw[n:n + 32], raw[n + 32:_WAL_HEAD]
        try:
            dk = walbox.open_box(keys.private, box, self._wal_box_ad(name, tag))
        except OpenFailed:
            raise IntegrityError(f"WAL file {key} is damaged: its data key does not open with the repository's WAL "
                                 "key (altered, moved from another name, or sealed for another repository)",
                                 hint="Recovery cannot use it. Check `swarm admin wal status`.") from None
        data = b"".join(decode_stream(iter([raw[_WAL_HEAD:]]), dk, self._wal_ctx(name), name=key))
        if not hmac.compare_digest(walbox.mac(keys.mac_key, data), tag):
            raise IntegrityError(f"WAL file {key} is damaged: its content does not match its MAC")
        return data

    def has_wal(self, name: str) -> bool:
        """Whether ``name`` is archived (one stat; the content is not read)."""
        return self._store.stat(wal_key(name)) is not None

    def wal_files(self) -> list[WalFile]:
        """Every object of the WAL archive with its store mtime: segments, partials, history and
        backup files (``conflict`` False) and the kept conflicting copies (``conflict`` True)."""
        out = []
        for info in self._store.list(WAL_PREFIX):
            rest = info.key[len(WAL_PREFIX):]
            out.append(WalFile(rest.rsplit("/", 1)[-1], info.modified, rest.startswith("conflicts/")))
        return out

    def hold_wal_lease(self, owner: str, remembered: datetime | None) -> datetime:
        """Keep this cluster's WAL lease (the shared lock of ``wal push``) live; see
        ``swarm.repo.locks.hold_wal_lease``. ``owner`` names the cluster's data directory (host and
        path); returns the refresh time the caller remembers for the next push."""
        return hold_wal_lease(self._store, wal_lease_id(self.config.repo_id, owner), owner, remembered,
                              clock=self.clock)

    # ---- restore points ---------------------------------------------------------------------
    def put_restore_point(self, point: dict[str, Any], *, replace: bool = False) -> None:
        """Record a restore point under its ``name``, sealed (``swarm.repo.metadata``) with a
        ``generation``: 1 for a new name, one more than the record it replaces, so a client that saw
        generation *n* notices an older record put back (``swarm.model.catalogue``).

        An existing name is refused (RefusedError) unless ``replace``; the refusal is a conditional
        create, so two recorders of one name cannot both win. One store put: a kill -9 leaves the
        record written or not."""
        name = str(point["name"])
        body = {k: v for k, v in point.items() if k not in ("checksum", "generation")}
        body = json.loads(json.dumps(body, default=str))
        old = None
        if replace:
            with contextlib.suppress(IntegrityError):  # a damaged record is replaced, not read
                old = self.get_restore_point(name)
        base = int(old.get("generation", 1)) if old else 0
        if self.watch is not None:  # never below what this client saw (a damaged record hides it)
            base = max(base, self.watch.load(self.config.repo_id).restore_points.get(name, 0))
        body["generation"] = base + 1
        raw = json.dumps(body, sort_keys=True, indent=1).encode()
        try:
            self._put_sealed(restore_point_key(name), raw, if_absent=not replace)
        except ObjectExists:
            old = self.get_restore_point(name)
            raise RestorePointExists(f"restore point {name!r} already exists"
                               + (f" (LSN {old.get('lsn')}, {old.get('time')})" if old else ""),
                               hint="Choose another name, or pass --replace to point the name at a new restore "
                                    "point (`swarm admin restore-points` lists them).",
                               details={"existing": old}) from None

    def get_restore_point(self, name: str) -> dict[str, Any] | None:
        """The record of restore point ``name``; None if there is none; IntegrityError if it is damaged,
        forged or moved from another name (it does not open, or names another point)."""
        key = restore_point_key(name)
        hint = "Recover to its time or LSN instead, or create it again with --replace."
        try:
            raw = self._get_sealed(key, f"the record of restore point {name!r}")
        except ObjectNotFound:
            return None
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise IntegrityError(f"the record of restore point {name!r} is damaged ({exc})", hint=hint) from exc
        if body.get("name") != name:
            raise IntegrityError(f"the record of restore point {name!r} names {body.get('name')!r}", hint=hint)
        return dict(body)

    def list_restore_points(self, damaged: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every readable restore point record (unordered). A damaged one is recorded in ``damaged``
        (name → problem) when given, else raises IntegrityError. Compared with what this client saw
        before (``rollback``), like ``list_backups``."""
        out = []
        names = set()
        for info in self._store.list(RESTORE_POINTS_PREFIX):
            name = info.key[len(RESTORE_POINTS_PREFIX):].removesuffix(".json")
            names.add(name)
            try:
                point = self.get_restore_point(name)
            except IntegrityError as exc:
                if damaged is None:
                    raise
                damaged[name] = exc.message
                continue
            if point is not None:
                out.append(point)
        gens = {str(p["name"]): int(p.get("generation", 1)) for p in out}
        # a damaged record is reported as damaged, not as deleted: it keeps the generation seen
        self._watch_catalogue(CatalogueState(restore_points=gens), backups=False,
                              keep={n for n in names if n not in gens})
        return out

    # ---- packs ------------------------------------------------------------------------------
    def read_block(self, loc: Location, bid: str) -> bytes:
        """One block's plaintext, read by byte range and proven to be ``bid``."""
        key = data_key(loc.backup_id, loc.pack_name())
        try:
            frame = self._store.get_range(key, loc.offset, loc.length)
        except ObjectNotFound:
            raise IntegrityError(f"pack {key} is missing from the repository") from None
        return open_located(frame, loc, dek=self.dek(loc.dek_id), repo_id=self.config.repo_id, bid=bid,
                            dedup_key=self.dedup_key(), where=key)

    def read_span(self, loc: Location, length: int) -> bytes:
        """``length`` stored bytes of ``loc``'s pack from ``loc.offset`` (several adjacent frames at once)."""
        key = data_key(loc.backup_id, loc.pack_name())
        try:
            data = self._store.get_range(key, loc.offset, length)
        except ObjectNotFound:
            raise IntegrityError(f"pack {key} is missing from the repository") from None
        if len(data) != length:
            raise IntegrityError(f"pack {key} is shorter than its index says (truncated)")
        return data

    def add_feature(self, feature: str) -> None:
        """Record ``feature`` in ``swarm-repo.json`` (read again from the store, so what another client
        wrote there is kept; one atomic overwrite) unless it is there already. A client that does not
        know the feature refuses the repository from then on (``Repository.open``)."""
        if feature not in SUPPORTED_FEATURES:
            raise ValueError(f"unknown feature {feature!r}")
        cfg = RepoConfig.from_json(self._store.get(CONFIG_KEY))
        if feature not in cfg.features:
            cfg = replace(cfg, features=(*cfg.features, feature))
            self._store.put(CONFIG_KEY, cfg.to_json())
        self.config = replace(self.config, features=cfg.features)

    def pack_map(self, backup_id: str, n: int, *, fresh: bool = False) -> PackMap | None:
        """The map of original pack ``n`` of ``backup_id`` after a repack, or None (never repacked);
        cached (``fresh`` reads it again). IntegrityError if it does not open."""
        if fresh or (backup_id, n) not in self._pack_maps:
            key = data_key(backup_id, moved_name(n))
            try:
                m: PackMap | None = PackMap.from_json(self._get_sealed(key, "pack map"), where=key)
            except ObjectNotFound:
                m = None
            self._pack_maps[(backup_id, n)] = m
        return self._pack_maps[(backup_id, n)]

    def repack(self, backup_id: str, n: int, live: dict[int, tuple[str, Location]], *,
               lock: HeldLock | None = None) -> tuple[int, int]:
        """Rewrite original pack ``n`` of ``backup_id`` with only its ``live`` frames (original byte
        offset → (block id, location)); (bytes written, bytes freed). Prune calls it under the
        exclusive lock for packs of removed backups that kept backups still read.

        Steps: (1) read the pack's current object whole (the original, or the generation its map
        names) and open every live frame (AEAD under its data key, keyed hash = id): a frame that
        does not open stops the repack (IntegrityError) with nothing written; (2) add the
        ``repacked-packs`` feature to ``swarm-repo.json`` if it is not there (an older client then
        refuses the repository instead of failing on reads of a replaced pack), then put the frames,
        byte for byte, as the next generation ``packs/<n>.r<g>.pack``; (3) put the map
        ``packs/<n>.moved`` naming it (one atomic overwrite); (4) delete the object read in (1).
        A kill -9 after the feature leaves it with no pack replaced (harmless; it stays);
        after (2), an extra generation no map names (prune deletes it); after (3),
        the old object beside the new one, both valid (reads of the original pack go to the original
        while it exists); prune deletes the one no map names. No ``Location`` changes, so no manifest
        or tree is rewritten.

        A run frame (several blocks in one frame) is live, and kept whole, byte for byte, when any
        of its blocks is: ``live`` names it once, by its offset, with any one of its live blocks
        (which is opened and proven, so the frame is). Its dead blocks stay inside it; re-encoding
        a partly live run to drop them is not done.
        """
        check_backup_id(backup_id)
        old = self.pack_map(backup_id, n, fresh=True)
        current = pack_name(n) if old is None else old.to
        where = data_key(backup_id, current)
        if lock is not None:
            lock.ensure_held()
        data = self._store.get(where) if old is not None else self._read_original(backup_id, n)
        spans = []
        for offset, (bid, loc) in sorted(live.items()):
            at = offset if old is None else old.translate(offset, loc.length, where=where)
            self.open_block(data[at:at + loc.length], loc, bid)
            spans.append((offset, at, loc.length))
        packed, moved = compact(data, [(at, ln) for _o, at, ln in spans], where=where)
        size = len(data) if old is None else old.size
        new = PackMap(n, 1 if old is None else old.generation + 1, size,
                      {o: (moved[at], ln) for o, at, ln in spans}, utc_iso(self.clock.now()))
        if lock is not None:
            lock.ensure_held()
        if REPACKED_PACKS not in self.config.features:
            self.add_feature(REPACKED_PACKS)
        self._store.put(data_key(backup_id, new.to), packed)
        self._put_sealed(data_key(backup_id, moved_name(n)), new.to_json())
        self._pack_maps[(backup_id, n)] = new
        self._delete_checked(where, lock)
        return len(packed), len(data) - len(packed)

    def _read_original(self, backup_id: str, n: int) -> bytes:
        key = data_key(backup_id, pack_name(n))
        try:
            return bytes(self._store.get(key))
        except ObjectNotFound:
            raise IntegrityError(f"pack {key} is missing from the repository") from None

    def open_block(self, frame: bytes, loc: Location, bid: str) -> bytes:
        """Block ``bid``'s plaintext from ``frame``, the stored frame ``loc`` names (a one-block frame or
        a run frame), proven to be ``bid``; IntegrityError naming the pack and the block otherwise."""
        return open_located(frame, loc, dek=self.dek(loc.dek_id), repo_id=self.config.repo_id, bid=bid,
                            dedup_key=self.dedup_key(), where=data_key(loc.backup_id, loc.pack_name()))

    def open_run(self, frame: bytes, loc: Location, bid: str) -> list[bytes]:
        """Every block of the run frame ``frame`` that ``loc`` (a location of block ``bid`` inside it)
        names: authenticated and decompressed, not yet proven (``prove_in_run``). A reader of several
        blocks of one run opens the frame once."""
        return open_run(frame, dek=self.dek(loc.dek_id), repo_id=self.config.repo_id, loc=loc, bid=bid,
                        where=data_key(loc.backup_id, loc.pack_name()))

    def prove_in_run(self, blocks: list[bytes], loc: Location, bid: str) -> bytes:
        """Block ``loc.sub`` of ``blocks`` (from ``open_run``), proven to be ``bid``."""
        return run_block(blocks, loc, bid, dedup_key=self.dedup_key(), where=data_key(loc.backup_id, loc.pack_name()))

    # ---- writing ---------------------------------------------------------------------------
    def begin_backup(self, kind: str, *, lock: HeldLock | None = None) -> BackupWriter:
        started = self.clock.now()
        backup_id = new_backup_id(kind, started)
        dek_id, dek = self._new_dek()
        return BackupWriter(self, backup_id, kind, utc_iso(started), dek_id, dek, lock)

    # ---- locks -------------------------------------------------------------------------------
    def lock(self, name: str, **kw: Any) -> WriterLock:
        """What a backup of one kind holds while it writes: the named lock ``name`` (one backup of a
        kind at a time) and the repository's shared lock (keeps prune out). ``kw`` go to both
        (``command``, ``stale_after``, ``refresh_every``)."""
        return WriterLock(SharedLock(self._store, clock=self.clock, **kw),
                          RepoLock(self._store, name, clock=self.clock, **kw))

    def shared_lock(self, **kw: Any) -> WriterLock:
        """The repository's shared lock alone, for writers without a per-kind lock (``wal stream``)."""
        return WriterLock(SharedLock(self._store, clock=self.clock, **kw))

    def exclusive_lock(self, *, wait: float = 0.0, **kw: Any) -> ExclusiveLock:
        """The repository's exclusive lock, for maintenance that deletes: waits up to ``wait`` seconds
        for the writers to finish, then fails (LockedError, exit 6) naming them."""
        return ExclusiveLock(self._store, clock=self.clock, wait=wait, **kw)

    def lock_holders(self) -> list[Holder]:
        """The live holders of the repository's shared lock (running writers and WAL leases)."""
        return shared_holders(self._store, self.clock, 120.0, break_stale=False)

    # ---- reading ---------------------------------------------------------------------------
    def list_backups(self, damaged: dict[str, str] | None = None) -> list[Manifest]:
        """Every committed backup, oldest first.

        A damaged manifest never hides the others: with ``damaged`` given, it is recorded
        there (backup id → problem) and skipped; without, it raises IntegrityError. A manifest
        with a tombstone (deleted by prune: replayed, or a prune interrupted between its steps) is
        not listed, nor one whose manifest is gone by the time it is read (a prune removed it after
        the listing; a writer lists before it takes its lock). With a ``watch``, what is listed is
        compared with what this client saw before; signs of rollback or deletion are added to
        ``rollback``."""
        tombs = self.tombstones()
        out = []
        present = set()
        for info in self._store.list(BACKUPS_PREFIX):
            name = info.key[len(BACKUPS_PREFIX):]
            if name.endswith(".json") and is_backup_id(name[:-5]):
                present.add(name[:-5])
                if name[:-5] in tombs:
                    continue
                try:
                    out.append(self.load_manifest(name[:-5], tombstones=tombs))
                except BackupNotFound:
                    continue  # removed since the listing (a prune between the two): no longer a backup
                except IntegrityError as exc:
                    if damaged is None:
                        raise
                    damaged[name[:-5]] = exc.message
        self._watch_catalogue(CatalogueState(backups=frozenset(present), tombstones=frozenset(tombs)),
                              restore_points=False)
        return sorted(out, key=lambda m: (m.started_at, m.id))

    def tombstones(self) -> dict[str, dict[str, Any]]:
        """The authenticated tombstones: backup id → record (``deleted_at``, ``kind``, ``reason``). A
        tombstone that does not open is not trusted as one and raises IntegrityError."""
        out: dict[str, dict[str, Any]] = {}
        for info in self._store.list(TOMBSTONES_PREFIX):
            backup_id = info.key[len(TOMBSTONES_PREFIX):].removesuffix(".json")
            if not is_backup_id(backup_id):
                continue
            try:
                body = json.loads(self._get_sealed(info.key, f"the tombstone of backup {backup_id}"))
            except ObjectNotFound:
                continue  # deleted while listing
            if not isinstance(body, dict) or body.get("id") != backup_id:
                raise IntegrityError(f"the tombstone {info.key} names another backup")
            out[backup_id] = body
        return out

    def delete_backup(self, backup_id: str, *, reason: str, lock: HeldLock | None = None) -> None:
        """Delete a backup's manifest, leaving an authenticated tombstone (prune calls this; the caller
        holds the repository's exclusive lock and deletes the data the backup alone needed afterwards).

        Steps: (1) write ``tombstones/<id>.json`` (sealed: id, kind, time, reason); (2) delete
        ``backups/<id>.json``. A kill -9 between them leaves a manifest with a tombstone: the backup
        is already gone for ``list``/``restore`` (reported as ``backup-replayed`` until a re-run of the
        deletion removes the manifest). The tombstone stays, so a manifest put back later is reported."""
        if lock:
            lock.ensure_held(check_store=True)
        m = self.load_manifest(backup_id)
        body = {"id": backup_id, "kind": m.kind, "deleted_at": utc_iso(self.clock.now()), "reason": reason,
                "dek_id": m.dek_id}
        self._put_sealed(tombstone_key(backup_id), json.dumps(body, sort_keys=True).encode())
        self._store.delete(manifest_key(backup_id))

    # ---- verifications and tags ------------------------------------------------------------------
    def put_verification(self, backup_id: str, record: dict[str, Any]) -> None:
        """Record the outcome of ``verify`` for ``backup_id`` (``verifications/<id>.json``, sealed like
        restore points): ``{"id", "ok", "verified_at", ...}``, replacing the previous one. Retention
        never counts a backup whose latest record says ``ok: false``. One atomic put."""
        check_backup_id(backup_id)
        body = {**json.loads(json.dumps(record, default=str)), "id": backup_id}
        self._put_sealed(verification_key(backup_id), json.dumps(body, sort_keys=True).encode())

    def verifications(self, damaged: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
        """The latest verify outcome per backup id. A record that does not open or names another
        backup is recorded in ``damaged`` (key → problem) when given, else raises IntegrityError;
        retention then treats that backup as never verified."""
        return self._sealed_records(VERIFICATIONS_PREFIX, "the verify record", damaged)

    def tags(self, damaged: dict[str, str] | None = None) -> dict[str, list[str]]:
        """Backup id → its tags (sorted). Damaged records as for ``verifications``."""
        return {k: sorted(str(t) for t in v.get("tags", [])) for k, v in
                self._sealed_records(TAGS_PREFIX, "the tags", damaged).items()}

    def set_tags(self, backup_id: str, tags: Iterable[str]) -> list[str]:
        """Replace the tags of an existing backup (``tags/<id>.json``, sealed; deleted when empty);
        BackupNotFound if the backup does not exist. One atomic put or delete. Returns the tags."""
        self.load_manifest(backup_id)
        new = sorted(set(tags))
        if new:
            body = {"id": backup_id, "tags": new, "updated_at": utc_iso(self.clock.now())}
            self._put_sealed(tags_key(backup_id), json.dumps(body, sort_keys=True).encode())
        else:
            self._store.delete(tags_key(backup_id))
        return new

    def _sealed_records(self, prefix: str, what: str, damaged: dict[str, str] | None) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for info in self._store.list(prefix):
            backup_id = info.key[len(prefix):].removesuffix(".json")
            if not is_backup_id(backup_id):
                continue
            try:
                body = json.loads(self._get_sealed(info.key, f"{what} of backup {backup_id}"))
                if not isinstance(body, dict) or body.get("id") != backup_id:
                    raise IntegrityError(f"{what} of backup {backup_id} ({info.key}) names another backup")
            except ObjectNotFound:
                continue
            except (IntegrityError, ValueError) as exc:
                if damaged is None:
                    raise
                damaged[info.key] = getattr(exc, "message", str(exc))
                continue
            out[backup_id] = body
        return out

    # ---- what prune lists and deletes ----------------------------------------------------------------
    def data_files(self) -> dict[str, dict[str, ObjectInfo]]:
        """Every data object, one listing: backup id → object name → (key, stored size, mtime)."""
        out: dict[str, dict[str, ObjectInfo]] = {}
        for info in self._store.list(DATA_PREFIX):
            backup_id, _, name = info.key[len(DATA_PREFIX):].partition("/")
            if name:
                out.setdefault(backup_id, {})[name] = info
        return out

    def dek_files(self) -> dict[str, ObjectInfo]:
        """Every wrapped data key file ``keys/<dek_id>.json`` (not the repository's own key files)."""
        out = {}
        for info in self._store.list(KEYS_PREFIX):
            name = info.key[len(KEYS_PREFIX):]
            if name.startswith("dek-") and name.endswith(".json") and info.key not in NEVER_DELETED:
                out[name[:-5]] = info
        return out

    def manifest_ids(self) -> set[str]:
        """The ids of every manifest object present (listed, not opened; tombstoned ones included)."""
        return {i.key[len(BACKUPS_PREFIX):-5] for i in self._store.list(BACKUPS_PREFIX)
                if i.key.endswith(".json") and is_backup_id(i.key[len(BACKUPS_PREFIX):-5])}

    def _delete_checked(self, key: str, lock: HeldLock | None) -> None:
        if key in NEVER_DELETED or key.startswith(("wal/history/", "wal/conflicts/")):
            raise ValueError(f"{key} is never deleted")
        if lock is not None:
            lock.ensure_held()
        self._store.delete(key)

    def delete_data(self, backup_id: str, name: str, *, lock: HeldLock | None = None) -> None:
        """Delete one data object (prune, under the exclusive lock). One store delete: idempotent."""
        check_backup_id(backup_id)
        if ".." in name.split("/") or name.startswith("/"):
            raise ValueError(f"unsafe object name {name!r}")
        self._delete_checked(data_key(backup_id, name), lock)

    def delete_dek(self, dek_id: str, *, lock: HeldLock | None = None) -> None:
        """Delete one wrapped data key file (prune, after every object sealed with it is gone)."""
        if not dek_id.startswith("dek-") or "/" in dek_id:
            raise ValueError(f"not a data key id: {dek_id!r}")
        self._delete_checked(dek_key(dek_id), lock)

    def delete_wal(self, name: str, *, lock: HeldLock | None = None) -> None:
        """Delete one WAL archive file (segment, ``.partial``, ``.backup``); history files and kept
        conflicts are refused (ValueError)."""
        if "/" in name or name.endswith(".history"):
            raise ValueError(f"{name} is never deleted")
        self._delete_checked(wal_key(name), lock)

    def delete_records(self, backup_id: str, *, lock: HeldLock | None = None) -> None:
        """Delete the verify record and tags of a deleted backup (after its tombstone exists)."""
        check_backup_id(backup_id)
        for key in (verification_key(backup_id), tags_key(backup_id)):
            self._delete_checked(key, lock)

    def sweep_temp(self, older_than: datetime) -> list[tuple[str, int]]:
        """Remove the ``.tmp-*`` files a killed writer left in a local store, modified before
        ``older_than`` (a live writer's are younger), and empty ``data/<backup>/`` directories;
        (path, size) of each file. Other stores: nothing."""
        import os
        from pathlib import Path

        root = getattr(self._store, "root", None)
        if root is None:
            return []
        out = []
        for dirpath, _dirs, files in os.walk(Path(root), topdown=False):
            here = Path(dirpath)
            if not files and Path(root) / "data" in here.parents:
                with contextlib.suppress(OSError):  # empty directories of deleted objects (a put makes them anew)
                    here.rmdir()
            for name in files:
                if not name.startswith(".tmp-"):
                    continue
                path = Path(dirpath) / name
                with contextlib.suppress(OSError):
                    st = path.stat()
                    if st.st_mtime < older_than.timestamp():
                        path.unlink()
                        out.append((str(path.relative_to(root)), st.st_size))
        return out

    def finish_deletion(self, backup_id: str, *, lock: HeldLock | None = None) -> bool:
        """Step 2 of ``delete_backup`` again, for a deletion a kill -9 interrupted: delete the manifest
        of a backup that has an authenticated tombstone. False (nothing done) without a tombstone."""
        check_backup_id(backup_id)
        if self._tombstone(backup_id) is None:
            return False
        self._delete_checked(manifest_key(backup_id), lock)
        return True

    def _watch_catalogue(self, now: CatalogueState, *, backups: bool = True, restore_points: bool = True,
                         keep: set[str] | None = None) -> list[Finding]:
        """Compare ``now`` with what this client remembers (when it has a ``watch``), add the findings to
        ``rollback`` and remember the advanced state. ``keep``: restore points present but unreadable
        (neither deleted nor rolled back: reported as damaged elsewhere). Returns this comparison's findings."""
        if self.watch is None:
            return []
        found: list[Finding] = []

        def change(seen: CatalogueState) -> CatalogueState:
            cur = now
            if keep:
                cur = CatalogueState(now.backups, now.tombstones,
                                     {**{k: seen.restore_points.get(k, 0) for k in keep}, **now.restore_points},
                                     now.partials)
            found.extend(findings(seen, cur, backups=backups, restore_points=restore_points))
            return advance(seen, cur, backups=backups, restore_points=restore_points)

        self.watch.update(self.config.repo_id, change)
        for f in found:
            if f not in self.rollback:
                self.rollback.append(f)
        return found

    def accept_catalogue(self) -> tuple[CatalogueState, CatalogueState]:
        """Make what the repository holds now the state this client remembers, after an operator has
        reviewed the rollback findings (``swarm admin repo accept-rollback``). Returns (before, after)."""
        if self.watch is None:
            raise ConfigError("this client keeps no memory of repositories (no SWARM_HOME)")
        present = frozenset(i.key[len(BACKUPS_PREFIX):-5] for i in self._store.list(BACKUPS_PREFIX)
                            if i.key.endswith(".json") and is_backup_id(i.key[len(BACKUPS_PREFIX):-5]))
        points = {str(p["name"]): int(p.get("generation", 1)) for p in self.list_restore_points(damaged={})}
        now = CatalogueState(present, frozenset(self.tombstones()), points)
        before = self.watch.load(self.config.repo_id)
        after = self.watch.update(self.config.repo_id, lambda seen: accept(now))
        self.rollback = []
        return before, after

    def load_manifest(self, backup_id: str, *, tombstones: dict[str, dict[str, Any]] | None = None) -> Manifest:
        """The authenticated manifest of ``backup_id``: BackupNotFound if there is none, IntegrityError
        if it does not open (altered, forged, moved from another id) or if the backup has a tombstone
        (deleted by prune: its manifest was put back, or the prune was interrupted)."""
        check_backup_id(backup_id)
        key = manifest_key(backup_id)
        try:
            raw = self._get_sealed(key, f"the manifest of backup {backup_id}")
        except ObjectNotFound:
            raise BackupNotFound(f"backup {backup_id} does not exist in {self.url}",
                                hint="List backups with `swarm admin backups list`.") from None
        tomb = (tombstones.get(backup_id) if tombstones is not None
                else self._tombstone(backup_id))
        if tomb is not None:
            raise IntegrityError(f"backup {backup_id} was deleted by prune ({tomb.get('deleted_at')}) but its manifest "
                                 "is present: a replayed manifest, or an interrupted prune",
                                 hint="Do not restore it. A re-run of prune removes the manifest; if no prune ran, "
                                      "someone put an old manifest back into the repository's storage.")
        m = Manifest.from_json(raw, where=key)
        if m.id != backup_id:
            raise IntegrityError(f"manifest {key} describes backup {m.id}")
        return m

    def _tombstone(self, backup_id: str) -> dict[str, Any] | None:
        try:
            body = json.loads(self._get_sealed(tombstone_key(backup_id), f"the tombstone of backup {backup_id}"))
        except ObjectNotFound:
            return None
        return dict(body) if isinstance(body, dict) else {}

    def object_key(self, backup_id: str, name: str) -> str:
        """Where object ``name`` of backup ``backup_id`` is stored (to name it in messages)."""
        return data_key(backup_id, name)

    def stored_objects(self, backup_id: str) -> dict[str, int]:
        """What the store holds under backup ``backup_id``'s data prefix: object name → stored size.
        An original pack that repack replaced counts as held (with its original size) while its map
        names a stored generation."""
        out = self._listing(backup_id)
        for name, m in self._forwarded(backup_id, out).items():
            out[name] = m.size
        return out

    def _listing(self, backup_id: str) -> dict[str, int]:
        prefix = data_key(backup_id, "")
        return {i.key[len(prefix):]: i.size for i in self._store.list(prefix)}

    def _forwarded(self, backup_id: str, listing: dict[str, int]) -> dict[str, PackMap]:
        """Original pack name → its map, for each original of ``backup_id`` that is gone while its map
        names a generation in ``listing`` (reads then go through the map)."""
        out = {}
        for name in [k for k in listing if k.startswith("packs/") and k.endswith(".moved")]:
            n = int(name[6:12])
            m = self.pack_map(backup_id, n, fresh=True)
            if m is not None and m.to in listing and pack_name(n) not in listing:
                out[pack_name(n)] = m
        return out

    def read_stored(self, backup_id: str, name: str) -> bytes | None:
        """The stored (sealed) bytes of object ``name`` of backup ``backup_id``, unchecked; None if absent."""
        try:
            return self._store.get(data_key(backup_id, name))
        except ObjectNotFound:
            return None

    def missing_objects(self, wanted: Iterable[tuple[str, str]]) -> list[str]:
        """The keys of the (backup id, object name) pairs the store does not hold, sorted; one
        listing per backup named."""
        by_backup: dict[str, set[str]] = {}
        for backup_id, name in wanted:
            by_backup.setdefault(backup_id, set()).add(name)
        missing = []
        for backup_id, names in by_backup.items():
            have = self.stored_objects(backup_id)
            missing += [data_key(backup_id, n) for n in names if n not in have]
        return sorted(missing)

    def present_blocks(self, blocks: dict[str, Location]) -> dict[str, Location]:
        """``blocks`` without those whose pack is gone, and without those a repack dropped from a pack
        (not in its map), so a new backup never dedups against a missing frame."""
        gone = set(self.missing_objects({(loc.backup_id, loc.pack_name()) for loc in blocks.values()}))
        moved: dict[tuple[str, str], PackMap] = {}
        for backup_id in {loc.backup_id for loc in blocks.values()}:
            for name, m in self._forwarded(backup_id, self._listing(backup_id)).items():
                moved[(backup_id, name)] = m

        def ok(loc: Location) -> bool:
            m = moved.get((loc.backup_id, loc.pack_name()))
            return data_key(loc.backup_id, loc.pack_name()) not in gone and (m is None or loc.offset in m.frames)
        out = {bid: loc for bid, loc in blocks.items() if ok(loc)}
        for loc in out.values():
            self._known_offsets.setdefault((loc.backup_id, loc.pack), set()).add(loc.offset)
        return out

    def missing_refs(self, manifest: Manifest) -> list[tuple[str, str]]:
        """Every reference of ``manifest`` that is not in the repository, as (where, problem):
        packs and data objects (``data/<backup>/<name>``), data keys (``keys/<dek>.json``) and
        each segment of its WAL ranges (the segment's name). A version-1 manifest (no refs)
        gives one problem saying so. Existence only: contents are checked by ``verify``'s
        other passes."""
        refs = manifest.refs
        if refs is None:
            return [("refs", "the manifest lists no references (format version 1)")]
        out: list[tuple[str, str]] = []
        for r in (*refs.packs, *refs.objects):
            key = data_key(r.backup_id, r.name)
            if self._store.stat(key) is None:
                out.append((key, f"referenced by this backup but missing from the repository"
                                 f"{'' if r.backup_id == manifest.id else f' (stored by backup {r.backup_id})'}"))
        for dek_id in refs.deks:
            if self._store.stat(dek_key(dek_id)) is None:
                out.append((dek_key(dek_id), "data key referenced by this backup is missing from the repository"))
        if refs.wal:
            size = int((self.cluster_identity() or {}).get("segment_size") or DEFAULT_SEGMENT_SIZE)
            for w in refs.wal:
                first, last = parse_segment(w.first, size), parse_segment(w.last, size)
                for segno in range(first.segno, last.segno + 1):
                    name = Segment(w.timeline, segno, size).name
                    if self._store.stat(wal_key(name)) is None:
                        out.append((name, "WAL segment referenced by this backup is missing from the repository"))
        return out

    def read_object(self, manifest: Manifest, name: str) -> Iterator[bytes]:
        """Plaintext of one object, verified frame by frame and against the manifest's SHA-256."""
        entry = manifest.object(name)
        dek = self.dek(manifest.dek_id)
        key = data_key(manifest.id, name)
        try:
            stored = self._store.iter_get(key)
        except ObjectNotFound:
            raise IntegrityError(f"object {name} of backup {manifest.id} is missing from the repository") from None
        return decode_stream(stored, dek, self._object_ctx(manifest.id, name), name=name,
                             expected_sha256=entry.sha256)

    def check_object(self, manifest: Manifest, entry: ObjectEntry) -> None:
        """Read one object end to end; raise IntegrityError naming it if anything is wrong."""
        size = 0
        for chunk in self.read_object(manifest, entry.name):
            size += len(chunk)
        if size != entry.size:
            raise IntegrityError(f"object {entry.name}: {size} bytes of plaintext, manifest says {entry.size}")

    # ---- job history (the scheduler's records; kept apart from backups, never pruned with them) ----
    def put_job_run(self, record: dict[str, Any]) -> str:
        """Record one run, or one skipped or missed slot, of a scheduled job (``swarm.model.schedule.Run``
        as a dict), sealed like restore points; returns its key. One record per (job, slot, attempt):
        writing the same one again replaces it (a scheduler that re-records after a crash converges).
        One store put: a kill -9 leaves the record written or not; the scheduler writes it only when
        the run has ended, so an unwritten record leaves the slot open, never silently consumed."""
        job = str(record["job"])
        if not job or not all(c.isalnum() or c in "-_" for c in job):
            raise ValueError(f"invalid job name {job!r}")
        slot = str(record["slot"])
        stamp = "".join(c for c in slot if c.isalnum())
        key = job_run_key(job, stamp, int(record.get("attempt") or 0))
        raw = json.dumps(json.loads(json.dumps(record, default=str)), sort_keys=True).encode()
        self._put_sealed(key, raw)
        return key

    def job_runs(self, job: str | None = None, damaged: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """The job history (of one ``job``, or all), oldest slot first; runs of the same slot (a job and
        the job chained after it, both within one second) in the order they started. A record that
        does not open is named in ``damaged`` (key → problem) and skipped when given, else raises
        IntegrityError."""
        out = []
        for info in self._store.list(JOBS_PREFIX + (f"{job}/" if job else "")):
            if not info.key.endswith(".json"):
                continue
            try:
                body = json.loads(self._get_sealed(info.key, "a job history record"))
                if not isinstance(body, dict) or "job" not in body or "slot" not in body:
                    raise IntegrityError(f"job history record {info.key} is malformed")
            except (IntegrityError, ValueError) as exc:
                if damaged is None:
                    raise
                damaged[info.key] = getattr(exc, "message", str(exc))
                continue
            except ObjectNotFound:
                continue
            out.append(body)
        return sorted(out, key=lambda r: (str(r["slot"]), str(r.get("started_at") or ""), int(r.get("attempt") or 0),
                                          str(r["job"])))

    def stored_bytes(self) -> int:
        """Every byte the repository's store holds (one listing of the whole store)."""
        return sum(info.size for info in self._store.list(""))

    def size_by_kind(self, kind_of: dict[str, str], dek_kind: dict[str, str]) -> dict[str, int]:
        """Every byte the store holds, by kind (one listing): ``data/<b>/...`` and ``backups/<b>.json``
        count for ``kind_of[b]`` (the backup's kind, from its manifest or its tombstone); a data key
        ``keys/<dek>.json`` for ``dek_kind[dek]``; ``wal/`` for ``wal``; everything else (the
        repository's own keys and config, tombstones, verify records, tags, restore points, job and
        drill records, and data of a backup with neither manifest nor tombstone) for
        ``unattributed``. Lock records (transient) are not counted."""
        out: dict[str, int] = {}
        for info in self._store.list(""):
            key, kind = info.key, "unattributed"
            if key.startswith("locks/"):
                continue
            if key.startswith(DATA_PREFIX):
                kind = kind_of.get(key[len(DATA_PREFIX):].partition("/")[0], kind)
            elif key.startswith(BACKUPS_PREFIX):
                kind = kind_of.get(key[len(BACKUPS_PREFIX):].removesuffix(".json"), kind)
            elif key.startswith(KEYS_PREFIX):
                kind = dek_kind.get(key[len(KEYS_PREFIX):].removesuffix(".json"), kind)
            elif key.startswith(WAL_PREFIX):
                kind = "wal"
            out[kind] = out.get(kind, 0) + info.size
        return out

    # ---- drills ------------------------------------------------------------------------------------
    def put_drill(self, drill_id: str, record: dict[str, Any]) -> None:
        """Record a DR drill (``drills/<id>.json``, sealed like restore points and verify records),
        replacing an earlier record of the same drill (a drill writes one when it starts, marked
        ``running``, and its result when it ends). One atomic put; the only thing a drill writes
        to the repository. ValueError for an id that is not a drill id."""
        from swarm.model.drill import is_drill_id

        if not is_drill_id(drill_id):
            raise ValueError(f"not a drill id: {drill_id!r}")
        body = {**json.loads(json.dumps(record, default=str)), "id": drill_id}
        self._put_sealed(drill_key(drill_id), json.dumps(body, sort_keys=True).encode())

    def get_drill(self, drill_id: str) -> dict[str, Any] | None:
        """One drill's record, None if there is none; IntegrityError if it does not open or names
        another drill."""
        try:
            body = json.loads(self._get_sealed(drill_key(drill_id), f"the record of drill {drill_id}"))
        except ObjectNotFound:
            return None
        if not isinstance(body, dict) or body.get("id") != drill_id:
            raise IntegrityError(f"the record of drill {drill_id} ({drill_key(drill_id)}) names another drill")
        return body

    def drills(self, damaged: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every drill's record, oldest first (drill ids sort by start time). A record that does not
        open or names another drill goes into ``damaged`` (key → problem) when given, else raises
        IntegrityError."""
        from swarm.model.drill import is_drill_id

        out: list[dict[str, Any]] = []
        for info in sorted(self._store.list(DRILLS_PREFIX), key=lambda i: i.key):
            drill_id = info.key[len(DRILLS_PREFIX):].removesuffix(".json")
            if not is_drill_id(drill_id):
                continue
            try:
                body = self.get_drill(drill_id)
            except (IntegrityError, ValueError) as exc:
                if damaged is None:
                    raise
                damaged[info.key] = getattr(exc, "message", str(exc))
                continue
            if body is not None:
                out.append(body)
        return out


class BackupWriter:
    """Collects the objects of one backup; ``commit`` makes it visible, ``abort`` removes it.

    ``put_object`` is thread safe, so several objects can stream at once.
    """

    def __init__(self, repo: Repository, backup_id: str, kind: str, started_at: str, dek_id: str, dek: bytes,
                 lock: HeldLock | None) -> None:
        self.repo = repo
        self.id = backup_id
        self.kind = kind
        self.started_at = started_at
        self.dek_id = dek_id
        self._dek = dek
        self._lock = lock
        self._entries: dict[str, ObjectEntry] = {}
        self._mutex = threading.Lock()
        self.committed = False

    def put_object(self, name: str, plain: Iterable[bytes]) -> ObjectEntry:
        if self._lock:
            self._lock.ensure_held()
        stats = WriteStats()
        ctx = self.repo._object_ctx(self.id, name)
        self.repo._store.put(data_key(self.id, name), encode_stream(plain, self._dek, ctx, stats))
        entry = ObjectEntry(name, stats.size, stats.stored_size, stats.sha256, stats.plain_sha256)
        with self._mutex:
            if name in self._entries:
                raise ValueError(f"object {name} written twice")
            self._entries[name] = entry
        return entry

    @property
    def dek(self) -> bytes:
        return self._dek

    def put_pack(self, pack: PackUpload) -> ObjectEntry:
        """Store a finished pack (already sealed block by block) as ``packs/<n>.pack`` of this backup."""
        if self._lock:
            self._lock.ensure_held()
        name = pack_name(pack.number)
        self.repo._store.put(data_key(self.id, name), pack.data, if_absent=True)
        entry = ObjectEntry(name, pack.plain_size, len(pack.data), hashlib.sha256(pack.data).hexdigest(), "")
        with self._mutex:
            if name in self._entries:
                raise ValueError(f"object {name} written twice")
            self._entries[name] = entry
        return entry

    @property
    def entries(self) -> list[ObjectEntry]:
        with self._mutex:
            return sorted(self._entries.values(), key=lambda e: e.name)

    def commit(self, source: dict[str, Any], refs: Refs | None = None) -> Manifest:
        """Write the manifest last; after this returns, the backup exists.

        The manifest's ``refs`` are ``refs`` (what the backup needs elsewhere: other backups'
        packs and objects, their data keys, WAL ranges) plus, always, this backup's own data
        key and packs.

        Before writing it, the commit checks that the lock is still held (read back from the
        store) and that every object this backup wrote, and every pack, data object and data key
        of another backup its refs name, still exists. If one is missing (a prune that broke an
        expired lock, a hand deletion), nothing is committed: IntegrityError naming it. The
        missing blocks are not written again here (their bytes are gone from this process); a
        new run leaves missing packs out of its dedup (``Repository.present_blocks``) and so
        writes them anew.
        """
        if self._lock:
            self._lock.ensure_held(check_store=True)
        entries = tuple(self.entries)
        own = Refs.of(packs=(DataRef(self.id, e.name) for e in entries if e.name.startswith("packs/")),
                      deks=[self.dek_id])
        merged = own if refs is None else own.merge(refs)
        stored = self.repo.stored_objects(self.id)
        gone = [data_key(self.id, e.name) for e in entries if e.name not in stored]
        gone += self.repo.missing_objects({(r.backup_id, r.name) for r in (*merged.packs, *merged.objects)
                                           if r.backup_id != self.id})
        gone += self._repacked_unseen(merged)
        gone += [dek_key(d) for d in sorted(merged.deks) if d != self.dek_id
                 and self.repo._store.stat(dek_key(d)) is None]
        if gone:
            more = f" (and {len(gone) - 3} more)" if len(gone) > 3 else ""
            raise IntegrityError(
                f"backup {self.id} was not committed: {', '.join(gone[:3])}{more}, which it needs, is missing "
                "from the repository", hint="Something deleted data while the backup ran (a prune that broke an "
                "expired lock, or a manual deletion). Run the backup again: it writes the missing blocks anew.",
                details={"missing": gone})
        manifest = Manifest(id=self.id, kind=self.kind, started_at=self.started_at,
                            finished_at=utc_iso(self.repo.clock.now()), dek_id=self.dek_id,
                            objects=entries, source=source, tool_version=__version__, refs=merged)
        self.repo._put_sealed(manifest_key(self.id), manifest.to_json(), if_absent=True)
        self.committed = True
        return manifest

    def _repacked_unseen(self, refs: Refs) -> list[str]:
        """Packs of other backups this backup names that a repack replaced, and that no longer hold
        every frame this client's ``present_blocks`` handed out from them (or that it never looked
        up): the writer may reference a dropped frame (it was frozen past its lock while a prune
        removed the backups that used it), so they count as missing. A pack whose map still holds
        every such frame (the parent stayed kept, so repack kept its frames) is fine."""
        out = []
        for backup_id in sorted({r.backup_id for r in refs.packs if r.backup_id != self.id}):
            names = {r.name for r in refs.packs if r.backup_id == backup_id}
            for name, m in self.repo._forwarded(backup_id, self.repo._listing(backup_id)).items():
                offsets = self.repo._known_offsets.get((backup_id, m.number))
                if name in names and (offsets is None or not offsets <= m.frames.keys()):
                    out.append(data_key(backup_id, name))
        return out

    def abort(self) -> None:
        """Best effort removal of what this backup wrote; never raises (prune sweeps the rest)."""
        if self.committed:
            return
        try:
            for info in list(self.repo._store.list(data_key(self.id, ""))):
                self.repo._store.delete(info.key)
            self.repo._store.delete(dek_key(self.dek_id))
        except SwarmError:
            pass


def _canonical_sha256(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _check_ctx(repo_id: str) -> bytes:
    return f"swarm-key-check\0{repo_id}".encode()


def _dek_ctx(repo_id: str, dek_id: str) -> bytes:
    return f"swarm-dek\0{repo_id}\0{dek_id}".encode()
