"""The scheduler's output: its log (JSON lines on stdout), the job history, rendered units."""
from __future__ import annotations

import json
import sys
from typing import Any

from swarm.ui import render


def log_line(event: dict[str, Any]) -> None:
    """One scheduler event as one JSON line on stdout, flushed (a log collector reads it at once)."""
    sys.stdout.write(json.dumps(event, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


def history(runs: list[dict[str, Any]], warnings: list[str], *, as_json: bool) -> None:
    if as_json:
        render.emit_json({"runs": runs, "warnings": warnings})
        return
    if not runs:
        render.out.print("no job history yet; `swarm admin scheduler run` records every run in the repository")
    else:
        render.table(None, ["job", "slot", "attempt", "trigger", "outcome", "ended", "error", "backup"],
                     [[r["job"], r["slot"], r.get("attempt"), r.get("trigger"),
                       r["outcome"] + ("" if r.get("final", True) else " (retrying)"), r.get("ended_at"),
                       r.get("error_code"), r.get("backup_id")] for r in runs])
    for w in warnings:
        render.out.print(f"[yellow]warning[/]: {render.escape(w)}")


def rendered(fmt: str, text: str, *, as_json: bool) -> None:
    if as_json:
        render.emit_json({"format": fmt, "text": text})
        return
    sys.stdout.write(text)
    sys.stdout.flush()
