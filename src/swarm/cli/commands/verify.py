"""``swarm admin verify``: prove a backup restorable."""
from __future__ import annotations

import typer

from swarm.cli.common import JSON_OPT, progress, settings
from swarm.errors import ExitCode
from swarm.ui import render


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)


def verify(ctx: typer.Context, backup_id: str = typer.Argument(..., metavar="ID"),
           restore_test: bool = typer.Option(False, "--restore-test",
                                             help="Also restore into a throwaway cluster and compare row counts."),
           jobs: int = typer.Option(2, "--jobs", "-j", min=1, max=64),
           as_json: bool = JSON_OPT) -> None:
    """Check every object (checksum, decryption), the dump's table of contents, optionally a test restore.

    Exit status: 0 all holds; 1 a check failed (each problem names the object or table);
    4 wrong key; 9 no such backup.
    """
    from swarm.services.context import open_repository
    from swarm.services.verify import verify_backup

    s = settings(ctx)
    repo = open_repository(s)
    with progress(as_json) as reporter:
        res = verify_backup(repo, backup_id, restore_test=restore_test, jobs=jobs, work_dir=s.work_dir,
                            reporter=reporter, bindir=s.pg_bindir)
    if as_json:
        render.emit_json(res.to_dict())
    else:
        status = "[bold green]OK[/]" if res.ok else "[bold red]FAILED[/]"
        render.out.print(f"{status} backup {backup_id}: {res.objects_checked} objects intact, "
                         f"{render.human_bytes(res.bytes_checked)} read and checked in {res.seconds:.1f} s")
        if res.toc_entries is not None:
            render.out.print(f"pg_restore -l: {res.toc_entries} table-of-contents entries")
        for p in res.problems:
            render.out.print(f"  {p['where']}: {p['problem']}", markup=False)
        if res.problems:
            render.err.print("hint: do not restore from this backup; take a new one now, and keep the repository's "
                             "storage under watch (a damaged object means the medium or something writing to it "
                             "is faulty).", markup=False)
        if res.restore_test is not None:
            rt = res.restore_test
            render.out.print(f"restore test: {'row counts match' if rt.validated else 'ROW COUNTS DIFFER'} "
                             f"({len(rt.tables)} tables)")
            for t in rt.mismatches:
                render.out.print(f"  [red]{t.table}[/]: expected {t.expected}, restored {t.restored}")
    if not res.ok:
        raise typer.Exit(int(ExitCode.FAILED))
