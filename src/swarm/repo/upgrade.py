"""Upgrade a repository of format version 1 to version 2 (``swarm admin repo upgrade``).

Version 2 adds ``refs`` to every manifest (``swarm.model.refs``); nothing else on disk
changes (physical backups of version 1 keep their ``index.json``, read by the tree store's
block-index reader). The upgrade, in order:

1. open the repository (the key is proven right first; nothing is written before);
2. for each manifest ``backups/<id>.json`` still at version 1: derive its refs from what it
   stored (``refs_of_v1``) and rewrite the manifest at version 2 in one atomic put (a local
   store renames a temporary file over it; S3 replaces the object whole);
3. rewrite ``swarm-repo.json`` with ``format_version: 2``, last.

What a kill -9 leaves: between any two manifest rewrites, some manifests at version 2 and
the rest at version 1, and ``swarm-repo.json`` still at version 1, so every other command
still refuses the repository (exit 5, naming this command) and nothing can use a half
upgraded repository. Running the upgrade again skips the manifests already at version 2
(their refs were written whole, with a checksum) and converges. A manifest that cannot be
read (damaged) is left as it is and named in the result; it does not stop the upgrade
(``verify`` reports it, and prune refuses to delete anything while it is there).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from swarm.clock import Clock
from swarm.crypto.keys import KeyProvider
from swarm.errors import SwarmError
from swarm.model.ids import is_backup_id
from swarm.model.manifest import Manifest
from swarm.model.refs import DataRef, Refs, WalRange, pack_refs
from swarm.model.sources import Kind
from swarm.repo.format import BACKUPS_PREFIX, CONFIG_KEY, FORMAT_VERSION, manifest_key
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

    @property
    def changed(self) -> bool:
        return self.from_version != self.to_version

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "from_version": self.from_version, "to_version": self.to_version,
                "changed": self.changed, "upgraded": self.upgraded, "already": self.already,
                "damaged": self.damaged, "refs": self.refs}


def refs_of_v1(repo: Repository, m: Manifest) -> Refs:
    """The refs a version-1 manifest would carry, from what its backup stored.

    * ``pg-physical``: every pack its block index (or tree) names, with their data keys; its
      WAL range (timeline, start and stop segment) and the WAL data key;
    * ``objects``: each copied version stored by another backup (its inventory's ``data``
      references) and those backups' data keys;
    * every kind: its own data key and packs (``BackupWriter.commit`` adds these too).
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
            deks.add(repo.load_manifest(b).dek_id)  # a v1 manifest loads: only its checksum is checked
    return Refs.of(packs=packs, objects=objects, deks=deks, wal=wal)


def upgrade_repository(store: Store, kek: KeyProvider, clock: Clock | None = None) -> UpgradeResult:
    """Bring the repository in ``store`` to format version 2 (see the module docstring).
    A repository already at version 2 is left alone (``changed`` False)."""
    repo = Repository.open(store, kek, clock, for_upgrade=True)
    result = UpgradeResult(store.url, repo.config.format_version)
    if repo.config.format_version >= FORMAT_VERSION:
        return result
    for info in sorted(store.list(BACKUPS_PREFIX), key=lambda i: i.key):
        name = info.key[len(BACKUPS_PREFIX):]
        if not (name.endswith(".json") and is_backup_id(name[:-5])):
            continue
        backup_id = name[:-5]
        try:
            m = repo.load_manifest(backup_id)
            if m.version >= 2:
                result.already.append(backup_id)
                continue
            refs = refs_of_v1(repo, m)
        except (SwarmError, ValueError, KeyError, TypeError) as exc:
            result.damaged[backup_id] = exc.message if isinstance(exc, SwarmError) else str(exc)
            continue
        new = m.with_refs(refs)
        store.put(manifest_key(backup_id), new.to_json())  # atomic replace
        result.upgraded.append(backup_id)
        result.refs[backup_id] = {"packs": len(refs.packs), "objects": len(refs.objects), "deks": len(refs.deks),
                                  "wal": len(refs.wal)}
    c = repo.config
    store.put(CONFIG_KEY, RepoConfig(c.repo_id, FORMAT_VERSION, c.created_at, c.kek_id, c.key_check,
                                     c.features).to_json())
    return result

