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
