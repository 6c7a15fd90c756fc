"""``swarm admin verify``: prove a backup restorable."""
from __future__ import annotations

import typer
from typer._click.exceptions import UsageError

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui.views import verify as verify_view


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(ctx: typer.Context,
           backup_id: str = typer.Argument(..., metavar="ID",
                                           help="The backup to verify (`swarm admin backups list`)."),
           restore_test: bool = typer.Option(
               False, "--restore-test",
               help="Also prove a restore: logical, restore into a throwaway cluster and compare row counts; "
                    "physical, recover into a throwaway cluster to the backup's consistency point, then amcheck "
                    "every B-tree index and read every table; objects, read back a sample of the inventoried "
                    "versions and compare size and checksum."),
           sample: int | None = typer.Option(None, "--sample", min=0, show_default=False,
                                      help="Objects backups, with --restore-test: how many versions the restore "
                                           "test reads (default 20; 0: all)."),
           jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64,
                                    help="Logical restore test: parallel pg_restore jobs and COPYs."),
           as_json: bool = JSON_OPT) -> None:
    """Check every object (checksum, decryption), the dump's table of contents, optionally a test restore.

    Exit status:
    0 all holds;
    1 a check failed (each problem names the object, table, index, key
      or WAL file);
    2 bad command line (--sample without an objects --restore-test);
    3 the restore test cannot run here (configuration); 4 wrong key;
    7 a service cannot be reached; 9 no such backup.
    """
    from swarm.services.context import open_repository, restore_test_env
    from swarm.services.repository.verify import DEFAULT_SAMPLE, verify_backup

    if sample is not None:
        _check_sample(ctx, backup_id, restore_test)
    s = settings(ctx)
    repo = open_repository(s)
    with progress(as_json) as reporter:
        res = verify_backup(repo, backup_id, restore_test=restore_test, jobs=jobs, work_dir=s.work_dir,
                            reporter=reporter, bindir=s.pg_bindir, env=restore_test_env(s),
                            sample=DEFAULT_SAMPLE if sample is None else sample)
    verify_view.verify_result(res, backup_id, as_json=as_json)
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))


def _check_sample(ctx: typer.Context, backup_id: str, restore_test: bool) -> None:
    """``--sample`` only means something to an objects backup's restore test: without
    ``--restore-test``, or on a backup whose id names another kind, it is a usage error (exit 2)
    rather than silently dropped. The kind is read from the id (``...-pg-logical-...``), so
    nothing is opened to decide; an id that is not well formed is left to the service (exit 9)."""
    from swarm.model.ids import is_backup_id
    from swarm.model.sources import Kind

    if not restore_test:
        raise UsageError("--sample applies to the restore test only: add --restore-test (objects backups)", ctx=ctx)
    if is_backup_id(backup_id):
        kind = backup_id.split("-", 1)[1].rsplit("-", 1)[0]
        if kind != Kind.OBJECTS:
            raise UsageError(f"--sample applies to objects backups only; {backup_id} is a {kind} backup, whose "
                             "restore test reads everything", ctx=ctx)
