"""``swarm admin drill``: a DR drill (restore into scratch, validate, tear down, RTO/RPO), its
history and the cleanup of killed drills' leftovers (docs/dr-drill.md)."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ConfigError, ExitCode

app = typer.Typer(help="DR drills: prove a backup restorable and measure RTO and RPO.", invoke_without_command=True)

SWARM_COMMAND = [sys.executable, "-m", "swarm.cli.main"]


def register(admin: typer.Typer) -> None:
    admin.add_typer(app, name="drill")


@app.callback()
def drill(ctx: typer.Context,
          set_id: str = typer.Option(None, "--set", metavar="ID", help="Drill this backup set."),
          latest: bool = typer.Option(False, "--latest", help="Drill the newest backup set."),
          at: str = typer.Option(None, "--at", help="Drill the whole stack at this ISO 8601 time (PITR), or 'now' "
                                                    "(all archived WAL)."),
          tier_name: str = typer.Option("enterprise", "--tier", help="Targets to judge RTO and RPO against: "
                                                                     "enterprise (4 h / 1 h), team (24 h / 24 h), "
                                                                     "community (none)."),
          from_dr: bool = typer.Option(False, "--from-dr", help="Take the bucket from the DR bucket (primary "
                                                               "region lost); with `swarm --repo NAME`, PostgreSQL "
                                                               "and the state from that copy of the repository."),
          keep: bool = typer.Option(False, "--keep", help="Leave the scratch deployment running; print how to reach "
                                                          "and remove it."),
          target_db: str = typer.Option(None, "--target-db", help="A scratch PostgreSQL server's URL; the drill "
                                                                  "creates (and drops) its own database there."),
          target_bucket: str = typer.Option(None, "--target-bucket", help="An empty scratch bucket on the objects "
                                                                          "endpoint (emptied afterwards)."),
          target_state: Path = typer.Option(None, "--target-state", help="A scratch directory; the drill's state "
                                                                         "directory is made inside it."),
          port: int = typer.Option(None, "--port", help="Port of the scratch cluster (default: a free one)."),
          sample: int = typer.Option(20, "--sample", min=1, max=10000, help="Objects read back in full."),
          report: Path = typer.Option(None, "--report", help="Write a self-contained HTML report here."),
          as_json: bool = JSON_OPT) -> None:
    """Run a DR drill: provision a scratch deployment, restore into it, point
    a swarm API at it, validate it (repository checksums, full reads and
    amcheck, the API's totals, row counts, the cross-store check, a sample of
    objects, the state directory), tear it down, and judge RTO and RPO
    against the tier's targets. Each drill is recorded in the repository.

    \b
    Exit status: 0 validated and within the tier's targets; 1 the drill ran
    and failed (the failure is named); 3 configuration; 8 refused before
    anything was provisioned (a production target, a taken port or bucket,
    a time outside the recoverable window); 9 no such set; 130 interrupted
    (torn down first).
    """
    if ctx.invoked_subcommand is not None:
        return
    if not (set_id or latest or at):
        typer.echo(ctx.get_help())
        raise typer.Exit(int(ExitCode.USAGE))
    from swarm.model.drill import TIERS
    from swarm.services.context import drill_env, open_repository
    from swarm.services.drill import DrillRequest, drill_history, run_drill
    from swarm.ui.views import drill as view

    if tier_name.lower() not in TIERS:
        raise typer.BadParameter(f"unknown tier {tier_name!r} (one of {', '.join(TIERS)})", param_hint="--tier")
    if at and at != "now":
        from swarm.clock import parse_iso

        try:
            parse_iso(at)
        except ValueError as exc:
            raise typer.BadParameter(f"not an ISO 8601 time: {at!r}", param_hint="--at") from exc
    if target_db:
        from swarm.config import urls

        urls.check("postgres", target_db, setting="--target-db", source="flag")
    s = settings(ctx)
    repo = open_repository(s)
    env = drill_env(s, SWARM_COMMAND)
    req = DrillRequest(set_id=set_id, latest=latest, at=at, tier=tier_name.lower(), from_dr=from_dr, keep=keep,
                       target_db=target_db, target_bucket=target_bucket, target_state=target_state, port=port,
                       sample=sample, copy=s.copy)
    with progress(as_json) as reporter:
        res = run_drill(repo, req, env, reporter=reporter)
    d = res.to_dict()
    if report is not None:
        records, _ = drill_history(repo)
        try:
            report.write_text(view.html_report(d, records), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write the report {report}: {exc.strerror or exc}",
                              hint="Pass --report a writable path.") from exc
    view.drill_result(d, as_json=as_json)
    if not res.passed:
        raise typer.Exit(int(ExitCode.FAILED))


@app.command("history")
def history(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Every drill recorded in the repository, oldest first: verdict, RTO, RPO
    and the failure's error code."""
    from swarm.services.context import open_repository
    from swarm.services.drill import drill_history
    from swarm.ui.views import drill as view

    records, damaged = drill_history(open_repository(settings(ctx)))
    view.history(records, damaged, as_json=as_json)


@app.command("cleanup")
def cleanup(ctx: typer.Context,
            drill_id: str = typer.Option(None, "--id", help="Remove this drill's resources (kept or left behind)."),
            kept: bool = typer.Option(False, "--kept", help="Also remove drills run with --keep."),
            as_json: bool = JSON_OPT) -> None:
    """Tear down what killed drills left behind (scratch clusters, databases,
    buckets, directories; their names carry the drill id); a running drill's
    resources are never touched. Marks their history records as killed.

    \b
    Exit status: 0 nothing left; 1 something could not be removed (named).
    """
    from swarm.errors import SwarmError
    from swarm.services.context import drill_env, open_repository
    from swarm.services.drill import cleanup_drills
    from swarm.ui.views import drill as view

    s = settings(ctx)
    try:
        repo = open_repository(s) if s.repo else None
    except SwarmError:
        repo = None  # leftovers are removed even when the repository is unreachable
    removed, problems = cleanup_drills(repo, drill_env(s, SWARM_COMMAND), kept=kept, only=drill_id)
    view.cleanup(removed, problems, as_json=as_json)
    if problems:
        raise typer.Exit(int(ExitCode.FAILED))
