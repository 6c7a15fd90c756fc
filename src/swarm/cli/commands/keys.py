"""``swarm admin keys``: the key-encryption key."""
from __future__ import annotations

from pathlib import Path

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.ui import render

app = typer.Typer(help="Manage the key-encryption key that seals every backup.", no_args_is_help=True)


@app.command("init")
def init(ctx: typer.Context,
         path: Path = typer.Option(None, "--path", help="Where to write the key (default: SWARM_KEY_URL, else "
                                                        "$SWARM_HOME/keys/repo.key)."),
         as_json: bool = JSON_OPT) -> None:
    """Create a new random 256-bit key file (mode 0600). Refuses to overwrite one."""
    from swarm.crypto.keys import create_key_file, key_path_from_url

    s = settings(ctx)
    target = path or key_path_from_url(str(s.key_url))
    kek = create_key_file(target)
    if as_json:
        render.emit_json({"path": str(target), "key_id": kek.key_id})
        return
    render.out.print(f"created {target} ({kek.key_id}), mode 0600")
    render.err.print("Keep a copy of this file offline: without it no backup sealed with it can be restored.")
