"""``swarm admin repo``: the repository itself (format upgrades, rollback findings)."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, settings
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

    Each client remembers what it has seen of a repository (under SWARM_HOME/security/). A backup
    deleted without prune's tombstone, a manifest put back after prune, a restore point or a
    .partial WAL file older than seen are reported by `backups list`, `verify` and restores until
    accepted here. Accept only once you know who changed the repository's storage.

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
