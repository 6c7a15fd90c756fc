"""``swarm admin backups``: what the repository holds."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.errors import ExitCode
from swarm.ui.views import catalog

app = typer.Typer(help="List and inspect backups.", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Every complete backup, oldest first (interrupted ones never appear).

    A damaged manifest is listed as DAMAGED (the rest still show) and the exit status is 5.
    """
    from swarm.services.context import open_repository
    from swarm.services.repository.catalog import list_backups

    rows = list_backups(open_repository(settings(ctx)))
    catalog.backups_list(rows, as_json=as_json)
    if any(r.get("damaged") for r in rows):
        raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command("show")
def show(ctx: typer.Context, backup_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT) -> None:
    """One backup's manifest: source facts, row counts, objects."""
    from swarm.services.context import open_repository
    from swarm.services.repository.catalog import show_backup

    catalog.backup_show(show_backup(open_repository(settings(ctx)), backup_id), as_json=as_json)
