"""``swarm admin check``: checks across the stores of a deployment."""
from __future__ import annotations

from pathlib import Path

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui.views import check as check_view
from swarm.ui.views import status as status_view

app = typer.Typer(help="Check that a deployment's stores agree.", no_args_is_help=True)


@app.command("stack")
def stack(ctx: typer.Context,
          db_url: str = typer.Option(None, "--db-url", help="The swarm database (default: SWARM_DB_URL)."),
          bucket: str = typer.Option(None, "--bucket",
                                     help="The artefact bucket, on the configured endpoint "
                                          "(default: SWARM_OBJECTS_BUCKET)."),
          state_dir: Path = typer.Option(None, "--state-dir",
                                         help="The state directory (default: SWARM_STATE_DIR)."),
          workers: int = typer.Option(8, "--workers", min=1, max=64,
                                      help="Objects read at once to compare checksums."),
          sizes_only: bool = typer.Option(False, "--sizes-only",
                                          help="Compare sizes only; read no object (checksums unverified)."),
          as_json: bool = JSON_OPT) -> None:
    """Do the database, the bucket and the state directory agree?

    Every run_artefacts row must have its object at the recorded size and
    SHA-256; every batch run dir must name a run; every cron job must name a
    pipeline; objects under pipeline_runs/ of no run are listed. Reads every
    recorded object once (see docs/check.md for the cost). Writes nothing.

    Exit status:
    0 the three stores agree;
    1 they disagree (each missing or mismatched key is named);
    3 configuration missing or invalid; 7 the database or the bucket cannot
      be reached; 8 the database has no run_artefacts (schema too old);
    9 the bucket or the state directory does not exist.
    """
    from swarm.services.check import check_stack
    from swarm.services.context import stack_stores

    s = settings(ctx, db_url=db_url, objects_bucket=bucket, state_dir=str(state_dir) if state_dir else None)
    url, bucket_cfg, state = stack_stores(s)
    with progress(as_json) as reporter:
        res = check_stack(url, bucket_cfg, state, reporter=reporter, workers=workers, read_checksums=not sizes_only)
    check_view.stack_result(res, as_json=as_json)
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command("config")
def config(ctx: typer.Context,
           wal_timeout: float = typer.Option(60.0, "--wal-timeout", min=1.0,
                                             help="Seconds a forced WAL switch may take to reach the repository."),
           as_json: bool = JSON_OPT) -> None:
    """Prove, end to end and now, that the configuration works.

    The repository opens with the key; the server's archive_command is
    swarm's `wal push` into this repository; a forced WAL switch arrives in
    the repository within --wal-timeout; the artefact bucket matches its
    policy; the DR bucket is reachable. A step whose settings are absent is
    skipped. Writes one commit and one WAL switch on the server, nothing
    else.

    Exit status:
    0 every step passed or was skipped;
    1 a step failed (each failure names what and says what to do);
    3 configuration invalid.
    """
    from swarm.services.context import check_configuration

    res = check_configuration(settings(ctx), wal_timeout=wal_timeout)
    status_view.config_result(res, as_json=as_json)
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))
