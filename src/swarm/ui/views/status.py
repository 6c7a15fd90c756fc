"""``swarm admin status``: the report as text, JSON or one Nagios line."""
from __future__ import annotations

import re
from typing import Any

from swarm.ui import render

_COLOUR = {"OK": "green", "WARNING": "yellow", "CRITICAL": "red", "UNKNOWN": "magenta"}


def report(rep: Any, *, as_json: bool) -> None:
    if as_json:
        render.emit_json(rep.to_dict())
        return
    render.out.print(f"status of {rep.repository} at {rep.checked_at}", markup=False)
    render.table(None, ["level", "check", "summary"], [[c.level, c.name, c.summary] for c in rep.checks])
    if rep.window:
        w = rep.window
        render.out.print(f"recoverable: {w['earliest']} .. {w['latest']}"
                         + ("" if w["continuous"] else " (at the backups' times only)"), markup=False)
    st = rep.storage
    render.out.print(f"repository: {render.human_bytes(st['stored_bytes'])} stored for {st['backups']} backups "
                     f"({render.human_bytes(st['backup_bytes'])}; dedup ratio {render.plain(st['dedup_ratio'])})",
                     markup=False)
    for h in rep.locks:
        render.out.print(f"lock: {h['mode']} held by {h['command']} (pid {h['pid']} on {h['host']}, since "
                         f"{h['since']})", markup=False)
    for w in rep.warnings:
        render.out.print(f"[yellow]warning[/]: {render.escape(w)}")
    for c in rep.problems():
        if c.hint:
            render.out.print(f"[{_COLOUR[c.level]}]{c.level}[/] {render.escape(c.name)}: "
                             f"{render.escape(c.hint)}")
    render.out.print(f"[bold {_COLOUR[rep.level]}]{rep.level}[/]")


def _label(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def nagios_line(rep: Any) -> str:
    """``SWARM <LEVEL> - <what is wrong, or that all is OK> | <perfdata>`` (Nagios plugin guidelines)."""
    bad = rep.problems()
    text = "; ".join(c.summary for c in bad) if bad else f"{len(rep.checks)} checks OK"
    perf = []
    for kind, b in sorted(rep.backups.items()):
        if b.get("age_s") is not None:
            iv = b.get("expected_interval_s")
            warn = f"{1.5 * iv:.0f}" if iv else ""
            crit = f"{2.5 * iv:.0f}" if iv else ""
            perf.append(f"age_{_label(kind)}={b['age_s']:.0f}s;{warn};{crit}")
    if rep.rpo_s is not None:
        perf.append(f"rpo={rep.rpo_s:.0f}s")
    if rep.window:
        perf.append(f"window={rep.window['seconds']:.0f}s")
    perf.append(f"repository={rep.storage['stored_bytes']}B")
    return f"SWARM {rep.level} - {text.replace('|', '/')}" + (" | " + " ".join(perf) if perf else "")


def nagios(rep: Any) -> None:
    render.out.print(nagios_line(rep), markup=False)


def nagios_unknown(message: str) -> None:
    import sys

    sys.stdout.write(f"SWARM UNKNOWN - {message.replace('|', '/')}\n")
    sys.stdout.flush()


_STEP = {"ok": "green", "failed": "bold red", "skipped": "dim", "warning": "yellow"}


def config_result(res: Any, *, as_json: bool) -> None:
    """``check config``: one line per step, the hint under each failure."""
    if as_json:
        render.emit_json(res.to_dict())
        return
    for s in res.steps:
        label = "FAILED" if s.status == "failed" else s.status
        render.out.print(f"[{_STEP[s.status]}]{label:<8}[/] {render.escape(s.name)}: {render.escape(s.message)}")
        if s.hint and s.status in ("failed", "warning"):
            render.out.print(f"    hint: {render.escape(s.hint)}")
    render.out.print("[bold green]configuration OK[/]" if res.ok else "[bold red]configuration NOT OK[/]")
