"""The ``swarm`` command: parse, call a service, render, map errors to exit codes.

This is the only place an exception becomes an exit code (see swarm.errors.ExitCode).
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path

import typer
from typer._click.exceptions import ClickException, UsageError

from swarm.cli.commands import (
    api,
    backup,
    backups,
    check,
    dev,
    drill,
    keys,
    metrics,
    objects,
    prune,
    repo,
    restore,
    scheduler,
    scrub,
    secrets,
    status,
    transfer,
    verify,
    wal,
)
from swarm.errors import ExitCode, SwarmError

app = typer.Typer(help="swarm: backup, restore and disaster recovery.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
admin = typer.Typer(help="Operate a deployment: backup, verify, restore, WAL, objects, export/import, keys.",
                    no_args_is_help=True)
app.add_typer(dev.app, name="dev")
app.add_typer(api.app, name="api")
app.add_typer(admin, name="admin")
admin.add_typer(backup.app, name="backup")
admin.add_typer(backups.app, name="backups")
admin.add_typer(restore.app, name="restore")
admin.add_typer(keys.app, name="keys")
admin.add_typer(repo.app, name="repo")  # `admin repo upgrade`
admin.add_typer(check.app, name="check")  # `admin check stack`, `admin check config`
admin.add_typer(scheduler.app, name="scheduler")  # `admin scheduler run|run-job|history|render`
admin.add_typer(metrics.app, name="metrics")  # `admin metrics serve|write`
admin.add_typer(secrets.app, name="secrets")  # `admin secrets check`
verify.register(admin)
prune.register(admin)  # `admin prune`
scrub.register(admin)  # `admin scrub`
transfer.register(admin)  # `admin export` and `admin import`
wal.register(admin)  # `admin wal ...`, `admin restore-point(s)`
objects.register(admin, backup.app, restore.app)  # `admin objects ...`, `backup objects`, `restore objects`
status.register(admin)  # `admin status`
drill.register(admin)  # `admin drill`, `admin drill history`, `admin drill cleanup`


@app.callback()
def root(ctx: typer.Context,
         config: Path = typer.Option(None, "--config", help="Config file (default: $SWARM_HOME/swarm.toml)."),
         repo: str = typer.Option(None, "--repo", metavar="NAME",
                                  help="Use the copy of the repository named NAME ([[repository.copies]] in "
                                       "swarm.toml) instead of the primary repository (docs/copies.md).")) -> None:
    ctx.obj = {"config": config, "repo": repo}


# Command lines written for an older swarm (or mixing up two commands): the options that give
# them away, and the command that takes them now.
RENAMED: dict[tuple[str, str], tuple[frozenset[str], str]] = {
    ("restore", "postgres"): (frozenset({"--physical", "--datadir", "--latest", "--target-time", "--target-lsn",
                                         "--target-xid", "--target-name", "--target-latest", "--target-timeline",
                                         "--start", "--port", "--archive", "--no-archive", "--keep-failed"}),
                              "swarm admin restore physical [ID|--latest] --datadir DIR --target-..."),
}


def _renamed(argv: list[str]) -> tuple[str, str] | None:
    """(the option that gives it away, the command that takes it now), if this command line was
    written for another command."""
    for (group, cmd), (flags, new) in RENAMED.items():
        if group in argv and cmd in argv and argv.index(group) + 1 == argv.index(cmd):
            hit = next((a.split("=", 1)[0] for a in argv if a.split("=", 1)[0] in flags), None)
            if hit:
                return hit, new
    return None


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (cron's and Kubernetes' timeout) ends a command like Ctrl-C: the same cleanup runs
    (a failed restore removes what it created, locks are released) and the exit code is 130."""
    raise KeyboardInterrupt


def main() -> None:
    """The ``swarm`` entry point. Everything it writes is private by default: the umask is 077,
    so files are 0600 and directories 0700 unless a place grants more on purpose (what the
    PostgreSQL server user must read or enter is chowned to it or chmod'ed explicitly)."""
    os.umask(0o077)
    argv = sys.argv[1:]
    as_json = "--json" in argv
    renamed = _renamed(argv)
    if renamed:
        flag, new = renamed
        _usage_error(f"{flag} belongs to a physical restore (base backup + WAL), which is `{new}`; `restore "
                     "postgres` restores logical backups (see the --help of both)", as_json=as_json)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if status.nagios_requested(argv):  # `admin status --nagios`: every error exits 3 (UNKNOWN)
        status.run_nagios(app)
    try:
        rc = app(standalone_mode=False)
    except SwarmError as exc:
        from swarm.ui import render

        render.error(exc, as_json=as_json)
        sys.exit(int(exc.exit_code))
    except (KeyboardInterrupt, typer.Abort):
        rc = int(ExitCode.INTERRUPTED)
    except UsageError as exc:
        if as_json:
            from swarm.ui import render

            render.emit_json({"error": "usage", "message": exc.format_message(), "exit_code": int(ExitCode.USAGE)})
        _show(exc)
        sys.exit(int(ExitCode.USAGE))
    except ClickException as exc:
        _show(exc)
        sys.exit(exc.exit_code)
    except Exception:
        traceback.print_exc()
        sys.stderr.write("internal error: this is a bug in swarm; please report it with the traceback above\n")
        sys.exit(int(ExitCode.INTERNAL))
    if rc == int(ExitCode.INTERRUPTED):  # Typer turns KeyboardInterrupt (and so SIGTERM) into a silent 130
        sys.stderr.write("interrupted\n")
    sys.exit(rc if isinstance(rc, int) else int(ExitCode.OK))


def _show(exc: ClickException) -> None:
    """A usage error as Typer shows it (a framed box on a terminal)."""
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
    except Exception:
        exc.show()


def _usage_error(message: str, *, as_json: bool) -> None:
    if as_json:
        from swarm.ui import render

        render.emit_json({"error": "usage", "message": message, "exit_code": int(ExitCode.USAGE)})
    sys.stderr.write(f"error: {message}\n")
    sys.exit(int(ExitCode.USAGE))


if __name__ == "__main__":
    main()
