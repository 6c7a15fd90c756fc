"""``verify``: what was checked, every problem once, and what the restore test did."""
from __future__ import annotations

from typing import Any

from swarm.ui import render


def verify_result(res: Any, backup_id: str, *, as_json: bool) -> None:
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
        if res.restore_test is not None:
            for line in restore_test_lines(res.restore_test):
                render.out.print(line, markup=False)
        if res.problems:
            render.err.print("hint: do not restore from this backup; take a new one now, and keep the repository's "
                             "storage under watch (a damaged object means the medium or something writing to it "
                             "is faulty).", markup=False)


def restore_test_lines(rt: Any) -> list[str]:
    """What the restore test did, in words (the same facts as ``restore_test`` in --json)."""
    f = rt.facts
    if not rt.ran:
        return [f"restore test: not run ({f.get('skipped', 'not available')})"]
    verdict = "passed" if rt.validated else "FAILED"
    if rt.kind == "logical-cluster":
        lines = [f"restore test (throwaway cluster, pg_restore): {verdict}, row counts "
                 f"{'match' if not rt.mismatches else 'DIFFER'} ({len(rt.tables)} tables)"]
        lines += [f"  {t.table}: expected {t.expected}, restored {t.restored}" for t in rt.mismatches]
        return lines
    if rt.kind == "physical-cluster":
        lines = [f"restore test (throwaway cluster, WAL replayed to the consistency point): {verdict}"]
        dbs = list(f.get("databases", []))
        if "recovered_lsn" in f:
            lines.append(f"  recovered to LSN {f['recovered_lsn']} in {f.get('recovery_seconds', 0):.1f} s; "
                         f"{len(dbs)} database(s): {', '.join(dbs[:10])}{', ...' if len(dbs) > 10 else ''}")
        if "tables_read" in f:
            amcheck = (f"{f.get('indexes_checked', 0)} B-tree indexes checked with amcheck" if f.get("amcheck")
                       else "indexes not checked (amcheck not installed)")
            lines.append(f"  {f['tables_read']} tables read in full ({f.get('rows_read', 0)} rows); {amcheck}")
        return lines
    if rt.kind == "objects-sample":
        return [f"restore test (sample of the inventory): {verdict}, {f.get('objects_sampled', 0)} of "
                f"{f.get('inventory_keys', 0)} versions read ({f.get('from_bucket', 0)} from the bucket, "
                f"{f.get('from_repository', 0)} from copies in the repository; {f.get('etags_compared', 0)} "
                f"checksums compared), {f.get('failed', 0)} failed"]
    return [f"restore test ({rt.kind}): {verdict}"]
