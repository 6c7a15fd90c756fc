"""``swarm admin backups``: what the repository holds."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.errors import ExitCode
from swarm.ui.views import catalog

app = typer.Typer(help="List and inspect backups.", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Every complete backup, oldest first (interrupted ones never appear), and whether the retention
    policy (the retention tables of swarm.toml) keeps it and until when.

    A damaged manifest is listed as DAMAGED (the rest still show) and the exit status is 5.
    """
    from swarm.services.context import open_repository
    from swarm.services.repository.catalog import list_backups

    s = settings(ctx)
    rows = list_backups(open_repository(s), s.retention)
    catalog.backups_list(rows, as_json=as_json)
    if any(r.get("damaged") for r in rows):
        raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command("show")
def show(ctx: typer.Context, backup_id: str = typer.Argument(..., metavar="ID"), as_json: bool = JSON_OPT) -> None:
    """One backup's manifest: source facts, row counts, objects."""
    from swarm.services.context import open_repository
    from swarm.services.repository.catalog import show_backup

    catalog.backup_show(show_backup(open_repository(settings(ctx)), backup_id), as_json=as_json)


TAG_ARG = typer.Argument(..., metavar="TAG", help="A tag, e.g. legal-hold (letters, digits, '.', '_', '-').")


def _check_tag(tag: str) -> str:
    import re

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", tag):
        raise typer.BadParameter(f"{tag!r} is not a tag: use letters, digits, '.', '_' and '-' (64 at most)")
    return tag


@app.command("tag")
def tag(ctx: typer.Context, backup_id: str = typer.Argument(..., metavar="ID"), tag: str = TAG_ARG,
        as_json: bool = JSON_OPT) -> None:
    """Tag a backup; a tagged backup is never removed by prune (e.g. `legal-hold`).

    Exit status: 0 tagged; 2 not a valid tag; 9 no such backup.
    """
    from swarm.services.context import open_repository
    from swarm.services.repository.catalog import tag_backup

    catalog.backup_tags(tag_backup(open_repository(settings(ctx)), backup_id, _check_tag(tag)), as_json=as_json)


@app.command("untag")
def untag(ctx: typer.Context, backup_id: str = typer.Argument(..., metavar="ID"), tag: str = TAG_ARG,
          as_json: bool = JSON_OPT) -> None:
    """Remove a tag from a backup; the retention policy decides about it again at the next prune.

    Exit status: 0 done (also when it did not have the tag); 2 not a valid tag; 9 no such backup.
    """
    from swarm.services.context import open_repository
    from swarm.services.repository.catalog import tag_backup

    catalog.backup_tags(tag_backup(open_repository(settings(ctx)), backup_id, _check_tag(tag), remove=True),
                        as_json=as_json)
