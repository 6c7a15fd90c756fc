"""``swarm admin restore``: bring data back."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui import render

app = typer.Typer(help="Restore from the repository.", no_args_is_help=True)


@app.command("postgres")
def postgres(ctx: typer.Context, backup_id: str = typer.Argument(None, metavar="[ID]"),
             target_db: str = typer.Option(None, "--target-db",
                                           help="Logical: postgresql:// URL of the database to restore into."),
             physical: bool = typer.Option(False, "--physical",
                                           help="Restore a physical backup (+ WAL) into --datadir."),
             latest: bool = typer.Option(False, "--latest",
                                         help="Physical: which BACKUP to start from: the newest suitable one (the "
                                              "default when no ID is given). Not a recovery target: see "
                                              "--target-latest."),
             target_time: str = typer.Option(None, "--target-time",
                                             help="Physical: recover to this time (ISO 8601; without a zone, UTC)."),
             target_lsn: str = typer.Option(None, "--target-lsn", help="Physical: recover to this LSN."),
             target_xid: str = typer.Option(None, "--target-xid", help="Physical: recover to this transaction id."),
             target_name: str = typer.Option(None, "--target-name", help="Physical: recover to this restore point."),
             target_latest: bool = typer.Option(False, "--target-latest",
                                                help="Physical: how far to RECOVER: replay all archived WAL of the "
                                                     "followed timeline."),
             target_timeline: str = typer.Option("current", "--target-timeline",
                                                 help="Physical: the timeline to follow: current (the configured "
                                                      "primary's, else the newest archived), latest, or a number."),
             primary_url: str = typer.Option(None, "--db-url",
                                             help="Physical: the primary whose timeline 'current' means "
                                                  "(default: SWARM_DB_URL)."),
             datadir: str = typer.Option(None, "--datadir", help="Physical: empty directory to restore into."),
             port: int = typer.Option(None, "--port", help="Physical: port for the restored cluster."),
             start: bool = typer.Option(False, "--start", help="Physical: start it, recover to the target, promote."),
             archive: bool = typer.Option(False, "--archive",
                                          help="Physical: the restored cluster archives its WAL into the repository "
                                               "(only for a copy that becomes the new primary)."),
             no_archive: bool = typer.Option(False, "--no-archive", hidden=True,
                                             help="Physical: the restored cluster does not archive WAL (the default)."),
             keep_failed: bool = typer.Option(False, "--keep-failed",
                                              help="Physical: keep the data directory and log of a recovery that "
                                                   "failed (default: remove them)."),
             create: bool = typer.Option(False, "--create", help="Create the target database if it does not exist."),
             force: bool = typer.Option(False, "--force", help="Restore over a non-empty database (drops and replaces "
                                                              "the objects the backup contains)."),
             jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64, help="Parallel pg_restore jobs."),
             no_owner: bool = typer.Option(False, "--no-owner", help="Do not restore ownership and privileges."),
             dry_run: bool = typer.Option(False, "--dry-run", help="Check and show the plan; change nothing."),
             as_json: bool = JSON_OPT) -> None:
    """Restore a logical backup with pg_restore -j, then compare every table's row count with the manifest;
    or, with --physical, a base backup plus WAL to a point in time.

    Exit status: 0 restored and validated; 1 restored but row counts differ; 8 refused
    (non-empty target without --force, target outside the recoverable range); 9 no such
    backup or target database.
    """
    if physical:
        from swarm.cli.commands import physical as physical_cmd

        physical_cmd.restore_physical(ctx, backup_id=backup_id, latest=latest, target_time=target_time,
                                      target_lsn=target_lsn, target_xid=target_xid, target_name=target_name,
                                      target_latest=target_latest, datadir=datadir, port=port, start=start,
                                      dry_run=dry_run, as_json=as_json, archive=archive, no_archive=no_archive,
                                      keep_failed=keep_failed, timeline=target_timeline, primary_url=primary_url)
        return
    if not backup_id or not target_db:
        raise typer.BadParameter("a logical restore needs ID and --target-db URL (or pass --physical)")
    from swarm.config import urls
    from swarm.services.context import open_repository
    from swarm.services.postgres.logical_restore import execute_restore, plan_restore

    urls.check("postgres", target_db, setting="--target-db", source="flag")  # before the repository opens
    s = settings(ctx)
    repo = open_repository(s)
    plan = plan_restore(repo, backup_id, target_db, create=create, force=force, jobs=jobs)
    if dry_run:
        render.dry_run_plan(plan.to_dict(), as_json=as_json)
        return
    with progress(as_json) as reporter:
        res = execute_restore(repo, plan, work_dir=s.work_dir, reporter=reporter, bindir=s.pg_bindir,
                              no_owner=no_owner)
    if as_json:
        render.emit_json(res.to_dict())
    else:
        d = res.to_dict()
        if res.swept:
            from swarm.services.postgres.logical_backup import swept_message

            render.out.print(swept_message(res.swept), markup=False, highlight=False)
        ok = "[bold green]validated[/]" if res.validated else "[bold red]ROW COUNTS DIFFER[/]"
        render.out.print(f"restored {backup_id} into {d['target']} in {d['timings']['total_s']:.1f} s: {ok}")
        render.table(None, ["table", "expected", "restored"],
                     [[t.table, t.expected, t.restored] for t in res.comparison.tables])
        render.out.print(f"Point swarm at it:  export SWARM_DB_URL='{d['swarm_db_url']}'")
    if not res.validated:
        raise typer.Exit(int(ExitCode.FAILED))
