"""Writing a large snapshot's files in worker processes: decode blocks off the GIL.

``TreeReader.materialize`` writes files in threads of one process. That is enough for a state
directory, but a physical restore spends almost all of its time decrypting (AES-GCM),
decompressing (zstd) and re-proving (HMAC-SHA256) 32 KiB blocks, and Python threads contend
for the interpreter between those calls: two threads on two cores reached about 1.25 times
one thread. ``write_files`` splits that work the way pgBackRest's ``process-max`` does:

* **Reader threads** (in this process) read the stored frames of a *piece* (up to
  ``PIECE_BYTES`` of consecutive blocks of one file; adjacent frames of a pack in one range
  request, through ``Repository.read_span``, so repacked packs and every store work as for
  the thread path) and hand the piece to a worker process, waiting for its answer. Their
  number bounds the pieces in flight, so memory does not grow with the backup.
* **Worker processes** (``processes`` of them, ``python -m swarm.repo.rebuild``: fresh
  interpreters, so they inherit no thread, lock or connection of this process) open each
  block (``open_frame``: the frame is authenticated, decompressed and proven to be its block
  id; a run frame is opened once for the blocks of it in the piece, each block proven) and
  ``pwrite`` it at its offset. A worker inherits the caller's descriptor of the destination
  (and no other descriptor) and reaches every file from it component by component with
  ``O_NOFOLLOW`` (``treepaths.parent_fd``), as the thread path does. The keys it needs (the
  repository id, the dedup key, the data keys the files use) come over its stdin pipe and
  stay in its memory only. A worker that dies is dropped and its piece is decoded by the
  reader thread itself.
* **All-zero blocks** (new relation extents, zeroed pages) are recognized by id (the id of
  a run of zeros is computed once per size) and not written: each file is created at its
  full size first, so the hole reads as zeros. Their frames are not read either.
* **This process** creates every file larger than a piece before its pieces run (a small
  file is created by its only piece), and after a file's last piece checks the byte count,
  sets mode and mtime, and with ``sync`` fsyncs it.

Crash behaviour: a kill -9 of this process leaves a partial tree under the destination, as
the thread path does (callers write into a fresh directory and remove it on failure); each
worker asked the kernel to SIGKILL it when this process dies, and exits anyway at the end of
its stdin, so no process is left behind. An exception here (Ctrl-C, SIGTERM turned into one
by the CLI, a damaged block) stops the reader threads before their next piece, waits for the
pieces already in workers (at most one per reader thread), ends the workers and is raised.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import queue
import signal
import stat as stat_mod
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from swarm.errors import IntegrityError
from swarm.repo.format import data_key
from swarm.repo.packs import MAX_SPAN, Location, block_id, frame_runs, open_frame, open_run, run_block
from swarm.repo.treepaths import finish_file, parent_fd

if TYPE_CHECKING:
    from swarm.repo.repository import Repository
    from swarm.repo.tree import ChunkRef, Entry

PIECE_BYTES = 4 << 20  # plaintext bytes of consecutive blocks one worker task writes
MIN_PROCESS_BYTES = 64 << 20  # advice for callers: below this, worker start-up costs more than threads lose
ZERO_PAGE = 8192  # all-zero blocks are recognized when their size is a multiple of this
_PR_SET_PDEATHSIG = 1


_Frame = tuple[int, int, str, str, int, str, "tuple[str, int, int, int, int] | None"]


@dataclass(frozen=True)
class Piece:
    """One worker task: consecutive blocks of one file, from byte ``offset``.

    ``frames``: per block ``(position in blob, stored length, block id, data key id, plain
    size, pack key, run)``; a stored length of 0 marks an all-zero block that is not written;
    ``run`` is None for a one-block frame, else ``(backup id, pack, run number, byte offset,
    index in the run)`` of a block in a run frame, its ``Location`` but the stored length and
    the data key (blocks of one run frame share its position in the blob: it is opened once).
    ``create``: this is the file's only piece; create (truncate) it at ``size`` first.
    """

    path: str
    offset: int
    size: int
    create: bool
    blob: bytes
    frames: tuple[_Frame, ...]


# ---- worker side ---------------------------------------------------------------------------------
# A worker is `python -m swarm.repo.rebuild <parent pid>`: it reads pickled messages on stdin (first
# the keys and the destination's descriptor number, then pieces) and answers each piece on stdout.
def _die_with_parent(parent: int) -> None:
    """SIGKILL this worker when its parent ends (Linux); exit now if it already has."""
    with contextlib.suppress(OSError, AttributeError):  # elsewhere: the end of stdin still ends the worker
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


@dataclass(frozen=True)
class _Keys:
    """What decoding needs: the destination's descriptor, the repository id, dedup and data keys."""

    root_fd: int
    repo_id: str
    dedup_key: bytes
    deks: dict[str, bytes]


def _write_piece(k: _Keys, piece: Piece) -> tuple[int, str | None]:
    """Decode and write ``piece``; (bytes accounted, None) or (0, what went wrong)."""
    name = piece.path.rsplit("/", 1)[-1]
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    if piece.create:
        flags |= os.O_CREAT | os.O_TRUNC
    try:
        with parent_fd(k.root_fd, piece.path) as pfd:
            fd = os.open(name, flags, 0o600, dir_fd=pfd)
    except IntegrityError as exc:
        return 0, exc.message
    except OSError as exc:
        return 0, f"cannot write {piece.path} in the restore target: {exc.strerror} (a symlink or file in the way?)"
    try:
        if piece.create:
            os.ftruncate(fd, piece.size)
        pos = piece.offset
        view = memoryview(piece.blob)
        opened: tuple[int, list[bytes]] | None = None  # (position, blocks) of the run frame opened last
        for at, length, bid, dek_id, size, where, run in piece.frames:
            if length:
                try:
                    if run is None:
                        plain = open_frame(bytes(view[at:at + length]), dek=k.deks[dek_id], repo_id=k.repo_id,
                                           bid=bid, dedup_key=k.dedup_key, where=where)
                    else:
                        loc = Location(run[0], run[1], run[2], run[3], length, dek_id, run[4])
                        if opened is None or opened[0] != at:
                            opened = (at, open_run(bytes(view[at:at + length]), dek=k.deks[dek_id], repo_id=k.repo_id,
                                                   loc=loc, bid=bid, where=where))
                        plain = run_block(opened[1], loc, bid, dedup_key=k.dedup_key, where=where)
                except IntegrityError as exc:
                    return 0, f"{piece.path}: {exc.message}"
                if len(plain) != size:
                    return 0, f"{piece.path}: block {bid[:16]} has {len(plain)} bytes, the tree says {size}"
                os.pwrite(fd, plain, pos)
            pos += size
        return pos - piece.offset, None
    except OSError as exc:
        return 0, f"cannot write {piece.path} in the restore target: {exc.strerror}"
    finally:
        os.close(fd)


def _serve(parent: int) -> int:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent decides
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    try:
        keys: _Keys = pickle.load(inp)
        while True:
            piece = pickle.load(inp)
            pickle.dump(_write_piece(keys, piece), out)
            out.flush()
    except EOFError:  # the parent closed our stdin: done (or it died)
        return 0


# ---- caller side ---------------------------------------------------------------------------------
class _Stopped(Exception):
    """A piece not started because the restore it belongs to was interrupted."""


def _split(chunks: Sequence[ChunkRef]) -> list[tuple[int, list[ChunkRef]]]:
    """(file offset, refs) of each piece of a file, in order; one empty piece for an empty file."""
    out: list[tuple[int, list[ChunkRef]]] = []
    cur: list[ChunkRef] = []
    start = pos = n = 0
    for r in chunks:
        if cur and n + r.size > PIECE_BYTES:
            out.append((start, cur))
            cur, start, n = [], pos, 0
        cur.append(r)
        n += r.size
        pos += r.size
    if cur or not out:
        out.append((start, cur))
    return out


class _ZeroIds:
    """The block id of ``size`` zero bytes, computed once per size; only for whole numbers of
    PostgreSQL pages (the fixed blocks of a physical backup), so content-defined chunks, whose
    sizes rarely repeat, cost no hashing here ("" never matches an id)."""

    def __init__(self, dedup_key: bytes) -> None:
        self._key = dedup_key
        self._ids: dict[int, str] = {}
        self._lock = threading.Lock()

    def __call__(self, size: int) -> str:
        if size % ZERO_PAGE:
            return ""
        bid = self._ids.get(size)
        if bid is None:
            with self._lock:
                bid = self._ids.setdefault(size, block_id(self._key, bytes(size)))
        return bid


def _read_piece(repo: Repository, path: str, refs: list[ChunkRef], zero_id: Callable[[int], str]) -> tuple[
        bytes, tuple[_Frame, ...]]:
    """The stored frames of ``refs`` (adjacent frames of a pack in one request; a run frame that
    consecutive refs point into once) and their table."""
    parts: list[bytes] = []
    frames: list[_Frame] = []
    blob_len = 0
    zero = [r.id == zero_id(r.size) for r in refs]
    for i, j, span in frame_runs([r.loc for r in refs], MAX_SPAN, alone=zero.__getitem__):
        first = refs[i]
        if zero[i]:
            frames.append((0, 0, first.id, first.loc.dek_id, first.size, "", None))
            continue
        try:
            data = repo.read_span(first.loc, span)
        except IntegrityError as exc:
            raise IntegrityError(f"{path}: {exc.message}", hint=exc.hint) from exc
        where = data_key(first.loc.backup_id, first.loc.pack_name())
        for r in refs[i:j]:
            at = blob_len + r.loc.offset - first.loc.offset
            run = None if r.loc.sub is None else (r.loc.backup_id, r.loc.pack, r.loc.frame, r.loc.offset, r.loc.sub)
            frames.append((at, r.loc.length, r.id, r.loc.dek_id, r.size, where, run))
        parts.append(data)
        blob_len += len(data)
    return b"".join(parts), tuple(frames)


def _open_in(root_fd: int, e: Entry, flags: int) -> int:
    try:
        with parent_fd(root_fd, e.path) as pfd:
            return os.open(e.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
    except OSError as exc:
        raise IntegrityError(f"cannot write {e.path} in the restore target: {exc.strerror}",
                             hint="A symlink or file is in the way; restore into an empty directory.") from exc


def _create(root_fd: int, e: Entry) -> None:
    fd = _open_in(root_fd, e, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.ftruncate(fd, e.size)
    finally:
        os.close(fd)


def _finish(root_fd: int, e: Entry, written: int, sync: bool) -> None:
    fd = _open_in(root_fd, e, os.O_RDONLY)
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            raise IntegrityError(f"restored {e.path} is not a regular file")
        finish_file(fd, e.path, written, e.size, e.meta.mode, e.meta.mtime_ns, sync=sync)
    finally:
        os.close(fd)


class _Workers:
    """``n`` worker processes (``python -m swarm.repo.rebuild``), each lent to one reader thread at a
    time. A worker that dies (killed, out of memory) is dropped and its piece decoded in the
    calling thread instead, so a restore never fails for want of a worker."""

    def __init__(self, n: int, keys: _Keys) -> None:
        import swarm

        self._keys = keys
        self._free: queue.Queue[subprocess.Popen[bytes]] = queue.Queue()
        self._all: list[subprocess.Popen[bytes]] = []
        src = str(Path(swarm.__file__).resolve().parent.parent)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p))
        for _ in range(n if sys.executable else 0):
            try:
                p = subprocess.Popen([sys.executable, "-m", "swarm.repo.rebuild", str(os.getpid())],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, pass_fds=(keys.root_fd,), env=env)
            except OSError:  # cannot start one: the reader threads decode themselves
                break
            self._all.append(p)
            try:
                assert p.stdin is not None
                pickle.dump(keys, p.stdin)
                p.stdin.flush()
            except OSError:
                continue
            self._free.put(p)

    def write(self, piece: Piece, stop: threading.Event) -> tuple[int, str | None]:
        while True:
            if stop.is_set():
                raise _Stopped(piece.path)
            if not any(p.poll() is None for p in self._all):
                return _write_piece(self._keys, piece)  # no worker left: decode here
            try:
                p = self._free.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                assert p.stdin is not None and p.stdout is not None
                pickle.dump(piece, p.stdin)
                p.stdin.flush()
                answer: tuple[int, str | None] = pickle.load(p.stdout)
            except (OSError, EOFError, pickle.UnpicklingError):
                p.kill()
                return _write_piece(self._keys, piece)
            self._free.put(p)
            return answer

    def close(self) -> None:
        """End every worker: close its stdin (it exits at EOF); kill one that does not within 10 s."""
        for p in self._all:
            with contextlib.suppress(OSError):
                assert p.stdin is not None
                p.stdin.close()
        for p in self._all:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            if p.stdout is not None:
                p.stdout.close()


def write_files(repo: Repository, files: Sequence[Entry], root_fd: int, *, processes: int, readers: int,
                progress: Callable[[int], None] | None = None, sync: bool = False) -> tuple[int, int]:
    """Write regular files ``files`` (largest first is best) under ``root_fd`` (a descriptor of the
    destination, whose directories exist); return (files, bytes). See the module docstring for
    the split between reader threads and worker processes and for what a crash leaves behind.
    Raises IntegrityError naming the file (and pack) on damage."""
    dek_ids = {r.loc.dek_id for e in files for r in e.chunks}
    keys = _Keys(root_fd, repo.config.repo_id, repo.dedup_key(), {d: repo.dek(d) for d in sorted(dek_ids)})
    zero_id = _ZeroIds(keys.dedup_key)
    tasks: list[tuple[Entry, int, list[ChunkRef], bool]] = []
    remaining: dict[str, int] = {}
    for e in files:
        pieces = _split(e.chunks)
        remaining[e.path] = len(pieces)
        if len(pieces) > 1:
            _create(root_fd, e)
        tasks += [(e, off, refs, len(pieces) == 1) for off, refs in pieces]
    stop = threading.Event()
    workers = _Workers(processes, keys)  # started by this (the calling) thread, which outlives them
    threads = ThreadPoolExecutor(max(1, readers), thread_name_prefix="rebuild")

    def run(task: tuple[Entry, int, list[ChunkRef], bool]) -> tuple[Entry, int]:
        e, offset, refs, create = task
        if stop.is_set():
            raise _Stopped(e.path)
        blob, frames = _read_piece(repo, e.path, refs, zero_id)
        n, err = workers.write(Piece(e.path, offset, e.size, create, blob, frames), stop)
        if err is not None:
            raise IntegrityError(err, hint="Check the repository (`swarm admin verify`); restore another backup.")
        return e, n

    written: dict[str, int] = {}
    count = total = 0
    try:
        for e, n in threads.map(run, tasks):
            written[e.path] = written.get(e.path, 0) + n
            total += n
            if progress is not None:
                progress(n)
            remaining[e.path] -= 1
            if remaining[e.path] == 0:
                _finish(root_fd, e, written[e.path], sync)
                count += 1
    except BaseException:
        stop.set()
        threads.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        threads.shutdown(wait=True)
        workers.close()
    return count, total

if __name__ == "__main__":
    sys.exit(_serve(int(sys.argv[1])))
