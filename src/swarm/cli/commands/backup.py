"""``swarm admin backup``: take backups."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.ui import render

app = typer.Typer(help="Take a backup into the repository.", no_args_is_help=True)


@app.command("postgres")
def postgres(ctx: typer.Context,
             jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64,
                                      help="Parallel jobs: table COPYs (logical) and uploads."),
             db_url: str = typer.Option(None, "--db-url", help="Database to back up (default: SWARM_DB_URL)."),
             work_dir: str = typer.Option(None, "--work-dir",
                                          help="Where the schema is staged (default: system temp); never rows."),
             physical: bool = typer.Option(False, "--physical",
                                           help="Physical base backup (for point-in-time recovery with WAL)."),
             wal_wait_timeout: str = typer.Option(None, "--wal-wait-timeout", metavar="SECONDS",
                                                  help="Physical: how long to wait for the backup's WAL to be "
                                                       "archived before failing (default 60; [backup] "
                                                       "wal_wait_timeout)."),
             as_json: bool = JSON_OPT) -> None:
    """Logical backup of one snapshot: the schema by pg_dump, every table's rows by parallel COPY
    streamed into the repository, with exact row counts; or, with --physical, a deduplicated
    base backup."""
    if physical:
        from swarm.cli.commands import physical as physical_cmd

        physical_cmd.backup_physical(ctx, db_url=db_url, jobs=jobs, as_json=as_json,
                                     wal_wait_timeout=wal_wait_timeout)
        return
    if wal_wait_timeout is not None:
        raise typer.BadParameter("--wal-wait-timeout applies to --physical backups only")
    from swarm.services.context import open_repository
    from swarm.services.postgres.logical_backup import backup_postgres_logical, swept_message

    s = settings(ctx, db_url=db_url, work_dir=work_dir)
    url = s.require("db_url", "the database to back up (SWARM_DB_URL)")
    repo = open_repository(s, create=True)
    with progress(as_json) as reporter:
        res = backup_postgres_logical(repo, url, jobs=jobs, work_dir=s.work_dir, reporter=reporter,
                                      bindir=s.pg_bindir)
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    if res.swept:
        render.out.print(swept_message(res.swept), markup=False, highlight=False)
    render.out.print(f"[bold green]backup {d['id']}[/] of {d['database']} (PostgreSQL {d['server_version']})")
    render.kv([("tables", f"{d['tables']} ({d['rows']} rows, counted in the dump's snapshot)"),
               ("size", render.sizes(d["size"], d["stored_size"])),  # as `backups list` / `show` label it
               ("time", f"{d['timings']['total_s']:.1f} s"), ("repository", repo.url)])
