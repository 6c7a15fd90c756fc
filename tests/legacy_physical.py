"""The physical-backup writer of format version 1 (``index.json``), kept for tests only.

Backups it writes are what swarm wrote before physical backups moved onto the tree store:
packs of fixed blocks, and ``index.json`` = ``{"version": 1, "block_size", "files":
[{"path", "type", "mode", "mtime", "size", "blocks"|"link"}], "blocks": {id: location}}``.
It reads the files from a directory (a materialised backup) instead of pg_basebackup's tar
stream; the block layout is the same as the old streaming writer's.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from swarm.model.manifest import Manifest
from swarm.repo import Repository
from swarm.repo.packs import BLOCK_SIZE, Location, PackWriter, block_id


def write_legacy_physical(repo: Repository, src: Path, source: dict[str, Any], *,
                          known: dict[str, Location] | None = None, block_size: int = BLOCK_SIZE,
                          version_1: bool = False) -> Manifest:
    """Write directory ``src`` as a ``pg-physical`` backup in the ``index.json`` format.

    ``source`` is the manifest's source (``format`` is set to ``blocks``); ``known`` are
    blocks of earlier backups to reference instead of storing. With ``version_1`` the
    manifest is left at version 1 (no refs), as swarm wrote it before format version 2;
    otherwise it is then given its refs as ``swarm admin repo upgrade`` does.
    """
    known = known or {}
    writer = repo.begin_backup("pg-physical")
    packs = PackWriter(repo_id=repo.config.repo_id, backup_id=writer.id, dek_id=writer.dek_id, dek=writer.dek,
                       upload=writer.put_pack, workers=1)
    dedup = repo.dedup_key()
    files: list[dict[str, Any]] = []
    used: dict[str, Location] = {}
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            p = Path(dirpath) / name
            rel = p.relative_to(src).as_posix()
            st = p.lstat()
            entry: dict[str, Any] = {"path": rel, "mode": stat.S_IMODE(st.st_mode), "mtime": int(st.st_mtime)}
            if stat.S_ISLNK(st.st_mode):
                entry.update(type="l", link=os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                entry["type"] = "d"
            else:
                data = p.read_bytes()
                ids = []
                for off in range(0, len(data), block_size):
                    plain = data[off:off + block_size]
                    bid = block_id(dedup, plain)
                    ids.append(bid)
                    if bid not in used:
                        used[bid] = known[bid] if bid in known else packs.add(bid, plain)
                entry.update(type="f", size=len(data), blocks=ids)
            files.append(entry)
    packs.close()
    index = {"version": 1, "block_size": block_size, "files": files,
             "blocks": {bid: loc.to_list() for bid, loc in used.items()}}
    writer.put_object("index.json", [json.dumps(index, separators=(",", ":")).encode()])
    src_doc = {**source, "format": "blocks"}
    from swarm import __version__
    from swarm.clock import utc_iso
    from swarm.repo.format import manifest_key

    m = Manifest(id=writer.id, kind="pg-physical", started_at=writer.started_at,
                 finished_at=utc_iso(repo.clock.now()), dek_id=writer.dek_id, objects=tuple(writer.entries),
                 source=src_doc, tool_version=__version__, version=1)
    repo._store.put(manifest_key(writer.id), m.to_json(), if_absent=True)
    if not version_1:  # as `swarm admin repo upgrade` leaves it
        from swarm.repo.upgrade import refs_of_v1

        m = m.with_refs(refs_of_v1(repo, m))
        repo._put_sealed(manifest_key(writer.id), m.to_json())
    return m
