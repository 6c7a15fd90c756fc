"""The WAL archive: status, restore points, the streamer's summary."""
from __future__ import annotations

from typing import Any

from swarm.ui import render


def archive_status(st: Any, *, as_json: bool) -> None:
    if as_json:
        render.emit_json(st.to_dict())
        return
    render.out.print(f"WAL archive of cluster {st.system_identifier} in {st.repo}", markup=False)
    render.table(None, ["timeline", "segments", "oldest", "newest", "archived to", "partial", "at"],
                 [[t["timeline"], t["segments"], t["oldest"], t["newest"], t["newest_end_lsn"], t["partial"] or "",
                   t["newest_archived_at"] or ""] for t in st.timelines])
    if st.server:
        sv = st.server
        age = sv["seconds_since_last_archive"]
        render.out.print(f"server at {sv['lsn']} (timeline {sv['timeline']}): {render.human_bytes(sv['lag_bytes'])}"
                         f" not archived yet; last archive {'never' if age is None else f'{age:.0f} s ago'}",
                         markup=False)
    for g in st.gaps:
        render.out.print(f"[red]gap[/]: {g['missing']} is missing")
    for c in st.conflicts:
        render.out.print(f"[red]conflict[/]: {render.escape(c)} (a different file under an archived name)")
    for p in st.problems:
        render.out.print(f"[red]problem[/]: {render.escape(p)}")
    for w in st.warnings:
        render.out.print(f"[yellow]warning[/]: {render.escape(w)}")
    render.out.print("[bold green]OK[/]" if st.ok else "[bold red]NOT OK[/]")


def restore_point(point: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(point)
        return
    state = "archived" if point.get("archived") else "not archived yet (check archive_command)"
    moved = f" (moved from LSN {point['replaced']['lsn']})" if point.get("replaced") else ""
    render.out.print(f"restore point {point['name']} at LSN {point['lsn']} ({point['time']}), timeline "
                     f"{point['tli']}{moved}; WAL switched, segment {point.get('segment')} {state}", markup=False)


def restore_points(points: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        render.emit_json({"restore_points": points})
        return
    if not points:
        render.out.print("no restore points recorded; create one with `swarm admin restore-point NAME`")
        return
    render.table(None, ["name", "LSN", "timeline", "time"],
                 [[p["name"], "DAMAGED" if p.get("damaged") else p.get("lsn"), p.get("tli", ""),
                   p.get("problem") or p.get("time")] for p in points])


def stream_summary(res: Any, *, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    render.kv([(k.replace("_", " "), v) for k, v in d.items()])
