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
        policy = any("keep" in r for r in rows)
        cols = ["id", "kind", "finished", "of", "contents", "size", "stored"] + (["keep", "until"] if policy else [])
        render.table(None, cols,
                     [[r["id"], r["kind"], "DAMAGED", None, None, None, None] + ([None, None] if policy else [])
                      if r.get("damaged") else
                      [r["id"], r["kind"], r["finished_at"], _of(r), _contents(r), render.human_bytes(r["size"]),
                       render.human_bytes(r["stored_size"])] + ([_keep(r), _until(r)] if policy else [])
                      for r in rows])
    bad = [r for r in rows if r.get("damaged")]
    for r in bad:
        render.err.print(f"damaged: {r['id']}: {r['problem']}", markup=False)
    if bad:
        render.err.print("hint: do not restore from a damaged backup; take a new one, and run `swarm admin verify` "
                         "on the others.", markup=False)


def _keep(r: dict[str, Any]) -> str | None:
    if "keep" not in r:
        return None
    flags = [f"tag {t}" for t in r.get("tags", [])] + (["VERIFY FAILED"] if r.get("verified") == "failed" else [])
    return ("keep" if r["keep"] else "remove") + (f" ({', '.join(flags)})" if flags else "")


def _until(r: dict[str, Any]) -> str | None:
    """When ``keep_within`` stops keeping it, or what keeps it otherwise (the first reason)."""
    if not r.get("keep"):
        return "next prune" if "keep" in r else None
    if r.get("until"):
        return str(r["until"])
    return str(r["reasons"][0]) if r.get("reasons") else None


def backup_tags(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    tags = ", ".join(d["tags"]) or "(none)"
    render.out.print(f"{d['id']}: tags {tags}" + ("" if d["changed"] else " (unchanged)"), markup=False)


def prune_result(d: dict[str, Any], *, as_json: bool) -> None:
    """What a prune removed (or, with ``dry_run``, would remove) and why, bytes freed, time."""
    if as_json:
        render.emit_json(d)
        return
    dry = d["dry_run"]
    verb = "would remove" if dry else "removed"
    removing = [b for b in d["backups"] if not b["keep"]]
    if removing:
        render.table(f"backups {verb} ({len(removing)} of {len(d['backups'])})", ["id", "kind", "why"],
                     [[b["id"], b["kind"], "; ".join(b["reasons"])] for b in removing])
    else:
        render.out.print(f"backups: none to remove; the policy keeps all {len(d['backups'])}", markup=False)
    if d["finish"]:
        render.out.print(f"interrupted deletions {'to finish' if dry else 'finished'}: {', '.join(d['finish'])}",
                         markup=False)
    totals = d["totals"]
    names = {"data": "data objects (packs, dumps, indexes, leftovers of interrupted backups)",
             "dek": "data keys", "wal": "WAL files"}
    rows = [[names[w], t["files"], render.human_bytes(t["bytes"])] for w, t in sorted(totals.items())]
    if rows:
        render.table(f"unreferenced files {verb}", ["what", "files", "bytes"], rows)
    reasons: dict[str, int] = {}
    for r in d["removals"]:
        reasons[f"{r['what']}: {r['reason']}"] = reasons.get(f"{r['what']}: {r['reason']}", 0) + 1
    for why, n in sorted(reasons.items()):
        render.out.print(f"  {n} × {why}", markup=False)
    rp = d.get("repack") or {}
    if rp.get("packs"):
        render.out.print(f"repack (--max-unused {rp['max_unused']}): {'would rewrite' if dry else 'rewrote'} "
                         f"{len(rp['packs'])} pack(s), {render.human_bytes(rp['bytes_rewritten'])} written to free "
                         f"{render.human_bytes(rp['bytes_freed'])}; unused space "
                         f"{render.human_bytes(rp['unused_before'])} → {render.human_bytes(rp['unused_after'])}",
                         markup=False)
    elif rp.get("unused_before"):
        render.out.print(f"repack: none; {render.human_bytes(rp['unused_before'])} unused in packs is within "
                         f"--max-unused {rp['max_unused']}", markup=False)
    before, after = d.get("size_before") or {}, d.get("size_after") or {}
    if before:
        render.table(f"repository size by kind ({'now → after the plan' if dry else 'before → after'})",
                     ["kind", "before", "after"],
                     [[k, render.human_bytes(before.get(k, 0)), render.human_bytes(after.get(k, 0))]
                      for k in sorted(set(before) | set(after))])
    for why in d["held_back"]:
        render.err.print(f"held back: {why}", markup=False)
    freed = d["bytes"] + rp.get("bytes_freed", 0) if dry else d["bytes_freed"]
    render.out.print(f"{'would free' if dry else 'freed'} {render.human_bytes(freed)} in {d['seconds']:.1f} s"
                     + (" (dry run: nothing was changed)" if dry else ""), markup=False)


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
