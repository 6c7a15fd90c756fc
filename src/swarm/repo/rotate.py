"""Key rotation: rewrap every secret the key-encryption key (KEK) wraps, never re-encrypting data.

What the KEK wraps, all small files: ``keys/<dek_id>.json`` (data keys), ``keys/dedup.json``,
``keys/meta.json``, ``keys/wal.json`` (the dedup and metadata secrets, the private WAL key) and
``key_check`` in ``swarm-repo.json``. Data objects, packs and WAL segments are sealed with data keys
and are not touched.

``rotate(store, old, new)`` runs in three steps, each a single-object overwrite:

1. ``swarm-repo.json`` gains the ``multi-kek`` feature (a client that does not know it refuses the
   repository rather than misreading a file wrapped twice);
2. every wrapped key file is rewritten with ``new`` as its primary wrap and every wrap it had kept
   under ``also`` (``{"kek_id", "wrapped"}``), so both keys read it; files that already carry
   ``new`` are skipped. The listing is repeated until a pass finds nothing to rewrap, catching the
   data keys a backup running meanwhile (with ``old``) created;
3. ``swarm-repo.json`` makes ``new`` the primary key (its key check) and keeps ``old``'s key check
   under ``also_keys``.

Each rewrap is ``swarm.crypto.providers.rewrap``: between two AWS KMS keys of one region and
endpoint it is a single ``ReEncrypt`` (the secret never leaves KMS, the encryption context is kept);
otherwise ``old`` unwraps and ``new`` wraps, in memory only.

kill -9 between any two steps (or between two files of step 2) leaves a repository that both keys
open and read: files not yet rewrapped carry ``old``, rewrapped ones carry both, and until step 3
``new`` is refused as "wrong key" by the key check (so nothing reads a file ``new`` does not wrap).
Running ``rotate`` again with the same keys converges: it skips what is done. A backup or ``wal
push`` during rotation loses nothing: ``wal push`` makes no KEK call, and a data key a backup wraps
with ``old`` after the last pass is still readable by ``old`` and is reported by ``status`` (and
refused by ``retire``) until a rerun of ``rotate`` rewraps it.

``retire(store, kek, old_id)`` removes ``old_id``'s wraps once no file needs it: first from
``swarm-repo.json`` (from then on ``old`` no longer opens the repository), then from each file;
kill -9 in between leaves only unused wraps behind and a rerun removes them.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any

from swarm.crypto.keys import KeyProvider
from swarm.crypto.providers import rewrap
from swarm.errors import IntegrityError, NotFoundError, RefusedError
from swarm.repo.format import CONFIG_KEY, DEDUP_KEY, KEYS_PREFIX, META_KEY, MULTI_KEK, WAL_KEYS_KEY
from swarm.repo.repository import RepoConfig, Repository, _check_ctx, _dek_ctx
from swarm.storage.base import Store

SECRET_PURPOSES: dict[str, str] = {META_KEY: "swarm-meta", DEDUP_KEY: "swarm-dedup", WAL_KEYS_KEY: "swarm-wal-keys"}
MAX_PASSES = 5


def wrapped_files(store: Store) -> list[str]:
    """Every wrapped key file under ``keys/`` (data keys and the three secrets), sorted."""
    return sorted(i.key for i in store.list(KEYS_PREFIX) if i.key.endswith(".json"))


def context_of(key: str, repo_id: str) -> bytes:
    """The wrap context of a wrapped key file (what binds it to this repository and this name)."""
    if key in SECRET_PURPOSES:
        return f"{SECRET_PURPOSES[key]}\0{repo_id}".encode()
    name = key[len(KEYS_PREFIX):-len(".json")]
    if not name.startswith("dek-"):
        raise IntegrityError(f"{key} is not a file swarm writes under keys/",
                             hint="Move it out of the repository's keys/ directory.")
    return _dek_ctx(repo_id, name)


def key_ids_of(body: dict[str, Any]) -> list[str]:
    """The KEKs that wrap a wrapped key file's secret, the primary first."""
    return [str(body.get("kek_id")), *(str(e.get("kek_id")) for e in body.get("also") or [])]


def wrapped_by(body: dict[str, Any], kek_id: str) -> bytes:
    """The wrap ``kek_id`` made of a wrapped key file's secret, chosen as ``unwrap_body`` chooses it
    (the primary ``wrapped`` when no ``also`` entry is ``kek_id``'s)."""
    if body.get("kek_id") != kek_id:
        for entry in body.get("also") or []:
            if entry.get("kek_id") == kek_id:
                return base64.b64decode(entry["wrapped"])
    return base64.b64decode(body["wrapped"])


def _config(store: Store) -> RepoConfig:
    try:
        return RepoConfig.from_json(store.get(CONFIG_KEY))
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"{CONFIG_KEY} at {store.url} is damaged") from exc


@dataclass
class RotationResult:
    from_key: str
    to_key: str
    dry_run: bool
    files: int = 0
    rewrapped: list[str] = field(default_factory=list)
    already: int = 0
    config_updated: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"from_key": self.from_key, "to_key": self.to_key, "dry_run": self.dry_run, "files": self.files,
                "rewrapped": len(self.rewrapped), "rewrapped_files": self.rewrapped, "already": self.already,
                "config_updated": self.config_updated, "seconds": round(self.seconds, 3)}


def rotate(store: Store, old: KeyProvider, new: KeyProvider, *, dry_run: bool = False) -> RotationResult:
    """Make ``new`` the repository's key-encryption key; ``old`` (which must open the repository)
    stays able to read until ``retire``. Idempotent; see the module docstring for crash behaviour.
    With ``dry_run`` nothing is written and the result says what would be rewrapped."""
    started = time.monotonic()
    Repository.open(store, old)  # format, features, and that ``old`` opens it (KeyMismatch / KeyRevoked if not)
    old_id, new_id = old.key_id, new.key_id
    if old_id == new_id:
        raise RefusedError(f"the new key is the configured key ({new_id}): nothing to rotate",
                           hint="Give the new key with --to URL.")
    new.key_id  # noqa: B018  (a new key its provider refuses fails here, before anything is written)
    result = RotationResult(old_id, new_id, dry_run)
    cfg = _config(store)
    if MULTI_KEK not in cfg.features and not dry_run:
        cfg = RepoConfig(cfg.repo_id, cfg.format_version, cfg.created_at, cfg.kek_id, cfg.key_check,
                         (*cfg.features, MULTI_KEK), cfg.also)
        store.put(CONFIG_KEY, cfg.to_json())
    seen: set[str] = set()
    for _ in range(MAX_PASSES):
        changed = False
        for key in wrapped_files(store):
            if key in seen:
                continue
            seen.add(key)
            body = json.loads(store.get(key))
            ids = key_ids_of(body)
            if new_id in ids:
                result.already += 1
                continue
            changed = True
            result.rewrapped.append(key)
            if dry_run:
                continue
            ctx = context_of(key, cfg.repo_id)
            fresh = rewrap(old, new, wrapped_by(body, old_id), ctx)
            also = [{"kek_id": body["kek_id"], "wrapped": body["wrapped"]},
                    *(e for e in body.get("also") or [] if e.get("kek_id") not in (new_id, body["kek_id"]))]
            body.update({"kek_id": new_id, "wrapped": base64.b64encode(fresh).decode(), "also": also})
            store.put(key, json.dumps(body, indent=1).encode())
        if not changed:
            break
    result.files = len(seen)
    if cfg.kek_id != new_id:
        result.config_updated = True
        if not dry_run:
            check = wrapped_by({"kek_id": cfg.kek_id, "wrapped": cfg.key_check,
                                "also": [{"kek_id": k, "wrapped": c} for k, c in cfg.also]}, old_id)
            kept: tuple[tuple[str, str], ...] = (
                (cfg.kek_id, cfg.key_check), *((k, c) for k, c in cfg.also if k not in (new_id, cfg.kek_id)))
            # features added since the start (a repack's ``repacked-packs``) are kept: read them again
            features = _config(store).features
            cfg = RepoConfig(cfg.repo_id, cfg.format_version, cfg.created_at, new_id,
                             base64.b64encode(rewrap(old, new, check, _check_ctx(cfg.repo_id))).decode(),
                             tuple(dict.fromkeys((*cfg.features, *features, MULTI_KEK))), kept)
            store.put(CONFIG_KEY, cfg.to_json())
    result.seconds = time.monotonic() - started
    return result


@dataclass
class RetireResult:
    key: str
    files: int
    config_updated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"retired_key": self.key, "files": self.files, "config_updated": self.config_updated}


def retire(store: Store, kek: KeyProvider, old_id: str) -> RetireResult:
    """Remove ``old_id``'s wraps: from then on only the other keys open the repository. ``kek`` (the
    configured key) must open it. Refused while ``old_id`` is the primary key or some file is wrapped
    by it alone (rerun ``keys rotate`` with the old key configured to rewrap it); NotFoundError when
    nothing carries ``old_id``. Idempotent after kill -9 (module docstring)."""
    Repository.open(store, kek)
    cfg = _config(store)
    if old_id == cfg.kek_id:
        raise RefusedError(f"{old_id} is the repository's primary key; it cannot be retired",
                           hint="Rotate to another key first: `swarm admin keys rotate --to URL`.")
    bodies = {key: json.loads(store.get(key)) for key in wrapped_files(store)}
    behind = sorted(k for k, b in bodies.items() if cfg.kek_id not in key_ids_of(b))
    if behind:
        raise RefusedError(f"{len(behind)} key file(s) are not wrapped by the primary key "
                           f"{cfg.kek_id}: {', '.join(behind[:10])}",
                           hint="A backup wrapped them during the rotation: run `swarm admin keys rotate --to "
                                "<new key URL>` again with the old key configured, then retire.")
    in_config = any(k == old_id for k, _ in cfg.also)
    carrying = [k for k, b in bodies.items() if old_id in key_ids_of(b)]
    if not in_config and not carrying:
        raise NotFoundError(f"no key {old_id} in the repository at {store.url}",
                            hint="See `swarm admin keys status` for the keys it holds.")
    if in_config:
        cfg = _config(store)  # as it is now: a feature added meanwhile (a repack's) is kept
        store.put(CONFIG_KEY, RepoConfig(cfg.repo_id, cfg.format_version, cfg.created_at, cfg.kek_id,
                                         cfg.key_check, cfg.features,
                                         tuple((k, c) for k, c in cfg.also if k != old_id)).to_json())
    for key in carrying:
        body = bodies[key]
        body["also"] = [e for e in body.get("also") or [] if e.get("kek_id") != old_id]
        if not body["also"]:
            del body["also"]
        store.put(key, json.dumps(body, indent=1).encode())
    return RetireResult(old_id, len(carrying), in_config)


def status(store: Store) -> dict[str, Any]:
    """Which keys open the repository and what each one wraps (read only; no provider call).

    ``keys``: one entry per key id, the primary first: ``primary``, ``opens`` (its key check is in
    ``swarm-repo.json``), ``files`` (how many wrapped key files it wraps) and ``missing`` (those it
    does not: a key with missing files cannot read the backups sealed with them). ``backups``: the
    backup ids present; every one of them depends on the primary key and on any key listed."""
    cfg = _config(store)
    bodies = {key: json.loads(store.get(key)) for key in wrapped_files(store)}
    ids = list(dict.fromkeys([*cfg.key_ids(), *(i for b in bodies.values() for i in key_ids_of(b))]))
    keys = []
    for kid in ids:
        missing = sorted(k for k, b in bodies.items() if kid not in key_ids_of(b))
        keys.append({"kek_id": kid, "primary": kid == cfg.kek_id, "opens": kid in cfg.key_ids(),
                     "files": len(bodies) - len(missing), "missing": missing})
    backups = sorted(Repository(store, _NoKey(), cfg).manifest_ids())
    return {"repo_id": cfg.repo_id, "primary": cfg.kek_id, "files": len(bodies), "keys": keys,
            "backups": backups, "rotation_complete": all(not k["missing"] for k in keys if k["primary"])}


class _NoKey:
    """A provider that is never called (``status`` only lists)."""

    key_id = "none"
    description = "no key"

    def wrap(self, dek: bytes, context: bytes) -> bytes:
        raise AssertionError("status makes no provider call")

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        raise AssertionError("status makes no provider call")
