"""Off-site copies: the same repository in another place (``swarm admin repo copy``).

A copy keeps the repository id, the metadata, dedup and WAL secrets and every object's bytes
(AES-GCM binds each object, frame and sealed record to the repository id and its key, so the
bytes stay valid). Only the *wrapped* key files are rewrapped when the copy has a key provider
of its own: ``keys/<dek>.json``, ``keys/meta.json``, ``keys/dedup.json``, ``keys/wal.json`` and
``key_check`` in ``swarm-repo.json`` (``rewrap``: unwrap with the source's provider, wrap with
the copy's; any ``KeyProvider`` plugs in, a key file today, KMS later). Locks are never copied.

``plan_copy`` lists both stores (one listing per prefix) and decides, writing nothing; what the
copy already holds is left alone (incremental; contents are ``verify --repo NAME``'s business).
``execute_copy`` writes, in this order, each step complete before the next:

1. ``swarm-repo.json`` (conditional create; the same repository id, ``key_check`` rewrapped), then
   the copy's shared lock beside the source's (prune of either waits);
2. the repository's key files (``meta``, ``dedup``, ``wal``) and ``cluster.json``;
3. for every backup the copy lacks: its data keys, then its data objects (own objects, packs and
   objects of other backups its refs name); a pack its refs name that repack replaced on the source
   (``packs/<n>.pack`` gone, ``packs/<n>.moved`` listed) is copied as the generation the map names
   (``Repository.pack_map(b, n).to``), then the map, unless the copy holds the original; the
   copy's ``swarm-repo.json`` gains the ``repacked-packs`` feature before its first map, and the
   ``run-frames`` feature (when the source has it) before its first data object;
4. WAL: history files, then segments and ``.backup`` files in name order, then ``.partial`` files;
5. manifests, oldest first (backup sets after their parts), each only when everything it needs
   is on the copy;
6. restore points and tags (when absent or different), verify records (when absent), tombstones
   (when absent and the copy has no manifest of that backup).

Data objects and WAL files are written ``COPY_WORKERS`` (8) at a time within their step; a step
ends before the next one begins.

What is checked on the copy, without moving any object's bytes a third time:

* data objects and WAL files are read once from the source and hashed (SHA-256) on the way; a
  data object's hash must equal the one its manifest records *before* the put completes (a
  damaged source object is never copied: its backup is skipped and named). On a copy whose store
  has ``VERIFIED_PUTS`` (S3: every PutObject / UploadPart carries the SHA-256 of exactly the bytes
  it sends, computed from the same buffers that were hashed, and the server refuses the request,
  storing nothing, if the bytes it received differ) the copy is trusted as written and its size is
  compared with the bytes read; nothing is downloaded again. On any other store (``file://``:
  written to a temporary file, fsynced, renamed) the stored object's size is compared (one
  ``stat``). A full re-read of the copy is ``verify --repo NAME``'s job;
* manifests and records are small: on a verified store they are opened with the copy's own
  metadata key from the bytes sent; elsewhere they are read back, compared and opened;
* rewrapped key files are read back and unwrapped with the copy's key and compared.

A kill -9 leaves, after 1: a repository with no backups (``backups list --repo NAME`` is empty);
after 2-4: data the copy lists no manifest for (invisible; a generation without its map, or a map
with its generation, never a map without its generation; ``prune`` on the copy sweeps it once
older than the safety age, a re-run uses it), and during 4 perhaps a WAL segment without an
earlier one (the lag counts from the oldest segment the copy lacks); during 5: some backups
listed, each complete; during 6: some records missing. A re-run plans again from what is there and converges to what an
uninterrupted run writes (``tests/copies/test_copy_crash.py`` kills it before every put).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from swarm.clock import Clock
from swarm.crypto.keys import KeyProvider
from swarm.errors import CopyMismatch, IntegrityError, KeyError_
from swarm.model.ids import is_backup_id
from swarm.model.manifest import Manifest
from swarm.model.sources import Kind
from swarm.model.wal import DEFAULT_SEGMENT_SIZE, Segment, is_segment_name, parse_segment
from swarm.repo.format import (
    BACKUPS_PREFIX,
    CLUSTER_KEY,
    CONFIG_KEY,
    DATA_PREFIX,
    DEDUP_KEY,
    KEYS_PREFIX,
    META_KEY,
    REPACKED_PACKS,
    RESTORE_POINTS_PREFIX,
    RUN_FRAMES,
    TAGS_PREFIX,
    TOMBSTONES_PREFIX,
    VERIFICATIONS_PREFIX,
    WAL_KEYS_KEY,
    WAL_PREFIX,
    data_key,
    dek_key,
    manifest_key,
    tombstone_key,
    wal_key,
)
from swarm.repo.metadata import MetadataUnreadable, metadata_key, open_metadata
from swarm.repo.packs import moved_name, pack_number
from swarm.repo.repository import RepoConfig, Repository, _check_ctx, _dek_ctx, unwrap_body
from swarm.storage.base import ObjectExists, ObjectInfo, ObjectNotFound, Store

# the repository's own wrapped secrets and the context each is wrapped with (+ repo id)
SECRET_FILES: dict[str, str] = {META_KEY: "swarm-meta", DEDUP_KEY: "swarm-dedup", WAL_KEYS_KEY: "swarm-wal-keys"}
_CHUNK = 1 << 20


def rewrap(raw: bytes, context: bytes, source: KeyProvider, target: KeyProvider) -> tuple[bytes, bytes]:
    """(the key file for ``target``, the plaintext it wraps): a wrapped key file (``{"kek_id",
    "wrapped", ...}``) unwrapped with ``source`` and wrapped again with ``target``; every other field
    kept. The same provider (same key id) gives ``raw`` itself, byte for byte."""
    body = json.loads(raw)
    secret = unwrap_body(source, body, context)  # the source's own wrap, also in a rotated file (``also``)
    if source.key_id == target.key_id and not body.get("also"):
        return raw, secret
    body.pop("also", None)  # a copy carries only its own key's wrap
    body["kek_id"] = target.key_id
    body["wrapped"] = base64.b64encode(target.wrap(secret, context)).decode()
    return json.dumps(body, indent=1).encode(), secret


@dataclass(frozen=True)
class Item:
    """One object to copy: ``what`` is config, secret, cluster, dek, data, wal, manifest, record."""

    what: str
    key: str
    size: int
    sha256: str = ""  # of the stored bytes, from a manifest, checked before the copy is stored
    backup: str = ""  # the backup it is copied for (data, dek, manifest)
    context: bytes = b""  # for wrapped key files


@dataclass
class CopyPlan:
    name: str
    source_url: str
    target_url: str
    repo_id: str
    rewrap: bool  # the copy has a key provider of its own
    create: bool  # the copy's swarm-repo.json does not exist yet
    items: list[Item] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)  # manifests to copy, in order
    present: list[str] = field(default_factory=list)  # backups the copy already lists
    skipped: dict[str, str] = field(default_factory=dict)  # backup id -> why it is not copied

    @property
    def bytes(self) -> int:
        return sum(i.size for i in self.items)

    def to_dict(self) -> dict[str, Any]:
        totals: dict[str, dict[str, int]] = {}
        for i in self.items:
            t = totals.setdefault(i.what, {"files": 0, "bytes": 0})
            t["files"] += 1
            t["bytes"] += i.size
        return {"name": self.name, "source": self.source_url, "target": self.target_url, "repo_id": self.repo_id,
                "rewrap": self.rewrap, "create": self.create, "backups": self.backups,
                "already_copied": len(self.present), "skipped": self.skipped, "totals": totals,
                "files": len(self.items), "bytes": self.bytes}


@dataclass
class CopyResult:
    plan: CopyPlan
    dry_run: bool
    copied: int = 0
    bytes: int = 0
    backups: list[str] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)  # key or backup id -> problem
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, **self.plan.to_dict(), "copied_files": self.copied,
                "copied_bytes": self.bytes, "copied_backups": self.backups, "problems": self.problems,
                "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class CopyLag:
    """How far a copy's WAL and backups lag the source's (``status``: the copy's own RPO)."""

    name: str
    source_newest_wal: str | None
    copy_newest_wal: str | None
    lag_seconds: float | None  # None: the copy holds no WAL while the source does
    missing_wal: int  # segments on the source the copy lacks (after its newest)
    missing_backups: list[str]
    level: str  # OK, WARNING (past 2 intervals), CRITICAL (past 10, or never copied)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source_newest_wal": self.source_newest_wal,
                "copy_newest_wal": self.copy_newest_wal, "lag_seconds": self.lag_seconds,
                "missing_wal": self.missing_wal, "missing_backups": self.missing_backups, "level": self.level}


@dataclass(frozen=True)
class CopyTarget:
    """Where a copy goes: its name (``[[repository.copies]]``), its store and its key provider (its own,
    or the source's)."""

    name: str
    store: Store
    kek: KeyProvider


def _listing(store: Store, prefix: str) -> dict[str, ObjectInfo]:
    return {i.key: i for i in store.list(prefix)}


def _wal_order(key: str) -> tuple[int, str]:
    name = key.rsplit("/", 1)[-1]
    if key.startswith(f"{WAL_PREFIX}history/"):
        return 0, name
    return (2 if name.endswith(".partial") else 1), name


def _target_config(source: Repository, store: Store, kek: KeyProvider) -> tuple[RepoConfig | None, bytes]:
    """(the copy's current config or None, the config bytes a new copy gets). Refuses (CopyMismatch)
    a place that holds another repository."""
    cfg = source.config
    own_check = cfg.key_check if cfg.kek_id == source.kek.key_id else dict(cfg.also).get(source.kek.key_id,
                                                                                          cfg.key_check)
    _raw, check = rewrap(json.dumps({"wrapped": own_check}).encode(), _check_ctx(cfg.repo_id), source.kek, kek)
    mine = RepoConfig(cfg.repo_id, cfg.format_version, cfg.created_at, kek.key_id,
                      base64.b64encode(kek.wrap(check, _check_ctx(cfg.repo_id))).decode()
                      if kek.key_id != source.kek.key_id else cfg.key_check, cfg.features)
    try:
        raw = store.get(CONFIG_KEY)
    except ObjectNotFound:
        return None, mine.to_json()
    try:
        have = RepoConfig.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{CONFIG_KEY} of the copy at {store.url} is damaged",
                             hint="Restore it by hand, or make the copy in an empty place.") from exc
    if have.repo_id != cfg.repo_id:
        raise CopyMismatch(f"{store.url} holds another repository ({have.repo_id}), not a copy of {source.url} "
                          f"({cfg.repo_id})", hint="Point the copy at an empty place or at a copy of this "
                                                   "repository. Nothing was written.",
                          details={"copy_repo_id": have.repo_id, "repo_id": cfg.repo_id})
    return have, mine.to_json()


def plan_copy(source: Repository, name: str, store: Store, kek: KeyProvider) -> CopyPlan:
    """What ``execute_copy`` would write to the copy ``name`` at ``store`` (key provider ``kek``);
    reads listings of both sides and the source's manifests, writes nothing."""
    have, _ = _target_config(source, store, kek)
    if have is not None:  # prove the copy's key before planning (KeyMismatch naming both ids)
        Repository.open(store, kek, source.clock)
    src = source._store
    plan = CopyPlan(name, source.url, store.url, source.config.repo_id, kek.key_id != source.kek.key_id,
                    have is None)
    rid = source.config.repo_id
    t_keys = _listing(store, KEYS_PREFIX)
    s_keys = _listing(src, KEYS_PREFIX)
    if have is None:
        plan.items.append(Item("config", CONFIG_KEY, 0))
    for key, purpose in SECRET_FILES.items():
        if key in s_keys and key not in t_keys:
            plan.items.append(Item("secret", key, s_keys[key].size, context=f"{purpose}\0{rid}".encode()))
    if src.stat(CLUSTER_KEY) is not None and store.stat(CLUSTER_KEY) is None:
        plan.items.append(Item("cluster", CLUSTER_KEY, 0))
    # backups the copy lacks (listed, not damaged, not tombstoned on the copy)
    damaged: dict[str, str] = {}
    manifests = source.list_backups(damaged)
    for bid, problem in damaged.items():
        plan.skipped[bid] = f"its manifest on the source cannot be trusted: {problem}"
    t_manifests = {k[len(BACKUPS_PREFIX):-5] for k in _listing(store, BACKUPS_PREFIX)}
    t_tombs = {k[len(TOMBSTONES_PREFIX):-5] for k in _listing(store, TOMBSTONES_PREFIX)}
    s_data = _listing(src, DATA_PREFIX)
    t_data = _listing(store, DATA_PREFIX)
    s_wal = _listing(src, WAL_PREFIX)
    t_wal = _listing(store, WAL_PREFIX)
    sha_of: dict[str, str] = {}
    for m in manifests:
        for e in m.objects:
            sha_of[data_key(m.id, e.name)] = e.sha256
    size = int((source.cluster_identity() or {}).get("segment_size") or DEFAULT_SEGMENT_SIZE)
    on_copy = set(t_manifests)
    plan.present = [m.id for m in manifests if m.id in t_manifests]
    todo = [m for m in manifests if m.id not in t_manifests and m.id not in t_tombs]
    # parts before the sets that name them, each group oldest first
    todo.sort(key=lambda m: (m.kind == Kind.SET, m.started_at, m.id))
    planned: set[str] = set()
    wanted_wal: set[str] = set()
    for m in todo:
        missing = _needs(m, size, s_data, s_keys, s_wal, source=source)
        if missing:
            plan.skipped[m.id] = f"{missing[0]} is missing from the source" + (
                f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
            continue
        if m.kind == Kind.SET:
            parts = m.source.get("parts")
            lacking = [p for p in (parts.values() if isinstance(parts, dict) else ())
                       if str(p) not in on_copy and str(p) not in plan.backups]
            if lacking:
                plan.skipped[m.id] = f"backup set part {lacking[0]} is not on the copy and cannot be copied"
                continue
        for d in sorted({m.dek_id, *(m.refs.deks if m.refs else ())}):
            key = dek_key(d)
            if key not in t_keys and key not in planned:
                planned.add(key)
                plan.items.append(Item("dek", key, s_keys[key].size, backup=m.id, context=_dek_ctx(rid, d)))
        data = [data_key(m.id, e.name) for e in m.objects]
        if m.refs:
            data += [data_key(r.backup_id, r.name) for r in (*m.refs.packs, *m.refs.objects)]
        # a repacked original the copy lacks: the generation its map names, then the map (step 3)
        for key in [k for d in sorted(set(data)) for k in (_stand_ins(source, d, s_data) if d not in t_data else [d])]:
            if key not in t_data and key not in planned:
                planned.add(key)
                plan.items.append(Item("data", key, s_data[key].size, sha256=sha_of.get(key, ""), backup=m.id))
        for seg in _wal_names(m, size):
            wanted_wal.add(wal_key(seg))
        plan.backups.append(m.id)
    # WAL: everything the copy lacks, but not below the oldest segment it holds (what prune of the
    # copy removed stays removed), except what a backup being copied needs
    floor: dict[str, str] = {}
    for key in t_wal:
        name = key.rsplit("/", 1)[-1]
        if not key.startswith((f"{WAL_PREFIX}history/", f"{WAL_PREFIX}conflicts/")) and len(name) >= 24:
            tli = name[:8]
            floor[tli] = min(floor.get(tli, name[:24]), name[:24])
    for key in sorted(s_wal, key=_wal_order):
        if key.startswith(f"{WAL_PREFIX}conflicts/"):
            continue
        info = s_wal[key]
        name = key.rsplit("/", 1)[-1]
        if key in t_wal and not (name.endswith(".partial") and t_wal[key].size != info.size):
            continue
        tli = name[:8]
        if (not key.startswith(f"{WAL_PREFIX}history/") and tli in floor and name[:24] < floor[tli]
                and key not in wanted_wal):
            continue
        plan.items.append(Item("wal", key, info.size))
    for bid in plan.backups:
        plan.items.append(Item("manifest", manifest_key(bid), 0, backup=bid))
    # records: restore points and tags mirrored, verify records once, tombstones of what the copy lacks
    copied_or_there = on_copy | set(plan.backups)
    for prefix in (RESTORE_POINTS_PREFIX, TAGS_PREFIX):
        t = _listing(store, prefix)
        for key, info in _listing(src, prefix).items():
            bid = key[len(prefix):-5]
            if prefix == TAGS_PREFIX and bid not in copied_or_there:
                continue
            if key not in t or t[key].size != info.size or store.get(key) != src.get(key):
                plan.items.append(Item("record", key, info.size))
    t = _listing(store, VERIFICATIONS_PREFIX)
    for key, info in _listing(src, VERIFICATIONS_PREFIX).items():
        if key not in t and key[len(VERIFICATIONS_PREFIX):-5] in copied_or_there:
            plan.items.append(Item("record", key, info.size))
    for key, info in _listing(src, TOMBSTONES_PREFIX).items():
        bid = key[len(TOMBSTONES_PREFIX):-5]
        if is_backup_id(bid) and bid not in t_tombs and bid not in copied_or_there:
            plan.items.append(Item("record", tombstone_key(bid), info.size))
    return plan


def _wal_names(m: Manifest, size: int) -> list[str]:
    out = []
    for w in (m.refs.wal if m.refs else ()):
        first, last = parse_segment(w.first, size), parse_segment(w.last, size)
        out += [Segment(w.timeline, n, size).name for n in range(first.segno, last.segno + 1)]
    return out


def _needs(m: Manifest, size: int, data: dict[str, ObjectInfo], keys: dict[str, ObjectInfo],
           wal: dict[str, ObjectInfo], *, source: Repository | None = None) -> list[str]:
    """What backup ``m`` needs that the listings do not hold (its keys). With ``source``, an original
    pack that repack replaced is needed as the map and the generation the source's map names."""
    want = [data_key(m.id, e.name) for e in m.objects]
    if m.refs:
        want += [data_key(r.backup_id, r.name) for r in (*m.refs.packs, *m.refs.objects)]
    if source is not None:
        want = [k for w in want for k in _stand_ins(source, w, data)]
    missing = [k for k in want if k not in data]
    missing += [dek_key(d) for d in sorted({m.dek_id, *(m.refs.deks if m.refs else ())}) if dek_key(d) not in keys]
    missing += [wal_key(n) for n in _wal_names(m, size) if wal_key(n) not in wal]
    return missing


def verified_puts(store: Store) -> bool:
    """Whether ``store`` (or the store a wrapper's ``inner`` chain ends at) has its server verify a
    checksum of every put's bytes (``S3Store.VERIFIED_PUTS``): then a successful put stored exactly
    the bytes handed to it."""
    seen = 0
    while seen < 8:
        if getattr(type(store), "VERIFIED_PUTS", False):
            return True
        inner = getattr(store, "inner", None)
        if inner is None:
            return False
        store, seen = inner, seen + 1
    return False


def _stand_ins(source: Repository, key: str, data: dict[str, ObjectInfo]) -> list[str]:
    """``[key]``, or for an original pack ``data/<b>/packs/<n>.pack`` absent from the listing ``data``
    while its map ``packs/<n>.moved`` is listed: the generation the source's map names, then the map
    (the order they are copied in: a copy never holds a map whose generation it lacks). A map that
    does not open on the source leaves ``[key]`` (the backup is skipped as missing it)."""
    if key in data or not key.startswith(DATA_PREFIX):
        return [key]
    backup_id, _, name = key[len(DATA_PREFIX):].partition("/")
    n = pack_number(name)
    if n is None or data_key(backup_id, moved_name(n)) not in data:
        return [key]
    try:
        m = source.pack_map(backup_id, n)
    except IntegrityError:
        return [key]
    return [key] if m is None else [data_key(backup_id, m.to), data_key(backup_id, moved_name(n))]


def _hashing(chunks: Iterable[bytes], sink: Any, expected: str, where: str,
             count: list[int] | None = None) -> Iterator[bytes]:
    """Pass ``chunks`` through, hashing them (and adding their length to ``count[0]``); before the
    last one ends, raise IntegrityError if the hash is not ``expected`` (so the store's put is
    abandoned, nothing is stored)."""
    for c in chunks:
        sink.update(c)
        if count is not None:
            count[0] += len(c)
        yield c
    if expected and sink.hexdigest() != expected:
        raise IntegrityError(f"{where} on the source does not match the SHA-256 its manifest records (damaged); "
                             "it was not copied")


COPY_WORKERS = 8  # data objects and WAL files copied at the same time (a run of them: steps 3 and 4)
_PARALLEL = frozenset({"data", "wal"})


def _runs(items: list[Item]) -> Iterator[list[Item]]:
    """``items`` in order, cut into runs: consecutive data / WAL items together, every other item alone.
    A pack map (``packs/<n>.moved``) is alone too, so the generation planned before it is stored
    first (a copy never holds a map without its generation) and the ``repacked-packs`` feature is
    added before it."""
    run: list[Item] = []
    for item in items:
        if item.what in _PARALLEL and not (item.what == "data" and item.key.endswith(".moved")):
            run.append(item)
            continue
        if run:
            yield run
            run = []
        yield [item]
    if run:
        yield run


def execute_copy(source: Repository, plan: CopyPlan, store: Store, kek: KeyProvider, *,
                 clock: Clock | None = None, on_item: Callable[[Item], None] | None = None,
                 stale_after: float = 120.0, refresh_every: float = 20.0, workers: int = COPY_WORKERS,
                 ) -> CopyResult:
    """Write ``plan`` to the copy (steps and crash behaviour: module docstring) under the source's
    shared lock and the copy's. A backup whose data turns out damaged on the source (or whose copy
    does not read back) is not committed on the copy and is named in ``problems``; the rest goes on.

    Data objects and WAL files (steps 3 and 4) are copied ``workers`` at a time; each step still ends
    before the next begins, so every manifest is written after all the data it needs. A kill -9
    inside step 4 may leave a WAL segment on the copy without an earlier one: the copy's lag counts
    from the oldest segment it lacks (``copy_lag``), and the next run fills the gap."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    t0 = time.monotonic()
    clock = clock or source.clock
    res = CopyResult(plan, dry_run=False)
    rid = source.config.repo_id
    items = list(plan.items)
    if items and items[0].what == "config":
        _have, body = _target_config(source, store, kek)
        with contextlib.suppress(ObjectExists):  # a racing copy made it first: it is checked just below
            store.put(CONFIG_KEY, body, if_absent=True)
        res.copied += 1
        items = items[1:]
        if on_item:
            on_item(plan.items[0])
    target = Repository.open(store, kek, clock)  # proves the copy's key (and format)
    if target.config.repo_id != rid:
        raise CopyMismatch(f"{store.url} holds another repository ({target.config.repo_id})")
    slock = source.shared_lock(command=f"swarm admin repo copy --to {plan.name}", stale_after=stale_after,
                               refresh_every=refresh_every)
    tlock = target.shared_lock(command=f"swarm admin repo copy (from {source.url})", stale_after=stale_after,
                               refresh_every=refresh_every)
    bad: set[str] = set()  # backups not to commit on the copy
    size = int((source.cluster_identity() or {}).get("segment_size") or DEFAULT_SEGMENT_SIZE)
    have: tuple[dict[str, ObjectInfo], ...] | None = None  # the copy's data, keys, WAL when manifests start

    def copied(item: Item) -> None:
        res.copied += 1
        res.bytes += item.size
        if item.what == "manifest":
            res.backups.append(item.backup)
        if on_item:
            on_item(item)

    def failed(item: Item, exc: IntegrityError) -> None:
        res.problems[item.backup or item.key] = exc.message
        if item.backup:
            bad.add(item.backup)

    def one(item: Item) -> None:
        slock.ensure_held()
        tlock.ensure_held()
        _copy_one(source, target, item, store, kek, rid)

    with slock, tlock, ThreadPoolExecutor(max(1, workers), thread_name_prefix="repo-copy") as pool:
        for run in _runs(items):
            if RUN_FRAMES in source.config.features and RUN_FRAMES not in target.config.features \
                    and any(item.what == "data" for item in run):
                target.add_feature(RUN_FRAMES)  # before the copy's first pack, which may hold run frames
            if len(run) > 1:  # data objects or WAL files: ``workers`` at a time, all done before what follows
                futures = [(item, pool.submit(one, item)) for item in run if item.backup not in bad]
                try:
                    for item, fut in futures:
                        try:
                            fut.result()
                        except IntegrityError as exc:  # named, the rest goes on (as one at a time)
                            failed(item, exc)
                            continue
                        copied(item)
                except BaseException:
                    for _item, fut in futures:
                        fut.cancel()
                    raise
                continue
            item = run[0]
            slock.ensure_held()
            tlock.ensure_held()
            if item.what == "manifest":
                if item.backup in bad:
                    continue
                if have is None:
                    have = (_listing(store, DATA_PREFIX), _listing(store, KEYS_PREFIX), _listing(store, WAL_PREFIX))
                lacking = _needs(source.load_manifest(item.backup), size, *have, source=source)
                if lacking:  # something it needs did not reach the copy: never list it there
                    res.problems[item.backup] = (f"not copied: {lacking[0]}, which it needs, is not on the copy"
                                                 + (f" (and {len(lacking) - 1} more)" if len(lacking) > 1 else ""))
                    continue
            if item.what == "data" and item.key.endswith(".moved") and REPACKED_PACKS not in target.config.features:
                target.add_feature(REPACKED_PACKS)  # before the copy's first pack map, as repack does
            try:
                _copy_one(source, target, item, store, kek, rid)
            except IntegrityError as exc:
                if not item.backup and item.what not in ("wal", "record"):
                    raise
                failed(item, exc)
                continue
            copied(item)
        tlock.ensure_held(check_store=True)
    res.seconds = time.monotonic() - t0
    return res


def _copy_one(source: Repository, target: Repository, item: Item, store: Store, kek: KeyProvider, rid: str) -> None:
    src = source._store
    if item.what in ("secret", "dek"):
        raw, secret = rewrap(src.get(item.key), item.context, source.kek, kek)
        try:
            store.put(item.key, raw, if_absent=True)
        except ObjectExists:
            pass  # checked below like a fresh one: it must hold the same secret
        back = json.loads(store.get(item.key))
        try:
            same = kek.unwrap(base64.b64decode(back["wrapped"]), item.context) == secret
        except (KeyError_, KeyError, ValueError):
            same = False
        if not same or back.get("public") != json.loads(raw).get("public"):
            if item.what == "secret":
                raise CopyMismatch(f"{item.key} on the copy at {store.url} holds another secret than the source's",
                                  hint="Something wrote this copy on its own before it was made; make the copy in "
                                       "an empty place. Nothing else was written.")
            store.delete(item.key)
            raise IntegrityError(f"{item.key} did not read back from the copy as written")
        return
    if item.what == "cluster":
        body = src.get(CLUSTER_KEY)
        with contextlib.suppress(ObjectExists):
            store.put(CLUSTER_KEY, body, if_absent=True)
        if json.loads(store.get(CLUSTER_KEY)).get("system_identifier") != json.loads(body).get("system_identifier"):
            raise CopyMismatch(f"{CLUSTER_KEY} of the copy names another PostgreSQL cluster than the source's")
        return
    if item.what in ("manifest", "record"):
        raw = src.get(item.key)
        _open(source, item.key, raw, "source")  # never spread forged metadata
        store.put(item.key, raw)
        # a verified store stored exactly ``raw`` (its server checked the SHA-256 sent with it)
        back = raw if verified_puts(store) else store.get(item.key)
        if back != raw:
            store.delete(item.key)
            raise IntegrityError(f"{item.key} did not read back from the copy as written")
        if item.what == "manifest" or item.key.startswith(TOMBSTONES_PREFIX):
            _open(target, item.key, back, "copy")
        return
    # data and WAL: streamed once, hashed on the way (checked against the manifest before the put
    # completes); the copy's server verifies the bytes it received (S3), or the stored size is
    # compared (file://). No download from the copy: ``verify --repo NAME`` reads everything.
    h = hashlib.sha256()
    read = [0]
    try:
        chunks = src.iter_get(item.key)
    except ObjectNotFound:
        raise IntegrityError(f"{item.key} disappeared from the source while copying") from None
    written = store.put(item.key, _hashing(chunks, h, item.sha256, item.key, read))
    if verified_puts(store):
        stored: int | None = written
    else:
        info = store.stat(item.key)
        stored = info.size if info is not None else None
    if stored != read[0]:
        store.delete(item.key)
        raise IntegrityError(f"{item.key} on the copy holds {stored} bytes, not the {read[0]} read from the source")


def _open(repo: Repository, key: str, raw: bytes, side: str) -> None:
    try:
        open_metadata(metadata_key(_secret(repo)), repo.config.repo_id, key, raw)
    except MetadataUnreadable as exc:
        raise IntegrityError(f"{key} on the {side} cannot be trusted: {exc}") from None


def _secret(repo: Repository) -> bytes:
    """The metadata secret as ``repo``'s own key file and key provider give it (never created here)."""
    try:
        body = json.loads(repo._store.get(META_KEY))
        return unwrap_body(repo.kek, body, f"swarm-meta\0{repo.config.repo_id}".encode())
    except (ObjectNotFound, KeyError, ValueError, KeyError_) as exc:
        raise IntegrityError(f"{META_KEY} of {repo.url} does not give the metadata key") from exc


def copy_lag(source: Repository, name: str, store: Store, *, interval: float = 60.0,
             now: datetime | None = None) -> CopyLag:
    """How far the copy ``name`` lags the source: the newest WAL segment on each side, the time
    between the source archiving its newest segment and archiving the copy's newest (by the source's
    store times, one clock), the segments and backups the copy lacks, and a level: WARNING past
    2 × ``interval``, CRITICAL past 10 × (or when the copy holds no WAL while the source does).
    Listings only; needs no key."""
    def segments(st: Store) -> dict[str, ObjectInfo]:
        out = {}
        for info in st.list(WAL_PREFIX):
            n = info.key.rsplit("/", 1)[-1]
            if not info.key.startswith(f"{WAL_PREFIX}conflicts/") and is_segment_name(n):
                out[n] = info
        return out

    s, t = segments(source._store), segments(store)
    s_new = max(s) if s else None
    t_new = max(t) if t else None
    lag: float | None
    if s_new is None:
        lag = 0.0
    elif t_new is None:
        lag = None
    elif t_new >= s_new:
        lag = 0.0
    else:
        newest = s[s_new].modified
        theirs = s[t_new].modified if t_new in s else None
        if newest is None or theirs is None:
            lag = None
        else:
            lag = max(0.0, (newest - theirs).total_seconds())
        # the copy lacks WAL that is older than an interval on the source: at least that old
        after = [n for n in s if n > t_new]
        oldest_missing = s[min(after)].modified if after else None
        if oldest_missing is not None and lag is not None:
            ref = now or source.clock.now()
            lag = max(lag, (ref - oldest_missing).total_seconds())
    missing_wal = len([n for n in s if t_new is None or n > t_new])
    t_manifests = {i.key[len(BACKUPS_PREFIX):-5] for i in store.list(BACKUPS_PREFIX)}
    t_tombs = {i.key[len(TOMBSTONES_PREFIX):-5] for i in store.list(TOMBSTONES_PREFIX)}
    s_manifests = sorted(i.key[len(BACKUPS_PREFIX):-5] for i in source._store.list(BACKUPS_PREFIX)
                         if is_backup_id(i.key[len(BACKUPS_PREFIX):-5]))
    s_tombs = {i.key[len(TOMBSTONES_PREFIX):-5] for i in source._store.list(TOMBSTONES_PREFIX)}
    missing_backups = [b for b in s_manifests if b not in t_manifests and b not in t_tombs and b not in s_tombs]
    if lag is None:
        level = "CRITICAL"
    elif lag > 10 * interval:
        level = "CRITICAL"
    elif lag > 2 * interval:
        level = "WARNING"
    else:
        level = "OK"
    return CopyLag(name, s_new, t_new, lag, missing_wal, missing_backups, level)
