"""``verify``: what was checked, every problem once, and what the restore test did."""
from __future__ import annotations

from typing import Any

from swarm.ui import render


def verify_result(res: Any, backup_id: str, *, as_json: bool) -> None:
    if as_json:
        render.emit_json(res.to_dict())
    else:
        if getattr(res, "swept", None):
            from swarm.services.workdirs import swept_message

            render.out.print(swept_message(res.swept), markup=False, highlight=False)
        status = "[bold green]OK[/]" if res.ok else "[bold red]FAILED[/]"
        render.out.print(f"{status} backup {backup_id}: {res.objects_checked} objects intact, "
                         f"{render.human_bytes(res.bytes_checked)} read and checked in {res.seconds:.1f} s")
        if res.toc_entries is not None:
            render.out.print(f"pg_restore -l: {res.toc_entries} table-of-contents entries")
        for p in res.problems:
            render.out.print(f"  {problem_place(p)}: {p['problem']}", markup=False)
        if res.restore_test is not None:
            for line in restore_test_lines(res.restore_test):
                render.out.print(line, markup=False)
        for hint in hints(res):
            render.err.print(f"hint: {hint}", markup=False)


def problem_place(p: dict[str, str]) -> str:
    """Where a problem is, with the table a COPY part holds: ``tables/0008-p000.copy
    (public.bulk, rows from page 0 to 1023)``."""
    if not p.get("table"):
        return p["where"]
    rows = f", rows {p['rows']}" if p.get("rows") else ""
    return f"{p['where']} ({p['table']}{rows})"


def hints(res: Any) -> list[str]:
    """What to do next, by what failed: repository objects damaged or missing (the storage
    medium or something writing to it); sampled bucket versions gone (deleted in the bucket:
    a new backup will not bring them back); a restore test that failed on intact objects."""
    rt = res.restore_test
    test_failures = rt.failures if rt is not None else 0
    out: list[str] = []
    if len(res.problems) > test_failures:
        out.append("do not restore from this backup; take a new one now, and keep the repository's storage "
                   "under watch (a damaged or missing object means the medium or something writing to it is "
                   "faulty).")
    gone = int(rt.facts.get("versions_gone", 0)) if rt is not None and rt.kind == "objects-sample" else 0
    if gone:
        bucket = rt.facts.get("bucket") or "the bucket"
        out.append(f"{gone} version(s) this backup pins are gone from {bucket}: they were deleted there despite "
                   "versioning, and a new backup will not bring them back. Check the bucket's lifecycle rules "
                   "(noncurrent-version expiration), its object lock, and who may delete versions "
                   "(`swarm admin objects policy check`). `swarm admin objects versions KEY` lists what the "
                   "bucket still has; the DR bucket may still hold them: `swarm admin objects restore --from dr "
                   "--at TIME --prefix KEY --dry-run` (TIME: the backup's) shows what it can bring back.")
    if rt is not None and rt.ran and test_failures > gone:
        out.append("the backup's objects are intact but its restore test failed: the problems above name "
                   "what did not come back; take a new backup, and verify it with --restore-test.")
    elif rt is not None and rt.ran and not rt.validated and not test_failures:
        out.append("the restored row counts differ from the backup's: the backup does not restore what was "
                   "dumped; take a new backup and verify it with --restore-test.")
    return out


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
