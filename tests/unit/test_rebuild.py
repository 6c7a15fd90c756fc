"""Worker processes writing a snapshot (``swarm.repo.rebuild``): the same tree as the thread path,
damage named, no write through a symlink, zero blocks as holes, no worker left behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from swarm.crypto.keys import create_key_file
from swarm.errors import IntegrityError
from swarm.repo import Repository, rebuild
from swarm.repo.chunker import FixedChunker
from swarm.repo.format import data_key
from swarm.repo.tree import TreeReader
from swarm.storage.memory import MemoryStore
from tests.unit.test_tree_store import listing, make_tree, snapshot

pytestmark = pytest.mark.usefixtures("small_pieces")


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(MemoryStore(), create_key_file(tmp_path / "k"))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    s = tmp_path / "src"
    s.mkdir()
    make_tree(s)
    return s


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rebuild, "PIECE_BYTES", 40_000)  # files of the test tree span several pieces


def workers_of(pid: int) -> list[int]:
    """Live `python -m swarm.repo.rebuild <pid>` processes."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            state = next(ln for ln in (d / "status").read_text().splitlines() if ln.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if b"swarm.repo.rebuild" in argv and str(pid).encode() in argv and "zombie" not in state:
            out.append(int(d.name))
    return out


def test_processes_write_the_same_tree_as_threads(repo: Repository, src: Path, tmp_path: Path) -> None:
    m, _ = snapshot(repo, src)
    by_threads, by_procs = tmp_path / "t", tmp_path / "p"
    by_threads.mkdir()
    by_procs.mkdir()
    done: list[int] = []
    a = TreeReader(repo, m).materialize(by_threads, jobs=2)
    b = TreeReader(repo, m).materialize(by_procs, jobs=3, processes=2, progress=done.append, sync=True)
    assert listing(by_procs) == listing(by_threads) == listing(src)
    assert (a.files, a.bytes, a.dirs, a.symlinks) == (b.files, b.bytes, b.dirs, b.symlinks)
    assert sum(done) == b.bytes and len(done) > b.files  # progress per piece; the big file is several
    assert workers_of(os.getpid()) == []


def test_all_zero_blocks_become_holes_and_read_as_zeros(repo: Repository, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "sparse").write_bytes(os.urandom(32768) + bytes(32768 * 40) + os.urandom(1000))
    m, _ = snapshot(repo, tree, chunker=FixedChunker(32768))
    dest = tmp_path / "dest"
    dest.mkdir()
    TreeReader(repo, m).materialize(dest, processes=2)
    out = dest / "sparse"
    assert out.read_bytes() == (tree / "sparse").read_bytes()
    assert out.stat().st_blocks * 512 < 32768 * 10  # the zeros were not written


def test_a_damaged_block_is_named_and_fails_the_restore(repo: Repository, src: Path, tmp_path: Path) -> None:
    m, _ = snapshot(repo, src)
    reader = TreeReader(repo, m)
    big = next(e for e in reader.walk() if e.path == "a/deep/er/big.bin")
    loc = big.chunks[-1].loc
    key = data_key(loc.backup_id, loc.pack_name())
    raw = bytearray(repo._store.get(key))
    raw[loc.offset + 30] ^= 0x01
    repo._store.put(key, bytes(raw))
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match=r"a/deep/er/big\.bin: .*authentication"):
        reader.materialize(dest, processes=2)
    assert workers_of(os.getpid()) == []


@pytest.mark.parametrize("path", ["a/small.json", "b/text.log"])  # created by a worker; by the caller
def test_a_symlink_in_the_way_is_not_followed(repo: Repository, src: Path, tmp_path: Path, path: str) -> None:
    m, _ = snapshot(repo, src)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    (dest / path).parent.mkdir(parents=True)
    (dest / path).symlink_to(outside / "written-through")
    with pytest.raises(IntegrityError, match=path.replace(".", r"\.")):
        TreeReader(repo, m).materialize(dest, processes=2)
    assert list(outside.iterdir()) == []


def test_a_dead_worker_is_replaced_by_the_reader_thread(repo: Repository, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
    try:
        keys = rebuild._Keys(root_fd, repo.config.repo_id, repo.dedup_key(), {})
        workers = rebuild._Workers(2, keys)
        for pid in workers_of(os.getpid()):
            os.kill(pid, signal.SIGKILL)
        piece = rebuild.Piece("empty-file", 0, 0, True, b"", ())
        assert workers.write(piece, threading.Event()) == (0, None)  # written here, not by a worker
        workers.close()
    finally:
        os.close(root_fd)
    assert (dest / "empty-file").exists()


def test_kill_9_of_the_restore_leaves_no_worker(tmp_path: Path) -> None:
    """The parent is killed while its workers wait for pieces (its reader threads are held in a slow
    store): every worker is gone within seconds."""
    script = tmp_path / "restore.py"
    script.write_text(textwrap.dedent(f"""
        import sys, threading, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from pathlib import Path
        from swarm.crypto.keys import create_key_file
        from swarm.repo import Repository
        from swarm.repo.tree import TreeReader
        from swarm.storage.memory import MemoryStore
        from tests.unit.test_tree_store import make_tree, snapshot

        tmp = Path({str(tmp_path)!r})
        (tmp / "src").mkdir()
        make_tree(tmp / "src")
        repo = Repository.init(MemoryStore(), create_key_file(tmp / "k"))
        m, _ = snapshot(repo, tmp / "src")
        read = repo.read_span
        def read_span(loc, n):  # the reader threads of the workers wait: the test kills us meanwhile
            if threading.current_thread().name.startswith("rebuild"):
                time.sleep(600)
            return read(loc, n)
        repo.read_span = read_span
        (tmp / "dest").mkdir()
        print("ready", flush=True)
        TreeReader(repo, m).materialize(tmp / "dest", processes=2)
    """))
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while len(workers_of(p.pid)) < 2:
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        deadline = time.monotonic() + 10
        while workers_of(p.pid):
            assert time.monotonic() < deadline, f"workers left behind: {workers_of(p.pid)}"
            time.sleep(0.1)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_no_worker_can_start_and_the_threads_decode(repo: Repository, src: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    m, _ = snapshot(repo, src)
    dest = tmp_path / "dest"
    dest.mkdir()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    TreeReader(repo, m).materialize(dest, processes=2)
    assert listing(dest) == listing(src)
