"""PostgreSQL: logical and physical backups, logical restore, point-in-time recovery."""
from __future__ import annotations

from typing import Any

from swarm.ui import render


def _swept(swept: list[Any] | None) -> None:
    if swept:
        from swarm.services.workdirs import swept_message

        render.out.print(swept_message(swept), markup=False, highlight=False)


def logical_backup(res: Any, repo_url: str, *, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    _swept(res.swept)
    render.out.print(f"[bold green]backup {d['id']}[/] of {render.escape(str(d['database']))} "
                     f"(PostgreSQL {d['server_version']})")
    render.kv([("tables", f"{d['tables']} ({d['rows']} rows, counted in the dump's snapshot)"),
               ("size", render.sizes(d["size"], d["stored_size"])),  # as `backups list` / `show` label it
               ("time", f"{d['timings']['total_s']:.1f} s"), ("repository", repo_url)])


def physical_backup(res: Any, repo_url: str, *, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    render.out.print(f"[bold green]physical backup {d['id']}[/] (PostgreSQL {d['server_version']}, "
                     f"timeline {d['timeline']})")
    render.kv([("WAL", f"{d['start_lsn']} .. {d['stop_lsn']} ({d['start_wal']} .. {d['stop_wal']})"),
               ("files", d["files"]), ("size", render.sizes(d["size"], d["stored_size"])),
               ("new", f"{d['new_blocks']} blocks, {render.human_bytes(d['new_bytes'])} -> "
                       f"{render.human_bytes(d['stored_new_bytes'])} stored"),
               ("reused", f"{d['reused_blocks']} blocks, {render.human_bytes(d['reused_bytes'])}"
                          + (f" (from {d['dedup_base']})" if d["dedup_base"] else "")),
               ("time", f"{d['seconds']:.1f} s"), ("repository", repo_url)])


def logical_restore(res: Any, backup_id: str, *, as_json: bool) -> None:
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    _swept(res.swept)
    ok = "[bold green]validated[/]" if res.validated else "[bold red]ROW COUNTS DIFFER[/]"
    render.out.print(f"restored {backup_id} into {render.escape(str(d['target']))} in "
                     f"{d['timings']['total_s']:.1f} s: {ok}")
    render.table(None, ["table", "expected", "restored"],
                 [[t.table, t.expected, t.restored] for t in res.comparison.tables])
    note = "  (add the password, or use PGPASSFILE)" if d.get("swarm_db_url_password_omitted") else ""
    render.out.print(f"Point swarm at it:  export SWARM_DB_URL='{d['swarm_db_url']}'{note}", markup=False)


def pitr_plan_notes(plan: Any) -> None:
    """Which timeline a physical restore follows and why, and its warnings (stderr, always shown)."""
    render.err.print(f"following timeline {plan.timeline}: {plan.timeline_reason}", markup=False, highlight=False)
    for w in plan.warnings:
        render.err.print(f"warning: {w}", markup=False, highlight=False)


def pitr_result(res: Any, *, archive: bool, as_json: bool) -> None:
    plan = res.plan
    d = res.to_dict()
    d["archive"] = archive
    if as_json:
        render.emit_json(d)
        return
    render.out.print(f"[bold green]restored[/] backup {plan.backup.id} into {render.escape(str(plan.datadir))} "
                     f"({res.files} files, {render.human_bytes(res.bytes)})")
    archiving = ("on: it archives into the repository (--archive)" if archive else
                 "off: it does not archive into the repository (pass --archive for a new primary)")
    if res.started:
        render.kv([("target", plan.target.describe()), ("reached LSN", res.restored_lsn),
                   ("timeline", f"{res.timeline} (followed {plan.timeline})"),
                   ("last transaction", res.last_transaction_time or "none replayed after the backup's end"),
                   ("archiving", archiving),
                   ("time", f"{res.timings.get('total_s', 0):.1f} s"), ("connect", d["db_url"]),
                   ("stop it with", d["stop_command"])])
    else:
        render.out.print(f"start it with: {d['start_command']}  (recovers to {plan.target.describe()} on timeline "
                         f"{plan.timeline}, then promotes; archiving {archiving})", markup=False)
