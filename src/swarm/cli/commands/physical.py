"""Physical backups, WAL archiving and point-in-time recovery.

``backup postgres --physical`` and ``restore postgres --physical`` delegate here;
``register(admin)`` adds ``admin wal {push,fetch,stream,status}`` and ``admin restore-point``.
``wal push`` / ``wal fetch`` run once per WAL file from the server: imports stay lazy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode, RefusedError
from swarm.ui import render

wal_app = typer.Typer(help="Continuous WAL archiving: push, fetch, stream, status.", no_args_is_help=True)


def register(admin: typer.Typer) -> None:
    admin.add_typer(wal_app, name="wal")
    admin.command("restore-point")(restore_point)
    admin.command("restore-points")(restore_points)


def _config_args(ctx: typer.Context) -> list[str]:
    root = ctx.find_root()
    cfg = (root.obj or {}).get("config") if isinstance(root.obj, dict) else None
    return ["--config", str(cfg)] if cfg else []


# ---- backup / restore (delegated from backup.py and restore.py) ---------------------------------
def backup_physical(ctx: typer.Context, *, db_url: str | None, jobs: int, as_json: bool,
                    wal_wait_timeout: str | None = None) -> None:
    from swarm.services.context import open_repository
    from swarm.services.postgres.physical_backup import backup_postgres_physical

    s = settings(ctx, db_url=db_url, wal_wait_timeout=wal_wait_timeout)
    url = s.require("db_url", "the database to back up (SWARM_DB_URL)")
    wait_s = s.seconds("wal_wait_timeout", 60.0)
    repo = open_repository(s, create=True)
    with progress(as_json) as reporter:
        res = backup_postgres_physical(repo, url, jobs=jobs, reporter=reporter, bindir=s.pg_bindir,
                                       wal_wait_s=wait_s)
    d = res.to_dict()
    if as_json:
        render.emit_json(d)
        return
    render.out.print(f"[bold green]physical backup {d['id']}[/] (PostgreSQL {d['server_version']}, "
                     f"timeline {d['timeline']})")
    render.kv([("WAL", f"{d['start_lsn']} .. {d['stop_lsn']} ({d['start_wal']} .. {d['stop_wal']})"),
               ("files", d["files"]), ("size", render.sizes(d["size"], d["stored_size"])),
               ("new", f"{d['new_blocks']} blocks, {render.human_bytes(d['new_bytes'])} -> "
                       f"{render.human_bytes(d['stored_new_bytes'])} stored"),
               ("reused", f"{d['reused_blocks']} blocks, {render.human_bytes(d['reused_bytes'])}"
                          + (f" (from {d['dedup_base']})" if d["dedup_base"] else "")),
               ("time", f"{d['seconds']:.1f} s"), ("repository", repo.url)])


def restore_physical(ctx: typer.Context, *, backup_id: str | None = None, latest: bool = False,
                     target_time: str | None = None, target_lsn: str | None = None, target_xid: str | None = None,
                     target_name: str | None = None, target_latest: bool = False, datadir: str | None = None,
                     port: int | None = None, start: bool = False, dry_run: bool = False,
                     as_json: bool = False, archive: bool = False, no_archive: bool = False,
                     keep_failed: bool = False, timeline: str = "current", primary_url: str | None = None,
                     **_: Any) -> None:
    from swarm.model.recovery import parse_timeline_option
    from swarm.model.targets import from_options
    from swarm.services.context import open_repository
    from swarm.services.postgres.pitr import execute_pitr, plan_pitr

    if not datadir:
        raise typer.BadParameter("a physical restore needs --datadir DIR (an empty directory)")
    if backup_id and latest:
        raise typer.BadParameter("give a backup ID or --latest, not both")
    if archive and no_archive:
        raise typer.BadParameter("give --archive or --no-archive, not both")
    try:
        target = from_options(time=target_time, lsn=target_lsn, xid=target_xid, name=target_name,
                              latest=target_latest)
        tl = parse_timeline_option(timeline)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    s = settings(ctx, db_url=primary_url)
    repo = open_repository(s)
    plan = plan_pitr(repo, target, Path(datadir), backup_id=None if latest else backup_id, port=port, start=start,
                     bindir=s.pg_bindir, timeline=tl, primary_url=s.db_url)
    if not as_json:
        render.err.print(f"following timeline {plan.timeline}: {plan.timeline_reason}", markup=False,
                         highlight=False)
        for w in plan.warnings:
            render.err.print(f"warning: {w}", markup=False, highlight=False)
    if dry_run:
        render.dry_run_plan(plan.to_dict(), as_json=as_json)
        return
    with progress(as_json) as reporter:
        res = execute_pitr(repo, plan, s, reporter=reporter, archive=archive, keep_failed=keep_failed)
    d = res.to_dict()
    d["archive"] = archive
    if as_json:
        render.emit_json(d)
        return
    render.out.print(f"[bold green]restored[/] backup {plan.backup.id} into {plan.datadir} "
                     f"({res.files} files, {render.human_bytes(res.bytes)})")
    archiving = ("on: it archives into the repository (--archive)" if archive else
                 "off: it does not archive into the repository (pass --archive for a new primary)")
    if res.started:
        render.kv([("target", plan.target.describe()), ("reached LSN", res.restored_lsn),
                   ("timeline", f"{res.timeline} (followed {plan.timeline})"),
                   ("last transaction", res.last_transaction_time or "none replayed after the backup's end"),
                   ("archiving", archiving),
                   ("time", f"{res.timings.get('total_s', 0):.1f} s"), ("connect", d["db_url"]),
                   ("stop it with", d["stop_command"])])
    else:
        render.out.print(f"start it with: {d['start_command']}  (recovers to {plan.target.describe()} on timeline "
                         f"{plan.timeline}, then promotes; archiving {archiving})")


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
        res = push_wal(open_repository(settings(ctx), create=True), path, push_ahead=ahead)
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

    Any other failure (damaged object, wrong key, repository unreachable) exits 126, which
    makes PostgreSQL abort recovery rather than promote early short of its target.
    """
    from swarm.errors import SwarmError
    from swarm.services.wal.archive import fetch_wal, self_argv, spawn_detached, take_from_spool
    from swarm.services.wal.fastpath import FETCH_ABORT

    spawn = spawn_detached([*self_argv(), *_config_args(ctx), "admin", "wal"])
    try:
        if take_from_spool(name, dest, prefetch=prefetch, spawn=spawn):
            return  # prefetched: no repository round trip
    except ValueError:
        raise typer.Exit(1) from None
    from swarm.services.context import open_repository

    try:
        ok = fetch_wal(open_repository(settings(ctx)), name, dest, prefetch=prefetch, spawn=spawn)
    except ValueError:
        raise typer.Exit(1) from None
    except SwarmError as exc:
        render.error(exc, as_json=False)
        raise typer.Exit(FETCH_ABORT) from None
    if not ok:
        raise typer.Exit(1)


@wal_app.command("prefetch", hidden=True)
def prefetch_cmd(ctx: typer.Context, name: str = typer.Argument(...),
                 spool: Path = typer.Option(..., "--spool"), count: int = typer.Option(8, "--count")) -> None:
    """Download the segments after NAME into the fetch spool (started by `wal fetch`)."""
    from swarm.services.context import open_repository
    from swarm.services.wal.archive import prefetch_after

    prefetch_after(open_repository(settings(ctx)), name, spool, count)


@wal_app.command("status")
def status(ctx: typer.Context, db_url: str = typer.Option(None, "--db-url", help="Server to measure lag against."),
           as_json: bool = JSON_OPT) -> None:
    """Newest archived WAL per timeline, gaps, conflicts, and, when a server is configured, the live lag
    (RPO) and whether archive_command is failing.

    Exit status: 0 OK; 1 a gap, a conflict, or archiving failing on the server.
    """
    from swarm.services.context import open_repository
    from swarm.services.postgres.physical_backup import physical_backups
    from swarm.services.wal.archive import wal_status

    s = settings(ctx, db_url=db_url)
    repo = open_repository(s)
    since: dict[int, str] = {}
    warnings: list[str] = []
    for m in physical_backups(repo, warnings=warnings):
        tli = int(m.source["timeline"])
        since.setdefault(tli, str(m.source["start_wal"]))
    st = wal_status(repo, db_url=s.db_url, since=since, warnings=warnings)
    if as_json:
        render.emit_json(st.to_dict())
    else:
        render.out.print(f"WAL archive of cluster {st.system_identifier} in {st.repo}", markup=False)
        render.table(None, ["timeline", "segments", "oldest", "newest", "archived to", "partial", "at"],
                     [[t["timeline"], t["segments"], t["oldest"], t["newest"], t["newest_end_lsn"], t["partial"] or "",
                       t["newest_archived_at"] or ""] for t in st.timelines])
        if st.server:
            sv = st.server
            age = sv["seconds_since_last_archive"]
            render.out.print(f"server at {sv['lsn']} (timeline {sv['timeline']}): {render.human_bytes(sv['lag_bytes'])}"
                             f" not archived yet; last archive "
                             f"{'never' if age is None else f'{age:.0f} s ago'}", markup=False)
        for g in st.gaps:
            render.out.print(f"[red]gap[/]: {g['missing']} is missing")
        for c in st.conflicts:
            render.out.print(f"[red]conflict[/]: {c} (a different file under an archived name)")
        for p in st.problems:
            render.out.print(f"[red]problem[/]: {render.escape(p)}")
        for w in st.warnings:
            render.out.print(f"[yellow]warning[/]: {render.escape(w)}")
        render.out.print("[bold green]OK[/]" if st.ok else "[bold red]NOT OK[/]")
    if not st.ok:
        raise typer.Exit(int(ExitCode.FAILED))


@wal_app.command("stream")
def stream(ctx: typer.Context, db_url: str = typer.Option(None, "--db-url"),
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
    if as_json:
        render.emit_json(res.to_dict())
    else:
        render.kv(list(res.to_dict().items()))


def restore_point(ctx: typer.Context, name: str = typer.Argument(..., metavar="NAME"),
                  db_url: str = typer.Option(None, "--db-url"),
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
    point = make_restore_point(repo, url, name, replace=replace)
    if as_json:
        render.emit_json(point)
    else:
        state = "archived" if point.get("archived") else "not archived yet (check archive_command)"
        moved = f" (moved from LSN {point['replaced']['lsn']})" if point.get("replaced") else ""
        render.out.print(f"restore point [bold]{name}[/] at LSN {point['lsn']} ({point['time']}), timeline "
                         f"{point['tli']}{moved}; WAL switched, segment {point.get('segment')} {state}")


def restore_points(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List the restore points recorded in the repository (what --target-name accepts).

    Exit status: 0; 5 a record is damaged (it is listed as DAMAGED).
    """
    from swarm.services.context import open_repository
    from swarm.services.postgres.pitr import list_restore_points

    points = list_restore_points(open_repository(settings(ctx)))
    if as_json:
        render.emit_json({"restore_points": points})
    else:
        render.table(None, ["name", "LSN", "timeline", "time"],
                     [[p["name"], "DAMAGED" if p.get("damaged") else p.get("lsn"), p.get("tli", ""),
                       p.get("problem") or p.get("time")] for p in points])
    if any(p.get("damaged") for p in points):
        raise typer.Exit(int(ExitCode.INTEGRITY))
