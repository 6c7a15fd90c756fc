"""Backup sets: the three stores at one point (docs/sets.md)."""
from __future__ import annotations

from typing import Any

from swarm.ui import render


def set_backup(res: Any, repo_url: str, *, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    if d["ok"]:
        render.out.print(f"[bold green]backup set {d['id']}[/] at {d['at']} ({d['method']})")
    else:
        part = next(iter(d["failed"]))
        render.err.print(f"[bold red]no backup set[/]: its {part} part failed: "
                         f"{render.escape(d['failed'][part])}")
    pairs: list[tuple[str, Any]] = [(p, d["parts"].get(p, "(not taken)")) for p in ("postgres", "objects", "state")]
    figures = d.get("figures") or {}
    if figures:
        rc = figures.get("row_counts") or {}
        pairs.append(("figures", f"{figures.get('pipelines_total', 0)} pipelines, {len(rc)} tables, "
                                 f"{sum(rc.values())} rows"
                                 + ("" if figures.get("figures_exact", True) else " (counted just before T)")))
    pairs += [("time", f"{d['timings'].get('total_s', 0):.1f} s"), ("repository", repo_url)]
    render.kv(pairs)
    if not d["ok"] and d["parts"]:
        render.err.print("the parts taken before it stay as ordinary backups (`swarm admin backups list`)")


def _bucket_line(bucket: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in (bucket.get("counts") or {}).items()) or "nothing to do"


def _finish(pairs: list[tuple[str, Any]], d: dict[str, Any]) -> None:
    """The integrity line (when the check ran) and the time, then print the pairs."""
    integrity = d.get("integrity")
    if integrity is not None:
        summary = integrity.get("summary") or {}
        bad = ", ".join(f"{k} {v['count']}" for k, v in summary.items() if isinstance(v, dict) and v.get("count"))
        pairs.append(("integrity", "the three stores agree" if integrity.get("ok") else
                      f"THE STORES DISAGREE: {bad} (`swarm admin check stack --json` for the keys)"))
    pairs.append(("time", f"{d['timings'].get('total_s', 0):.1f} s"))
    render.kv(pairs)


def _head(d: dict[str, Any], what: str) -> None:
    head = "[bold green]restored[/]" if d["ok"] else "[bold red]restore incomplete[/]"
    render.out.print(f"{head} {what}")


def set_restore(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    _head(d, f"backup set {d['set']} (as of {d['at']})")
    pg, bucket, state = d["postgres"], d["bucket"], d["state"]
    _finish([("database", f"{pg.get('target')}: " + ("row counts match" if pg.get("validated")
                                                      else "ROW COUNTS DIFFER")),
             ("bucket", _bucket_line(bucket)),
             ("state", f"{state.get('files', 0)} files into {state.get('target')}")], d)
    if pg.get("swarm_db_url"):
        render.out.print(f"point swarm at it: export SWARM_DB_URL='{pg['swarm_db_url']}'"
                         f" SWARM_OBJECTS_BUCKET={bucket.get('target', {}).get('bucket', '')}"
                         f" {state.get('point_swarm_at_it', '').removeprefix('export ')}", markup=False)


def stack_restore(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    _head(d, f"the deployment as of {d['at']}")
    pg, state = d["postgres"], d["state"]
    _finish([("database", f"recovered to LSN {pg.get('restored_lsn')} on timeline {pg.get('timeline')}, port "
                          f"{pg.get('port')}"),
             ("bucket", _bucket_line(d["bucket"])),
             ("state", f"{state.get('files', 0)} files into {state.get('target')} (snapshot "
                       f"{state.get('backup_id')}, {d.get('state_lag_s')} s before --at)")], d)
