"""``swarm admin status``: is anything at risk right now? (docs/status.md)"""
from __future__ import annotations

import sys
from typing import Any

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.errors import ExitCode

# `--nagios` exit codes (Nagios plugin guidelines); every error under --nagios is UNKNOWN.
NAGIOS = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


def register(admin: typer.Typer) -> None:
    @admin.command("status")
    def status(ctx: typer.Context,
               as_json: bool = JSON_OPT,
               nagios: bool = typer.Option(False, "--nagios",
                                           help="Print one Nagios line and exit 0 OK, 1 WARNING, 2 CRITICAL, "
                                                "3 UNKNOWN (every error, a usage error included, is 3)."),
               replication: bool = typer.Option(True, "--replication/--no-replication",
                                                help="Compare the artefact bucket with the DR bucket (when one is "
                                                     "configured); it lists every version of both.")) -> None:
        """Each kind's newest backup against the schedule, WAL archiving, the live RPO, the recoverable
        window, DR replication lag, repository size, lock holders and the jobs'
        last outcomes.

        Levels: a backup older than 1.5 intervals is WARNING, older than 2.5
        CRITICAL; a scheduled kind never backed up is WARNING; WAL archiving
        that failed since its last success is CRITICAL at once. See
        docs/status.md.

        Exit status:
        0 everything is OK;
        1 anything is WARNING, CRITICAL or UNKNOWN;
        3 configuration missing; 4 the configured key does not open the
          repository (wrong key); 7 the repository cannot be
          reached.
        With --nagios: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (and 3 for
        every error, a usage error included).
        """
        if nagios and as_json:
            raise typer.BadParameter("--nagios and --json are exclusive")
        from swarm.services.context import dr_config, open_repository, primary_config
        from swarm.services.status import deployment_status
        from swarm.ui.views import status as view

        s = settings(ctx)
        repo = open_repository(s, check_key=False)  # a refused key is the `key` check's CRITICAL, not exit 4
        check_dr: Any = None
        if replication and s.dr_objects_bucket and s.objects_bucket:
            def check_dr() -> Any:
                from swarm.services.objects.common import open_bucket
                from swarm.services.objects.replicate import check_replication

                return check_replication(open_bucket(primary_config(s)), open_bucket(dr_config(s)), limit=10)
        from swarm.services.context import copy_targets
        from swarm.services.copies.copy import copy_lags

        check_copies = (lambda: copy_lags(repo, copy_targets(s))) if s.copies and s.copy is None else None
        rep = deployment_status(repo, s.schedule, db_url=s.db_url, replication=check_dr, copies=check_copies)
        if nagios:
            view.nagios(rep)
            raise typer.Exit(NAGIOS[rep.level])
        view.report(rep, as_json=as_json)
        if not rep.ok:
            raise typer.Exit(int(ExitCode.FAILED))


def nagios_requested(argv: list[str]) -> bool:
    """``admin status --nagios``: the command line whose every error must exit 3 (UNKNOWN)."""
    return "--nagios" in argv and "status" in argv


def run_nagios(app: typer.Typer) -> None:
    """Run ``app`` for ``status --nagios``: the command's own exit code (0-3) stands; any error (a usage
    error, configuration, an unreachable repository, a bug) prints one
    UNKNOWN line and exits 3."""
    from swarm.errors import SwarmError
    from swarm.ui.views import status as view

    try:
        rc = app(standalone_mode=False)
    except SwarmError as exc:
        view.nagios_unknown(f"{exc.code}: {exc.message}")
        rc = NAGIOS["UNKNOWN"]
    except BaseException as exc:  # usage errors, Ctrl-C, bugs: a monitoring system needs UNKNOWN
        message = exc.format_message() if hasattr(exc, "format_message") else repr(exc)
        view.nagios_unknown(f"{type(exc).__name__}: {message}")
        rc = NAGIOS["UNKNOWN"]
    sys.exit(rc if isinstance(rc, int) and rc in NAGIOS.values() else NAGIOS["UNKNOWN"])
