"""``swarm admin backups``: what the repository holds."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.errors import ExitCode
from swarm.ui import render

app = typer.Typer(help="List and inspect backups.", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Every complete backup, oldest first (interrupted ones never appear).

    A damaged manifest is listed as DAMAGED (the rest still show) and the exit status is 5.
    """
    from swarm.services.catalog import list_backups
    from swarm.services.context import open_repository

    rows = list_backups(open_repository(settings(ctx)))
    bad = [r for r in rows if r.get("damaged")]
    if as_json:
        render.emit_json(rows)
    elif not rows:
        render.out.print("no backups yet; take one with `swarm admin backup postgres`")
    else:
        render.table(None, ["id", "kind", "finished", "database", "tables", "size", "stored"],
                     [[r["id"], r["kind"], "DAMAGED", None, None, None, None] if r.get("damaged") else
                      [r["id"], r["kind"], r["finished_at"], r["database"], r["tables"] or None,
                       render.human_bytes(r["size"]), render.human_bytes(r["stored_size"])] for r in rows])
    for r in bad:
        render.err.print(f"damaged: {r['id']}: {r['problem']}", markup=False)
    if bad:
        render.err.print("hint: do not restore from a damaged backup; take a new one, and run `swarm admin verify` "
                         "on the others.", markup=False)
        raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command("show")
def show(ctx: typer.Context, backup_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT) -> None:
    """One backup's manifest: source facts, row counts, objects."""
    from swarm.services.catalog import show_backup
    from swarm.services.context import open_repository

    d = show_backup(open_repository(settings(ctx)), backup_id)
    if as_json:
        render.emit_json(d)
        return
    src = d["source"]
    render.kv([("id", d["id"]), ("kind", d["kind"]), ("started", d["started_at"]), ("finished", d["finished_at"]),
               ("database", f"{src.get('database')} on PostgreSQL {src.get('server_version')} "
                            f"(system id {src.get('system_identifier')})"),
               ("size", f"{render.human_bytes(d['size'])} ({render.human_bytes(d['stored_size'])} stored, "
                        f"{d['objects']} objects)")])
    counts = src.get("row_counts", {})
    if counts:
        render.table("row counts", ["table", "rows"], sorted(counts.items()))
