"""``swarm admin scheduler``: run the schedule, show its history, render it for cron, systemd or
Kubernetes (docs/schedule.md)."""
from __future__ import annotations

import signal

import typer

from swarm.cli.common import JSON_OPT, settings

app = typer.Typer(help="Run the [schedule.<job>] tables of swarm.toml, show the job history, or render them "
                       "for cron, systemd or Kubernetes.", no_args_is_help=True)


@app.command("run")
def run(ctx: typer.Context,
        for_s: float = typer.Option(None, "--for", min=0.0,
                                    help="Stop after this many seconds (demos, tests); default: until SIGTERM."),
        grace: float = typer.Option(60.0, "--grace", min=0.0,
                                    help="On SIGTERM, seconds a running job gets to finish before it is "
                                         "terminated and recorded as interrupted."),
        as_json: bool = JSON_OPT) -> None:
    """Run due jobs until SIGTERM, logging one JSON line per event to stdout (with or without --json).

    A job still running at its next slot is skipped (recorded); slots missed while no scheduler
    ran are recorded and the newest is caught up once within its starting_deadline; a failed run
    is retried with backoff within its window; every run is recorded in the repository's job
    history; on_failure / webhook are called with the run as JSON, heartbeat is pinged after a
    success. SIGTERM starts nothing new and lets running jobs finish (--grace).

    Exit status: 0 stopped cleanly; 3 the schedule or configuration is invalid; 4 wrong key;
    7 the repository cannot be reached.
    """
    from swarm.services.context import open_repository
    from swarm.services.schedule.runner import Scheduler
    from swarm.ui.views import schedule as view

    s = settings(ctx)
    repo = open_repository(s)
    sched = Scheduler(s.schedule, repo, log=view.log_line, config=s.config_path if s.config_found else None,
                      grace=grace)

    def on_signal(signum: int, frame: object) -> None:
        sched.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sched.run(until=for_s)


@app.command("history")
def history(ctx: typer.Context,
            job: str = typer.Option(None, "--job", help="One job's history only."),
            as_json: bool = JSON_OPT) -> None:
    """The job history recorded in the repository: every run (start, end, outcome, error code,
    backup id) and every skipped or missed slot, oldest first."""
    from swarm.services.context import open_repository
    from swarm.ui.views import schedule as view

    repo = open_repository(settings(ctx))
    damaged: dict[str, str] = {}
    runs = repo.job_runs(job, damaged=damaged)
    view.history(runs, [f"record {k} is damaged: {v}" for k, v in damaged.items()], as_json=as_json)
