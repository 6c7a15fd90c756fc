"""``swarm admin repo``: the repository itself (format upgrades, rollback findings)."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui import render

app = typer.Typer(help="Maintain the backup repository itself.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """Upgrade a repository of an older format version once (adds references to every manifest).

    Safe to run again after an interruption; a repository already current is left alone.
    """
    from swarm.services.context import upgrade as run

    res = run(settings(ctx))
    if as_json:
        render.emit_json(res.to_dict())
        return
    if not res.changed:
        render.out.print(f"{res.url} is already at format version {res.to_version}; nothing to do")
        return
    render.out.print(f"upgraded {res.url} from format version {res.from_version} to {res.to_version}: "
                     f"{len(res.upgraded)} manifests given references"
                     + (f", {len(res.already)} already done by an earlier run" if res.already else ""))
    for backup_id, problem in sorted(res.damaged.items()):
        render.err.print(f"left as it is (damaged): {backup_id}: {problem}")


@app.command("accept-rollback")
def accept_rollback(ctx: typer.Context,
                    dry_run: bool = typer.Option(False, "--dry-run", help="List the findings; accept nothing."),
                    as_json: bool = JSON_OPT) -> None:
    """Accept the repository as it is now, after reviewing its rollback findings.

    Each client remembers what it has seen of a repository (under
    SWARM_HOME/security/). A backup deleted without prune's tombstone, a
    manifest put back after prune, a restore point or a .partial WAL file
    older than seen are reported by `backups list`, `verify` and restores
    until accepted here. Accept only once you know who changed the
    repository's storage.

    \b
    Exit status: 0 nothing to accept, or accepted; 5 findings listed (--dry-run).
    """
    from swarm.services.context import open_repository
    from swarm.services.repository.catalog import accept_rollback as run

    res = run(open_repository(settings(ctx)), dry_run=dry_run)
    if as_json:
        render.emit_json(res)
    elif not res["findings"]:
        render.out.print(f"{res['url']}: no rollback findings; nothing to accept")
    else:
        for f in res["findings"]:
            render.out.print(f"{f['kind']}: {f['problem']}")
        render.out.print("accepted: these are no longer reported" if res["accepted"]
                         else "nothing accepted (--dry-run)")
    if dry_run and res["findings"]:
        raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command("copy")
def copy(ctx: typer.Context,
         to: str = typer.Option(None, "--to", metavar="NAME", help="Copy to this copy only (default: every copy)."),
         dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be copied; write nothing."),
         follow: bool = typer.Option(False, "--follow",
                                     help="Keep copying every --interval seconds (new WAL and backups) until "
                                          "interrupted."),
         interval: float = typer.Option(60.0, "--interval", min=1.0, metavar="SECONDS",
                                        help="Seconds between rounds with --follow (the copies' WAL interval)."),
         as_json: bool = JSON_OPT) -> None:
    """Copy the repository to its off-site copies ([[repository.copies]] in swarm.toml).

    Incremental: only what a copy lacks (backups, WAL, restore points,
    tags). Data goes first and manifests last, so a copy never lists a
    backup it cannot restore; every object is read back from the copy and
    checked. The copy keeps the repository id and every object's bytes;
    only key files are rewrapped when the copy has a key of its own. Safe
    to interrupt and run again; runs beside backups and WAL archiving.
    Use a copy with `swarm --repo NAME admin ...` (docs/copies.md).

    \b
    Exit status: 0 every copy up to date; 3 no such copy; 4 wrong key for a
    copy; 5 something could not be copied (named); 6 a prune holds a side;
    7 a copy cannot be reached; 8 the copy's place holds another repository.
    """
    from swarm.services.context import copy_targets, open_repository
    from swarm.services.copies.copy import CopyOutcome, copy_repository
    from swarm.ui.views import copies as view

    s = settings(ctx)
    targets = copy_targets(s, to)
    source = open_repository(s)

    def each_round(outcomes: list[CopyOutcome]) -> None:
        if follow and not as_json:
            for o in outcomes:
                view.copy_outcome(o.to_dict())

    with progress(as_json) as reporter:
        run = copy_repository(source, targets, dry_run=dry_run, follow=follow, interval=interval,
                              reporter=reporter, on_round=each_round)
    if not (follow and not as_json):
        view.copy_run(run.to_dict(), as_json=as_json)
    if not run.ok:
        errors = [o.error for o in run.outcomes if o.error is not None]
        raise typer.Exit(int(errors[0].exit_code) if len(errors) == len(run.outcomes) and errors
                         else int(ExitCode.INTEGRITY))
