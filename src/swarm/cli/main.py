"""The ``swarm`` command: parse, call a service, render, map errors to exit codes.

This is the only place an exception becomes an exit code (see swarm.errors.ExitCode).
"""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

import typer

from swarm.cli.commands import (
    api,
    backup,
    backups,
    dev,
    keys,
    objects,
    repo,
    restore,
    scrub,
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
verify.register(admin)
scrub.register(admin)  # `admin scrub`
transfer.register(admin)  # `admin export` and `admin import`
wal.register(admin)  # `admin wal ...`, `admin restore-point(s)`
objects.register(admin, backup.app, restore.app)  # `admin objects ...`, `backup objects`, `restore objects`


@app.callback()
def root(ctx: typer.Context,
         config: Path = typer.Option(None, "--config", help="Config file (default: $SWARM_HOME/swarm.toml).")) -> None:
    ctx.obj = {"config": config}


RENAMED = {("restore", "postgres", "--physical"): "swarm admin restore physical [ID|--latest] --datadir DIR "
                                                    "--target-..."}


def _renamed(argv: list[str]) -> str | None:
    """The new spelling of a command line written for an older swarm, if it is one."""
    for (group, cmd, flag), new in RENAMED.items():
        if group in argv and cmd in argv and flag in argv and argv.index(group) + 1 == argv.index(cmd):
            return new
    return None


def main() -> None:
    as_json = "--json" in sys.argv
    renamed = _renamed(sys.argv[1:])
    if renamed:
        sys.stderr.write(f"error: this command is now `{renamed}` (see its --help)\n")
        sys.exit(int(ExitCode.USAGE))
    try:
        app()
    except SwarmError as exc:
        from swarm.ui import render

        render.error(exc, as_json=as_json)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception:
        traceback.print_exc()
        sys.stderr.write("internal error: this is a bug in swarm; please report it with the traceback above\n")
        sys.exit(int(ExitCode.INTERNAL))


if __name__ == "__main__":
    main()
