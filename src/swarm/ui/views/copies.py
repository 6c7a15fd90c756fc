"""Views of ``swarm admin repo copy``: what was (or would be) copied to each copy, and each copy's lag."""
from __future__ import annotations

from typing import Any

from swarm.ui import render

_WHAT = {"config": "repository config", "secret": "repository key files", "cluster": "cluster identity",
         "dek": "data keys", "data": "data objects", "wal": "WAL files", "manifest": "manifests",
         "record": "restore points, tags, verify records, tombstones"}


def copy_outcome(o: dict[str, Any]) -> None:
    """One copy's outcome as text (stdout; problems and errors on stderr)."""
    if o["error"]:
        e = o["error"]
        render.err.print(f"{o['name']} ({o['url']}): FAILED: {e['message']}"
                         + (f"\n  hint: {e['hint']}" if e.get("hint") else ""), markup=False)
        return
    r = o["result"]
    dry = r["dry_run"]
    rows = [[_WHAT.get(w, w), t["files"], render.human_bytes(t["bytes"])] for w, t in sorted(r["totals"].items())]
    head = f"{o['name']} ({o['url']})" + (" [own key]" if r["rewrap"] else "")
    if not rows:
        render.out.print(f"{head}: up to date ({r['already_copied']} backups already there)", markup=False)
    else:
        render.table(f"{head}: {'would copy' if dry else 'copied'}", ["what", "files", "bytes"], rows)
        done = r["backups"] if dry else r["copied_backups"]
        if done:
            render.out.print(f"backups {'to copy' if dry else 'copied'}: {', '.join(done)}", markup=False)
        if not dry:
            render.out.print(f"copied {r['copied_files']} files, {render.human_bytes(r['copied_bytes'])} in "
                             f"{r['seconds']:.1f} s; every one read back and checked", markup=False)
    for bid, why in sorted(r["skipped"].items()):
        render.err.print(f"not copied: {bid}: {why}", markup=False)
    for key, why in sorted(r["problems"].items()):
        render.err.print(f"problem: {key}: {why}", markup=False)


def copy_run(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    for o in d["copies"]:
        copy_outcome(o)


def copy_lags(lags: list[dict[str, Any]], *, as_json: bool) -> None:
    """Each copy's lag behind the primary (``status``)."""
    if as_json:
        render.emit_json({"copies": lags})
        return
    render.table("repository copies", ["copy", "level", "lag", "newest WAL", "missing backups"],
                 [[c["name"], c["level"], "never copied" if c["lag_seconds"] is None else f"{c['lag_seconds']:.0f} s",
                   c["copy_newest_wal"] or "-", len(c["missing_backups"])] for c in lags])
