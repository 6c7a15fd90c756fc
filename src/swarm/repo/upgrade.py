"""Upgrade a repository to the current format (``swarm admin repo upgrade``): version 2 with
sealed metadata.

Version 2 adds ``refs`` to every manifest (``swarm.model.refs``) and seals manifests and restore
points (``swarm.repo.metadata``: encrypted and authenticated under the repository's metadata
key). Physical backups of version 1 keep their ``index.json``, read by the tree store's
block-index reader. A repository of version 1, or of a pre-release version 2 (no
``sealed-metadata`` feature), is upgraded in this order:

1. open the repository (the key is proven right first; nothing is written before);
2. for each manifest ``backups/<id>.json`` not sealed yet: check its (unkeyed) checksum, derive
   its refs from what it stored if it is at version 1 (``refs_of_v1``), and replace it by the
   sealed manifest in one atomic put (a local store renames a temporary file over it; S3
   replaces the object whole); then each restore point record not sealed yet (generation 1);
3. rewrite ``swarm-repo.json`` with ``format_version: 2`` and the ``sealed-metadata`` feature, last.

Sealing trusts the plaintext it seals: run the upgrade where the repository's storage is
trusted (after it, nobody without the key can alter metadata unnoticed).

What a kill -9 leaves: between any two rewrites, some manifests sealed and the rest not, and
``swarm-repo.json`` unchanged, so every other command still refuses the repository (exit 5,
naming this command) and nothing can use a half upgraded repository. Running the upgrade
again skips what is already sealed (after proving it opens) and converges. A manifest or record
that cannot be read (damaged) is left as it is and named in the result; it does not stop the
upgrade (``verify`` reports it, and prune refuses to delete anything while it is there).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarm.clock import Clock
from swarm.crypto.keys import KeyProvider
from swarm.errors import SwarmError
from swarm.model.ids import is_backup_id
from swarm.model.manifest import Manifest
from swarm.model.refs import DataRef, Refs, WalRange, pack_refs
from swarm.model.sources import Kind
from swarm.repo.format import (
    BACKUPS_PREFIX,
    CONFIG_KEY,
    FORMAT_VERSION,
    RESTORE_POINTS_PREFIX,
    SEALED_METADATA,
    manifest_key,
)
from swarm.repo.metadata import is_sealed
from swarm.repo.repository import RepoConfig, Repository
from swarm.repo.tree import open_snapshot
from swarm.storage.base import Store

OBJECTS_INVENTORY = "inventory.jsonl"  # an objects backup's inventory (its lines' "data" name copied versions)


@dataclass
class UpgradeResult:
    url: str
    from_version: int
    to_version: int = FORMAT_VERSION
    upgraded: list[str] = field(default_factory=list)  # manifests rewritten now
    already: list[str] = field(default_factory=list)  # manifests at version 2 already (an earlier, interrupted run)
    damaged: dict[str, str] = field(default_factory=dict)  # left as they are
    refs: dict[str, dict[str, int]] = field(default_factory=dict)  # backup id -> counts of its refs
    restore_points: list[str] = field(default_factory=list)  # restore point records sealed now
    sealing: bool = False  # metadata was (being) sealed: the repository was not at the current format

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version or self.sealing

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "from_version": self.from_version, "to_version": self.to_version,
                "changed": self.changed, "upgraded": self.upgraded, "already": self.already,
                "damaged": self.damaged, "refs": self.refs, "restore_points": self.restore_points}


def refs_of_v1(repo: Repository, m: Manifest, load: Callable[[str], Manifest] | None = None) -> Refs:
    """The refs a version-1 manifest would carry, from what its backup stored.

    * ``pg-physical``: every pack its block index (or tree) names, with their data keys; its
      WAL range (timeline, start and stop segment) and the WAL data key;
    * ``objects``: each copied version stored by another backup (its inventory's ``data``
      references) and those backups' data keys;
    * every kind: its own data key and packs (``BackupWriter.commit`` adds these too).

    ``load`` reads another backup's manifest (``repo.load_manifest`` by default; the upgrade reads
    manifests not sealed yet).
    """
    packs: set[DataRef] = {DataRef(m.id, o.name) for o in m.objects if o.name.startswith("packs/")}
    objects: set[DataRef] = set()
    deks: set[str] = {m.dek_id}
    wal: list[WalRange] = []
    if m.kind == Kind.PG_PHYSICAL:
        reader = open_snapshot(repo, m)
        p, k = pack_refs((r.backup_id, r.name, r.dek_id) for r in reader.referenced_packs())
        packs |= p
        deks |= k
        src = m.physical
        wal.append(WalRange(src.timeline, src.start_wal, src.stop_wal))
        ident = repo.cluster_identity() or {}
        if ident.get("wal_dek_id"):
            deks.add(str(ident["wal_dek_id"]))
    elif m.kind == Kind.OBJECTS and any(o.name == OBJECTS_INVENTORY for o in m.objects):
        others: set[str] = set()
        buf = b""
        for chunk in [*repo.read_object(m, OBJECTS_INVENTORY), b"\n"]:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for ln in lines:
                if not ln.strip():
                    continue
                data = json.loads(ln).get("data")
                if isinstance(data, dict) and data.get("backup") and data["backup"] != m.id:
                    objects.add(DataRef(str(data["backup"]), str(data["object"])))
                    others.add(str(data["backup"]))
        for b in sorted(others):
            deks.add((load or repo.load_manifest)(b).dek_id)
    return Refs.of(packs=packs, objects=objects, deks=deks, wal=wal)


def _load_any(repo: Repository, store: Store, backup_id: str) -> Manifest:
    """A manifest sealed already or not yet (during the upgrade); a plain one is checked by its checksum."""
    raw = store.get(manifest_key(backup_id))
    return repo.load_manifest(backup_id) if is_sealed(raw) else Manifest.from_json(raw, where=manifest_key(backup_id))


def upgrade_repository(store: Store, kek: KeyProvider, clock: Clock | None = None) -> UpgradeResult:
    """Bring the repository in ``store`` to the current format (see the module docstring): version 2
    with sealed metadata. A repository already there is left alone (``changed`` False)."""
    repo = Repository.open(store, kek, clock, for_upgrade=True)
    c = repo.config
    result = UpgradeResult(store.url, c.format_version)
    if c.format_version >= FORMAT_VERSION and SEALED_METADATA in c.features:
        return result
    result.sealing = True
    for info in sorted(store.list(BACKUPS_PREFIX), key=lambda i: i.key):
        name = info.key[len(BACKUPS_PREFIX):]
        if not (name.endswith(".json") and is_backup_id(name[:-5])):
            continue
        backup_id = name[:-5]
        try:
            raw = store.get(info.key)
            if is_sealed(raw):  # done by an earlier, interrupted run
                repo.load_manifest(backup_id)
                result.already.append(backup_id)
                continue
            m = Manifest.from_json(raw, where=info.key)
            if m.id != backup_id:
                raise SwarmError(f"manifest {info.key} describes backup {m.id}")
            if m.version < 2:
                refs = refs_of_v1(repo, m, lambda other: _load_any(repo, store, other))
                m = m.with_refs(refs)
                result.refs[backup_id] = {"packs": len(refs.packs), "objects": len(refs.objects),
                                          "deks": len(refs.deks), "wal": len(refs.wal)}
        except (SwarmError, ValueError, KeyError, TypeError) as exc:
            result.damaged[backup_id] = exc.message if isinstance(exc, SwarmError) else str(exc)
            continue
        repo._put_sealed(manifest_key(backup_id), m.to_json())  # atomic replace
        result.upgraded.append(backup_id)
    for info in sorted(store.list(RESTORE_POINTS_PREFIX), key=lambda i: i.key):
        point = info.key[len(RESTORE_POINTS_PREFIX):].removesuffix(".json")
        raw = store.get(info.key)
        if is_sealed(raw):
            continue
        try:
            body = json.loads(raw)
            stored = body.pop("checksum", None)
            canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            if stored is not None and stored != hashlib.sha256(canonical).hexdigest():
                raise ValueError("it fails its checksum")
            if body.get("name") != point:
                raise ValueError(f"it names {body.get('name')!r}")
        except (ValueError, AttributeError) as exc:
            result.damaged[f"restore point {point}"] = str(exc)
            continue
        body["generation"] = 1
        repo._put_sealed(info.key, json.dumps(body, sort_keys=True, indent=1).encode())
        result.restore_points.append(point)
    store.put(CONFIG_KEY, RepoConfig(c.repo_id, FORMAT_VERSION, c.created_at, c.kek_id, c.key_check,
                                     tuple(sorted(set(c.features) | {SEALED_METADATA})), c.also).to_json())
    return result
