"""``swarm api serve``: the read API."""
from __future__ import annotations

import typer

from swarm.cli.common import settings
from swarm.ui import render

app = typer.Typer(help="swarm's read API.", no_args_is_help=True)


@app.command()
def serve(ctx: typer.Context, host: str = typer.Option("127.0.0.1", "--host"),
          port: int = typer.Option(8080, "--port"),
          db_url: str = typer.Option(None, "--db-url", help="Database to serve (default: SWARM_DB_URL).")) -> None:
    """Serve /healthz, /api/v1/pipelines and /api/v1/runs/{id} until interrupted."""
    from swarm.platform.api import make_server

    s = settings(ctx, db_url=db_url)
    server = make_server(s.require("db_url", "the swarm database (SWARM_DB_URL)"), host, port)
    render.err.print(f"serving on http://{host}:{server.server_address[1]}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
