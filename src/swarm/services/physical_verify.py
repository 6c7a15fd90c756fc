"""Verify a physical backup (called by ``verify_backup`` for ``pg-physical`` manifests).

1. every pack this backup wrote: its stored bytes hash to the manifest's SHA-256, and every
   frame in it opens (AEAD under the backup's data key, bound to the block id) and its
   plaintext's keyed hash equals the block id;
2. every file is re-assembled into a temporary directory from its blocks (also those
   stored by earlier backups, read by byte range) and ``pg_verifybackup --no-parse-wal``
   checks each file's size and checksum against the backup's own ``backup_manifest``;
3. the WAL the backup needs to become consistent (the segments from its start to its stop
   LSN) is in the repository and every such file decrypts.

Problems are collected (the check goes on), each naming the pack, file or segment.
"""
from __future__ import annotations

import hashlib
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from swarm.errors import SwarmError
from swarm.model.manifest import Manifest
from swarm.repo import Repository
from swarm.repo.format import data_key
from swarm.repo.packs import Location, split_frames
from swarm.services.physical_backup import INDEX, load_index
from swarm.services.reporting import NullReporter, Reporter
from swarm.storage.base import ObjectNotFound


def verify_physical(repo: Repository, manifest: Manifest, result: Any, *, work_dir: str | None = None,
                    reporter: Reporter | None = None, bindir: str | None = None) -> None:
    reporter = reporter or NullReporter()
    try:
        index = load_index(repo, manifest)
    except SwarmError as exc:
        result.problem(INDEX, exc.message)
        return
    result.objects_checked += 1
    blocks = {bid: Location.from_list(v) for bid, v in index["blocks"].items()}
    by_place = {(loc.pack, loc.offset): bid for bid, loc in blocks.items() if loc.backup_id == manifest.id}
    packs = [o for o in manifest.objects if o.name.startswith("packs/")]
    reporter.stage(f"checking {len(packs)} packs")
    for entry in packs:
        key = data_key(manifest.id, entry.name)
        try:
            data = repo.store.get(key)
        except ObjectNotFound:
            result.problem(entry.name, "missing from the repository")
            continue
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            result.problem(entry.name, "SHA-256 of the stored pack differs from the manifest's")
        try:
            frames = split_frames(data, where=entry.name)
        except SwarmError as exc:
            result.problem(entry.name, exc.message)
            continue
        number = int(entry.name.split("/")[-1].split(".")[0])
        for offset, length in frames:
            bid = by_place.get((number, offset))
            if bid is None:
                result.problem(entry.name, f"frame at byte {offset} is not referenced by the index")
                continue
            try:
                repo.open_block(data[offset:offset + length], blocks[bid], bid)
            except SwarmError as exc:
                result.problem(entry.name, exc.message)
        result.objects_checked += 1
        result.bytes_checked += entry.size
    reporter.stage("re-assembling files and running pg_verifybackup")
    with tempfile.TemporaryDirectory(prefix="swarm-verify-phys-", dir=work_dir) as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        try:
            from swarm.services.pitr import materialize_physical

            materialize_physical(repo, manifest, root, reporter=reporter)
        except SwarmError as exc:
            result.problem("files", exc.message)
        else:
            from swarm.sources.postgres.binaries import tool

            r = subprocess.run([tool("pg_verifybackup", bindir), "--no-parse-wal", str(root)], capture_output=True,
                               text=True, check=False, timeout=3600)
            if r.returncode != 0:
                for line in (r.stderr or r.stdout).strip().splitlines()[:20]:
                    result.problem("pg_verifybackup", line)
    reporter.stage("checking the backup's WAL is archived")
    for name in manifest.source.get("wal_segments", []):
        try:
            data = repo.get_wal(name)
            if len(data) != int(manifest.source.get("segment_size") or len(data)):
                result.problem(name, f"archived segment has {len(data)} bytes")
        except ObjectNotFound:
            result.problem(name, "WAL segment needed to make the backup consistent is missing from the repository")
        except SwarmError as exc:
            result.problem(name, exc.message)
