"""Prove a backup restorable.

Checks, in order, collecting every problem rather than stopping at the first:

1. the manifest loads and passes its checksum, and every reference it lists (``refs``: packs
   and data objects of other backups, data keys, WAL segments) exists in the repository;
2. every object the manifest lists exists, every frame opens (AEAD), it decompresses,
   and its stored bytes hash to the manifest's SHA-256; objects in the backup's data
   prefix that the manifest does not list are reported too. Each damaged object is
   reported once: one that the listing already found missing or of the wrong size is not
   read again;
3. logical PostgreSQL backups: ``pg_restore -l`` reads the table of contents; physical
   ones: every pack frame, the files re-assembled and checked by ``pg_verifybackup``, and the
   WAL from start to stop LSN present (``physical_verify``);
4. with ``restore_test``, only when 1-3 found nothing (a damaged backup is not restored;
   ``restore_test.ran`` is then False and ``facts["skipped"]`` says why):

   * logical (``logical-cluster``): the dump is restored into a throwaway cluster started
     for the purpose, and every table's row count is compared with the manifest;
   * physical (``physical-cluster``): the backup's files are written into a throwaway data
     directory, recovered with ``restore_command`` = ``swarm admin wal fetch`` to the
     backup's consistency point (``recovery_target = 'immediate'``) and promoted; then
     ``amcheck``'s ``bt_index_check`` runs on every B-tree index and every table is read
     in full, in every database (``physical_verify.restore_test_physical``);
   * objects (``objects-sample``): ``sample`` inventoried versions are read back (from
     the bucket by version id, or the copied bytes from the repository) and their size
     and MD5 ETag compared with the inventory (``objects_verify``).

   The throwaway cluster, its data directory and spool are removed on every exit path
   (``try``/``finally``); a kill -9 of swarm during the test leaves them behind, under
   ``work_dir`` (or the system's temporary directory) as ``swarm-verify-<pid>-*`` with an
   owner record (``services.workdirs.work_directory``). The next ``verify``, logical backup
   or logical restore with the same work directory removes it once its process is gone, and
   says so (``VerifyResult.swept``), stopping first a throwaway server still running there
   (``cluster.stop_orphan``). When the server user could not enter the work directory, the
   cluster lives under ``/var/tmp/swarm-pg/<hash>`` behind a symlink, with an ``owner.json``:
   the sweep stops and removes it too, also when the symlink is already gone. The
   throwaway clusters accept only ``scram-sha-256`` with a random password (logical) or a
   unix socket in a 0700 directory (physical): no other local user can connect
   (``sources.postgres.cluster``), and a logical one restores into the fixed database
   ``RESTORE_TEST_DB``, never into a name taken from the manifest.

What the restore test did is reported in ``VerifyResult.restore_test`` (``RestoreTest``);
what it found wrong is in ``problems`` like every other problem, each naming the table,
index, key or WAL file. A problem with one of a logical backup's COPY parts
(``tables/0008-p000.copy``) also names the table whose rows it holds: ``table``
(``public.bulk``) and, for a table copied in several page ranges, ``rows`` (``from page 0
to 1023``), from the manifest's ``parallel_tables``.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from swarm import __version__
from swarm.clock import utc_iso
from swarm.errors import ConfigError, NotFoundError, SwarmError
from swarm.model.manifest import Manifest, ObjectEntry
from swarm.model.rowcounts import RowCountComparison, TableCheck, compare_row_counts
from swarm.model.sources import Kind
from swarm.repo import Repository
from swarm.services.postgres.logical_backup import DUMP_PREFIX
from swarm.services.postgres.logical_restore import restore_into, restored_counts, stage_schema
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.workdirs import VERIFY_DIR_PREFIX, owner_record, sweep_and_report, work_directory
from swarm.sources.postgres.cluster import LocalCluster
from swarm.sources.postgres.dump import pg_restore_list

if TYPE_CHECKING:
    from swarm.services.wal.server_access import ServerAccess
    from swarm.sources.objects import BucketConfig

DEFAULT_SAMPLE = 20


@dataclass(frozen=True)
class RestoreTestEnv:
    """What a restore test needs of the deployment, resolved only when a test runs (the wiring,
    ``services.context.restore_test_env``, builds it from the settings): the server user's access
    for a physical restore test (its ``restore_command``), the bucket configuration for an objects
    one (endpoint and credentials; the name comes from the backup), and the PostgreSQL binaries."""

    server_access: Callable[[], ServerAccess]
    bucket_config: Callable[[str | None], BucketConfig]
    bindir: str | None = None


@dataclass
class RestoreTest:
    """What a restore test did: ``kind`` (``logical-cluster``, ``physical-cluster`` or
    ``objects-sample``), its counters in ``facts`` (``tables_read``, ``indexes_checked``,
    ``objects_sampled``...), how many problems it added to the result, and for a logical
    backup the row-count comparison."""

    kind: str
    facts: dict[str, Any] = field(default_factory=dict)
    failures: int = 0
    row_counts: RowCountComparison | None = None
    ran: bool = True  # False: not run (``facts["skipped"]`` says why)

    @property
    def validated(self) -> bool:
        return self.ran and self.failures == 0 and (self.row_counts is None or self.row_counts.validated)

    @property
    def tables(self) -> tuple[TableCheck, ...]:
        return self.row_counts.tables if self.row_counts is not None else ()

    @property
    def mismatches(self) -> tuple[TableCheck, ...]:
        return self.row_counts.mismatches if self.row_counts is not None else ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "ran": self.ran, "validated": self.validated, **self.facts,
                               "failures": self.failures}
        if self.row_counts is not None:
            out["tables"] = self.row_counts.to_dict()
        return out


@dataclass
class VerifyResult:
    backup_id: str
    objects_checked: int = 0
    bytes_checked: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)
    toc_entries: int | None = None
    restore_test: RestoreTest | None = None
    seconds: float = 0.0
    swept: list[str] = field(default_factory=list)  # leftover work directories of killed runs removed first

    @property
    def ok(self) -> bool:
        rt = self.restore_test
        return not self.problems and (rt is None or not rt.ran or rt.validated)

    def problem(self, where: str, message: str) -> None:
        self.problems.append({"where": where, "problem": message})

    def reported(self) -> set[str]:
        """The places (object names...) a problem was already reported for."""
        return {p["where"] for p in self.problems}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.backup_id, "ok": self.ok, "objects_checked": self.objects_checked,
                               "bytes_checked": self.bytes_checked, "problems": self.problems,
                               "toc_entries": self.toc_entries, "seconds": round(self.seconds, 3),
                               "swept": self.swept}
        if self.restore_test is not None:
            out["restore_test"] = self.restore_test.to_dict()
        return out


def verify_backup(repo: Repository, backup_id: str, *, restore_test: bool = False, jobs: int = 2,
                  work_dir: str | None = None, reporter: Reporter | None = None,
                  bindir: str | None = None, env: RestoreTestEnv | None = None,
                  sample: int = DEFAULT_SAMPLE) -> VerifyResult:
    """Check backup ``backup_id`` (see the module docstring); never raises for a damaged backup
    (problems are collected) except ``NotFoundError`` when it does not exist.

    ``env`` is needed by the physical and objects restore tests (the server user's
    ``restore_command`` config; the bucket's endpoint and credentials); ``sample`` is how
    many objects an objects restore test reads back (0: every one).
    """
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    result = VerifyResult(backup_id, swept=sweep_and_report(work_dir, reporter))
    try:
        manifest = repo.load_manifest(backup_id)
    except SwarmError as exc:
        if isinstance(exc, NotFoundError):
            raise
        result.problem("manifest", exc.message)
        result.seconds = time.monotonic() - t0
        return result
    _check_catalogue(repo, result)
    _verify(repo, manifest, result, restore_test=restore_test, jobs=jobs, work_dir=work_dir, reporter=reporter,
            bindir=bindir, env=env, sample=sample, t0=t0)
    _name_tables(manifest, result)
    _record_outcome(repo, result)
    return result


def _record_outcome(repo: Repository, result: VerifyResult) -> None:
    """Record the outcome in the repository (``verifications/<id>``): retention never counts a backup
    whose latest verify failed toward a ``keep_*`` quota. Best effort: a repository that cannot be
    written (read-only credentials) still gets its verify, only unrecorded. One sealed put."""
    rt = result.restore_test
    record = {"ok": result.ok, "verified_at": utc_iso(repo.clock.now()), "problems": len(result.problems),
              "objects_checked": result.objects_checked,
              "restore_test": bool(rt is not None and rt.ran), "tool_version": __version__}
    with contextlib.suppress(SwarmError):
        repo.put_verification(result.backup_id, record)


def _check_state_tree(repo: Repository, manifest: Manifest, result: VerifyResult, reporter: Reporter) -> None:
    """A state snapshot's tree, whole: each of its own packs read end to end (stored SHA-256, frames
    end to end, each frame one the tree references and opening under its key), every node opens
    and matches its id, every file's chunks add up to its size, and every block it reads (its own and
    those of earlier snapshots) opens and matches its id."""
    from swarm.repo.tree import open_snapshot

    reporter.stage("checking every node and block of the snapshot's tree")
    try:
        reader = open_snapshot(repo, manifest)
        own = [e for e in manifest.objects if e.name.startswith("packs/")]
        for pack, problems in reader.check_packs(manifest.id, own).items():
            for problem in problems:
                result.problem(pack, problem)
        for p in reader.check(read_data=True):
            result.problem(p.where, p.message)
    except SwarmError as exc:
        result.problem("tree.json", exc.message)
        return
    result.objects_checked += len(manifest.objects)
    result.bytes_checked += sum(e.stored_size for e in manifest.objects)


def _check_catalogue(repo: Repository, result: VerifyResult) -> None:
    """Signs of rollback or deletion in the repository (``swarm.model.catalogue``): every manifest
    and restore point listed and compared with what this client saw before. Each is a problem of
    this verify (``where`` = ``catalogue: <name>``): a backup repository someone rolled back is not
    one to trust quietly, whichever backup is being verified."""
    repo.list_backups(damaged={})
    repo.list_restore_points(damaged={})
    for f in repo.rollback:
        result.problem(f"catalogue: {f.name}", f.problem)


def _verify(repo: Repository, manifest: Manifest, result: VerifyResult, *, restore_test: bool, jobs: int,
            work_dir: str | None, reporter: Reporter, bindir: str | None, env: RestoreTestEnv | None, sample: int,
            t0: float) -> VerifyResult:
    bad = _check_listing(repo, manifest, result)
    _check_refs(repo, manifest, result)
    if manifest.kind == Kind.PG_PHYSICAL:
        from swarm.services.postgres.physical_verify import restore_test_physical, verify_physical

        run: Callable[[Path, int, int], None] | None = None
        if restore_test:
            access = _require(env, "a physical restore test").server_access()

            def run(datadir: Path, files: int, nbytes: int) -> None:
                result.restore_test = RestoreTest("physical-cluster", {"files_restored": files,
                                                                       "bytes_restored": nbytes})
                restore_test_physical(manifest, datadir, access, _recorder(result), result.restore_test.facts,
                                      reporter=reporter, bindir=bindir)

        verify_physical(repo, manifest, result, work_dir=work_dir, reporter=reporter, bindir=bindir,
                        restore_test=run)
        _not_run(result, manifest, restore_test)
        result.seconds = time.monotonic() - t0
        return result
    reporter.stage(f"reading and checking {len(manifest.objects)} objects")

    def on_error(entry: ObjectEntry, exc: SwarmError) -> None:
        if entry.name not in bad:  # the listing already named it
            result.problem(entry.name, exc.message)

    with work_directory(VERIFY_DIR_PREFIX, work_dir) as tmp:
        dumpdir = tmp / "dump"
        if manifest.kind == Kind.PG_LOGICAL:
            # only the schema is staged (no row ever reaches local disk, backups of earlier versions
            # included); every other object, table data too, is read end to end in memory
            staged: set[str] = set()
            try:
                stage_schema(repo, manifest, dumpdir, bindir=bindir)
                written = [p for p in dumpdir.rglob("*") if p.is_file()]
                staged = {DUMP_PREFIX + p.relative_to(dumpdir).as_posix() for p in written}
                result.objects_checked = len(written)
                result.bytes_checked = sum(p.stat().st_size for p in written)
            except SwarmError as exc:
                staged = {DUMP_PREFIX + "toc.dat"}  # named here: not checked twice below
                entry = next((e for e in manifest.objects if e.name == DUMP_PREFIX + "toc.dat"), None)
                if entry is not None:
                    on_error(entry, exc)
                else:
                    result.problem(DUMP_PREFIX + "toc.dat", exc.message)
            _check_objects(repo, manifest, [e for e in manifest.objects if e.name not in staged], bad, result)
            if not result.problems:
                _check_toc(dumpdir, result, bindir)
            if restore_test and not result.problems:
                reporter.stage("restore test in a throwaway cluster")
                counts = _restore_test(repo, manifest, dumpdir, tmp / "cluster", jobs, bindir)
                result.restore_test = RestoreTest("logical-cluster", {"tables_compared": len(counts.tables)},
                                                  row_counts=counts)
        elif manifest.kind == Kind.STATE:
            _check_objects(repo, manifest, [e for e in manifest.objects if not e.name.startswith("packs/")], bad,
                           result)
            if not result.problems:
                _check_state_tree(repo, manifest, result, reporter)
        else:
            _check_objects(repo, manifest, manifest.objects, bad, result)
            if manifest.kind == Kind.OBJECTS and restore_test and not result.problems:
                from swarm.services.objects.verify import sample_objects

                reporter.stage("restore test: reading back a sample of the inventoried versions")
                result.restore_test = RestoreTest("objects-sample")
                sample_objects(repo, manifest, _require(env, "an objects restore test").bucket_config,
                               _recorder(result), result.restore_test.facts, sample=sample, reporter=reporter)
    _not_run(result, manifest, restore_test)
    result.seconds = time.monotonic() - t0
    return result


def _name_tables(manifest: Manifest, result: VerifyResult) -> None:
    """Add ``table`` (and ``rows`` for one of several page ranges) to every problem naming a
    COPY part of a logical backup, so a problem says which table it hurts."""
    if manifest.kind != Kind.PG_LOGICAL or not result.problems:
        return
    try:
        tables = manifest.logical.parallel_tables
    except SwarmError:  # a manifest whose source cannot be read: its problems stand as they are
        return
    parts: dict[str, tuple[str, str | None]] = {}
    for qualified, t in tables.items():
        if not isinstance(t, dict):
            continue
        plist = [p for p in t.get("parts") or [] if isinstance(p, dict) and "name" in p]
        for p in plist:
            rows = None
            if len(plist) > 1 or p.get("end_page") is not None or (p.get("first_page") or 0) != 0:
                end = p.get("end_page")
                rows = (f"from page {p.get('first_page', 0)} " +
                        ("to the end" if end is None else f"to {int(end) - 1}"))
            parts[str(p["name"])] = (str(qualified), rows)
    for problem in result.problems:
        named = parts.get(problem["where"])
        if named is not None:
            problem["table"] = named[0]
            if named[1] is not None:
                problem["rows"] = named[1]


RESTORE_TEST_KINDS = {Kind.PG_LOGICAL: "logical-cluster", Kind.PG_PHYSICAL: "physical-cluster",
                      Kind.OBJECTS: "objects-sample"}


def _not_run(result: VerifyResult, manifest: Manifest, asked: bool) -> None:
    """A restore test that was asked for but did not run says why (never a silent pass)."""
    if not asked or result.restore_test is not None:
        return
    kind = RESTORE_TEST_KINDS.get(manifest.kind)
    why = (f"no restore test exists for {manifest.kind} backups" if kind is None else
           "the backup failed the checks above; a damaged backup is not restored")
    result.restore_test = RestoreTest(kind or "none", {"skipped": why}, ran=False)


def _require(env: RestoreTestEnv | None, what: str) -> RestoreTestEnv:
    if env is None:
        raise ConfigError(f"{what} needs the deployment (the server user's access, bucket credentials)",
                          hint="Pass env=services.context.restore_test_env(settings) to verify_backup (the command "
                               "line always does).")
    return env


def _recorder(result: VerifyResult) -> Callable[[str, str], None]:
    """A ``fail(where, message)`` callback adding to ``result.problems`` and the restore test's count."""
    def fail(where: str, message: str) -> None:
        result.problem(where, message)
        if result.restore_test is not None:
            result.restore_test.failures += 1
    return fail


def _check_objects(repo: Repository, manifest: Manifest, entries: list[ObjectEntry], bad: set[str],
                   result: VerifyResult) -> None:
    for entry in entries:
        if entry.name in bad:
            continue
        try:
            repo.check_object(manifest, entry)
            result.objects_checked += 1
            result.bytes_checked += entry.size
        except SwarmError as exc:
            result.problem(entry.name, exc.message)


def _check_listing(repo: Repository, manifest: Manifest, result: VerifyResult) -> set[str]:
    """Compare the backup's data prefix with the manifest; return the names found missing or
    of the wrong stored size (the later passes do not report them again)."""
    stored = repo.stored_objects(manifest.id)
    bad: set[str] = set()
    for entry in manifest.objects:
        if entry.name not in stored:
            result.problem(entry.name, "missing from the repository")
            bad.add(entry.name)
        elif stored[entry.name] != entry.stored_size:
            result.problem(entry.name, f"stored size {stored[entry.name]} differs from the manifest's "
                                       f"{entry.stored_size} (truncated or replaced)")
            bad.add(entry.name)
    listed = {o.name for o in manifest.objects}
    for name in sorted(set(stored) - listed):
        result.problem(name, "present in the repository but not listed in the manifest")
    return bad


def _check_refs(repo: Repository, manifest: Manifest, result: VerifyResult) -> None:
    """Every reference of the manifest exists (its own objects are the listing's business)."""
    own = repo.object_key(manifest.id, "")
    for where, problem in repo.missing_refs(manifest):
        if not where.startswith(own):
            result.problem(where, problem)


def _check_toc(dumpdir: Path, result: VerifyResult, bindir: str | None) -> None:
    try:
        toc = pg_restore_list(dumpdir, bindir)
        result.toc_entries = sum(1 for line in toc.splitlines() if line and not line.startswith(";"))
    except SwarmError as exc:
        result.problem("pgdump/toc.dat", exc.message)


RESTORE_TEST_DB = "swarm_restore_test"  # the throwaway database every logical restore test restores into


def restore_test_conninfo(cluster: LocalCluster) -> str:
    """Where a logical restore test restores: ``RESTORE_TEST_DB`` on its own throwaway cluster,
    as a ``make_conninfo`` string of the cluster's own host, port, user and password. Nothing
    of the manifest goes into it: a ``source.database`` such as ``x?port=N&dbname=attacker_db``
    once sent the restored rows to another server (issue 10, finding 1)."""
    return cluster.conninfo(RESTORE_TEST_DB)


def _restore_test(repo: Repository, manifest: Manifest, dumpdir: Path, base: Path, jobs: int,
                  bindir: str | None) -> RowCountComparison:
    """Restore into a throwaway cluster (scram-sha-256, a random password: only we can connect)
    and compare row counts. The cluster is stopped and removed on every exit path, SIGTERM
    included (the command line raises it as an exception); after a kill -9 its ``owner.json``
    lets the next run's sweep stop and remove it (``services.workdirs``)."""
    cluster = LocalCluster(base)
    try:
        cluster.init(fast=True, owner=owner_record())
        cluster.start()
        src = manifest.logical
        cluster.psql(f"CREATE DATABASE {RESTORE_TEST_DB}")
        url = restore_test_conninfo(cluster)
        restore_into(repo, manifest, url, dumpdir, jobs=jobs, no_owner=True, bindir=bindir)
        expected = dict(src.row_counts)
        return compare_row_counts(expected, restored_counts(url, list(expected)))
    finally:
        cluster.destroy()
