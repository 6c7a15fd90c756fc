"""DR drills: the result, the history, and the self-contained HTML report (docs/dr-drill.md).

The report is one HTML file with inline CSS and inline SVG charts: no script, font, image or
style is fetched at view time, so it opens offline and passes a strict Content-Security-Policy.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from swarm.model.drill import RUNGS, human_duration
from swarm.ui import render


def _dur(s: float | None) -> str:
    return human_duration(s, "-")


def drill_result(d: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        render.emit_json(d)
        return
    ok = d["verdict"] == "pass"
    head = "[bold green]drill passed[/]" if ok else "[bold red]drill failed[/]"
    src = d["source"].get("set") or f"--at {d['source'].get('at')}"
    render.out.print(f"{head} {d['id']}: {src} ({d['tier']} tier){_origin(d.get('source') or {})}")
    t = d.get("targets") or {}
    pairs: list[tuple[str, Any]] = [
        ("RTO", f"{_dur(d.get('rto_s'))} (target {_dur(t.get('rto_s')) if t.get('rto_s') else 'none'})"),
        ("RPO", f"{_dur(d.get('rpo_s'))} (target {_dur(t.get('rpo_s')) if t.get('rpo_s') else 'none'}), "
                f"recovery point {d.get('recovery_point')}"),
        ("validated", "yes" if d["validated"] else f"no ({d.get('failed_check') or 'not reached'})"),
    ]
    render.kv(pairs)
    render.table("phases", ["phase", "seconds", "ok", "detail"],
                 [[p["name"], f"{p['seconds']:.2f}", "yes" if p["ok"] else "NO", p.get("detail", "")]
                  for p in d["phases"]])
    rows = []
    for name in RUNGS:
        c = d["checks"][name]
        state = {True: "ok", False: "FAILED", None: "not run"}[c["ok"]]
        rows.append([name, state, render.plain(c.get("expected")), render.plain(c.get("found")), c.get("detail", "")])
    render.table("checks", ["check", "", "expected", "found", "detail"], rows)
    for r in d.get("reasons") or []:
        render.err.print(f"[red]{render.escape(r)}[/]")
    if d.get("kept"):
        k = d["kept"]
        render.out.print("[bold]kept[/]: reach it with")
        for var, val in (k.get("env") or {}).items():
            render.out.print(f"  export {var}={val}")
        if k.get("api_url"):
            render.out.print(f"  curl {k['api_url']}/api/v1/pipelines")
        render.out.print(f"remove it with: {k['remove']}")
    if d.get("teardown", {}).get("problems"):
        render.err.print("[yellow]teardown left some resources behind[/] (`swarm admin drill cleanup` retries): "
                         + "; ".join(d["teardown"]["problems"]))


def _repository(source: dict[str, Any]) -> str:
    """Where a drill ran from: ``copy NAME`` or ``primary``, ``+ DR bucket`` with --from-dr."""
    where = f"copy {source['copy']}" if source.get("copy") else "primary"
    return where + (" + DR bucket" if source.get("from_dr") else "")


def _origin(source: dict[str, Any]) -> str:
    return f", from {_repository(source)}" if source.get("copy") or source.get("from_dr") else ""


def history(records: Sequence[dict[str, Any]], damaged: dict[str, str], *, as_json: bool) -> None:
    if as_json:
        render.emit_json({"drills": list(records), "damaged": damaged})
        return
    if not records:
        render.out.print("no drills yet (`swarm admin drill --latest`)")
    else:
        render.table("drills", ["id", "status", "verdict", "source", "repository", "tier", "RTO", "RPO", "failure"],
                     [[r.get("id"), r.get("status"), r.get("verdict"),
                       (r.get("source") or {}).get("set") or f"at {(r.get('source') or {}).get('at')}",
                       _repository(r.get("source") or {}), r.get("tier"), _dur(r.get("rto_s")), _dur(r.get("rpo_s")),
                       (r.get("error") or {}).get("error", "")] for r in records])
    for key, problem in damaged.items():
        render.err.print(f"[red]{key}[/]: {render.escape(problem)}")


def cleanup(removed: list[dict[str, Any]], problems: list[str], *, as_json: bool) -> None:
    if as_json:
        render.emit_json({"removed": removed, "problems": problems})
        return
    if not removed and not problems:
        render.out.print("nothing to clean up")
    for r in removed:
        render.out.print(f"removed drill {r['id']}: bucket {r.get('bucket')}, database {r.get('database')}, "
                         f"{r.get('directory')}")
    for p in problems:
        render.err.print(f"[red]{render.escape(p)}[/]")


# ---- the HTML report ---------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2330;max-width:1100px}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.1rem;margin-top:2rem}
.pass{color:#177245} .fail{color:#b3261e} .muted{color:#6b7280}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;font-weight:600}
.badge.pass{background:#177245} .badge.fail{background:#b3261e}
table{border-collapse:collapse;margin-top:.5rem;font-size:.9rem}
td,th{border-bottom:1px solid #e5e7eb;padding:.3rem .6rem;text-align:left;vertical-align:top} th{background:#f3f4f6}
.kpis{display:flex;gap:1rem;flex-wrap:wrap} .kpi{border:1px solid #e5e7eb;border-radius:.4rem;padding:.6rem 1rem}
.kpi b{display:block;font-size:1.4rem} svg{background:#fff;border:1px solid #e5e7eb;border-radius:.4rem}
svg text{font-family:system-ui,sans-serif}
"""

_COLORS = {"provision": "#6366f1", "database": "#0ea5e9", "objects": "#14b8a6", "state": "#f59e0b", "api": "#8b5cf6",
           "validation": "#10b981"}


def _e(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def _timeline(phases: Sequence[dict[str, Any]], width: int = 900) -> str:
    """A Gantt chart of the phases (from the drill's start), as inline SVG."""
    if not phases:
        return '<p class="muted">no phase ran</p>'
    end = max(p.get("started_s", 0) + p["seconds"] for p in phases) or 1.0
    left, row = 110, 26
    h = row * len(phases) + 30
    plot = width - left - 70
    out = [f'<svg id="timeline" role="img" aria-label="phase timeline" width="{width}" height="{h}" '
           f'viewBox="0 0 {width} {h}">']
    for i, p in enumerate(phases):
        y = 8 + i * row
        x = left + plot * p.get("started_s", 0) / end
        w = max(2.0, plot * p["seconds"] / end)
        color = _COLORS.get(p["name"], "#64748b") if p["ok"] else "#b3261e"
        out.append(f'<text x="{left - 8}" y="{y + 15}" text-anchor="end" font-size="12">{_e(p["name"])}</text>')
        out.append(f'<rect class="bar" x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 8}" fill="{color}" rx="3">'
                   f'<title>{_e(p["name"])}: {p["seconds"]:.2f} s</title></rect>')
        out.append(f'<text x="{x + w + 4:.1f}" y="{y + 15}" font-size="11" fill="#374151">{p["seconds"]:.2f} s</text>')
    out.append(f'<text x="{left}" y="{h - 6}" font-size="11" fill="#6b7280">0 s</text>')
    out.append(f'<text x="{left + plot}" y="{h - 6}" font-size="11" fill="#6b7280" text-anchor="end">{end:.1f} s'
               '</text>')
    out.append("</svg>")
    return "".join(out)


def _series_chart(chart_id: str, title: str, points: Sequence[tuple[str, float | None, bool]], unit: str,
                  target: float | None = None, width: int = 900, height: int = 220) -> str:
    """A column chart over the drill history (one column per drill, red when it failed), with the
    tier's target as a dashed line; inline SVG."""
    vals = [v for _l, v, _ok in points if v is not None]
    biggest = max([*vals, 1e-9])
    off_scale = target is not None and target > 3 * biggest  # a 4 h target would flatten 5 s columns
    top = max([biggest] + ([] if off_scale or target is None else [target])) * 1.15
    left, bottom, pad = 60, 30, 10
    plot_w, plot_h = width - left - pad, height - bottom - pad - 18
    out = [f'<svg id="{chart_id}" class="chart" role="img" aria-label="{_e(title)}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}">',
           f'<text x="{left}" y="14" font-size="13" font-weight="600">{_e(title)}</text>']
    y0 = pad + 18 + plot_h
    out.append(f'<line x1="{left}" y1="{y0}" x2="{width - pad}" y2="{y0}" stroke="#9ca3af"/>')
    for frac in (0.0, 0.5, 1.0):
        y = y0 - plot_h * frac
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end" fill="#6b7280">'
                   f'{_fmt(top / 1.15 * frac * 1.15, unit)}</text>')
    n = max(1, len(points))
    slot = plot_w / n
    for i, (label, v, ok) in enumerate(points):
        x = left + i * slot + slot * 0.15
        w = max(1.0, slot * 0.7)
        if v is None:
            continue
        bh = plot_h * v / top
        out.append(f'<rect class="bar" x="{x:.1f}" y="{y0 - bh:.1f}" width="{w:.1f}" height="{bh:.1f}" '
                   f'fill="{"#2563eb" if ok else "#b3261e"}"><title>{_e(label)}: {_fmt(v, unit)}</title></rect>')
    if target is not None and off_scale:
        out.append(f'<text x="{width - pad}" y="14" font-size="11" text-anchor="end" fill="#177245">'
                   f'target {_fmt(target, unit)}: every drill far below it</text>')
    elif target is not None:
        ty = y0 - plot_h * target / top
        out.append(f'<line x1="{left}" y1="{ty:.1f}" x2="{width - pad}" y2="{ty:.1f}" stroke="#b3261e" '
                   f'stroke-dasharray="6 4"/><text x="{width - pad}" y="{ty - 4:.1f}" font-size="10" '
                   f'text-anchor="end" fill="#b3261e">target {_fmt(target, unit)}</text>')
    out.append(f'<text x="{left}" y="{height - 8}" font-size="10" fill="#6b7280">{n} drill(s), oldest first</text>')
    out.append("</svg>")
    return "".join(out)


def _fmt(v: float, unit: str) -> str:
    if unit == "s":
        return _dur(v)
    return render.human_bytes(v)


def html_report(d: dict[str, Any], records: Sequence[dict[str, Any]]) -> str:
    """The report of drill ``d`` with charts over ``records`` (the history, ``d`` included)."""
    ok = d["verdict"] == "pass"
    cls = "pass" if ok else "fail"
    t = d.get("targets") or {}
    src = d["source"].get("set") or f"--at {d['source'].get('at')}"
    hist = [r for r in records if r.get("status") != "running"]
    if not any(r.get("id") == d["id"] for r in hist):
        hist = [*hist, d]
    pts = [(str(r.get("id")), r.get("rto_s"), r.get("verdict") == "pass") for r in hist]
    rpo = [(str(r.get("id")), r.get("rpo_s"), r.get("verdict") == "pass") for r in hist]
    size = [(str(r.get("id")), float(sum((r.get("restored_bytes") or {}).values())), r.get("verdict") == "pass")
            for r in hist]
    checks = "".join(
        f'<tr><td>{_e(n)}</td><td class="{ {True: "pass", False: "fail", None: "muted"}[c["ok"]] }">'
        f'{ {True: "ok", False: "FAILED", None: "not run"}[c["ok"]] }</td><td>{_e(render.plain(c.get("expected")))}'
        f'</td><td>{_e(render.plain(c.get("found")))}</td><td>{_e(c.get("detail"))}</td></tr>'
        for n, c in ((n, d["checks"][n]) for n in RUNGS))
    reasons = "".join(f"<li>{_e(r)}</li>" for r in d.get("reasons") or [])
    phases = "".join(f'<tr><td>{_e(p["name"])}</td><td>{p["seconds"]:.2f} s</td>'
                     f'<td class="{"pass" if p["ok"] else "fail"}">{"ok" if p["ok"] else "failed"}</td>'
                     f'<td>{_e(p.get("detail"))}</td></tr>' for p in d["phases"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>swarm DR drill {_e(d['id'])}: {_e(d['verdict'])}</title><style>{_CSS}</style></head>
<body>
<h1>DR drill {_e(d['id'])} <span id="verdict" class="badge {cls}">{_e(d['verdict'].upper())}</span></h1>
<p class="muted">{_e(src)} &middot; {_e(d['tier'])} tier &middot; started {_e(d['started_at'])} &middot;
finished {_e(d.get('finished_at'))}{' &middot; from the DR bucket' if d['source'].get('from_dr') else ''}\
{(' &middot; from copy ' + _e(d['source']['copy'])) if d['source'].get('copy') else ''}</p>
<div class="kpis">
<div class="kpi"><span class="muted">RTO</span>
<b id="rto" class="{cls if t.get('rto_s') else ''}">{_dur(d.get('rto_s'))}</b>
<span class="muted">target {_dur(t.get('rto_s')) if t.get('rto_s') else 'none'}</span></div>
<div class="kpi"><span class="muted">RPO</span><b id="rpo">{_dur(d.get('rpo_s'))}</b>
<span class="muted">target {_dur(t.get('rpo_s')) if t.get('rpo_s') else 'none'}</span></div>
<div class="kpi"><span class="muted">recovery point</span>
<b style="font-size:1rem">{_e(d.get('recovery_point'))}</b></div>
<div class="kpi"><span class="muted">validated</span><b>{'yes' if d['validated'] else 'no'}</b></div>
</div>
{f'<ul class="fail">{reasons}</ul>' if reasons else ''}
<h2>Phase timeline</h2>
{_timeline(d['phases'])}
<table><tr><th>phase</th><th>time</th><th></th><th>detail</th></tr>{phases}</table>
<h2>Validation ladder</h2>
<table><tr><th>check</th><th></th><th>expected</th><th>found</th><th>detail</th></tr>{checks}</table>
<h2>History</h2>
{_series_chart('chart-rto', 'RTO per drill', pts, 's', t.get('rto_s'))}
{_series_chart('chart-rpo', 'RPO per drill', rpo, 's', t.get('rpo_s'))}
{_series_chart('chart-size', 'Restored size per drill', size, 'bytes')}
<p class="muted">Generated by swarm admin drill; self-contained (no network needed to view).</p>
</body></html>
"""
