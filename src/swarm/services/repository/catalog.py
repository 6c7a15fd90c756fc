"""List and describe backups.

One definition of a backup's sizes, used by ``backup``, ``backups list`` and ``backups show``
(text and JSON alike):

* ``size``: the plain (uncompressed, unencrypted) bytes of what the backup holds, the bytes a
  restore brings back: the dump for a logical backup, every file of the data directory for a
  physical one (blocks shared with an earlier backup included), the object versions the
  inventory pins for an objects backup (copied into the repository or not);
* ``stored_size``: the bytes this backup added to the repository (compressed and encrypted;
  data shared with earlier backups is counted once, by the backup that stored it).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from swarm.clock import utc_iso
from swarm.errors import IntegrityError
from swarm.model.manifest import Manifest
from swarm.model.retention import Policy, decide
from swarm.model.sources import Kind, ObjectsSource, PhysicalSource
from swarm.repo import Repository

LOGICAL, PHYSICAL, OBJECTS = Kind.PG_LOGICAL, Kind.PG_PHYSICAL, Kind.OBJECTS

_PHYSICAL_FIELDS = ("system_identifier", "timeline", "start_lsn", "stop_lsn", "start_wal", "stop_wal",
                    "start_time", "stop_time", "files", "dedup_base")
_SET_FIELDS = ("at", "method", "parts", "restore_point")
_STATE_FIELDS = ("state_dir", "files", "complete")
_OBJECTS_FIELDS = ("bucket", "endpoint", "prefix", "at", "keys", "copy_data")


def backup_size(m: Manifest) -> int:
    """``size`` as defined above."""
    try:
        src = m.typed_source()
    except IntegrityError:  # listed anyway; its own objects are what it holds for sure
        return m.size
    if isinstance(src, PhysicalSource) and src.size is not None:
        return src.size
    if isinstance(src, ObjectsSource) and src.bytes is not None:
        return src.bytes
    return m.size


def summary(m: Manifest) -> dict[str, Any]:
    """A backup's facts for ``list`` and ``show``: the common ones, then its kind's own
    (physical: timeline, LSNs, WAL range; objects: bucket, prefix, key count). A field the
    manifest does not have is absent, never ``None`` made up."""
    src = m.source
    counts = src.get("row_counts", {})
    out: dict[str, Any] = {"id": m.id, "kind": m.kind, "started_at": m.started_at, "finished_at": m.finished_at,
                           "size": backup_size(m), "stored_size": m.stored_size, "objects": len(m.objects),
                           "database": src.get("database"), "server_version": src.get("server_version"),
                           "tables": len(counts), "rows": sum(counts.values())}
    fields = {PHYSICAL: _PHYSICAL_FIELDS, OBJECTS: _OBJECTS_FIELDS, Kind.SET: _SET_FIELDS,
              Kind.STATE: _STATE_FIELDS}.get(m.kind, ("system_identifier", "wal_lsn"))
    for key in fields:
        if key in src:
            out[key] = src[key]
    if m.kind == PHYSICAL and isinstance(src.get("wal_segments"), list):
        out["wal_segment_count"] = len(src["wal_segments"])
    return out


def list_backups(repo: Repository, policy: Policy | None = None, *, now: datetime | None = None,
                 ) -> list[dict[str, Any]]:
    """Every backup, oldest first; a damaged manifest is listed with ``damaged`` and its
    problem instead of hiding the rest, and so is a backup this client saw that was deleted outside
    swarm or put back after prune (``rollback`` names which).

    With ``policy``, each row also says whether retention keeps it (``keep``), why (``reasons``),
    until when ``keep_within`` keeps it (``until``, None when another rule keeps it), its ``tags``
    and its latest verify outcome (``verified``: ``good``, ``failed`` or None)."""
    from swarm.services.maintenance.prune import candidates

    damaged: dict[str, str] = {}
    manifests = repo.list_backups(damaged)
    rows = [summary(m) for m in manifests]
    if policy is not None:
        bad: dict[str, str] = {}
        cands = candidates(manifests, repo.verifications(bad), repo.tags(bad))
        by_id = {d.id: d for d in decide(cands, policy, now or repo.clock.now())}
        for row, c in zip(rows, cands, strict=True):
            d = by_id[c.id]
            row.update(keep=d.keep, reasons=list(d.reasons), until=utc_iso(d.until) if d.until else None,
                       tags=sorted(c.tags), verified=c.verified)
    for backup_id, problem in damaged.items():
        rows.append({"id": backup_id, "kind": backup_id.split("-", 1)[1].rsplit("-", 1)[0], "damaged": True,
                     "problem": problem})
    for f in repo.rollback:  # deleted outside swarm, or put back after prune (swarm.model.catalogue)
        if f.kind.startswith(("backup-", "tombstone-")) and f.name not in damaged:
            rows.append({"id": f.name, "kind": f.name.split("-", 1)[1].rsplit("-", 1)[0], "damaged": True,
                         "problem": f.problem, "rollback": f.kind})
    return sorted(rows, key=lambda r: r["id"])


def show_backup(repo: Repository, backup_id: str) -> dict[str, Any]:
    m = repo.load_manifest(backup_id)
    out = summary(m)
    out["source"] = m.source
    out["dek_id"] = m.dek_id
    if m.refs is not None:
        out["refs"] = m.refs.to_dict()
    out["tool_version"] = m.tool_version
    out["objects_list"] = [o.to_dict() for o in m.objects]
    return out


def rollback_findings(repo: Repository) -> list[dict[str, str]]:
    """Signs of rollback or deletion (``swarm.model.catalogue``): every manifest and restore point
    listed and compared with what this client saw before."""
    repo.list_backups(damaged={})
    repo.list_restore_points(damaged={})
    return [f.to_dict() for f in repo.rollback]


def accept_rollback(repo: Repository, *, dry_run: bool = False) -> dict[str, Any]:
    """Accept what the repository holds now as what this client remembers, after the operator has
    reviewed the findings (``accepted``); with ``dry_run`` only report them. One local file is
    replaced atomically (``swarm.repo.watch``): a kill -9 leaves the old memory or the new."""
    found = rollback_findings(repo)
    if not dry_run and found:
        repo.accept_catalogue()
    return {"url": repo.url, "findings": found, "accepted": bool(found) and not dry_run, "dry_run": dry_run}


def tag_backup(repo: Repository, backup_id: str, tag: str, *, remove: bool = False) -> dict[str, Any]:
    """Add ``tag`` to backup ``backup_id`` (or remove it): a tagged backup is never removed by prune
    (``[retention] keep_tags``; any tag by default). BackupNotFound if there is no such backup."""
    current = set(repo.tags(damaged={}).get(backup_id, []))
    changed = (tag in current) if remove else (tag not in current)
    new = repo.set_tags(backup_id, (current - {tag}) if remove else (current | {tag}))
    return {"id": backup_id, "tags": new, "changed": changed}
