"""Physical PostgreSQL backup: ``pg_basebackup`` streamed into the repository's tree store.

Nothing of the cluster is staged on local disk. The tar stream pg_basebackup writes to
stdout is parsed as it arrives (``sources.postgres.tarstream``, one read per block); every member goes into a
``TreeWriter`` (``swarm.repo.tree``): regular files cut by ``FixedChunker(block_size)``
(32 KiB: pages change in place), directories and symlinks with their modes and mtimes.
Blocks the previous physical backup of the cluster already stored (its tree's
``referenced_blocks()``, or for a backup of the older ``index.json`` format its index's
``blocks``) are only referenced; new ones are sealed into packs uploaded in the background.
The backup's ``tree.json`` needs no other backup's index, and its manifest's ``refs`` list
every pack (of this and earlier backups) and data key it reads and its WAL range. This
service never handles block ids or pack offsets. See docs/design/physical-backups.md and
docs/design/tree-store.md.

Order of steps, and what a crash between them leaves:

1. bind the repository to the cluster (``cluster.json``; refuses another cluster's repository);
2. take the ``backup-postgres-physical`` lock; write the data key;
3. stream: packs are uploaded as they fill (``data/<id>/packs/*.pack``);
4. pg_basebackup exits 0 only after the server archived the backup's last WAL segment;
   we then check that every segment from start to stop LSN is in the repository.
   Archiving that fails must not hang the backup: before starting we refuse when
   ``pg_stat_archiver`` shows failures since the last success, and while pg_basebackup
   waits for its WAL to be archived (``pg_stat_progress_basebackup``) a watch ends it after
   ``wal_wait_timeout`` seconds (and ends its walsender, which would wait on), failing with
   ``archive-failing``, the segment and the cause;
5. ``TreeWriter.finish``: node packs, then ``tree.json``; then the manifest (with ``refs``), last.

A crash before 5 completes leaves packs (maybe ``tree.json``) and a data key without a
manifest: no backup is listed, and no later backup references those packs (dedup only
trusts committed manifests); ``prune`` sweeps them.
"""
from __future__ import annotations

import json
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from swarm.errors import ArchiveFailing, IntegrityError, SourceError, SwarmError
from swarm.model.manifest import Manifest
from swarm.model.refs import Refs, WalRange, pack_refs
from swarm.model.sources import Kind
from swarm.model.wal import Lsn, segments_between
from swarm.repo import Repository
from swarm.repo.chunker import FixedChunker
from swarm.repo.packs import BLOCK_SIZE, Location
from swarm.repo.tree import INDEX_NAME as TREE_INDEX_NAME
from swarm.repo.tree import Meta, TreeRoot, TreeWriter, open_snapshot
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.postgres.basebackup import BaseBackupStream
from swarm.sources.postgres.conn import connect, redact, server_facts
from swarm.sources.postgres.tarstream import TarStream
from swarm.sources.postgres.wal import (
    ArchiverState,
    archiver_state,
    backup_bounds,
    basebackup_progress,
    cluster_size,
    tablespace_count,
    wal_position,
)

KIND = Kind.PG_PHYSICAL
TREE_INDEX = TREE_INDEX_NAME
FORMAT_TREE = "tree"
LOCK = "backup-postgres-physical"
WAL_WAIT_S = 60.0  # default of --wal-wait-timeout / [backup] wal_wait_timeout
WAITING_PHASE = "waiting for wal archiving to finish"  # pg_stat_progress_basebackup.phase


def archive_failing_error(state: ArchiverState, repo_url: str, *, waited_s: float | None = None,
                          consequence: str = "a physical backup would wait for it for ever") -> ArchiveFailing:
    """The operator's error for broken archiving: which segment, since when, the server's words, the fix."""
    last_ok = (f"the last success was {state.last_archived_wal} at {state.last_archived_time:%Y-%m-%d %H:%M:%S}"
               if state.last_archived_time else "nothing was ever archived")
    fail = (f"{state.failed_count} failed attempt{'s' if state.failed_count != 1 else ''}, the last for segment "
            f"{state.last_failed_wal}" + (f" at {state.last_failed_time:%Y-%m-%d %H:%M:%S}"
                                           if state.last_failed_time else ""))
    if waited_s is not None:
        msg = (f"the backup's WAL was not archived within {waited_s:.0f} s: WAL archiving is failing "
               f"({fail}; {last_ok})") if state.failing else (
               f"the backup's WAL was not archived within {waited_s:.0f} s ({last_ok})")
    else:
        msg = f"WAL archiving is failing ({fail}; {last_ok}): {consequence}"
    hints = []
    if state.log_excerpt:
        hints.append(f"The server says: {state.log_excerpt}")
    if repo_url.startswith("file://"):
        from swarm.sources.postgres.cluster import server_user_write_problem

        problem = server_user_write_problem(Path(unquote(urlparse(repo_url).path)))
        if problem:
            hints.append(f"Likely cause: {problem}.")
    hints.append("Fix archive_command (`SHOW archive_command`; it must be `swarm admin wal push %p` with a "
                 "configuration the server user can read), check `swarm admin wal status --db-url URL`, then "
                 "run the backup again" + ("; --wal-wait-timeout waits longer" if waited_s is not None else "") +
                 ". Just fixed it? The server retries a failed segment within a minute; `SELECT pg_switch_wal()` "
                 "on it makes it try now.")
    return ArchiveFailing(msg, hint=" ".join(hints),
                          details={"segment": state.last_failed_wal, "archiver": state.to_dict()})


class ArchiveWatch:
    """While pg_basebackup runs, bound the time it waits for its WAL to be archived.

    A thread polls ``pg_stat_progress_basebackup``; once the backup has waited ``timeout``
    seconds in the archiving phase, it records an ``ArchiveFailing`` error and kills the stream
    (which also ends the walsender). The caller raises ``failure`` instead of the broken stream's
    error.
    """

    def __init__(self, db_url: str, stream: BaseBackupStream, repo_url: str, timeout: float,
                 poll: float = 1.0) -> None:
        self.db_url, self.stream, self.repo_url = db_url, stream, repo_url
        self.timeout, self.poll = timeout, poll
        self.failure: ArchiveFailing | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archive-watch", daemon=True)

    def __enter__(self) -> ArchiveWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        waiting_since: float | None = None
        while not self._stop.wait(self.poll):
            try:
                progress = basebackup_progress(self.db_url, self.stream.application_name)
            except SwarmError:
                continue
            if progress is None or progress[1].lower() != WAITING_PHASE:
                waiting_since = None
                continue
            waiting_since = waiting_since or time.monotonic()
            if time.monotonic() - waiting_since >= self.timeout:
                try:
                    state = archiver_state(self.db_url)
                except SwarmError:
                    continue
                self.failure = archive_failing_error(state, self.repo_url, waited_s=self.timeout)
                self.stream.kill()
                return


@dataclass
class PhysicalBackupResult:
    manifest: Manifest
    stats: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        s = m.physical
        return {"id": m.id, "kind": m.kind, "server_version": s.server_version,
                "system_identifier": s.system_identifier, "timeline": s.timeline,
                "start_lsn": s.start_lsn, "stop_lsn": s.stop_lsn,
                "start_wal": s.start_wal, "stop_wal": s.stop_wal,
                "stop_time": s.stop_time, "started_at": m.started_at, "finished_at": m.finished_at,
                **self.stats}


def known_blocks(repo: Repository, manifest: Manifest) -> dict[str, Location]:
    """What a new backup deduplicates against: every block ``manifest`` (a committed physical
    backup, of either index format) uses. Opaque to this service: handed to ``TreeWriter``."""
    return open_snapshot(repo, manifest).referenced_blocks()


def physical_refs(repo: Repository, root: TreeRoot, timeline: int, first_wal: str, last_wal: str) -> Refs:
    """A tree-format physical backup's refs: every pack its tree lists (with their data keys),
    its WAL range and the WAL data key."""
    packs, deks = pack_refs((p.backup_id, p.name, p.dek_id) for p in root.packs)
    ident = repo.cluster_identity() or {}
    if ident.get("wal_dek_id"):
        deks.add(str(ident["wal_dek_id"]))
    return Refs.of(packs=packs, deks=deks, wal=[WalRange(timeline, first_wal, last_wal)])


def _add_member(tar: TarStream, member: tarfile.TarInfo, tree: TreeWriter, chunker: FixedChunker,
                special: dict[str, bytes], reporter: Reporter) -> None:
    """One tar member of pg_basebackup's stream into the tree (``backup_label`` and
    ``backup_manifest`` are also kept in ``special``)."""
    path = member.name.removeprefix("./").rstrip("/")
    if path == ".":
        path = ""
    meta = Meta(member.mode & 0o7777, int(member.mtime) * 1_000_000_000)
    if member.isdir():
        tree.add_dir(path, meta)
    elif member.issym():
        tree.add_symlink(path, member.linkname, meta)
    elif member.isfile():
        keep = path in ("backup_label", "backup_manifest", "tablespace_map")
        kept = bytearray()

        def pieces() -> Iterator[bytes]:
            for plain in tar.data(member, chunker.size):
                if keep:
                    kept.extend(plain)
                reporter.advance(len(plain))
                yield plain

        tree.add_file(path, meta, chunker.chunks(pieces()))
        if keep:
            special[path] = bytes(kept)
    else:
        raise SourceError(f"unexpected tar member type in the base backup: {member.name}")


def physical_backups(repo: Repository, system_identifier: str | None = None,
                     warnings: list[str] | None = None) -> list[Manifest]:
    """Committed physical backups, oldest first (of one cluster if ``system_identifier``).

    A damaged manifest (of any kind) is skipped, never fatal: one flipped byte in an unrelated
    backup must not block every restore. Each one skipped is named in ``warnings``; a caller
    that was asked for that very backup loads it with ``load_manifest`` and gets its error.
    """
    damaged: dict[str, str] = {}
    found = []
    for m in repo.list_backups(damaged):
        if m.kind != KIND:
            continue
        try:
            src = m.physical
        except IntegrityError as exc:
            damaged[m.id] = exc.message
            continue
        if system_identifier is None or src.system_identifier == str(system_identifier):
            found.append(m)
    if warnings is not None:
        warnings.extend(f"skipped damaged manifest of backup {bid}: {problem}" for bid, problem in sorted(
            damaged.items()))
    return found


def backup_postgres_physical(repo: Repository, db_url: str, *, jobs: int = 2, reporter: Reporter | None = None,
                             bindir: str | None = None, block_size: int = BLOCK_SIZE,
                             wal_wait_s: float = WAL_WAIT_S) -> PhysicalBackupResult:
    """``wal_wait_s`` bounds every wait for the backup's WAL to reach the repository (while the server
    waits for archive_command, then while we look for the segments)."""
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    with connect(db_url) as conn:
        facts = server_facts(conn)
    archiver = archiver_state(db_url)
    if archiver.failing:
        raise archive_failing_error(archiver, repo.url)
    if tablespace_count(db_url):
        raise SourceError("the cluster has extra tablespaces; the streamed physical engine backs up only "
                          "the main data directory", hint="Use a logical backup for this cluster for now.")
    pos = wal_position(db_url)
    repo.bind_cluster(facts.system_identifier, server_version=facts.server_version,
                      segment_size=pos.segment_size)
    chunker = FixedChunker(block_size)
    known: dict[str, Location] = {}
    with repo.lock(LOCK) as lock:
        # the parent is read under the shared lock: a prune cannot remove or repack it meanwhile
        previous = physical_backups(repo, facts.system_identifier)
        if previous:
            reporter.stage(f"loading the blocks of {previous[-1].id}")
            known = repo.present_blocks(known_blocks(repo, previous[-1]))
        writer = repo.begin_backup(KIND, lock=lock)
        tree = TreeWriter(repo, writer, chunker=chunker, known=known, workers=max(1, jobs))
        try:
            before = backup_bounds(db_url)
            size_hint = cluster_size(db_url)
            reporter.stage(f"streaming pg_basebackup of {size_hint / 1e6:.0f}+ MB into packs")
            reporter.total(size_hint)
            special: dict[str, bytes] = {}
            app = f"swarm-basebackup-{writer.id}"[:63]
            with BaseBackupStream(db_url, bindir=bindir, application_name=app) as stream, \
                    ArchiveWatch(db_url, stream, repo.url, wal_wait_s) as watch:
                try:
                    tar = TarStream(stream.stdout)
                    for member in tar:
                        _add_member(tar, member, tree, chunker, special, reporter)
                    stream.finish()
                except (SwarmError, tarfile.TarError, OSError, ValueError) as exc:
                    if watch.failure is not None:
                        raise watch.failure from exc
                    if isinstance(exc, ValueError):  # an unsafe or repeated member name
                        raise SourceError(f"pg_basebackup's stream has a member swarm refuses: {exc}") from exc
                    raise
            after = backup_bounds(db_url)
            if "backup_manifest" not in special or "backup_label" not in special:
                raise SourceError("pg_basebackup's stream had no backup_manifest or backup_label",
                                  hint="PostgreSQL 13 or newer is needed for physical backups.")
            bm = json.loads(special["backup_manifest"])
            ranges = bm.get("WAL-Ranges") or []
            if not ranges:
                raise SourceError("backup_manifest lists no WAL range")
            tli = int(ranges[-1]["Timeline"])
            start_lsn = Lsn.parse(ranges[0]["Start-LSN"])
            stop_lsn = Lsn.parse(ranges[-1]["End-LSN"])
            needed = [s.name for s in segments_between(start_lsn, stop_lsn, tli, pos.segment_size)]
            reporter.stage("checking the backup's WAL is archived")
            missing = _wait_for_wal(repo, needed, wal_wait_s)
            if missing:
                state = archiver_state(db_url)
                if state.failing:
                    raise archive_failing_error(state, repo.url, waited_s=wal_wait_s)
                raise SourceError(
                    f"the WAL this backup needs is not in the repository: {', '.join(missing)}",
                    hint="Is archive_command = 'swarm admin wal push %p' (with archive_mode = on) configured "
                         "and working, or `swarm admin wal stream` running? See the server log. The backup was "
                         "discarded.")
            root = tree.finish()
            st = root.stats
            source = {
                "engine": "postgresql", "method": "pg_basebackup", "format": FORMAT_TREE,
                "db_url": redact(db_url), "server_version": facts.server_version,
                "server_version_num": facts.server_version_num, "system_identifier": facts.system_identifier,
                "timeline": tli, "start_lsn": str(start_lsn), "stop_lsn": str(stop_lsn),
                "start_wal": needed[0], "stop_wal": needed[-1], "wal_segments": needed,
                "segment_size": pos.segment_size, "block_size": block_size,
                "start_time": before["time"], "stop_time": after["time"],
                "xid_before": before["xmax"], "xid_after": after["xmax"],
                "backup_label": special["backup_label"].decode(errors="replace"),
                "backup_manifest_checksum": bm.get("Manifest-Checksum"),
                "files": st.files, "size": st.size,
                "new_blocks": st.new_blocks, "reused_blocks": st.reused_blocks,
                "new_bytes": st.new_bytes, "reused_bytes": st.reused_bytes,
                "stored_new_bytes": st.stored_bytes, "packs": st.packs,
                "dedup_base": previous[-1].id if previous else None,
            }
            source["seconds"] = round(time.monotonic() - t0, 3)
            reporter.stage("writing manifest")
            manifest = writer.commit(source, physical_refs(repo, root, tli, needed[0], needed[-1]))
        except BaseException:
            tree.abort()
            writer.abort()
            raise
    stats = {k: source[k] for k in ("files", "size", "new_blocks", "reused_blocks", "new_bytes", "reused_bytes",
                                    "stored_new_bytes", "packs", "seconds", "dedup_base")}
    stats["stored_size"] = manifest.stored_size
    return PhysicalBackupResult(manifest, stats)


def _wait_for_wal(repo: Repository, names: list[str], wait_s: float) -> list[str]:
    deadline = time.monotonic() + wait_s
    while True:
        missing = [n for n in names if not repo.has_wal(n)]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.5)

