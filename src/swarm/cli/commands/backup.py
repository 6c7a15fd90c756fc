"""``swarm admin backup``: take backups (``backup objects`` is registered by ``objects``)."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.ui.views import postgres as pg_view

app = typer.Typer(help="Take a backup into the repository.", no_args_is_help=True)


@app.command("postgres")
def postgres(ctx: typer.Context,
             jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64,
                                      help="Parallel jobs: table COPYs (logical), pack uploads (physical)."),
             db_url: str = typer.Option(None, "--db-url", help="Database to back up (default: SWARM_DB_URL)."),
             work_dir: str = typer.Option(None, "--work-dir",
                                          help="Logical: where the schema is staged (default: system temp); "
                                               "never rows."),
             physical: bool = typer.Option(False, "--physical",
                                           help="Physical base backup (for point-in-time recovery with WAL)."),
             wal_wait_timeout: str = typer.Option(None, "--wal-wait-timeout", metavar="SECONDS",
                                                  help="Physical: how long to wait for the backup's WAL to be "
                                                       "archived before failing (default 60; \\[backup] "
                                                       "wal_wait_timeout in the config file)."),
             as_json: bool = JSON_OPT) -> None:
    """Logical backup of one snapshot: the schema by pg_dump, every table's rows by parallel COPY
    streamed into the repository, with exact row counts; or, with --physical, a deduplicated
    base backup.

    Exit status:
    0 done; 3 configuration; 6 another backup of this kind runs;
    7 PostgreSQL or the repository cannot be reached;
    10 the source failed (pg_dump, pg_basebackup; archive-failing).
    """
    from swarm.services.context import open_repository

    if physical and work_dir is not None:
        raise typer.BadParameter("--work-dir applies to logical backups only (a physical backup stages nothing)")
    if not physical and wal_wait_timeout is not None:
        raise typer.BadParameter("--wal-wait-timeout applies to --physical backups only")
    s = settings(ctx, db_url=db_url, work_dir=work_dir, wal_wait_timeout=wal_wait_timeout)
    url = s.require("db_url", "the database to back up (SWARM_DB_URL)")
    if physical:
        from swarm.services.postgres.physical_backup import backup_postgres_physical

        wait_s = s.seconds("wal_wait_timeout", 60.0)
        repo = open_repository(s, create=True)
        with progress(as_json) as reporter:
            res = backup_postgres_physical(repo, url, jobs=jobs, reporter=reporter, bindir=s.pg_bindir,
                                           wal_wait_s=wait_s)
        pg_view.physical_backup(res, repo.url, as_json=as_json)
        return
    from swarm.services.postgres.logical_backup import backup_postgres_logical

    repo = open_repository(s, create=True)
    with progress(as_json) as reporter:
        res = backup_postgres_logical(repo, url, jobs=jobs, work_dir=s.work_dir, reporter=reporter,
                                      bindir=s.pg_bindir)
    pg_view.logical_backup(res, repo.url, as_json=as_json)


@app.command("state")
def state(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Snapshot the state directory (SWARM_STATE_DIR, default SWARM_HOME) into the repository:
    deduplicated against the previous snapshot, unchanged files skipped by a change cache,
    swarm's own files and secrets left out (listed with the reason). See docs/state.md.

    Exit status:
    0 done; 1 committed but incomplete (unreadable or inconsistent
    files, listed); 3 configuration; 6 another state backup runs;
    7 the repository cannot be reached; 9 no state directory.
    """
    from swarm.errors import ExitCode
    from swarm.services.context import open_repository, state_scope
    from swarm.services.state.backup import backup_state
    from swarm.ui.views import state as state_view

    s = settings(ctx)
    scope = state_scope(s)
    repo = open_repository(s, create=True)
    with progress(as_json) as reporter:
        res = backup_state(repo, scope, reporter=reporter)
    state_view.backup_state(res, repo.url, as_json=as_json)
    if not res.complete:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command("set")
def backup_set_cmd(ctx: typer.Context,
                   physical: bool = typer.Option(False, "--physical",
                                                 help="A physical base backup plus a restore point instead of a "
                                                      "logical backup."),
                   copy_data: bool = typer.Option(False, "--copy-data",
                                                  help="Also copy the object versions into the repository."),
                   jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64, help="Parallel jobs for PostgreSQL."),
                   db_url: str = typer.Option(None, "--db-url", help="Database (default: SWARM_DB_URL)."),
                   as_json: bool = JSON_OPT) -> None:
    """Back up PostgreSQL, the artefact bucket and the state directory at one consistency point T.

    The set is written last and references its three parts; if a part
    fails there is no set (the parts already taken stay as ordinary
    backups). See docs/sets.md.

    \b
    Exit status: 0 done; 1 a part failed (named); 3 configuration;
    6 another set runs; 7 a store cannot be reached.
    """
    from swarm.errors import ExitCode
    from swarm.services.context import open_repository, primary_config, state_scope
    from swarm.services.objects.common import open_bucket
    from swarm.services.sets.backup import backup_set
    from swarm.ui.views import sets as sets_view

    s = settings(ctx, db_url=db_url)
    url = s.require("db_url", "the database to back up (SWARM_DB_URL)")
    bucket = open_bucket(primary_config(s))
    scope = state_scope(s)
    repo = open_repository(s, create=True)
    with progress(as_json) as reporter:
        res = backup_set(repo, db_url=url, bucket=bucket, scope=scope, physical=physical, jobs=jobs,
                         work_dir=s.work_dir, bindir=s.pg_bindir, wal_wait_s=s.seconds("wal_wait_timeout", 60.0),
                         copy_data=copy_data, reporter=reporter)
    sets_view.set_backup(res, repo.url, as_json=as_json)
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))
