"""The deduplicating file-tree store: snapshots of a directory tree as content-addressed blocks.

One store for every backup of files: physical PostgreSQL backups (fixed 32 KiB blocks) and
state-directory snapshots (content-defined chunks). Callers hand it paths, metadata and file
bytes; they never see block ids or pack offsets. The format is specified in
docs/design/tree-store.md; in short:

* **Blocks.** A file's bytes are cut by a chunker (``swarm.repo.chunker``); each chunk is a
  block named ``HMAC-SHA256(dedup_key, plaintext)`` (``packs.block_id``) and stored once, as
  a sealed frame in a pack of the backup that first wrote it (``data/<id>/packs/*.pack``);
  consecutive new blocks of one file share one *run frame* (up to ``packs.RUN_BLOCKS``,
  compressed together; each block keeps its own id and location, with its index in the run).
* **Nodes.** Each directory is a *node*: the canonical JSON of its entries sorted by name
  (name, type, mode, mtime, and for a file its size and chunk references, for a symlink its
  target, for a subdirectory the references of the subdirectory's node). A node is stored
  like file data: its bytes cut into pieces (content-defined, so a big directory that gains
  an entry re-stores only the pieces around it), each piece a block in a pack. A chunk
  reference carries the block's full location (backup, pack, frame, offset, stored length,
  data key), so a node is self-describing: the tree under a node is readable from that node
  alone. An unchanged directory serializes to the same bytes, hence the same block ids,
  which the parent snapshot already stored: it adds nothing.
* **Index.** A snapshot's index (``tree.json``, an encrypted object of the backup) holds the
  root node's references, the chunker's spec, counts and statistics, and the exact list of
  packs the tree references (of this backup and of earlier ones). It needs no other
  snapshot's index: restore reads it, then nodes, then blocks, by byte range.

Writing (``TreeWriter``): blocks already stored are found in ``known`` (the parent
snapshot's blocks, from ``TreeReader.referenced_blocks()`` of a *committed* backup) or in
this snapshot; new ones go into packs uploaded in the background as they fill. ``finish``
writes the nodes (in packs of their own, after the data packs), then the index object.
The caller commits the backup's manifest last. A kill -9 at any point before that commit
leaves packs, maybe the index object, and the data key under ``data/<id>/`` and
``keys/``, but no manifest: the snapshot does not exist, no later snapshot references those
packs (``known`` comes only from committed snapshots), and ``prune`` sweeps them. The first
run frame a repository gets adds its ``run-frames`` feature before the pack holding it is
uploaded: a kill -9 in between leaves the feature and no run frame (harmless; it stays).

Reading (``TreeReader``): ``walk`` yields every entry, ``materialize`` writes the tree
under a directory (adjacent blocks read in one range request, several files at once, never
following a symlink, never writing outside the destination), ``check`` proves every node and
block is present and matches its id, ``referenced_packs``/``referenced_blocks`` list what
the snapshot needs (for explicit references and garbage collection).
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import stat as stat_mod
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import IntegrityError, SwarmError
from swarm.model.ids import is_backup_id
from swarm.model.manifest import Manifest, ObjectEntry
from swarm.repo.chunker import Chunker, FastCDC, split
from swarm.repo.format import RUN_FRAMES, data_key
from swarm.repo.packs import (
    MAX_BLOCK,
    MAX_SPAN,
    RUN_BLOCKS,
    RUN_BYTES,
    Location,
    PackWriter,
    block_id,
    compress_block,
    frame_runs,
    pack_name,
    split_frames,
)
from swarm.repo.repository import BackupWriter, Repository
from swarm.repo.treepaths import check_name, check_path, finish_file
from swarm.repo.treepaths import join as _join
from swarm.repo.treepaths import open_dir as _open_dir
from swarm.repo.treepaths import parent as _parent
from swarm.repo.treepaths import parent_fd as _parent_fd
from swarm.storage.base import ObjectNotFound

INDEX_NAME = "tree.json"
INDEX_VERSION = 1
NODE_VERSION = 1
BATCH = 64  # data chunks of a file hashed and compressed in the pool at a time (2 MiB of 32 KiB blocks)
assert BATCH % RUN_BLOCKS == 0  # a batch is cut into slices of RUN_BLOCKS chunks, one pool task each
AHEAD = 2  # batches of a file in the pool while the next is read
# Node pieces: content-defined, so an entry added to a big directory re-stores only nearby pieces.
NODE_MIN, NODE_AVG, NODE_MAX = 16 << 10, 64 << 10, 512 << 10
assert NODE_MAX <= MAX_BLOCK
DIR, FILE, SYMLINK = "d", "f", "l"
_Run = tuple[int, int, int | None, bytes]  # blocks [start:end) of a slice, run number (None: one block), sealed frame
_Slice = tuple[list[str], list[_Run]]  # a slice's block ids, and the sealed frames of its new blocks


# ---- values -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Meta:
    """What is kept of an entry besides its content.

    ``mode``: permission bits (``& 0o7777``); ``mtime_ns``: modification time in nanoseconds;
    ``extra``: small facts a caller wants back from the parent snapshot, sorted by name
    (e.g. ``ctime_ns`` and ``inode`` for a change cache). Everything here is part of the
    directory's node: a change makes the node (and its ancestors) new.
    """

    mode: int
    mtime_ns: int
    extra: tuple[tuple[str, int | str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"m": self.mode & 0o7777, "mt": int(self.mtime_ns)}
        if self.extra:
            d["x"] = dict(sorted(self.extra))
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Meta:
        x = d.get("x") or {}
        if not isinstance(x, dict):
            raise ValueError("extra metadata is not an object")
        return cls(int(d["m"]) & 0o7777, int(d["mt"]), tuple(sorted((str(k), v) for k, v in x.items())))


DEFAULT_DIR_META = Meta(0o700, 0)


@dataclass(frozen=True)
class ChunkRef:
    """One block of a file or node: its id, plaintext size and where its frame is stored."""

    id: str
    size: int
    loc: Location

    def to_list(self) -> list[object]:
        return [self.id, self.size, *self.loc.to_list()]

    @classmethod
    def from_list(cls, v: object) -> ChunkRef:
        if not isinstance(v, list) or len(v) not in (8, 9):
            raise ValueError("a chunk reference has 8 fields (9 for a block in a run frame)")
        bid, size, *loc = v
        if not isinstance(bid, str) or len(bid) != 64 or not isinstance(size, int) or not 0 <= size <= MAX_BLOCK:
            raise ValueError("bad chunk id or size")
        where = Location.from_list(loc)
        if not is_backup_id(where.backup_id) or where.pack < 0 or where.offset < 0 or where.length < 4 \
                or not where.dek_id.startswith("dek-") or "/" in where.dek_id:
            raise ValueError("bad block location")
        return cls(bid, size, where)


@dataclass(frozen=True)
class Entry:
    """One entry of a snapshot. ``path`` is ``/``-separated and relative; ``""`` is the root."""

    path: str
    type: str
    meta: Meta
    size: int = 0
    target: str = ""
    chunks: tuple[ChunkRef, ...] = ()

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


FileEntry = Entry  # an Entry of type FILE, as ``add_file`` returns and ``reuse_file`` takes


@dataclass(frozen=True)
class PackRef:
    """A pack a snapshot needs: ``data/<backup_id>/<name>``, sealed under data key ``dek_id``."""

    backup_id: str
    name: str
    dek_id: str

    @property
    def key(self) -> str:
        return data_key(self.backup_id, self.name)


@dataclass
class TreeStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    size: int = 0  # plaintext bytes of all files
    new_blocks: int = 0
    new_bytes: int = 0  # plaintext bytes of new data blocks
    reused_blocks: int = 0
    reused_bytes: int = 0
    new_nodes: int = 0  # node pieces stored by this snapshot
    reused_nodes: int = 0
    stored_bytes: int = 0  # bytes of frames this snapshot wrote into packs (data and nodes)
    packs: int = 0  # packs this snapshot wrote

    def to_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class TreeRoot:
    """A snapshot's index: what ``tree.json`` holds."""

    root: tuple[ChunkRef, ...]
    root_meta: Meta
    chunker: dict[str, Any]
    packs: tuple[PackRef, ...]
    stats: TreeStats = field(default_factory=TreeStats)

    @property
    def node_ids(self) -> tuple[str, ...]:
        """The root node's identity (the ids of its pieces; one for all but huge directories)."""
        return tuple(r.id for r in self.root)

    def to_json(self) -> bytes:
        return json.dumps({"version": INDEX_VERSION, "root": [r.to_list() for r in self.root],
                           "root_meta": self.root_meta.to_json(), "chunker": self.chunker,
                           "packs": [[p.backup_id, p.name, p.dek_id] for p in self.packs],
                           "stats": self.stats.to_dict()}, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, where: str) -> TreeRoot:
        try:
            d = json.loads(raw)
            if int(d["version"]) > INDEX_VERSION:
                raise IntegrityError(f"{where}: tree index version {d['version']} is newer than this swarm reads",
                                     hint="Upgrade swarm to read this snapshot.")
            stats = TreeStats(**{k: int(v) for k, v in dict(d.get("stats") or {}).items()
                                 if k in TreeStats.__dataclass_fields__})
            return cls(tuple(ChunkRef.from_list(r) for r in d["root"]), Meta.from_json(d["root_meta"]),
                       dict(d["chunker"]), tuple(PackRef(str(b), str(n), str(k)) for b, n, k in d["packs"]), stats)
        except IntegrityError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{where}: the tree index is damaged ({exc})") from exc


@dataclass(frozen=True)
class TreeProblem:
    where: str  # a path in the tree, or a pack key
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class MaterializeStats:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    bytes: int = 0


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def node_chunker(key: bytes) -> FastCDC:
    return FastCDC.for_key(key, min_size=NODE_MIN, avg_size=NODE_AVG, max_size=NODE_MAX)


# ---- writing ----------------------------------------------------------------------------------
@dataclass
class _Dir:
    meta: Meta
    explicit: bool
    children: dict[str, Entry | None] = field(default_factory=dict)  # None: a subdirectory


class TreeWriter:
    """Build one snapshot into ``backup`` (a ``BackupWriter`` of ``repo``).

    ``known`` maps block ids to locations that may be referenced instead of storing the
    block again: the blocks of the parent snapshot (``TreeReader.referenced_blocks()``),
    only ever of a committed backup. ``chunker`` is recorded in the index; callers cut files
    with it (``add_file`` takes chunks, so any chunking works).

    ``add_file`` is thread safe (several files may be chunked and hashed at once); the
    others are cheap. The whole tree's entries are held in memory until ``finish`` (file
    data is not: it goes to packs as it arrives).
    """

    def __init__(self, repo: Repository, backup: BackupWriter, *, chunker: Chunker,
                 known: Mapping[str, Location] | None = None, index_name: str = INDEX_NAME,
                 workers: int = 2, pack_target: int | None = None) -> None:
        self.repo = repo
        self.backup = backup
        self.chunker = chunker
        self.index_name = index_name
        self._key = repo.dedup_key()
        self._known: Mapping[str, Location] = known or {}
        kw: dict[str, Any] = {} if pack_target is None else {"pack_target": pack_target}
        self._packs = PackWriter(repo_id=repo.config.repo_id, backup_id=backup.id, dek_id=backup.dek_id,
                                 dek=backup.dek, upload=backup.put_pack, workers=max(1, workers), **kw)
        self._used: dict[str, Location] = {}
        self._pack_refs: set[PackRef] = set()
        self._compress_threads = max(1, os.cpu_count() or 1)
        self._compress = ThreadPoolExecutor(self._compress_threads, thread_name_prefix="compress")
        self._ahead = max(AHEAD, -(-self._compress_threads * RUN_BLOCKS // BATCH))  # a slice per thread
        self._dirs: dict[str, _Dir] = {"": _Dir(DEFAULT_DIR_META, False)}
        self._mutex = threading.Lock()
        self.stats = TreeStats()
        self._finished = False

    # -- entries
    def add_dir(self, path: str, meta: Meta) -> None:
        """Record a directory (its parents are created implicitly if not added; ``""`` is the root)."""
        check_path(path)
        with self._mutex:
            d = self._dirs.get(path)
            if d is not None and d.explicit:
                raise ValueError(f"directory {path!r} added twice")
            if d is None:
                self._attach(path, None)
                self._dirs[path] = _Dir(meta, True)
            else:
                d.meta, d.explicit = meta, True

    def add_symlink(self, path: str, target: str, meta: Meta) -> None:
        """Record a symbolic link; it is stored as a link (``target`` as given), never followed."""
        if not path or "\0" in target or not target:
            raise ValueError(f"bad symlink {path!r} -> {target!r}")
        check_path(path)
        with self._mutex:
            self._attach(path, Entry(path, SYMLINK, meta, target=target))

    def add_file(self, path: str, meta: Meta, chunks: Iterable[bytes]) -> FileEntry:
        """Store a regular file's content (``chunks`` in order, as cut by the chunker); return its entry.

        Chunks are taken ``BATCH`` at a time, each batch cut into slices of ``RUN_BLOCKS``; a
        slice's task computes the ids, looks them up, and compresses and seals the new blocks, in
        runs (HMAC and zstd release the interpreter, so the cores work together). While up to
        ``AHEAD`` batches (more with more pool threads, so each thread has a slice) are in the
        pool this thread reads the next one; finished batches are added to the packs in order,
        as one chunk at a time would have added them.
        """
        if not path:
            raise ValueError("a file needs a name")
        check_path(path)
        out: list[ChunkRef] = []
        pending: collections.deque[tuple[list[bytes], list[Future[_Slice]]]] = collections.deque()
        batch: list[bytes] = []
        try:
            for c in chunks:
                if len(c) > MAX_BLOCK:
                    raise ValueError(f"a chunk of {len(c)} bytes is larger than the {MAX_BLOCK} a reader accepts")
                batch.append(c)
                if len(batch) == BATCH:
                    pending.append((batch, self._submit(batch)))
                    batch = []
                    if len(pending) > self._ahead:
                        out += self._store_batch(*pending.popleft())
            if batch:
                pending.append((batch, self._submit(batch)))
            while pending:
                out += self._store_batch(*pending.popleft())
        finally:
            for _, futures in pending:  # an error: let the pool finish what it holds for this file
                for f in futures:
                    f.cancel()
        refs = tuple(out)
        entry = Entry(path, FILE, meta, size=sum(r.size for r in refs), chunks=refs)
        with self._mutex:
            self._attach(path, entry)
        return entry

    def reuse_file(self, path: str, entry: FileEntry, meta: Meta | None = None) -> FileEntry:
        """Record a file unchanged since the parent snapshot: ``entry`` from its ``walk``; nothing is read.

        Its blocks must be in the snapshot ``entry`` came from, a committed one.
        """
        if entry.type != FILE or not path:
            raise ValueError("reuse_file takes a file entry of the parent snapshot")
        check_path(path)
        new = Entry(path, FILE, meta or entry.meta, size=entry.size, chunks=entry.chunks)
        with self._mutex:
            for r in entry.chunks:
                self._used.setdefault(r.id, r.loc)
                self._pack_refs.add(_pack_ref(r.loc))
                self.stats.reused_blocks += 1
                self.stats.reused_bytes += r.size
            self._attach(path, new)
        return new

    def _attach(self, path: str, entry: Entry | None) -> None:
        """Link ``path`` into its parent (creating missing parents). Caller holds the mutex."""
        if not path:
            return
        parent, name = _parent(path), path.rsplit("/", 1)[-1]
        if parent not in self._dirs:
            self._attach(parent, None)
            self._dirs[parent] = _Dir(DEFAULT_DIR_META, False)
        children = self._dirs[parent].children
        if name in children:
            raise ValueError(f"{path!r} added twice")
        children[name] = entry
        if entry is not None:
            if entry.type == FILE:
                self.stats.files += 1
                self.stats.size += entry.size
            else:
                self.stats.symlinks += 1

    # -- blocks
    def _submit(self, plains: list[bytes]) -> list[Future[_Slice]]:
        """One pool task per slice of ``RUN_BLOCKS`` chunks of ``plains``: ids, and the sealed frames of
        the new blocks (a run never spans two slices, so a slice's task forms its runs alone)."""
        return [self._compress.submit(self._hash_and_compress, plains[i:i + RUN_BLOCKS])
                for i in range(0, len(plains), RUN_BLOCKS)]

    def _hash_and_compress(self, plains: list[bytes]) -> _Slice:
        """The ids of ``plains``, and a sealed frame for each run of consecutive blocks that are new
        (neither in ``known`` nor stored by this snapshot yet, and not repeating an earlier block of
        the slice): at most ``RUN_BLOCKS`` blocks and ``RUN_BYTES`` bytes; a run of one block is a
        one-block frame."""
        ids = [block_id(self._key, p) for p in plains]
        with self._mutex:
            new = {i for i, bid in enumerate(ids) if bid not in self._used and bid not in self._known}
        seen: set[str] = set()
        runs: list[_Run] = []
        cur: list[int] = []
        size = 0
        for i in range(len(plains)):
            if i in new and ids[i] not in seen:
                seen.add(ids[i])
                if len(cur) == RUN_BLOCKS or size + len(plains[i]) > RUN_BYTES:
                    runs.append(self._seal_run(ids, plains, cur))
                    cur, size = [], 0
                cur.append(i)
                size += len(plains[i])
            elif cur:
                runs.append(self._seal_run(ids, plains, cur))
                cur, size = [], 0
        if cur:
            runs.append(self._seal_run(ids, plains, cur))
        return ids, runs

    def _seal_run(self, ids: list[str], plains: list[bytes], at: list[int]) -> _Run:
        """The frame of blocks ``at`` (consecutive indexes of ``plains``): a run frame, or for one block
        a one-block frame (``number`` None). Thread safe."""
        if len(at) == 1:
            return at[0], at[0] + 1, None, self._packs.frame(ids[at[0]], compress_block(plains[at[0]]))
        number, frame = self._packs.run_frame([plains[i] for i in at])
        return at[0], at[-1] + 1, number, frame

    def _store_batch(self, plains: list[bytes], futures: list[Future[_Slice]]) -> list[ChunkRef]:
        """Add a submitted batch to the packs, in order. A block found new by its task but stored
        meanwhile (an earlier batch or slice, another thread) is referenced, not stored twice: its
        run's frame is dropped and the run's other blocks are sealed again here, without it; a
        block stored by nobody was sealed by its task (``_used`` only grows, ``_known`` is fixed).
        The first run frame of a repository adds the ``run-frames`` feature before it is uploaded."""
        slices = [f.result() for f in futures]
        out = []
        base = 0
        with self._mutex:
            for ids, runs in slices:
                part = plains[base:base + len(ids)]
                base += len(ids)
                fresh: set[int] = set()
                for start, end, number, frame in runs:
                    if any(ids[k] in self._used for k in range(start, end)):
                        todo = [k for k in range(start, end) if ids[k] not in self._used]
                        while todo:  # what is left of the run, in runs of consecutive blocks
                            cut = next((n for n in range(1, len(todo)) if todo[n] != todo[n - 1] + 1), len(todo))
                            self._add_run(ids, part, self._seal_run(ids, part, todo[:cut]), fresh)
                            todo = todo[cut:]
                        continue
                    self._add_run(ids, part, (start, end, number, frame), fresh)
                for k, (bid, plain) in enumerate(zip(ids, part, strict=True)):
                    loc = self._used.get(bid)
                    if loc is None:
                        loc = self._known.get(bid)
                        if loc is None:
                            raise AssertionError(f"block {bid[:16]} was neither stored nor known")
                        self._used[bid] = loc
                    self._pack_refs.add(_pack_ref(loc))
                    if k in fresh:
                        self.stats.new_blocks += 1
                        self.stats.new_bytes += len(plain)
                    else:
                        self.stats.reused_blocks += 1
                        self.stats.reused_bytes += len(plain)
                    out.append(ChunkRef(bid, len(plain), loc))
        return out

    def _add_run(self, ids: list[str], plains: list[bytes], run: _Run, fresh: set[int]) -> None:
        """Append a sealed run (or one-block frame) to the packs; record its blocks' locations. Caller
        holds the mutex."""
        start, end, number, frame = run
        if number is None:
            self._used[ids[start]] = self._packs.add_frame(ids[start], len(plains[start]), frame)
        else:
            if RUN_FRAMES not in self.repo.config.features:
                self.repo.add_feature(RUN_FRAMES)  # before the pack holding this frame is uploaded
            locs = self._packs.add_run(number, [len(p) for p in plains[start:end]], frame)
            for k, loc in zip(range(start, end), locs, strict=True):
                self._used[ids[k]] = loc
        fresh.update(range(start, end))

    def _put(self, plain: bytes, *, node: bool) -> ChunkRef:
        if len(plain) > MAX_BLOCK:
            raise ValueError(f"a chunk of {len(plain)} bytes is larger than the {MAX_BLOCK} a reader accepts")
        bid = block_id(self._key, plain)
        with self._mutex:
            loc = self._used.get(bid)
            new = False
            if loc is None:
                loc = self._known.get(bid)
                if loc is None:
                    loc = self._packs.add(bid, plain)
                    new = True
                self._used[bid] = loc
            self._pack_refs.add(_pack_ref(loc))
            if node:
                if new:
                    self.stats.new_nodes += 1
                else:
                    self.stats.reused_nodes += 1
            elif new:
                self.stats.new_blocks += 1
                self.stats.new_bytes += len(plain)
            else:
                self.stats.reused_blocks += 1
                self.stats.reused_bytes += len(plain)
        return ChunkRef(bid, len(plain), loc)

    # -- finishing
    def finish(self) -> TreeRoot:
        """Write every directory node (children first), flush the packs, then write the index object.

        Returns the root; the caller then commits the backup (manifest last). On an error
        the pack uploads are stopped; the caller aborts the backup.
        """
        if self._finished:
            raise ValueError("finish called twice")
        self._finished = True
        try:
            self._packs.seal_pack()  # nodes go into packs of their own
            nodes = node_chunker(self._key)
            built: dict[str, tuple[ChunkRef, ...]] = {}
            for path in sorted(self._dirs, key=lambda p: (-p.count("/") - (1 if p else 0), p)):
                d = self._dirs[path]
                entries = []
                for name in sorted(d.children):
                    child = d.children[name]
                    if child is None:
                        sub = self._dirs[_join(path, name)]
                        entries.append({"n": name, "t": DIR, **sub.meta.to_json(),
                                        "tree": [r.to_list() for r in built.pop(_join(path, name))]})
                    elif child.type == FILE:
                        entries.append({"n": name, "t": FILE, **child.meta.to_json(), "s": child.size,
                                        "c": [r.to_list() for r in child.chunks]})
                    else:
                        entries.append({"n": name, "t": SYMLINK, **child.meta.to_json(), "target": child.target})
                raw = _canonical({"v": NODE_VERSION, "entries": entries})
                built[path] = tuple(self._put(piece, node=True) for piece in split(raw, nodes))
                if path:
                    self.stats.dirs += 1
            self._packs.close()
            self._compress.shutdown(wait=True)
            self.stats.stored_bytes = self._packs.stats.stored_bytes
            self.stats.packs = self._packs.stats.packs
            root = TreeRoot(built[""], self._dirs[""].meta, self.chunker.spec(),
                            tuple(sorted(self._pack_refs, key=lambda p: (p.backup_id, p.name))), self.stats)
            self.backup.put_object(self.index_name, [root.to_json()])
            return root
        except BaseException:
            self._packs.abort()
            self._compress.shutdown(wait=True, cancel_futures=True)
            raise

    def abort(self) -> None:
        """Stop pack uploads (the caller aborts the backup, which removes what was written)."""
        self._packs.abort()
        self._compress.shutdown(wait=True, cancel_futures=True)


def _unprefixed(message: str, prefix: str) -> str:
    return message[len(prefix):] if message.startswith(prefix) else message


def _also(hit: list[tuple[str, Location]]) -> str:
    """`` (and blocks b, c of the same run frame)`` when a frame holds more referenced blocks."""
    rest = sorted(bid[:16] for bid, _ in hit[1:])
    return f" (and block{'s' if len(rest) > 1 else ''} {', '.join(rest)} of the same run frame)" if rest else ""


def _pack_ref(loc: Location) -> PackRef:
    return PackRef(loc.backup_id, pack_name(loc.pack), loc.dek_id)


# ---- reading ----------------------------------------------------------------------------------
class TreeReader:
    """Read one snapshot: from a committed manifest (its ``tree.json``) or a ``TreeRoot``."""

    def __init__(self, repo: Repository, source: Manifest | TreeRoot, *, index_name: str = INDEX_NAME) -> None:
        self.repo = repo
        if isinstance(source, TreeRoot):
            self.root = source
        else:
            where = f"{source.id}/{index_name}"
            try:
                raw = b"".join(repo.read_object(source, index_name))
            except KeyError:
                raise IntegrityError(f"backup {source.id} has no {index_name}") from None
            self.root = TreeRoot.from_json(raw, where=where)

    # -- nodes
    def read_file(self, entry: Entry) -> Iterator[bytes]:
        """The plaintext of a regular file ``entry`` of this tree, chunk by chunk (nothing on disk)."""
        return self._read_refs(entry.chunks, entry.path)

    def _read_refs(self, refs: Iterable[ChunkRef], where: str) -> Iterator[bytes]:
        """Plaintext of ``refs`` in order; adjacent frames of one pack are read in one request, and
        a run frame that consecutive refs point into is opened once for all of them."""
        refs = list(refs)
        for i, j, span in frame_runs([r.loc for r in refs], MAX_SPAN):
            first = refs[i]
            try:
                data = self.repo.read_span(first.loc, span)
            except IntegrityError as exc:
                raise IntegrityError(f"{where}: {exc.message}", hint=exc.hint) from exc
            run: tuple[int, list[bytes]] | None = None  # (offset, blocks) of the run frame opened last
            for r in refs[i:j]:
                pos = r.loc.offset - first.loc.offset
                try:
                    if r.loc.sub is None:
                        plain = self.repo.open_block(data[pos:pos + r.loc.length], r.loc, r.id)
                    else:
                        if run is None or run[0] != r.loc.offset:
                            run = (r.loc.offset, self.repo.open_run(data[pos:pos + r.loc.length], r.loc, r.id))
                        plain = self.repo.prove_in_run(run[1], r.loc, r.id)
                except IntegrityError as exc:
                    raise IntegrityError(f"{where}: {exc.message}", hint=exc.hint) from exc
                if len(plain) != r.size:
                    raise IntegrityError(f"{where}: block {r.id[:16]} has {len(plain)} bytes, the tree says {r.size}")
                yield plain

    def _node(self, refs: tuple[ChunkRef, ...], path: str) -> list[Entry]:
        """The entries of the directory at ``path`` whose node is ``refs``; IntegrityError naming it."""
        where = f"directory {path or '/'}"
        raw = b"".join(self._read_refs(refs, where))
        try:
            d = json.loads(raw)
            if int(d["v"]) > NODE_VERSION:
                raise IntegrityError(f"{where}: node version {d['v']} is newer than this swarm reads",
                                     hint="Upgrade swarm to read this snapshot.")
            out = []
            prev = None
            for e in d["entries"]:
                name = check_name(str(e["n"]))
                if prev is not None and name <= prev:
                    raise ValueError("entries are not sorted and unique")
                prev = name
                meta = Meta.from_json(e)
                p = _join(path, name)
                t = e["t"]
                if t == DIR:
                    out.append(Entry(p, DIR, meta, chunks=tuple(ChunkRef.from_list(r) for r in e["tree"])))
                elif t == FILE:
                    out.append(Entry(p, FILE, meta, size=int(e["s"]),
                                     chunks=tuple(ChunkRef.from_list(r) for r in e["c"])))
                elif t == SYMLINK:
                    target = str(e["target"])
                    if not target or "\0" in target:
                        raise ValueError("bad symlink target")
                    out.append(Entry(p, SYMLINK, meta, target=target))
                else:
                    raise ValueError(f"unknown entry type {t!r}")
            return out
        except IntegrityError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{where}: the tree node is damaged ({exc})") from exc

    def walk(self) -> Iterator[Entry]:
        """Every entry, the root (``""``) first, each directory before its contents, names sorted.

        A subdirectory's ``chunks`` are its node's pieces. Raises IntegrityError naming the
        directory whose node cannot be read.
        """
        yield Entry("", DIR, self.root.root_meta, chunks=self.root.root)
        stack = [("", self.root.root)]
        while stack:
            path, refs = stack.pop()
            entries = self._node(refs, path)
            yield from entries
            stack.extend((e.path, e.chunks) for e in reversed(entries) if e.type == DIR)

    # -- references
    def referenced_packs(self) -> set[PackRef]:
        """Every pack this snapshot needs (data and nodes, of this backup and earlier ones), from its index."""
        return set(self.root.packs)

    def referenced_blocks(self) -> dict[str, Location]:
        """Block id → location of every block the snapshot uses (file data and nodes), by walking it.

        This is the ``known`` map for the next snapshot's ``TreeWriter``.
        """
        out = {r.id: r.loc for r in self.root.root}
        for e in self.walk():
            for r in e.chunks:
                out.setdefault(r.id, r.loc)
        return out

    # -- check
    def check(self, read_data: bool = False) -> list[TreeProblem]:
        """Prove the snapshot readable; return what is wrong (empty when all is well).

        Always: the index parses; every node is present, opens, matches its id and parses;
        every file's size is the sum of its chunks; every referenced pack is listed in the
        index, exists and is long enough for its frames. With ``read_data``: every data
        block is read (adjacent frames together), opened and matched to its id.
        """
        problems: list[TreeProblem] = []
        refs: dict[str, tuple[ChunkRef, str]] = {}
        listed = set(self.root.packs)

        def note(r: ChunkRef, where: str) -> None:
            if _pack_ref(r.loc) not in listed:
                problems.append(TreeProblem(where, f"pack {_pack_ref(r.loc).key} is not listed in the index"))
            refs.setdefault(r.id, (r, where))

        stack = [("", self.root.root)]
        for r in self.root.root:
            note(r, "directory /")
        nodes: set[str] = {r.id for r in self.root.root}
        while stack:
            path, node_refs = stack.pop()
            try:
                entries = self._node(node_refs, path)
            except SwarmError as exc:
                problems.append(TreeProblem(path or "/", _unprefixed(exc.message, f"directory {path or '/'}: ")))
                continue
            for e in entries:
                for r in e.chunks:
                    note(r, e.path)
                if e.type == DIR:
                    nodes.update(r.id for r in e.chunks)
                    stack.append((e.path, e.chunks))
                elif e.type == FILE and sum(r.size for r in e.chunks) != e.size:
                    problems.append(TreeProblem(e.path, f"its chunks hold {sum(r.size for r in e.chunks)} bytes, "
                                                        f"the entry says {e.size}"))
        by_pack: dict[PackRef, list[tuple[ChunkRef, str]]] = {}
        for r, where in refs.values():
            by_pack.setdefault(_pack_ref(r.loc), []).append((r, where))
        # the nodes were opened while walking: not read again
        problems += _check_packs(self.repo, self._read_refs, by_pack, read_data=read_data, skip=nodes)
        return problems

    def check_packs(self, backup_id: str, packs: Iterable[ObjectEntry]) -> dict[str, list[str]]:
        """What is wrong with each pack ``backup_id`` wrote (``packs``: its manifest's entries).

        For each pack, read whole: its stored bytes hash to the manifest's SHA-256, its frames
        lie end to end, every frame is one this snapshot references, and every frame opens
        (AEAD under its data key, bound to its block id, or for a run frame to its run; keyed hash
        = id for every block of it the snapshot references; a run frame that does not open is
        reported once, naming the blocks of it that the snapshot references). Returns pack name →
        problems (only damaged packs). Packs of other backups are ``check``'s business.
        """
        by_place: dict[tuple[int, int], list[tuple[str, Location]]] = {}  # a run frame: each block in it
        for bid, loc in self.referenced_blocks().items():
            if loc.backup_id == backup_id:
                by_place.setdefault((loc.pack, loc.offset), []).append((bid, loc))
        out: dict[str, list[str]] = {}
        for entry in packs:
            key = data_key(backup_id, entry.name)
            try:
                data = self.repo._store.get(key)
            except ObjectNotFound:
                out[entry.name] = ["missing from the repository"]
                continue
            found: list[str] = []
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                found.append("SHA-256 of the stored pack differs from the manifest's")
            try:
                frames = split_frames(data, where=entry.name)
            except SwarmError as exc:
                out[entry.name] = [*found, exc.message]
                continue
            number = int(entry.name.split("/")[-1].split(".")[0])
            for offset, length in frames:
                hit = by_place.get((number, offset))
                if hit is None:
                    found.append(f"frame at byte {offset} is not referenced by the index")
                    continue
                frame = data[offset:offset + length]
                if hit[0][1].sub is None:
                    try:
                        self.repo.open_block(frame, hit[0][1], hit[0][0])
                    except SwarmError as exc:
                        found.append(exc.message.removeprefix(f"{key}: "))
                    continue
                try:
                    blocks = self.repo.open_run(frame, hit[0][1], hit[0][0])
                except SwarmError as exc:
                    found.append(exc.message.removeprefix(f"{key}: ") + _also(hit))
                    continue
                for bid, loc in sorted(hit, key=lambda h: h[1].sub or 0):
                    try:
                        self.repo.prove_in_run(blocks, loc, bid)
                    except SwarmError as exc:
                        found.append(exc.message.removeprefix(f"{key}: "))
            if found:
                out[entry.name] = found
        return out

    # -- materialize
    def materialize(self, dest: Path, *, jobs: int = 4, only: Callable[[str], bool] | None = None,
                    progress: Callable[[int], None] | None = None, sync: bool = False,
                    processes: int = 0) -> MaterializeStats:
        """Write the snapshot's tree under ``dest`` (an existing directory); return what was written.

        ``only(path)`` selects entries (the directories above a selected entry are created
        too). Order: directories (mode 0700 while writing), then files (largest first, ``jobs``
        at a time; adjacent blocks of a pack read in one request; each file's blocks proven
        to be their ids and its size checked), then symlinks (last, so nothing is written
        through one), then directory modes and mtimes (deepest first). Every path is opened
        component by component relative to ``dest`` with ``O_NOFOLLOW``: an existing symlink
        in the way makes the call fail; nothing is ever written outside ``dest``. ``dest``'s
        own mode and mtime are left alone.

        Raises IntegrityError naming the file (and pack) on damage; what was written so far
        stays (callers write into a fresh directory beside the target and rename it into
        place, or remove it). A kill -9 leaves a partial tree under ``dest``. An exception in
        the caller's thread (Ctrl-C, SIGTERM turned into one by the CLI, or ``progress``
        raising) ends the call promptly: files not yet started are skipped and files being
        written stop at their next block, leaving a partial tree as a kill would.

        ``sync``: each file is fsynced by the worker that wrote it, as soon as it is written, so
        the flush to disk overlaps the decoding of the next files (a PostgreSQL data directory
        is fsynced file by file, serially, by the server's start-up otherwise).

        ``processes`` (> 1): blocks are decoded and written by that many worker processes, ``jobs``
        reader threads feeding them (``swarm.repo.rebuild``: same checks, same safety; all-zero
        blocks become holes of files created at their full size; worth it from about
        ``rebuild.MIN_PROCESS_BYTES``). Otherwise threads do everything.
        """
        entries = [e for e in self.walk() if e.path]
        if only is not None:
            chosen = [e for e in entries if only(e.path)]
            needed: set[str] = set()
            for e in chosen:
                p = _parent(e.path)
                while p and p not in needed:
                    needed.add(p)
                    p = _parent(p)
            keep = {e.path for e in chosen} | needed
            entries = [e for e in entries if e.path in keep]
        out = MaterializeStats()
        root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            dirs = [e for e in entries if e.type == DIR]
            for e in dirs:
                with _parent_fd(root_fd, e.path) as pfd:
                    try:
                        os.mkdir(e.name, 0o700, dir_fd=pfd)
                    except FileExistsError:
                        st = os.stat(e.name, dir_fd=pfd, follow_symlinks=False)
                        if not stat_mod.S_ISDIR(st.st_mode):
                            raise IntegrityError(f"cannot restore directory {e.path}: something else is there",
                                                 hint="Restore into an empty directory.") from None
                out.dirs += 1
            files = sorted((e for e in entries if e.type == FILE), key=lambda e: -e.size)
            if processes > 1 and files:
                from swarm.repo import rebuild

                out.files, out.bytes = rebuild.write_files(self.repo, files, root_fd, processes=processes,
                                                           readers=jobs, progress=progress, sync=sync)
                files = []
            stop = threading.Event()  # set when the caller is interrupted: writers stop at their next block
            pool = ThreadPoolExecutor(max(1, jobs), thread_name_prefix="materialize")
            try:
                for n in pool.map(lambda e: self._write_file(root_fd, e, stop, sync), files):
                    out.files += 1
                    out.bytes += n
                    if progress is not None:
                        progress(n)
            except BaseException:
                # Ctrl-C / SIGTERM (or a damaged file): files not started are not started, running
                # ones stop at their next block; the caller is told at once, not after every file
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
            for e in entries:
                if e.type == SYMLINK:
                    with _parent_fd(root_fd, e.path) as pfd:
                        os.symlink(e.target, e.name, dir_fd=pfd)
                        os.utime(e.name, ns=(e.meta.mtime_ns, e.meta.mtime_ns), dir_fd=pfd, follow_symlinks=False)
                    out.symlinks += 1
            for e in sorted(dirs, key=lambda e: -e.path.count("/")):
                fd = _open_dir(root_fd, e.path)
                try:
                    os.fchmod(fd, e.meta.mode)
                    os.utime(fd, ns=(e.meta.mtime_ns, e.meta.mtime_ns))
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)
        return out

    def _write_file(self, root_fd: int, e: Entry, stop: threading.Event | None = None, sync: bool = False) -> int:
        written = 0
        with _parent_fd(root_fd, e.path) as pfd:
            fd = os.open(e.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=pfd)
        try:
            with os.fdopen(fd, "wb", closefd=False) as fh:
                for plain in self._read_refs(e.chunks, e.path):
                    if stop is not None and stop.is_set():
                        raise _Stopped(e.path)
                    fh.write(plain)
                    written += len(plain)
            finish_file(fd, e.path, written, e.size, e.meta.mode, e.meta.mtime_ns, sync=sync)
        finally:
            os.close(fd)
        return written


class _Stopped(Exception):
    """A file write abandoned because the materialize it belongs to was interrupted."""


# ---- physical backups of the block-index format ---------------------------------------------------
LEGACY_INDEX_NAME = "index.json"  # physical backups written before they moved onto the tree store


class BlockIndexReader(TreeReader):
    """A physical backup of the older format, read through the tree store's interface.

    Its ``index.json`` (``{"version": 1, "block_size", "files": [{"path", "type", "mode",
    "mtime", "size", "blocks"|"link"}], "blocks": {id: location}}``, see
    docs/design/repository-format.md) is turned into the entries ``walk`` yields, so
    ``materialize``, ``check_packs`` and ``referenced_blocks`` work unchanged; ``check``
    proves every block's pack present and long enough (there are no nodes), and with
    ``read_data`` every block.
    """

    def __init__(self, repo: Repository, manifest: Manifest) -> None:  # not TreeReader's: there is no tree.json
        self.repo = repo
        try:
            raw = b"".join(repo.read_object(manifest, LEGACY_INDEX_NAME))
        except KeyError:
            raise IntegrityError(f"backup {manifest.id} has no {LEGACY_INDEX_NAME}") from None
        where = f"{manifest.id}/{LEGACY_INDEX_NAME}"
        try:
            d = json.loads(raw)
            bs = int(d["block_size"])
            self._blocks = {str(b): Location.from_list(v) for b, v in d["blocks"].items()}
            entries: dict[str, Entry] = {}
            for f in d["files"]:
                path = check_path(str(f["path"]))
                meta = Meta(int(f.get("mode", 0o700)) & 0o7777, int(f.get("mtime", 0)) * 1_000_000_000)
                if f["type"] == DIR:
                    entries[path] = Entry(path, DIR, meta)
                elif f["type"] == SYMLINK:
                    entries[path] = Entry(path, SYMLINK, meta, target=str(f["link"]))
                elif f["type"] == FILE:
                    size, ids = int(f["size"]), list(f.get("blocks", []))
                    sizes = [bs] * len(ids)
                    if ids:
                        sizes[-1] = size - bs * (len(ids) - 1)
                    chunks = tuple(ChunkRef(b, n, self._blocks[b]) for b, n in zip(ids, sizes, strict=True))
                    entries[path] = Entry(path, FILE, meta, size=size, chunks=chunks)
                else:
                    raise ValueError(f"unknown entry type {f['type']!r}")
            for path in list(entries):  # parents the index does not list (pg_basebackup lists them all)
                p = _parent(path)
                while p and p not in entries:
                    entries[p] = Entry(p, DIR, DEFAULT_DIR_META)
                    p = _parent(p)
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{where}: the block index is damaged ({exc})") from exc
        self._entries = sorted(entries.values(), key=lambda e: (e.path.count("/"), e.path))
        packs = {_pack_ref(loc) for loc in self._blocks.values()}
        self.root = TreeRoot((), DEFAULT_DIR_META, {"kind": "fixed", "size": bs},
                             tuple(sorted(packs, key=lambda p: (p.backup_id, p.name))))

    def walk(self) -> Iterator[Entry]:
        """The root, then every entry, parents before children (by depth, then name)."""
        yield Entry("", DIR, self.root.root_meta)
        yield from self._entries

    def referenced_blocks(self) -> dict[str, Location]:
        return dict(self._blocks)

    def check(self, read_data: bool = False) -> list[TreeProblem]:
        problems: list[TreeProblem] = []
        by_pack: dict[PackRef, list[tuple[ChunkRef, str]]] = {}
        seen: set[str] = set()
        for e in self._entries:
            if e.type == FILE and sum(r.size for r in e.chunks) != e.size:
                problems.append(TreeProblem(e.path, "its blocks do not add up to its size"))
            for r in e.chunks:
                if r.id not in seen:
                    seen.add(r.id)
                    by_pack.setdefault(_pack_ref(r.loc), []).append((r, e.path))
        problems += _check_packs(self.repo, self._read_refs, by_pack, read_data=read_data)
        return problems


def _check_packs(repo: Repository, read_refs: Callable[[list[ChunkRef], str], Iterator[bytes]],
                 by_pack: dict[PackRef, list[tuple[ChunkRef, str]]], *, read_data: bool,
                 skip: set[str] | frozenset[str] = frozenset()) -> list[TreeProblem]:
    """Every pack is present and long enough for the frames that name it; with ``read_data`` every
    chunk (but those in ``skip``) opens and matches its id. One problem per pack that is missing or
    short, one per chunk that does not open (named by the path that needs it)."""
    problems: list[TreeProblem] = []
    for pack, items in sorted(by_pack.items(), key=lambda kv: kv[0].key):
        info = repo._store.stat(pack.key)
        if info is None:
            problems.append(TreeProblem(pack.key, f"pack is missing from the repository (needed by "
                                                  f"{len(items)} blocks, e.g. of {items[0][1] or '/'})"))
            continue
        end = max(r.loc.offset + r.loc.length for r, _ in items)
        if info.size < end:
            problems.append(TreeProblem(pack.key, f"pack has {info.size} bytes, its frames need {end}"))
            continue
        if not read_data:
            continue
        frames: dict[int, list[tuple[ChunkRef, str]]] = {}  # a run frame: the blocks of it to check
        for r, where in sorted(items, key=lambda it: (it[0].loc.offset, it[0].loc.sub or 0)):
            if r.id not in skip:
                frames.setdefault(r.loc.offset, []).append((r, where))
        for group in frames.values():
            if group[0][0].loc.sub is not None:
                problems += _check_run(repo, group)
                continue
            for r, where in group:
                try:
                    collections.deque(read_refs([r], where), maxlen=0)  # read and verify, keep nothing
                except SwarmError as exc:
                    problems.append(TreeProblem(where or "/", _unprefixed(exc.message, f"{where}: ")))
    return problems


def _check_run(repo: Repository, group: list[tuple[ChunkRef, str]]) -> list[TreeProblem]:
    """Check the blocks ``group`` of one run frame: the frame read and opened once; a frame that does
    not open is one problem per path that needs it, naming that path's blocks in it; then each block
    proven to be its id (one problem per block that is not)."""
    first = group[0][0]
    try:
        blocks = repo.open_run(repo.read_span(first.loc, first.loc.length), first.loc, first.id)
    except SwarmError:
        out = []
        by_path: dict[str, list[ChunkRef]] = {}
        for r, where in group:
            by_path.setdefault(where, []).append(r)
        for where, refs in by_path.items():
            try:  # the same failure again, named by this path's first block
                repo.open_run(repo.read_span(refs[0].loc, refs[0].loc.length), refs[0].loc, refs[0].id)
                message = "its run frame reads back only on the second attempt"
            except SwarmError as exc:
                message = exc.message
            more = sorted(r.id[:16] for r in refs[1:])
            if more:
                message += f" (and block{'s' if len(more) > 1 else ''} {', '.join(more)} of the same frame)"
            out.append(TreeProblem(where or "/", message))
        return out
    out = []
    for r, where in group:
        try:
            plain = repo.prove_in_run(blocks, r.loc, r.id)
            if len(plain) != r.size:
                raise IntegrityError(f"block {r.id[:16]} has {len(plain)} bytes, the tree says {r.size}")
        except SwarmError as exc:
            out.append(TreeProblem(where or "/", exc.message))
    return out


def snapshot_index_name(manifest: Manifest) -> str:
    """The index object a backup's tree is read from: ``tree.json``, or ``index.json`` for a
    physical backup of the block-index format (chosen by which one its manifest lists)."""
    names = {o.name for o in manifest.objects}
    return LEGACY_INDEX_NAME if INDEX_NAME not in names and LEGACY_INDEX_NAME in names else INDEX_NAME


def open_snapshot(repo: Repository, manifest: Manifest) -> TreeReader:
    """A reader of ``manifest``'s tree, whichever index format it has (IntegrityError if unreadable)."""
    if snapshot_index_name(manifest) == LEGACY_INDEX_NAME:
        return BlockIndexReader(repo, manifest)
    return TreeReader(repo, manifest)
