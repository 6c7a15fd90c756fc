"""``swarm admin verify``: prove a backup restorable."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui.views import verify as verify_view


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(ctx: typer.Context, backup_id: str = typer.Argument(..., metavar="ID"),
           restore_test: bool = typer.Option(
               False, "--restore-test",
               help="Also prove a restore: logical, restore into a throwaway cluster and compare row counts; "
                    "physical, recover into a throwaway cluster to the backup's consistency point, then amcheck "
                    "every B-tree index and read every table; objects, read back a sample of the inventoried "
                    "versions and compare size and checksum."),
           sample: int = typer.Option(20, "--sample", min=0,
                                      help="Objects backups: how many versions the restore test reads (0: all)."),
           jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64),
           as_json: bool = JSON_OPT) -> None:
    """Check every object (checksum, decryption), the dump's table of contents, optionally a test restore.

    Exit status: 0 all holds; 1 a check failed (each problem names the object, table, index,
    key or WAL file); 3 the restore test cannot run here (configuration); 4 wrong key;
    7 a service cannot be reached; 9 no such backup.
    """
    from swarm.services.context import open_repository
    from swarm.services.repository.verify import verify_backup

    s = settings(ctx)
    repo = open_repository(s)
    with progress(as_json) as reporter:
        res = verify_backup(repo, backup_id, restore_test=restore_test, jobs=jobs, work_dir=s.work_dir,
                            reporter=reporter, bindir=s.pg_bindir, settings=s, sample=sample)
    verify_view.verify_result(res, backup_id, as_json=as_json)
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))
