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

    A job still running at its next slot is skipped (recorded); slots missed
    while no scheduler ran are recorded and the newest is caught up once
    within its starting_deadline; a failed run is retried with backoff
    within its window; every run is recorded in the repository's job
    history; on_failure / webhook are called with the run as JSON, heartbeat
    is pinged after a success. SIGTERM starts nothing new and lets running
    jobs finish (--grace).

    Exit status: 0 stopped cleanly; 3 the schedule or configuration is
    invalid; 4 wrong key;
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


@app.command("run-job")
def run_job(ctx: typer.Context, name: str = typer.Argument(..., help="The job ([schedule.<name>])."),
            chain: bool = typer.Option(True, "--chain/--no-chain", help="Then run the jobs chained after it."),
            as_json: bool = JSON_OPT) -> None:
    """Run one job now, in the foreground: what rendered cron lines, systemd timers and Kubernetes
    CronJobs call. Retries within the job's window, records each run in the
    job history, calls
    its hooks, then runs the jobs chained `after` it. Logs JSON lines like
    `scheduler run`.

    Exit status: 0 the job (and its chain) succeeded; 1 a run failed (its
    record says why);
    3 no such job or invalid schedule; 6 skipped, another process holds the
    job's lock.
    """
    from swarm.errors import ConfigError, ExitCode
    from swarm.services.context import open_repository
    from swarm.services.schedule.runner import Scheduler
    from swarm.ui.views import schedule as view

    s = settings(ctx)
    if name not in s.schedule:
        raise ConfigError(f"no job named {name!r} in the schedule",
                          hint=f"Known jobs: {', '.join(sorted(s.schedule))}.")
    sched = Scheduler(s.schedule, open_repository(s), log=view.log_line,
                      config=s.config_path if s.config_found else None)
    records = sched.run_job(name, chain=chain)
    outcomes = {r.outcome for r in records if r.final}
    if "failed" in outcomes or "interrupted" in outcomes:
        raise typer.Exit(int(ExitCode.FAILED))
    if outcomes == {"skipped"}:
        raise typer.Exit(int(ExitCode.LOCKED))


@app.command("render")
def render(ctx: typer.Context,
           fmt: str = typer.Argument(..., metavar="cron|systemd|kubernetes", help="What to render."),
           swarm: str = typer.Option("swarm", "--swarm", help="The swarm command on the target (cron, systemd)."),
           config_file: str = typer.Option(None, "--config-file",
                                           help="--config for each rendered run (cron, systemd)."),
           image: str = typer.Option("swarm-backup:latest", "--image", help="Container image (kubernetes)."),
           namespace: str = typer.Option(None, "--namespace", help="Namespace (kubernetes)."),
           secret: str = typer.Option("swarm-secrets", "--secret",
                                      help="Secret whose keys become SWARM_* variables (kubernetes)."),
           config_secret: str = typer.Option("swarm-config", "--config-secret",
                                             help="Secret holding swarm.toml and the key, mounted at /etc/swarm "
                                                  "(kubernetes)."),
           state_pvc: str = typer.Option("swarm-state", "--state-pvc",
                                         help="PVC of the state directory, mounted for state backups (kubernetes)."),
           user: str = typer.Option(None, "--user", help="User= of the systemd services."),
           as_json: bool = JSON_OPT) -> None:
    """Print the schedule for cron (crontab lines), systemd (service + timer units) or Kubernetes
    (a multi-document YAML stream, one batch/v1 CronJob per document). Each
    entry runs
    `swarm admin scheduler run-job <name>`; chained jobs run inside their
    parent's entry."""
    from swarm.services.schedule.render import FORMATS, RenderOptions
    from swarm.services.schedule.render import render as do_render
    from swarm.ui.views import schedule as view

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r}: choose cron, systemd or kubernetes")
    s = settings(ctx)
    opts = RenderOptions(swarm=swarm, config=config_file, image=image, namespace=namespace, secret=secret,
                         config_secret=config_secret, state_pvc=state_pvc, user=user)
    view.rendered(fmt, do_render(fmt, s.schedule, opts), as_json=as_json)
