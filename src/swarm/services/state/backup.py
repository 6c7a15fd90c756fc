"""State-directory snapshots: ``swarm admin backup state`` (manifest kind ``state``).

``backup_state(repo, scope)`` walks the state directory (``swarm.sources.state.walk``: lstat
only, symlinks stored as links, never followed) into the repository's tree store
(``swarm.repo.tree.TreeWriter``), file contents cut by FastCDC (16 KiB + 32 KiB, about 48 KiB
on average, at most 256 KiB; keyed by the repository's dedup key) and deduplicated against
the newest committed state snapshot (its blocks are ``known``). It returns a
``StateBackupResult`` with the committed manifest; a later ``backup set`` calls it as one
part. The rules it applies are pure functions of ``swarm.model.state``:

* left out, each listed with its reason in the manifest (``excluded``) and the output, never
  with a value: swarm's own files when the state directory is ``SWARM_HOME``, a local
  repository or key under it, secrets by name (``*.key``, ``*.pem``, ``.env``, ``secrets/``,
  ``credentials*``) and files whose content has a secret shape (scanned before anything of
  the file is stored; ``swarm.model.secrets``, the scanner ``admin export`` and ``admin secrets
  check`` use too). Sockets, FIFOs and devices are listed in ``skipped``.
* the change cache: each file's entry carries ``ctime_ns``, ``ino`` and its ``sha256`` (in the
  tree's per-entry extras); a file whose size, mtime, ctime and inode equal the parent's and
  that was not modified within ``recent_s`` of the parent's start is taken from the parent
  without being read; a share ``rehash_share`` of those is read anyway (checksum only: when
  it equals the parent's, the parent's entry is kept and nothing is chunked or stored), and a
  difference from the parent's checksum is reported (``cache.mismatched``).
* consistency: a file is read, then its ``fstat`` compared with the one before; if it
  changed it is read again, up to ``RETRIES`` times, then kept as last read and listed in
  ``inconsistent``. Files up to ``STAGE_MAX`` are read into memory first (scan, check, then
  store); larger ones are read twice (scan and checksum, then store) and the store pass is
  checked against the first.
* hard links: the first path of an inode (in walk order) is stored; the others are entries
  with the same blocks and an extra ``link`` naming the first, restored as hard links.
* what cannot be read (permissions) is listed in ``unreadable``; the snapshot is still
  committed, with ``complete: false`` (the command then exits 1).

Order of steps, and what a kill -9 between them leaves:

1. take the ``backup-state`` lock (and the repository's shared lock); ``begin_backup`` writes
   the data key ``keys/<dek>.json``;
2. walk and read: packs ``data/<id>/packs/*.pack`` are uploaded as they fill;
3. ``TreeWriter.finish``: node packs, then ``data/<id>/tree.json``;
4. the manifest ``backups/<id>.json``, last.

Killed before 4 completes: a data key and packs (maybe ``tree.json``) with no manifest. No
snapshot is listed, the next snapshot's ``known`` comes only from committed ones, and
``prune`` sweeps the leftovers; re-running takes a new snapshot from the same parent. One
more thing can be left in the packs of a *committed* snapshot: the blocks of a large file
whose store pass saw it change (it is then read again or listed as inconsistent, but the
blocks of the torn pass stay, unreferenced by the tree).
"""
from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import IntegrityError, StateDirMissing
from swarm.model.manifest import Manifest
from swarm.model.refs import Refs, pack_refs
from swarm.model.secrets import SecretScanner
from swarm.model.sources import Kind
from swarm.model.state import (
    READ,
    REUSE,
    FileFacts,
    cache_decision,
    exclude_reason,
    same_read,
)
from swarm.repo import Repository
from swarm.repo.chunker import FastCDC
from swarm.repo.packs import Location
from swarm.repo.tree import FILE, Entry, Meta, TreeReader, TreeRoot, TreeWriter
from swarm.services.reporting import NullReporter, Reporter
from swarm.sources.state import FileRead, NotRegular, facts_of, walk
from swarm.sources.state import fs as walk_kinds

KIND = Kind.STATE
LOCK = "backup-state"
RECENT_S = 3.0  # a file modified within this long of the parent's start is always read
REHASH_SHARE = 0.02  # share of cache hits read anyway
RETRIES = 3  # reads of a file that changes while read, before it is listed as inconsistent
STAGE_MAX = 16 << 20  # files up to this size are read into memory once; larger ones twice
# content-defined chunks: min 16 KiB + about 32 KiB, at most 256 KiB (about 48 KiB on average)
CDC_MIN, CDC_AVG, CDC_MAX = 16 << 10, 32 << 10, 256 << 10

X_CTIME, X_INODE, X_SHA256, X_LINK = "ctime_ns", "ino", "sha256", "link"


@dataclass(frozen=True)
class StateScope:
    """What to snapshot: the directory, and what of it belongs to swarm itself.

    ``tool_paths``: swarm's own entries (``model.state.TOOL_ENTRIES`` when the state directory
    is ``SWARM_HOME``); ``repo_paths``: a local repository or key file under it (always left
    out). Both relative to ``state_dir``.
    """

    state_dir: Path
    tool_paths: tuple[str, ...] = ()
    repo_paths: tuple[str, ...] = ()

    def exclude(self, path: str, is_dir: bool) -> str | None:
        return exclude_reason(path, is_dir, self.tool_paths, self.repo_paths)


@dataclass
class StateBackupResult:
    manifest: Manifest
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return bool(self.manifest.source.get("complete"))

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        s = m.source
        return {"id": m.id, "kind": m.kind, "state_dir": s["state_dir"], "complete": s["complete"],
                "started_at": m.started_at, "finished_at": m.finished_at, "files": s["files"], "dirs": s["dirs"],
                "symlinks": s["symlinks"], "hardlinks": s["hardlinks"], "size": s["size"],
                "excluded": s["excluded"], "skipped": s["skipped"], "unreadable": s["unreadable"],
                "inconsistent": s["inconsistent"], "cache": s["cache"], "parent": s["parent"], **self.stats}


def state_snapshots(repo: Repository, warnings: list[str] | None = None) -> list[Manifest]:
    """Committed state snapshots, oldest first (a damaged manifest is skipped and named in ``warnings``)."""
    damaged: dict[str, str] = {}
    found = [m for m in repo.list_backups(damaged) if m.kind == KIND]
    if warnings is not None:
        warnings.extend(f"skipped damaged manifest of backup {bid}: {p}" for bid, p in sorted(damaged.items()))
    return found


def state_chunker(repo: Repository) -> FastCDC:
    return FastCDC.for_key(repo.dedup_key(), min_size=CDC_MIN, avg_size=CDC_AVG, max_size=CDC_MAX)


def _meta(st: os.stat_result, facts: FileFacts, sha256: str) -> Meta:
    return Meta(st.st_mode & 0o7777, st.st_mtime_ns,
                tuple(sorted(((X_CTIME, facts.ctime_ns), (X_INODE, facts.inode), (X_SHA256, sha256)))))


def _cached(e: Entry) -> tuple[FileFacts, str | None]:
    x = dict(e.meta.extra)
    sha = x.get(X_SHA256)
    return (FileFacts(e.size, e.meta.mtime_ns, int(x.get(X_CTIME, -1)), int(x.get(X_INODE, -1))),
            str(sha) if isinstance(sha, str) else None)


class _Torn(Exception):
    """The file changed during the store pass: its entry is not recorded."""


@dataclass
class _Run:
    scope: StateScope
    tree: TreeWriter
    chunker: FastCDC
    reporter: Reporter
    parent_files: dict[str, Entry]
    parent_start_ns: int | None
    window_ns: int
    rehash_share: float
    rng: random.Random
    excluded: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    inconsistent: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=lambda: {"reused": 0, "read": 0, "rehashed": 0, "mismatched": []})
    links: dict[tuple[int, int], tuple[str, Entry | None]] = field(default_factory=dict)
    hardlinks: int = 0

    def full(self, path: str) -> Path:
        return self.scope.state_dir / path

    # -- one regular file
    def file(self, path: str, st: os.stat_result) -> None:
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            first, entry = self.links[key]
            if entry is None:  # the first was left out (secret, unreadable): so is every other name of it
                self.excluded.append({"path": path, "reason": f"hard link to {first}, which was left out"})
                return
            meta = Meta(entry.meta.mode, entry.meta.mtime_ns,
                        tuple(sorted((*[kv for kv in entry.meta.extra if kv[0] != X_LINK], (X_LINK, first)))))
            self.tree.reuse_file(path, entry, meta)
            self.hardlinks += 1
            return
        entry = self._file(path, st)
        if st.st_nlink > 1:
            self.links[key] = (path, entry)

    def _file(self, path: str, st: os.stat_result) -> Entry | None:
        now = facts_of(st)
        old = self.parent_files.get(path)
        cached, old_sha = _cached(old) if old is not None and not dict(old.meta.extra).get(X_LINK) else (None, None)
        decision = cache_decision(now, cached, parent_start_ns=self.parent_start_ns, window_ns=self.window_ns,
                                  draw=self.rng.random(), rehash_share=self.rehash_share,
                                  has_checksum=old_sha is not None)
        if decision.action == REUSE and old is not None:
            self.cache["reused"] += 1
            self.reporter.advance(old.size)
            return self.tree.reuse_file(path, old)
        assert decision.action == READ
        self.cache["read"] += 1
        if decision.reason == "rehash" and old is not None and old_sha is not None \
                and self._unchanged(path, cached, old_sha):
            self.cache["rehashed"] += 1  # read, and its checksum is the parent's: the parent's entry stands
            self.reporter.advance(old.size)
            return self.tree.reuse_file(path, old)
        entry = self._read(path, st.st_size)
        if decision.reason == "rehash":
            self.cache["rehashed"] += 1
            if entry is not None and dict(entry.meta.extra).get(X_SHA256) != old_sha \
                    and _cached(entry)[0] == cached:
                self.cache["mismatched"].append(path)
        return entry

    def _unchanged(self, path: str, cached: FileFacts | None, sha: str) -> bool:
        """Re-hash a cache hit: True when the file, read whole and holding still, has checksum
        ``sha`` and the facts ``cached`` (the parent's). Nothing is chunked or stored; the parent
        scanned these very bytes for secrets. Any doubt (changed, unreadable) returns False and
        the caller reads the file as usual, which reports what it finds."""
        h = hashlib.sha256()
        try:
            with FileRead(self.full(path)) as f:
                for piece in f.pieces():
                    h.update(piece)
                before, after = f.before, f.now()
        except OSError:
            return False
        return same_read(before, after) and before == cached and h.hexdigest() == sha

    def _read(self, path: str, size: int) -> Entry | None:
        full = self.full(path)
        try:
            for attempt in range(1, RETRIES + 1):
                last = attempt == RETRIES
                if size <= STAGE_MAX:
                    done = self._read_small(path, full, last)
                else:
                    done = self._read_large(path, full, last)
                if done is not False:
                    return done  # an entry, or None (left out)
        except FileNotFoundError:
            return None  # gone since the walk: it no longer exists
        except NotRegular:
            self.skipped.append({"path": path, "type": "replaced by something other than a file while read"})
            return None
        except OSError as exc:
            self.unreadable.append({"path": path, "error": exc.strerror or str(exc)})
            return None
        raise AssertionError("unreachable")  # the last attempt always returns

    def _secret(self, path: str, scanner: SecretScanner) -> bool:
        reason = scanner.reason()
        if reason:
            self.excluded.append({"path": path, "reason": reason})
        return bool(reason)

    def _inconsistent(self, path: str) -> None:
        self.inconsistent.append({"path": path, "reason": f"changed while read, {RETRIES} times"})

    def _read_small(self, path: str, full: Path, last: bool) -> Entry | bool | None:
        with FileRead(full) as f:
            data = b"".join(f.pieces())
            after = f.now()
            st, before = f.st, f.before
        if not (same_read(before, after) and len(data) == before.size):
            if not last:
                return False
            self._inconsistent(path)
        scanner = SecretScanner()
        scanner.feed(data)
        if self._secret(path, scanner):
            return None
        self.reporter.advance(len(data))
        sha = hashlib.sha256(data).hexdigest()
        return self.tree.add_file(path, _meta(st, before, sha), self.chunker.chunks([data]))

    def _read_large(self, path: str, full: Path, last: bool) -> Entry | bool | None:
        scanner = SecretScanner()
        h = hashlib.sha256()
        with FileRead(full) as f:  # pass 1: scan and checksum; nothing is stored
            for piece in f.pieces():
                scanner.feed(piece)
                h.update(piece)
            first, after = f.before, f.now()
        if not same_read(first, after):
            if not last:
                return False
            self._inconsistent(path)
        if self._secret(path, scanner):
            return None
        sha = h.hexdigest()
        with FileRead(full) as f:  # pass 2: store, checked against pass 1
            st = f.st
            if f.before != first:
                if not last:
                    return False
            h2 = hashlib.sha256()

            def pieces() -> Iterator[bytes]:
                for piece in f.pieces():
                    h2.update(piece)
                    self.reporter.advance(len(piece))
                    yield piece
                if h2.hexdigest() != sha and not last:
                    raise _Torn(path)

            try:
                entry = self.tree.add_file(path, _meta(st, first, h2.hexdigest() if last else sha),
                                           self.chunker.chunks(pieces()))
            except _Torn:
                return False
            if h2.hexdigest() != sha and last and not any(i["path"] == path for i in self.inconsistent):
                self._inconsistent(path)
            return entry


def parent_facts(repo: Repository, parent: Manifest) -> tuple[dict[str, Location], dict[str, Entry]]:
    """The parent snapshot's blocks (``known``, only those whose pack is still present) and its files by path.

    One walk of the parent's tree gives both: every directory node is read (fetched,
    decrypted, parsed) once. Raises IntegrityError naming a node that cannot be read.
    """
    reader = TreeReader(repo, parent)
    blocks: dict[str, Location] = {r.id: r.loc for r in reader.root.root}
    files: dict[str, Entry] = {}
    for e in reader.walk():
        for r in e.chunks:
            blocks.setdefault(r.id, r.loc)
        if e.type == FILE:
            files[e.path] = e
    return repo.present_blocks(blocks), files


def snapshot_into(repo: Repository, tree: TreeWriter, scope: StateScope, *, parent: Manifest | None,
                  parent_files: dict[str, Entry], reporter: Reporter, recent_s: float, rehash_share: float,
                  rng: random.Random, chunker: FastCDC) -> tuple[TreeRoot, dict[str, Any]]:
    """Walk ``scope`` into ``tree`` and finish it; return the root and the manifest's ``source``
    (without timing). The caller commits (or aborts) the backup ``tree`` writes into."""
    parent_start = None
    if parent is not None:
        ns = parent.source.get("started_ns")
        parent_start = int(ns) if isinstance(ns, int) else None
    run = _Run(scope, tree, chunker, reporter, parent_files, parent_start, int(recent_s * 1e9), rehash_share, rng)
    started_ns = time.time_ns()
    for item in walk(scope.state_dir, scope.exclude):
        st = item.st
        if item.kind == walk_kinds.DIR:
            assert st is not None
            tree.add_dir(item.path, Meta(st.st_mode & 0o7777, st.st_mtime_ns))
        elif item.kind == walk_kinds.FILE:
            assert st is not None
            run.file(item.path, st)
        elif item.kind == walk_kinds.SYMLINK:
            assert st is not None
            tree.add_symlink(item.path, item.target, Meta(st.st_mode & 0o7777, st.st_mtime_ns))
        elif item.kind == walk_kinds.SPECIAL:
            run.skipped.append({"path": item.path, "type": item.reason})
        elif item.kind == walk_kinds.EXCLUDED:
            run.excluded.append({"path": item.path, "reason": item.reason})
        elif item.kind == walk_kinds.UNREADABLE:
            run.unreadable.append({"path": item.path or "/", "error": item.reason})
    root = tree.finish()
    st = root.stats
    source: dict[str, Any] = {
        "format": "tree", "state_dir": str(scope.state_dir), "tool_home": bool(scope.tool_paths),
        "complete": not run.unreadable and not run.inconsistent,
        "files": st.files - run.hardlinks, "dirs": st.dirs, "symlinks": st.symlinks, "hardlinks": run.hardlinks,
        "size": st.size, "started_ns": started_ns, "parent": parent.id if parent is not None else None,
        "excluded": run.excluded, "skipped": run.skipped, "unreadable": run.unreadable,
        "inconsistent": run.inconsistent, "cache": run.cache, "chunker": root.chunker,
        "new_blocks": st.new_blocks, "new_bytes": st.new_bytes, "reused_blocks": st.reused_blocks,
        "reused_bytes": st.reused_bytes, "stored_new_bytes": st.stored_bytes, "packs": st.packs,
    }
    return root, source


def state_refs(root: TreeRoot) -> Refs:
    """Every pack the snapshot's tree lists (of this and earlier snapshots) and their data keys."""
    packs, deks = pack_refs((p.backup_id, p.name, p.dek_id) for p in root.packs)
    return Refs.of(packs=packs, deks=deks)


def backup_state(repo: Repository, scope: StateScope, *, reporter: Reporter | None = None,
                 recent_s: float = RECENT_S, rehash_share: float = REHASH_SHARE, rng: random.Random | None = None,
                 workers: int = 2, parent: Manifest | bool | None = True) -> StateBackupResult:
    """Snapshot ``scope.state_dir`` into ``repo`` and commit it (see the module docstring).

    ``parent``: True (the newest committed state snapshot), a manifest, or None (no dedup,
    no change cache). Raises ``StateDirMissing`` when the directory does not exist.
    """
    reporter = reporter or NullReporter()
    rng = rng or random.Random()
    t0 = time.monotonic()
    d = scope.state_dir
    if not d.is_dir():
        what = "is not a directory" if d.exists() else "does not exist"
        raise StateDirMissing(f"the state directory {d} {what}",
                              hint="Set SWARM_STATE_DIR (or [state] dir in swarm.toml) to the directory to back up.")
    chunker = state_chunker(repo)
    with repo.lock(LOCK) as lock:
        # the parent is read under the shared lock: a prune cannot remove or repack it meanwhile
        if parent is True:
            previous = state_snapshots(repo)
            parent = previous[-1] if previous else None
        elif parent is False:
            parent = None
        known: dict[str, Location] = {}
        files: dict[str, Entry] = {}
        if parent is not None:
            reporter.stage(f"loading the change cache of {parent.id}")
            try:
                known, files = parent_facts(repo, parent)
            except IntegrityError:
                known, files, parent = {}, {}, None  # a damaged parent: a full snapshot, deduplicated against nothing
        writer = repo.begin_backup(KIND, lock=lock)
        tree = TreeWriter(repo, writer, chunker=chunker, known=known, workers=max(1, workers))
        try:
            reporter.stage(f"reading {d}")
            root, source = snapshot_into(repo, tree, scope, parent=parent, parent_files=files, reporter=reporter,
                                         recent_s=recent_s, rehash_share=rehash_share, rng=rng, chunker=chunker)
            source["seconds"] = round(time.monotonic() - t0, 3)
            reporter.stage("writing manifest")
            manifest = writer.commit(source, state_refs(root))
        except BaseException:
            tree.abort()
            writer.abort()
            raise
    stats = {k: source[k] for k in ("new_blocks", "new_bytes", "reused_blocks", "reused_bytes", "stored_new_bytes",
                                    "packs", "seconds")}
    stats["stored_size"] = manifest.stored_size
    return StateBackupResult(manifest, stats)

