"""``swarm admin repo``: the repository itself (format upgrades)."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, settings
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
