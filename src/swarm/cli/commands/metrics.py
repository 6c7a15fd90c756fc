"""``swarm admin metrics``: Prometheus metrics, served or written for node_exporter (docs/metrics.md)."""
from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import typer

from swarm.cli.common import JSON_OPT, settings
from swarm.errors import ExitCode

app = typer.Typer(help="Prometheus metrics: serve them on /metrics, or write a node_exporter textfile.",
                  no_args_is_help=True)
REPLICATION_OPT = typer.Option(False, "--replication/--no-replication",
                               help="Also compare the artefact bucket with the DR bucket at each gather "
                                    "(swarm_replication_lag_seconds; lists every version of both).")


def _gather(ctx: typer.Context, replication: bool) -> Any:
    from swarm.services.context import dr_config, open_repository, primary_config
    from swarm.services.status import deployment_status

    s = settings(ctx)

    def gather() -> Any:
        check_dr = None
        if replication and s.dr_objects_bucket and s.objects_bucket:
            def check_dr() -> Any:
                from swarm.services.objects.common import open_bucket
                from swarm.services.objects.replicate import check_replication

                return check_replication(open_bucket(primary_config(s)), open_bucket(dr_config(s)), limit=10)
        return deployment_status(open_repository(s, check_key=False), s.schedule, db_url=s.db_url, replication=check_dr)

    return gather


@app.command("serve")
def serve(ctx: typer.Context,
          port: int = typer.Option(9187, "--port", min=0, max=65535, help="Port to answer on (/metrics)."),
          address: str = typer.Option("127.0.0.1", "--address", help="Address to bind (0.0.0.0 for every one)."),
          ttl: float = typer.Option(15.0, "--ttl", min=0.0, help="Seconds a gather is reused between scrapes."),
          replication: bool = REPLICATION_OPT,
          as_json: bool = JSON_OPT) -> None:
    """Answer Prometheus scrapes on http://ADDRESS:PORT/metrics until SIGTERM. Each scrape (at most
    every --ttl seconds) gathers the status afresh; what does not exist yet
    is absent, never 0;
    swarm_metrics_scrape_success says whether the gather worked."""
    from prometheus_client import start_http_server

    from swarm.services.metrics import registry_for
    from swarm.ui import render

    reg = registry_for(_gather(ctx, replication), ttl=ttl)
    server, _thread = start_http_server(port, addr=address, registry=reg)
    bound = server.server_address[1]
    info = {"listening": f"http://{address}:{bound}/metrics", "port": bound}
    if as_json:
        render.emit_json(info)
    else:
        render.out.print(f"serving metrics on {info['listening']} (SIGTERM stops)", markup=False)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.shutdown()


@app.command("write")
def write(ctx: typer.Context, file: Path = typer.Argument(..., help="The .prom file (node_exporter's textfile "
                                                                  "collector directory)."),
          replication: bool = REPLICATION_OPT,
          as_json: bool = JSON_OPT) -> None:
    """Gather once and write the metrics to FILE atomically (node_exporter textfile collector; run it
    from cron or a timer). Exit 1 when the gather failed (the file then says
    so:
    swarm_metrics_scrape_success 0)."""
    from prometheus_client import write_to_textfile
    from prometheus_client.parser import text_string_to_metric_families

    from swarm.services.metrics import registry_for
    from swarm.ui import render

    reg = registry_for(_gather(ctx, replication), ttl=0)
    write_to_textfile(str(file), reg)
    fams = list(text_string_to_metric_families(file.read_text()))
    ok = any(s.value == 1 for f in fams if f.name == "swarm_metrics_scrape_success" for s in f.samples)
    info = {"file": str(file), "families": len(fams), "scrape_success": ok}
    if as_json:
        render.emit_json(info)
    else:
        render.out.print(f"wrote {len(fams)} metric families to {file}" + ("" if ok else " (the gather FAILED)"),
                         markup=False)
    if not ok:
        raise typer.Exit(int(ExitCode.FAILED))
