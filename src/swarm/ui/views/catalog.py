"""``backups list`` and ``backups show``."""
from __future__ import annotations

from typing import Any

from swarm.ui import render


def backups_list(rows: list[dict[str, Any]], *, as_json: bool) -> None:
    """Every backup, a row each; damaged manifests as DAMAGED rows plus a line each on stderr."""
    if as_json:
        render.emit_json(rows)
    elif not rows:
        render.out.print("no backups yet; take one with `swarm admin backup postgres`")
    else:
        render.table(None, ["id", "kind", "finished", "of", "contents", "size", "stored"],
                     [[r["id"], r["kind"], "DAMAGED", None, None, None, None] if r.get("damaged") else
                      [r["id"], r["kind"], r["finished_at"], _of(r), _contents(r), render.human_bytes(r["size"]),
                       render.human_bytes(r["stored_size"])] for r in rows])
    bad = [r for r in rows if r.get("damaged")]
    for r in bad:
        render.err.print(f"damaged: {r['id']}: {r['problem']}", markup=False)
    if bad:
        render.err.print("hint: do not restore from a damaged backup; take a new one, and run `swarm admin verify` "
                         "on the others.", markup=False)


def backup_show(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    render.kv(_show_pairs(d))
    counts = d["source"].get("row_counts", {})
    if counts:
        render.table("row counts", ["table", "rows"], sorted(counts.items()))


def _of(r: dict[str, Any]) -> str | None:
    """What the backup is of: the database, the cluster, the bucket (and prefix), the state directory,
    or (a set) its three parts."""
    if r["kind"] == "set":
        return f"set at {r['at']}" if r.get("at") else None
    if r["kind"] == "state":
        return r.get("state_dir")
    if r["kind"] == "objects":
        return f"{r.get('bucket')}/{r.get('prefix') or ''}" if r.get("bucket") else None
    if r["kind"] == "pg-physical":
        return f"cluster {r['system_identifier']}" if r.get("system_identifier") else "cluster"
    return r.get("database")


def _contents(r: dict[str, Any]) -> str | None:
    if r["kind"] == "set":
        parts = r.get("parts") or {}
        return ", ".join(f"{k} {v}" for k, v in parts.items()) or None
    if r["kind"] == "state":
        return f"{r['files']} files" + ("" if r.get("complete", True) else " (incomplete)") if "files" in r else None
    if r["kind"] == "objects":
        return f"{r['keys']} keys" if "keys" in r else None
    if r["kind"] == "pg-physical":
        if "start_lsn" not in r:
            return None
        return f"timeline {r.get('timeline')}, LSN {r['start_lsn']}..{r.get('stop_lsn')}"
    return f"{r['tables']} tables, {r['rows']} rows" if r.get("tables") else None


def _show_pairs(d: dict[str, Any]) -> list[tuple[str, Any]]:
    """``backups show`` for a human: every kind's own facts, sizes labelled as in ``list``
    and ``backup``; nothing printed as None."""
    pairs: list[tuple[str, Any]] = [("id", d["id"]), ("kind", d["kind"]), ("started", d["started_at"]),
                                    ("finished", d["finished_at"])]
    server = f"PostgreSQL {d['server_version']}" if d.get("server_version") else None
    if server and d.get("system_identifier"):
        server += f" (system id {d['system_identifier']})"
    if d["kind"] == "objects":
        where = f"{d.get('bucket')}" + (f" on {d['endpoint']}" if d.get("endpoint") else "")
        pairs += [("bucket", where), ("prefix", d.get("prefix") or "(whole bucket)"), ("as of", d.get("at")),
                  ("keys", d.get("keys")),
                  ("data", "copied into the repository" if d.get("copy_data") else "inventory only (versions "
                                                                                   "stay in the bucket)")]
    elif d["kind"] == "pg-physical":
        wal = f"{d.get('start_wal')} .. {d.get('stop_wal')}"
        if d.get("wal_segment_count"):
            n = d["wal_segment_count"]
            wal += f" ({n} segment{'' if n == 1 else 's'})"
        pairs += [("server", server), ("timeline", d.get("timeline")),
                  ("LSN", f"{d.get('start_lsn')} .. {d.get('stop_lsn')}"), ("WAL", wal),
                  ("time", f"{d.get('start_time')} .. {d.get('stop_time')}"), ("files", d.get("files"))]
        if d.get("dedup_base"):
            pairs.append(("dedup base", d["dedup_base"]))
    else:
        pairs += [("database", d.get("database")), ("server", server)]
        if d.get("tables"):
            pairs.append(("tables", f"{d['tables']} ({d['rows']} rows, counted in the dump's snapshot)"))
        if d.get("wal_lsn"):
            pairs.append(("snapshot LSN", d["wal_lsn"]))
    pairs += [("size", render.sizes(d["size"], d["stored_size"])), ("repository objects", d["objects"])]
    return [(k, v) for k, v in pairs if v is not None]
