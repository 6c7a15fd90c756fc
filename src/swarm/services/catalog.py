"""List and describe backups."""
from __future__ import annotations

from typing import Any

from swarm.model.manifest import Manifest
from swarm.repo import Repository


def summary(m: Manifest) -> dict[str, Any]:
    src = m.source
    out = {"id": m.id, "kind": m.kind, "started_at": m.started_at, "finished_at": m.finished_at,
           "size": m.size, "stored_size": m.stored_size, "objects": len(m.objects),
           "database": src.get("database"), "server_version": src.get("server_version"),
           "tables": len(src.get("row_counts", {})), "rows": sum(src.get("row_counts", {}).values())}
    for key in ("timeline", "start_lsn", "stop_lsn", "stop_time", "system_identifier"):
        if key in src:
            out[key] = src[key]
    return out


def list_backups(repo: Repository) -> list[dict[str, Any]]:
    """Every backup, oldest first; a damaged manifest is listed with ``damaged`` and its
    problem instead of hiding the rest."""
    damaged: dict[str, str] = {}
    rows = [summary(m) for m in repo.list_backups(damaged)]
    for backup_id, problem in damaged.items():
        rows.append({"id": backup_id, "kind": backup_id.split("-", 1)[1].rsplit("-", 1)[0], "damaged": True,
                     "problem": problem})
    return sorted(rows, key=lambda r: r["id"])


def show_backup(repo: Repository, backup_id: str) -> dict[str, Any]:
    m = repo.load_manifest(backup_id)
    out = summary(m)
    out["source"] = m.source
    out["dek_id"] = m.dek_id
    out["tool_version"] = m.tool_version
    out["objects_list"] = [o.to_dict() for o in m.objects]
    return out
