"""``swarm api serve``: the read API.

The bearer token comes from ``--token-file`` (the file's first line) or ``SWARM_API_TOKEN``,
never from a flag's value (argv is visible to every local user). Listening beyond loopback
without one is refused with exit 3 (see ``docs/api.md``).
"""
from __future__ import annotations

import os
from pathlib import Path

import typer

from swarm.cli.common import settings
from swarm.errors import ConfigError
from swarm.ui import render

app = typer.Typer(help="swarm's read API.", no_args_is_help=True)


def _token(token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the API token file {token_file}: {exc}",
                              hint="Pass --token-file naming a readable file holding the token.") from exc
        token = lines[0].strip() if lines else ""
        if not token:
            raise ConfigError(f"the API token file {token_file} is empty",
                              hint="Write a random token of at least 32 characters into it.")
        return token
    env = os.environ.get("SWARM_API_TOKEN", "").strip()
    return env or None


@app.command()
def serve(ctx: typer.Context, host: str = typer.Option("127.0.0.1", "--host"),
          port: int = typer.Option(8080, "--port"),
          db_url: str = typer.Option(None, "--db-url", help="Database to serve (default: SWARM_DB_URL)."),
          token_file: Path | None = typer.Option(
              None, "--token-file", help="File holding the bearer token (default: SWARM_API_TOKEN); "
                                         "required unless --host is loopback."),
          allow_host: list[str] = typer.Option(
              [], "--allow-host", help="A name clients use in the Host header (repeatable)."),
          pool_size: int = typer.Option(4, "--pool-size", min=1, max=64,
                                        help="Database connections kept at most.")) -> None:
    """Serve /healthz, /api/v1/pipelines and /api/v1/runs/{id} until interrupted."""
    from swarm.platform.api import make_server

    s = settings(ctx, db_url=db_url)
    server = make_server(s.require("db_url", "the swarm database (SWARM_DB_URL)"), host, port,
                         token=_token(token_file), allowed_hosts=allow_host, pool_size=pool_size)
    auth = "bearer token required" if server.token else "no token (loopback only)"
    render.err.print(f"serving on http://{host}:{server.server_address[1]} ({auth})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
