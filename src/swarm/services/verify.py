"""Prove a backup restorable.

Checks, in order, collecting every problem rather than stopping at the first:

1. the manifest loads and passes its checksum;
2. every object the manifest lists exists, every frame opens (AEAD), it decompresses,
   and its stored bytes hash to the manifest's SHA-256; objects in the backup's data
   prefix that the manifest does not list are reported too;
3. logical PostgreSQL backups: ``pg_restore -l`` reads the table of contents; physical
   ones: every pack frame, the files re-assembled and checked by ``pg_verifybackup``, and the
   WAL from start to stop LSN present (``physical_verify``);
4. with ``restore_test``: the dump is restored into a throwaway cluster started for the
   purpose, and every table's row count is compared with the manifest. The cluster is
   destroyed afterwards, also on failure.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import SwarmError
from swarm.model.manifest import Manifest, ObjectEntry
from swarm.model.rowcounts import RowCountComparison, compare_row_counts
from swarm.repo import Repository
from swarm.repo.format import data_key
from swarm.services.backup_postgres import DUMP_PREFIX
from swarm.services.materialize import materialize
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.restore_postgres import restore_into, restored_counts
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.dump import pg_restore_list


@dataclass
class VerifyResult:
    backup_id: str
    objects_checked: int = 0
    bytes_checked: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    toc_entries: int | None = None
    restore_test: RowCountComparison | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and (self.restore_test is None or self.restore_test.validated)

    def problem(self, where: str, message: str) -> None:
        self.problems.append({"where": where, "problem": message})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.backup_id, "ok": self.ok, "objects_checked": self.objects_checked,
                               "bytes_checked": self.bytes_checked, "problems": self.problems,
                               "toc_entries": self.toc_entries, "seconds": round(self.seconds, 3)}
        if self.restore_test is not None:
            out["restore_test"] = {"validated": self.restore_test.validated, "tables": self.restore_test.to_dict()}
        return out


def verify_backup(repo: Repository, backup_id: str, *, restore_test: bool = False, jobs: int = 2,
                  work_dir: str | None = None, reporter: Reporter | None = None,
                  bindir: str | None = None) -> VerifyResult:
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    result = VerifyResult(backup_id)
    try:
        manifest = repo.load_manifest(backup_id)
    except SwarmError as exc:
        if exc.code == "not_found":
            raise
        result.problem("manifest", exc.message)
        result.seconds = time.monotonic() - t0
        return result
    _check_listing(repo, manifest, result)
    if manifest.kind == "pg-physical":
        from swarm.services.physical_verify import verify_physical

        verify_physical(repo, manifest, result, work_dir=work_dir, reporter=reporter, bindir=bindir)
        result.seconds = time.monotonic() - t0
        return result
    reporter.stage(f"reading and checking {len(manifest.objects)} objects")

    def on_error(entry: ObjectEntry, exc: SwarmError) -> None:
        result.problem(entry.name, exc.message)

    with tempfile.TemporaryDirectory(prefix="swarm-verify-", dir=work_dir) as tmp:
        dumpdir = Path(tmp) / "dump"
        if manifest.kind == "pg-logical":
            written = materialize(repo, manifest, DUMP_PREFIX, dumpdir, jobs=jobs, reporter=reporter,
                                  on_error=on_error)
            result.objects_checked = len(written)
            result.bytes_checked = sum(p.stat().st_size for p in written)
            # the large tables' parts (tables/*.copy) are read end to end too
            for entry in manifest.objects:
                if entry.name.startswith(DUMP_PREFIX):
                    continue
                try:
                    repo.check_object(manifest, entry)
                    result.objects_checked += 1
                    result.bytes_checked += entry.size
                except SwarmError as exc:
                    on_error(entry, exc)
            if not result.problems:
                _check_toc(dumpdir, result, bindir)
            if restore_test and not result.problems:
                reporter.stage("restore test in a throwaway cluster")
                result.restore_test = _restore_test(repo, manifest, dumpdir, Path(tmp) / "cluster", jobs, bindir)
        else:
            for entry in manifest.objects:
                try:
                    repo.check_object(manifest, entry)
                    result.objects_checked += 1
                    result.bytes_checked += entry.size
                except SwarmError as exc:
                    on_error(entry, exc)
    result.seconds = time.monotonic() - t0
    return result


def _check_listing(repo: Repository, manifest: Manifest, result: VerifyResult) -> None:
    prefix = data_key(manifest.id, "")
    stored = {i.key[len(prefix):]: i.size for i in repo.store.list(prefix)}
    for entry in manifest.objects:
        if entry.name not in stored:
            result.problem(entry.name, "missing from the repository")
        elif stored[entry.name] != entry.stored_size:
            result.problem(entry.name, f"stored size {stored[entry.name]} differs from the manifest's "
                                       f"{entry.stored_size} (truncated or replaced)")
    listed = {o.name for o in manifest.objects}
    for name in sorted(set(stored) - listed):
        result.problem(name, "present in the repository but not listed in the manifest")


def _check_toc(dumpdir: Path, result: VerifyResult, bindir: str | None) -> None:
    try:
        toc = pg_restore_list(dumpdir, bindir)
        result.toc_entries = sum(1 for line in toc.splitlines() if line and not line.startswith(";"))
    except SwarmError as exc:
        result.problem("pgdump/toc.dat", exc.message)


def _restore_test(repo: Repository, manifest: Manifest, dumpdir: Path, base: Path, jobs: int,
                  bindir: str | None) -> RowCountComparison:
    cluster = LocalCluster(base)
    try:
        cluster.init(fast=True)
        cluster.start()
        dbname = str(manifest.source.get("database") or "restored")
        cluster.psql(f'CREATE DATABASE "{dbname}"')
        url = cluster.url(dbname)
        restore_into(repo, manifest, url, dumpdir, jobs=jobs, no_owner=True, bindir=bindir)
        expected: dict[str, int] = manifest.source.get("row_counts", {})
        return compare_row_counts(expected, restored_counts(url, list(expected)))
    finally:
        cluster.destroy()
