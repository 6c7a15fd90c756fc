"""``swarm admin wal {push,fetch,stream,status}``, ``restore-point`` and ``restore-points``.

``wal push`` / ``wal fetch`` run once per WAL file from the server: imports stay lazy (the
server's launcher takes the fast path in ``services.wal.fastpath`` before Typer is built).
"""
from __future__ import annotations

from pathlib import Path

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.errors import ExitCode, RefusedError
from swarm.ui import render
from swarm.ui.views import wal as wal_view

wal_app = typer.Typer(help="Continuous WAL archiving: push, fetch, stream, status.", no_args_is_help=True)


def register(admin: typer.Typer) -> None:
    admin.add_typer(wal_app, name="wal")
    admin.command("restore-point")(restore_point)
    admin.command("restore-points")(restore_points)


# ---- wal ------------------------------------------------------------------------------------------
@wal_app.command("push")
def push(ctx: typer.Context, path: Path = typer.Argument(..., metavar="PATH", help="%p: the WAL file to archive."),
         ahead: int = typer.Option(8, "--ahead", min=0, help="Also push up to N further .ready segments."),
         as_json: bool = JSON_OPT) -> None:
    """archive_command: exit 0 only once the file is durable in the repository."""
    from swarm.errors import SwarmError
    from swarm.services.context import open_repository
    from swarm.services.wal.archive import clear_push_failure, push_wal, record_push_failure

    if not path.is_file():
        raise RefusedError(f"{path} is not a file", hint="archive_command passes %p, the path of a WAL file.")
    try:
        res = push_wal(open_repository(settings(ctx), create=True, remember=False), path, push_ahead=ahead)
    except ValueError as exc:
        record_push_failure(path, str(exc))
        raise RefusedError(str(exc), hint="Only WAL segments, .partial, .history and .backup files are archived.") \
            from exc
    except SwarmError as exc:
        record_push_failure(path, exc.message + (f" ({exc.hint})" if exc.hint else ""))
        raise
    except OSError as exc:
        record_push_failure(path, str(exc))
        raise
    clear_push_failure(path)
    if as_json:
        render.emit_json(res.to_dict())


@wal_app.command("fetch")
def fetch(ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME", help="%f: the WAL file wanted."),
          dest: Path = typer.Argument(..., metavar="PATH", help="%p: where to write it."),
          prefetch: int = typer.Option(8, "--prefetch", min=0, help="Download up to N following segments ahead.")
          ) -> None:
    """restore_command: exit 0 with the file at PATH, or 1 (quietly) when it is not archived.

    Exit status:
    0 fetched; 1 not archived (quietly);
    126 any other failure (damaged object, wrong key, repository unreachable),
    which makes PostgreSQL abort recovery rather than promote short of its target.
    """
    from swarm.services.wal.fastpath import fetch_command

    root = ctx.find_root()
    config = (root.obj or {}).get("config") if isinstance(root.obj, dict) else None
    rc = fetch_command(str(config) if config else None, name, dest, prefetch=prefetch)
    if rc:
        raise typer.Exit(rc)


@wal_app.command("prefetch", hidden=True)
def prefetch_cmd(ctx: typer.Context, name: str = typer.Argument(...),
                 spool: Path = typer.Option(..., "--spool"), count: int = typer.Option(8, "--count")) -> None:
    """Download the segments after NAME into the fetch spool (started by `wal fetch`)."""
    from swarm.services.context import open_repository
    from swarm.services.wal.archive import prefetch_after

    prefetch_after(open_repository(settings(ctx), remember=False), name, spool, count)


@wal_app.command("status")
def status(ctx: typer.Context, db_url: str = typer.Option(None, "--db-url", help="Server to measure lag against."),
           as_json: bool = JSON_OPT) -> None:
    """Newest archived WAL per timeline, gaps, conflicts, and, when a server is configured, the live lag
    (RPO) and whether archive_command is failing.

    Exit status: 0 OK; 1 a gap, a conflict, or archiving failing on the server.
    """
    from swarm.services.context import open_repository
    from swarm.services.wal.health import archive_status

    s = settings(ctx, db_url=db_url)
    st = archive_status(open_repository(s), s.db_url)
    wal_view.archive_status(st, as_json=as_json)
    if not st.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@wal_app.command("stream")
def stream(ctx: typer.Context, db_url: str = typer.Option(None, "--db-url",
                                                          help="Server to stream WAL from, as a user with the "
                                                               "REPLICATION attribute (default: SWARM_DB_URL)."),
           slot: str = typer.Option("swarm", "--slot", help="Replication slot (created if missing)."),
           spool: Path = typer.Option(None, "--spool", help="Local spool (default: $SWARM_HOME/wal-stream)."),
           duration: float = typer.Option(0, "--duration", help="Stop after this many seconds (0: run until killed)."),
           interval: float = typer.Option(1.0, "--interval", help="Seconds between uploads of the current .partial."),
           as_json: bool = JSON_OPT) -> None:
    """pg_receivewal into a spool, uploading completed segments and the current .partial every second."""
    from swarm.services.context import open_repository
    from swarm.services.wal.stream import stream_wal

    s = settings(ctx, db_url=db_url)
    url = s.require("db_url", "the server to stream from (SWARM_DB_URL)")
    repo = open_repository(s, create=True)
    from swarm.devstack.stack import WAL_STREAM_SPOOL

    res = stream_wal(repo, url, spool or s.home / WAL_STREAM_SPOOL, slot=slot, duration=duration or None,
                     interval=interval, bindir=s.pg_bindir)
    wal_view.stream_summary(res, as_json=as_json)


def restore_point(ctx: typer.Context,
                  name: str = typer.Argument(..., metavar="NAME",
                                             help="The restore point's name (what --target-name recovers to)."),
                  db_url: str = typer.Option(None, "--db-url",
                                             help="Server to create the restore point on, as a superuser or a "
                                                  "role allowed to run pg_create_restore_point (default: "
                                                  "SWARM_DB_URL)."),
                  replace: bool = typer.Option(False, "--replace",
                                               help="Point an existing NAME at a new restore point."),
                  as_json: bool = JSON_OPT) -> None:
    """Create a named restore point (pg_create_restore_point + pg_switch_wal) and record it in the repository.

    Exit status: 0 created; 8 the name exists (pass --replace to move it).
    """
    from swarm.model.targets import RecoveryTarget
    from swarm.services.context import open_repository
    from swarm.services.postgres.pitr import make_restore_point

    try:
        RecoveryTarget("name", name)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    s = settings(ctx, db_url=db_url)
    url = s.require("db_url", "the database server (SWARM_DB_URL)")
    repo = open_repository(s, create=True)
    wal_view.restore_point(make_restore_point(repo, url, name, replace=replace), as_json=as_json)


def restore_points(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List the restore points recorded in the repository (what --target-name accepts).

    Exit status: 0; 5 a record is damaged (it is listed as DAMAGED).
    """
    from swarm.services.context import open_repository
    from swarm.services.postgres.pitr import list_restore_points

    points = list_restore_points(open_repository(settings(ctx)))
    wal_view.restore_points(points, as_json=as_json)
    if any(p.get("damaged") for p in points):
        raise typer.Exit(int(ExitCode.INTEGRITY))
