"""``swarm admin restore``: bring data back (``restore objects`` is registered by ``objects``).

``restore postgres`` restores a logical backup into a database; ``restore physical`` a base
backup plus WAL into a data directory. Every option applies to the command it is on; an option
that does not (``restore postgres --physical``, a ``--target-time`` on a logical restore) is a
usage error (exit 2), never silently dropped.
"""
from __future__ import annotations

from pathlib import Path

import typer
from typer._click.exceptions import UsageError

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui import render
from swarm.ui.views import postgres as pg_view

app = typer.Typer(help="Restore from the repository.", no_args_is_help=True)


@app.command("postgres")
def postgres(ctx: typer.Context,
             backup_id: str = typer.Argument(None, metavar="ID", show_default=False,
                                             help="The logical backup to restore (required)."),
             target_db: str = typer.Option(None, "--target-db",
                                           help="postgresql:// URL of the database to restore into (required)."),
             create: bool = typer.Option(False, "--create", help="Create the target database if it does not exist."),
             force: bool = typer.Option(False, "--force", help="Restore over a non-empty database (drops and replaces "
                                                              "the objects the backup contains)."),
             jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64, help="Parallel pg_restore jobs and COPYs."),
             no_owner: bool = typer.Option(False, "--no-owner", help="Do not restore ownership and privileges."),
             dry_run: bool = typer.Option(False, "--dry-run", help="Check and show the plan; change nothing."),
             physical: bool = typer.Option(False, "--physical", hidden=True),
             datadir: str = typer.Option(None, "--datadir", hidden=True),
             as_json: bool = JSON_OPT) -> None:
    """Restore a logical backup (schema by pg_restore, rows by parallel COPY), then compare every
    table's row count with the manifest. Physical backups: `swarm admin restore physical`.

    Exit status:
    0 restored and validated; 1 restored but row counts differ;
    2 bad command line; 3 malformed --target-db;
    8 refused (non-empty target without --force, a backup of another kind);
    9 no such backup or target database.
    """
    if physical or datadir:
        raise UsageError("`restore postgres --physical` is now `swarm admin restore physical [ID|--latest] --datadir "
                         "DIR --target-...` (see `swarm admin restore physical --help`)", ctx=ctx)
    if not backup_id or not target_db:
        raise UsageError("a logical restore needs a backup ID and --target-db URL", ctx=ctx)
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
    pg_view.logical_restore(res, backup_id, as_json=as_json)
    if not res.validated:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command("physical")
def physical(ctx: typer.Context,
             backup_id: str = typer.Argument(None, metavar="ID", show_default=False,
                                             help="The backup to start from (default: the newest suitable one, "
                                                  "as --latest)."),
             datadir: Path = typer.Option(..., "--datadir", help="Empty directory to restore into."),
             latest: bool = typer.Option(False, "--latest",
                                         help="Which BACKUP to start from: the newest suitable one (the default "
                                              "when no ID is given). Not a recovery target: see --target-latest."),
             target_time: str = typer.Option(None, "--target-time",
                                             help="Recover to this time (ISO 8601; without a zone, UTC)."),
             target_lsn: str = typer.Option(None, "--target-lsn", help="Recover to this LSN."),
             target_xid: str = typer.Option(None, "--target-xid", help="Recover to this transaction id."),
             target_name: str = typer.Option(None, "--target-name", help="Recover to this restore point."),
             target_latest: bool = typer.Option(False, "--target-latest",
                                                help="How far to RECOVER: replay all archived WAL of the followed "
                                                     "timeline."),
             target_timeline: str = typer.Option("current", "--target-timeline",
                                                 help="The timeline to follow: current (the configured primary's, "
                                                      "else the newest archived, refused when that is ambiguous), "
                                                      "latest, or a number. See docs/pitr.md, Timelines."),
             primary_url: str = typer.Option(None, "--db-url",
                                             help="The primary whose timeline 'current' means (default: "
                                                  "SWARM_DB_URL)."),
             port: int = typer.Option(None, "--port", help="Port for the restored cluster."),
             start: bool = typer.Option(False, "--start", help="Start it, recover to the target, promote."),
             archive: bool = typer.Option(False, "--archive",
                                          help="The restored cluster archives its WAL into the repository (only for "
                                               "a copy that becomes the new primary)."),
             no_archive: bool = typer.Option(False, "--no-archive",
                                             help="The restored cluster does not archive WAL: the default; "
                                                  "accepted for old scripts."),
             keep_failed: bool = typer.Option(False, "--keep-failed",
                                              help="Keep the data directory and log of a recovery that failed "
                                                   "(default: remove them)."),
             dry_run: bool = typer.Option(False, "--dry-run", help="Check and show the plan; change nothing."),
             as_json: bool = JSON_OPT) -> None:
    """Point-in-time recovery: a physical backup plus archived WAL, replayed to a target, into an
    empty data directory; with --start, recovered and promoted.

    Exit status:
    0 restored; 2 bad command line;
    5 archived WAL or a backup cannot be read;
    8 refused: a target outside the recoverable range, a missing WAL segment,
      a non-empty data directory, a backup or restore point off the timeline;
    9 no physical backup;
    10 recovery failed (what it created is removed unless --keep-failed).
    """
    from swarm.model.recovery import parse_timeline_option
    from swarm.model.targets import from_options
    from swarm.services.context import open_repository, server_access
    from swarm.services.postgres.pitr import execute_pitr, plan_pitr

    if backup_id and latest:
        raise typer.BadParameter("give a backup ID or --latest, not both")
    if archive and no_archive:
        raise typer.BadParameter("give --archive or --no-archive, not both")
    if keep_failed and not start:
        raise UsageError("--keep-failed applies to a recovery, which only --start runs: add --start (without it "
                         "nothing is started, so nothing can fail to recover)", ctx=ctx)
    try:
        target = from_options(time=target_time, lsn=target_lsn, xid=target_xid, name=target_name,
                              latest=target_latest)
        timeline = parse_timeline_option(target_timeline)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    s = settings(ctx, db_url=primary_url)
    repo = open_repository(s)
    plan = plan_pitr(repo, target, datadir, backup_id=None if latest else backup_id, port=port, start=start,
                     bindir=s.pg_bindir, timeline=timeline, primary_url=s.db_url)
    if not as_json:
        pg_view.pitr_plan_notes(plan)
    if dry_run:
        render.dry_run_plan({**plan.to_dict(), "archive": archive}, as_json=as_json)
        return
    with progress(as_json) as reporter:
        res = execute_pitr(repo, plan, server_access(s), bindir=s.pg_bindir, reporter=reporter, archive=archive,
                           keep_failed=keep_failed)
    pg_view.pitr_result(res, archive=archive, as_json=as_json)


@app.command("state")
def state(ctx: typer.Context,
          backup_id: str = typer.Argument(..., metavar="ID", help="The state snapshot to restore."),
          target_state: Path = typer.Option(..., "--target-state",
                                            help="New or empty directory to restore into (written beside it, "
                                                 "then renamed into place)."),
          force: bool = typer.Option(False, "--force", help="Replace a non-empty --target-state (the old tree is "
                                                           "removed only once the new one is complete)."),
          jobs: int = typer.Option(4, "--jobs", "-j", min=1, max=64, help="Files written at once."),
          dry_run: bool = typer.Option(False, "--dry-run", help="List what would be restored; change nothing."),
          as_json: bool = JSON_OPT) -> None:
    """Restore a state snapshot into a fresh directory, every file's checksum checked, then print
    how to point swarm at it (SWARM_STATE_DIR). See docs/state.md.

    Exit status:
    0 restored; 2 bad command line;
    5 the snapshot is damaged (nothing is written into the target);
    8 refused: a non-empty target without --force, a target that is
      a file or lies inside (or contains) the state directory,
      a backup of another kind;
    9 no such backup.
    """
    from swarm.services.context import open_repository, state_scope
    from swarm.services.state.restore import execute_restore_state, plan_restore_state
    from swarm.ui.views import state as state_view

    s = settings(ctx)
    repo = open_repository(s)
    plan = plan_restore_state(repo, backup_id, target_state, force=force, source_dir=state_scope(s).state_dir)
    if dry_run:
        state_view.restore_plan(plan, as_json=as_json)
        return
    with progress(as_json) as reporter:
        res = execute_restore_state(repo, plan, jobs=jobs, reporter=reporter)
    state_view.restore_state(res, as_json=as_json)


@app.command("set")
def restore_set_cmd(ctx: typer.Context,
                    set_id: str = typer.Argument(..., metavar="ID", help="The backup set (kind set)."),
                    target_db: str = typer.Option(..., "--target-db", help="PostgreSQL URL to restore into."),
                    target_bucket: str = typer.Option(..., "--target-bucket",
                                                      help="Bucket to restore into (on the objects endpoint)."),
                    target_state: str = typer.Option(..., "--target-state", help="Directory to restore the "
                                                                                 "state directory into."),
                    from_dr: bool = typer.Option(False, "--from-dr", help="Take the bucket as of T from the DR "
                                                                         "bucket's history (production lost)."),
                    create: bool = typer.Option(False, "--create", help="Create the target database."),
                    force: bool = typer.Option(False, "--force", help="Restore over non-empty targets (or into the "
                                                                     "production bucket)."),
                    jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64, help="Parallel restore jobs."),
                    dry_run: bool = typer.Option(False, "--dry-run", help="Check and show the plan; change nothing."),
                    as_json: bool = JSON_OPT) -> None:
    """Restore a backup set into a target deployment: the database, the
    bucket as of the set's time T and the state directory; then check that
    the three agree (`integrity`, as `swarm admin check stack`).

    \b
    Exit status: 0 restored and the stores agree; 1 a check failed;
    3 configuration; 8 refused (non-empty target, physical set,
    production bucket); 9 no such set or part or target database.
    """
    from dataclasses import replace

    from swarm.config import urls
    from swarm.services.context import dr_config, open_repository, primary_config
    from swarm.services.objects.common import open_bucket
    from swarm.services.sets.restore import execute_restore_set, plan_restore_set
    from swarm.ui.views import sets as sets_view

    s = settings(ctx)
    urls.check("postgres", target_db, setting="--target-db", source="flag")
    repo = open_repository(s)
    primary = primary_config(s)
    source = open_bucket(dr_config(s) if from_dr else primary)
    target = open_bucket(replace(primary, bucket=target_bucket))
    plan = plan_restore_set(repo, set_id, target_db=target_db, target_bucket=target, target_state=Path(target_state),
                            bucket_source=source, from_dr=from_dr, create=create, force=force, jobs=jobs,
                            production_state=Path(s.state_dir) if s.state_dir else None)
    if dry_run:
        render.dry_run_plan(plan.to_dict(), as_json=as_json)
        return
    from swarm.services.check.stack import check_stack

    target_cfg = replace(primary, bucket=target_bucket)
    with progress(as_json) as reporter:
        res = execute_restore_set(
            repo, plan, work_dir=s.work_dir, bindir=s.pg_bindir, reporter=reporter,
            check=lambda: check_stack(target_db, target_cfg, Path(target_state), reporter=reporter).to_dict())
    sets_view.set_restore(res.to_dict(), as_json=as_json)
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command("stack")
def restore_stack_cmd(ctx: typer.Context,
                      at: str = typer.Option(..., "--at", help="ISO 8601 time to restore to, e.g. "
                                                               "2026-11-24T09:30:00Z."),
                      datadir: str = typer.Option(..., "--datadir", help="New data directory for the recovered "
                                                                         "PostgreSQL (started on a free port)."),
                      target_bucket: str = typer.Option(..., "--target-bucket",
                                                        help="Bucket to restore into (on the objects endpoint)."),
                      target_state: str = typer.Option(..., "--target-state", help="Directory to restore the "
                                                                                   "state directory into."),
                      from_dr: bool = typer.Option(False, "--from-dr", help="Read the bucket's history from the DR "
                                                                           "bucket (production lost)."),
                      port: int = typer.Option(None, "--port", help="Port for the recovered server (default: a "
                                                                    "free one)."),
                      force: bool = typer.Option(False, "--force", help="Restore over a non-empty state directory "
                                                                       "(or into the bucket being read)."),
                      db_url: str = typer.Option(None, "--db-url", help="The primary, to follow its timeline "
                                                                        "(default: SWARM_DB_URL)."),
                      dry_run: bool = typer.Option(False, "--dry-run", help="Check and show the plan; change nothing."),
                      as_json: bool = JSON_OPT) -> None:
    """Restore the whole deployment as it was at --at: PostgreSQL by point-in-time
    recovery, the bucket from its version history, the newest state snapshot
    at or before --at; then check that the three agree (`integrity`).

    \b
    Exit status: 0 restored and the stores agree; 1 a check failed;
    3 configuration; 8 refused (target not empty, out of range);
    9 no base backup or state snapshot for --at.
    """
    from dataclasses import replace

    from swarm.clock import parse_iso
    from swarm.services.check.stack import check_stack
    from swarm.services.context import dr_config, open_repository, primary_config, server_access
    from swarm.services.objects.common import open_bucket
    from swarm.services.sets.stack import execute_restore_stack, plan_restore_stack
    from swarm.sources.postgres.conn import dbname_of
    from swarm.ui.views import sets as sets_view

    try:
        when = parse_iso(at)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {at!r}", param_hint="--at") from exc
    s = settings(ctx, db_url=db_url)
    repo = open_repository(s)
    primary = primary_config(s)
    source = open_bucket(dr_config(s) if from_dr else primary)
    target = open_bucket(replace(primary, bucket=target_bucket))
    plan = plan_restore_stack(repo, when, datadir=Path(datadir), target_bucket=target, target_state=Path(target_state),
                              bucket_source=source, from_dr=from_dr, force=force, port=port, primary_url=s.db_url,
                              bindir=s.pg_bindir, production_state=Path(s.state_dir) if s.state_dir else None)
    if dry_run:
        render.dry_run_plan(plan.to_dict(), as_json=as_json)
        return
    target_cfg = replace(primary, bucket=target_bucket)
    dbname = dbname_of(s.db_url) if s.db_url else "postgres"
    with progress(as_json) as reporter:
        res = execute_restore_stack(
            repo, plan, server_access(s), bindir=s.pg_bindir, reporter=reporter, dbname=dbname,
            check=lambda url: check_stack(url, target_cfg, Path(target_state), reporter=reporter).to_dict())
    sets_view.stack_restore(res.to_dict(), as_json=as_json)
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))
