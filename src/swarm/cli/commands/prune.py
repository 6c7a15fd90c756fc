"""``swarm admin prune``: apply the retention policy and delete what no kept backup needs."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.ui.views import catalog


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)


def prune(ctx: typer.Context,
          dry_run: bool = typer.Option(False, "--dry-run",
                                       help="Compute the same plan and print it; change nothing, take no lock."),
          wait: float = typer.Option(0.0, "--wait", min=0.0, metavar="SECONDS",
                                     help="Wait this long for running backups and WAL archiving to stop writing "
                                          "(a WAL lease stays live 600 s after its last refresh)."),
          max_unused: str = typer.Option("10%", "--max-unused", metavar="SHARE|SIZE",
                                         help="Unused space left in packs after the prune: a share of the packs' "
                                              "bytes (10%, 0%) or a size (50MB). Packs of removed backups that "
                                              "kept backups still read are rewritten, most unused bytes first, "
                                              "until the rest is within it."),
          as_json: bool = JSON_OPT) -> None:
    """Remove the backups the retention policy no longer keeps, then the packs, data keys, data objects and
    WAL no kept backup needs, and what interrupted backups left.

    The policy is the retention tables of swarm.toml, or with
    `swarm --repo NAME` that copy's own retention when it has one
    (docs/operations.md, docs/copies.md).
    Manifests go first (through tombstones), data last: a prune killed
    at any point leaves only unreferenced data, and running it again
    converges. Never the newest good backup of a kind, never a tagged
    one, never a version in the production bucket.

    Exit status:
    0 done (or planned, with --dry-run);
    3 invalid retention table (the key is named) or --max-unused; 4 wrong key;
    5 the repository is damaged; 6 another prune or a writer holds
      the repository (named); 7 the repository cannot be reached.
    """
    from swarm.model.repack import parse_budget
    from swarm.services.context import open_repository
    from swarm.services.maintenance.prune import prune as run

    budget = parse_budget(max_unused)
    s = settings(ctx)
    repo = open_repository(s)
    with progress(as_json) as reporter:
        result = run(repo, s.retention, dry_run=dry_run, wait=wait, reporter=reporter, max_unused=budget)
    catalog.prune_result(result.to_dict(), as_json=as_json)
