"""The deduplicating tree store on the in-memory store: dedup, materialise round trip, damage found."""
from __future__ import annotations

import json
import os
import random
import stat
from pathlib import Path

import pytest

from swarm.crypto.keys import create_key_file
from swarm.errors import IntegrityError
from swarm.model.manifest import Manifest
from swarm.repo import Repository
from swarm.repo.chunker import FastCDC, FixedChunker
from swarm.repo.format import data_key
from swarm.repo.tree import (
    DIR,
    FILE,
    SYMLINK,
    ChunkRef,
    Meta,
    TreeReader,
    TreeRoot,
    TreeWriter,
    node_chunker,
)
from swarm.storage.memory import MemoryStore

KIND = "pg-physical"  # any kind: the tree store does not care


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(MemoryStore(), create_key_file(tmp_path / "k"))


def meta_of(st: os.stat_result) -> Meta:
    return Meta(stat.S_IMODE(st.st_mode), st.st_mtime_ns)


def read_pieces(path: Path, size: int = 10000) -> list[bytes]:
    data = path.read_bytes()
    return [data[i:i + size] for i in range(0, len(data), size)]


def snapshot(repo: Repository, src: Path, parent: Manifest | None = None, *, chunker: object = None,
             reuse: bool = False) -> tuple[Manifest, TreeRoot]:
    """A snapshot of directory ``src`` as a state snapshot would take it (lstat, links kept as links).

    With ``reuse``, files whose size and mtime match the parent's entry are not read.
    """
    chunker = chunker or FastCDC.for_key(repo.dedup_key(), min_size=1024, avg_size=4096, max_size=32768)
    known = None
    old: dict[str, object] = {}
    if parent is not None:
        reader = TreeReader(repo, parent)
        known = reader.referenced_blocks()
        old = {e.path: e for e in reader.walk() if e.type == FILE}
    bw = repo.begin_backup(KIND)
    tw = TreeWriter(repo, bw, chunker=chunker, known=known, pack_target=64 << 10)  # type: ignore[arg-type]
    tw.add_dir("", meta_of(src.lstat()))
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        rel = "" if rel == "." else rel
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            st = p.lstat()
            path = f"{rel}/{name}" if rel else name
            if stat.S_ISLNK(st.st_mode):
                tw.add_symlink(path, os.readlink(p), meta_of(st))
            elif stat.S_ISDIR(st.st_mode):
                tw.add_dir(path, meta_of(st))
            else:
                prev = old.get(path)
                if reuse and prev is not None and prev.size == st.st_size and prev.meta == meta_of(st):  # type: ignore[attr-defined]
                    tw.reuse_file(path, prev)  # type: ignore[arg-type]
                else:
                    tw.add_file(path, meta_of(st), chunker.chunks(read_pieces(p)))  # type: ignore[attr-defined]
    root = tw.finish()
    return bw.commit({"tree": "test"}), root


def make_tree(src: Path) -> None:
    rnd = random.Random(5)
    (src / "a" / "deep" / "er").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "empty").mkdir()
    (src / "a" / "small.json").write_bytes(b'{"jobs": []}\n')
    (src / "a" / "deep" / "er" / "big.bin").write_bytes(rnd.randbytes(150_000))
    (src / "b" / "zeros").write_bytes(b"\0" * 70_000)
    (src / "b" / "zeros-again").write_bytes(b"\0" * 70_000)
    (src / "b" / "text.log").write_bytes(b"".join(b"line %d of the log\n" % i for i in range(5000)))
    (src / "empty-file").write_bytes(b"")
    (src / "link").symlink_to("a/small.json")
    (src / "dangling").symlink_to("../nowhere/at/all")
    os.chmod(src / "a" / "small.json", 0o640)
    os.chmod(src / "b" / "text.log", 0o755)
    os.chmod(src / "empty", 0o750)
    for i, p in enumerate(sorted(src.rglob("*"), reverse=True)):
        os.utime(p, ns=(1_600_000_000_123_456_789 + i * 1000, 1_600_000_000_123_456_789 + i * 1000),
                 follow_symlinks=False)


def listing(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("l", os.readlink(p), st.st_mtime_ns)
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("d", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
        else:
            out[rel] = ("f", stat.S_IMODE(st.st_mode), st.st_mtime_ns, p.read_bytes())
    return out


@pytest.fixture
def src(tmp_path: Path) -> Path:
    s = tmp_path / "src"
    s.mkdir()
    make_tree(s)
    return s


def test_materialize_round_trip(repo: Repository, src: Path, tmp_path: Path) -> None:
    m, root = snapshot(repo, src)
    assert root.stats.files == 6 and root.stats.symlinks == 2 and root.stats.dirs == 5
    reader = TreeReader(repo, repo.load_manifest(m.id))
    types = {e.path: e.type for e in reader.walk()}
    assert types["link"] == SYMLINK and types["empty"] == DIR and types["b/zeros"] == FILE and types[""] == DIR
    paths = [e.path for e in reader.walk()]
    assert paths.index("a") < paths.index("a/deep") < paths.index("a/deep/er/big.bin")
    dest = tmp_path / "dest"
    dest.mkdir()
    out = reader.materialize(dest, jobs=3)
    assert listing(dest) == listing(src)
    assert out.files == 6 and out.symlinks == 2 and out.dirs == 5
    assert (dest / "link").is_symlink() and (dest / "dangling").is_symlink()
    assert out.bytes == sum(p.stat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink())
    assert reader.check(read_data=True) == []


def test_materialize_only_selects_entries(repo: Repository, src: Path, tmp_path: Path) -> None:
    m, _ = snapshot(repo, src)
    dest = tmp_path / "dest"
    dest.mkdir()
    TreeReader(repo, m).materialize(dest, only=lambda p: p == "a/deep/er/big.bin")
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) == [
        "a", "a/deep", "a/deep/er", "a/deep/er/big.bin"]
    assert (dest / "a/deep/er/big.bin").read_bytes() == (src / "a/deep/er/big.bin").read_bytes()


def test_second_snapshot_of_the_same_tree_adds_nothing(repo: Repository, src: Path) -> None:
    m1, r1 = snapshot(repo, src)
    assert r1.stats.new_blocks > 0 and r1.stats.packs > 0
    m2, r2 = snapshot(repo, src, m1)
    assert r2.stats.new_blocks == 0 and r2.stats.new_nodes == 0 and r2.stats.packs == 0
    assert r2.stats.stored_bytes == 0
    assert r2.node_ids == r1.node_ids
    assert [o.name for o in m2.objects] == ["tree.json"]  # only the index: no pack
    assert TreeReader(repo, m2).referenced_packs() == TreeReader(repo, m1).referenced_packs()
    _m3, r3 = snapshot(repo, src, m2, reuse=True)  # unchanged files not even read
    assert r3.stats.new_blocks == 0 and r3.stats.new_nodes == 0 and r3.node_ids == r1.node_ids
    assert r3.stats.reused_bytes == r1.stats.size


def test_unchanged_directory_node_is_reused(repo: Repository, src: Path, tmp_path: Path) -> None:
    m1, r1 = snapshot(repo, src)
    assert r1.stats.new_nodes == 6  # the root, a, a/deep, a/deep/er, b, empty
    log = src / "b" / "text.log"
    st = log.stat()
    data = bytearray(log.read_bytes())
    data[40_000:40_004] = b"EDIT"
    log.write_bytes(bytes(data))
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    os.utime(src / "b", ns=(src.joinpath("b").stat().st_atime_ns, 1_600_000_000_000_000_000))
    m2, r2 = snapshot(repo, src, m1, reuse=True)
    # b and the root are new nodes; a, a/deep, a/deep/er and empty are reused as they were
    assert r2.stats.new_nodes == 2 and r2.stats.reused_nodes == 4
    assert 1 <= r2.stats.new_blocks <= 2  # the edited chunk (and at most its neighbour)
    nodes1 = {e.path: e.chunks for e in TreeReader(repo, m1).walk() if e.type == DIR}
    nodes2 = {e.path: e.chunks for e in TreeReader(repo, m2).walk() if e.type == DIR}
    assert nodes2["a"] == nodes1["a"] and nodes2["empty"] == nodes1["empty"] and nodes2["b"] != nodes1["b"]
    # the new snapshot needs packs of both backups, and says so in its index
    packs = TreeReader(repo, m2).referenced_packs()
    assert {p.backup_id for p in packs} == {m1.id, m2.id}
    assert {(loc.backup_id, loc.pack_name()) for loc in TreeReader(repo, m2).referenced_blocks().values()} == {
        (p.backup_id, p.name) for p in packs}
    dest = tmp_path / "dest"
    dest.mkdir()
    TreeReader(repo, m2).materialize(dest)
    assert listing(dest) == listing(src)


def test_fixed_blocks_one_page_changed_stores_one_block(repo: Repository, tmp_path: Path) -> None:
    base = tmp_path / "pg"
    (base / "base" / "5").mkdir(parents=True)
    rel = base / "base" / "5" / "16384"
    rel.write_bytes(random.Random(1).randbytes(1 << 20))
    (base / "PG_VERSION").write_bytes(b"15\n")
    fixed = FixedChunker(32768)
    m1, r1 = snapshot(repo, base, chunker=fixed)
    assert r1.stats.new_blocks == 33 and r1.root.__len__() == 1
    with open(rel, "r+b") as fh:
        fh.seek(8192 * 50)
        fh.write(b"\1" * 8192)
    m2, r2 = snapshot(repo, base, m1, chunker=fixed)
    assert r2.stats.new_blocks == 1 and r2.stats.reused_blocks == 32
    assert json.loads(b"".join(repo.read_object(m2, "tree.json")))["chunker"] == {"kind": "fixed", "size": 32768}


def test_big_directory_node_is_cut_and_mostly_reused(repo: Repository, tmp_path: Path) -> None:
    src = tmp_path / "many"
    src.mkdir()
    # 12,000 entries: a node of well over 2 x the chunker's 256 KiB maximum, so it is cut into at
    # least 3 pieces whatever the (random, per repository) gear table makes of it
    for i in range(0, 24000, 2):
        (src / f"run-{i:06d}-with-a-rather-long-name.json").write_bytes(b"")
    m1, r1 = snapshot(repo, src)
    assert len(r1.root) >= 3  # the root node is cut into several pieces
    (src / "run-003001-with-a-rather-long-name.json").write_bytes(b"")
    m2, r2 = snapshot(repo, src, m1)
    assert r2.stats.new_nodes <= 3 and r2.stats.reused_nodes >= len(r1.root) - 3
    assert sum(1 for e in TreeReader(repo, m2).walk() if e.type == FILE) == 12001
    assert TreeReader(repo, m2).check() == []


# ---- damage ------------------------------------------------------------------------------------
def _packs(repo: Repository, m: Manifest) -> list[str]:
    return [data_key(m.id, o.name) for o in m.objects if o.name.startswith("packs/")]


def test_flipped_byte_in_a_pack_is_found(repo: Repository, src: Path, tmp_path: Path) -> None:
    m, _ = snapshot(repo, src)
    reader = TreeReader(repo, m)
    big = next(e for e in reader.walk() if e.path == "a/deep/er/big.bin")
    loc = big.chunks[1].loc
    key = data_key(loc.backup_id, loc.pack_name())
    raw = bytearray(repo._store.get(key))
    raw[loc.offset + 30] ^= 0x01
    repo._store.put(key, bytes(raw))
    assert reader.check(read_data=False) == []  # data is not read without read_data
    problems = reader.check(read_data=True)
    assert len(problems) == 1 and problems[0].where == "a/deep/er/big.bin", problems
    assert "authentication" in problems[0].message
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match=r"big\.bin"):
        reader.materialize(dest)


def test_deleted_pack_is_found(repo: Repository, src: Path) -> None:
    m, _ = snapshot(repo, src)
    victim = _packs(repo, m)[0]
    repo._store.delete(victim)
    problems = TreeReader(repo, m).check(read_data=False)
    assert any(p.where == victim and "missing" in p.message for p in problems), problems


def test_truncated_pack_is_found_without_reading_data(repo: Repository, src: Path) -> None:
    m, _ = snapshot(repo, src)
    victim = _packs(repo, m)[0]
    repo._store.put(victim, repo._store.get(victim)[:-10])
    problems = TreeReader(repo, m).check(read_data=False)
    assert [p.where for p in problems] == [victim]


def test_damaged_or_deleted_node_is_found(repo: Repository, src: Path) -> None:
    m, _ = snapshot(repo, src)
    reader = TreeReader(repo, m)
    node = next(e for e in reader.walk() if e.path == "a/deep").chunks[0].loc
    key = data_key(node.backup_id, node.pack_name())
    raw = bytearray(repo._store.get(key))
    raw[node.offset:node.offset + node.length] = b"\0" * node.length  # the node's frame is gone
    repo._store.put(key, bytes(raw))
    problems = reader.check()
    assert [p.where for p in problems] == ["a/deep"], problems
    with pytest.raises(IntegrityError, match="a/deep"):
        list(reader.walk())
    # nodes live in packs of their own: deleting that pack loses the tree, not the data packs
    repo._store.delete(key)
    problems = reader.check()
    assert any(p.where == "/" for p in problems) and any(p.where == key for p in problems), problems


def test_index_not_listing_a_pack_is_found(repo: Repository, src: Path) -> None:
    _m, root = snapshot(repo, src)
    partial = TreeRoot(root.root, root.root_meta, root.chunker, root.packs[1:], root.stats)
    problems = TreeReader(repo, partial).check()
    assert any("not listed in the index" in p.message for p in problems)


# ---- hostile trees never write outside the destination ----------------------------------------
def _hostile_root(repo: Repository, entries: list[dict[str, object]]) -> TreeRoot:
    """A tree whose root node holds ``entries`` as given (bypassing the writer's checks)."""
    bw = repo.begin_backup(KIND)
    tw = TreeWriter(repo, bw, chunker=FixedChunker(4096))
    raw = json.dumps({"v": 1, "entries": entries}, sort_keys=True, separators=(",", ":")).encode()
    refs = tuple(tw._put(piece, node=True) for piece in [raw])
    tw._packs.close()
    bw.commit({})
    return TreeRoot(refs, Meta(0o755, 0), {}, (), tw.stats)


@pytest.mark.parametrize("name", ["..", "../escape", "a/b", ".", ""])
def test_hostile_names_are_refused(repo: Repository, tmp_path: Path, name: str) -> None:
    root = _hostile_root(repo, [{"n": name, "t": "l", "m": 0o777, "mt": 0, "target": "/etc/passwd"}])
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(IntegrityError, match="damaged"):
        TreeReader(repo, root).materialize(dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "escape").exists()


def test_symlink_in_the_way_is_not_followed(repo: Repository, src: Path, tmp_path: Path) -> None:
    m, _ = snapshot(repo, src)
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "b").symlink_to(outside)
    with pytest.raises(IntegrityError):
        TreeReader(repo, m).materialize(dest)
    assert list(outside.iterdir()) == []


def test_writer_refuses_unsafe_paths(repo: Repository) -> None:
    tw = TreeWriter(repo, repo.begin_backup(KIND), chunker=FixedChunker(4096))
    for bad in ("../x", "a/../b", "/abs", "a//b", "a/."):
        with pytest.raises(ValueError):
            tw.add_file(bad, Meta(0o600, 0), [b"x"])
    tw.add_file("a/f", Meta(0o600, 0), [b"x"])
    with pytest.raises(ValueError):
        tw.add_file("a/f", Meta(0o600, 0), [b"y"])
    tw.abort()


def test_chunk_refs_round_trip_and_reject_bad_locations(repo: Repository, src: Path) -> None:
    m, _ = snapshot(repo, src)
    ref = next(e for e in TreeReader(repo, m).walk() if e.type == FILE and e.chunks).chunks[0]
    assert ChunkRef.from_list(ref.to_list()) == ref
    bad = ref.to_list()
    bad[2] = "../../etc"
    with pytest.raises(ValueError):
        ChunkRef.from_list(bad)
    assert node_chunker(repo.dedup_key()).max_size <= 1 << 20


def test_materialize_reads_adjacent_blocks_in_one_request(tmp_path: Path) -> None:
    class Counting(MemoryStore):
        ranges = 0

        def get_range(self, key: str, offset: int, length: int) -> bytes:
            Counting.ranges += 1
            return super().get_range(key, offset, length)

    repo = Repository.init(Counting(), create_key_file(tmp_path / "k"))
    src = tmp_path / "one"
    src.mkdir()
    (src / "f").write_bytes(random.Random(3).randbytes(40 * 32768))
    m, _ = snapshot(repo, src, chunker=FixedChunker(32768))
    dest = tmp_path / "dest"
    dest.mkdir()
    seen: list[int] = []
    Counting.ranges = 0
    TreeReader(repo, m).materialize(dest, progress=seen.append)
    # 40 blocks in packs of 64 KiB (two frames each) and one node: about 20 reads, not 41
    assert Counting.ranges <= 22 and seen == [40 * 32768]
    assert (dest / "f").read_bytes() == (src / "f").read_bytes()



def test_an_interrupted_materialize_stops_at_once(repo: Repository, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C / SIGTERM during a restore (the CLI turns SIGTERM into the same exception) ends the
    call within a block: a file being written stops at its next block instead of being finished (a
    `restore set` used to go on for minutes after SIGTERM), and files not started are not written."""
    import signal
    import threading
    import time

    src = tmp_path / "src"
    src.mkdir()
    (src / "big.bin").write_bytes(os.urandom(4 << 20))
    for i in range(20):
        (src / f"small{i:02}.json").write_bytes(os.urandom(2000))
    m, _ = snapshot(repo, src)
    reader = TreeReader(repo, repo.load_manifest(m.id))
    slow_read = reader._read_refs

    def slow(refs, where):  # type: ignore[no-untyped-def]
        for piece in slow_read(refs, where):  # every block takes a while: a big file on a slow store
            time.sleep(0.05)
            yield piece

    monkeypatch.setattr(reader, "_read_refs", slow)
    dest = tmp_path / "dest"
    dest.mkdir()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # whatever the test runner set
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            reader.materialize(dest, jobs=1)
    finally:
        took = time.monotonic() - t0
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    blocks = len(next(e for e in reader.walk() if e.path == "big.bin").chunks)
    assert blocks * 0.05 > 20  # the whole file would take this long
    assert took < 5, f"materialize returned {took:.1f}s after start, the interrupt came at 0.5s"
    assert (dest / "big.bin").stat().st_size < 4 << 20
    assert not any(dest.glob("small*")), "files not started were written after the interrupt"


def test_batched_add_stores_each_block_once_across_batches_and_threads(repo: Repository, tmp_path: Path) -> None:
    """``add_file`` hashes and compresses BATCH chunks at a time in a pool: a block repeated inside
    a batch, across batches, or by two threads adding the same content at once is stored once,
    and the file reads back whole."""
    import threading

    from swarm.repo import tree as tree_mod

    distinct = [os.urandom(4096) for _ in range(tree_mod.BATCH + 7)]
    blocks = distinct + distinct[:30] + [distinct[5]] * 3  # repeats within and across batches
    bw = repo.begin_backup(KIND)
    tw = TreeWriter(repo, bw, chunker=FixedChunker(4096), pack_target=64 << 10)
    tw.add_dir("", Meta(0o755, 0))
    errors: list[BaseException] = []

    def add(name: str) -> None:
        try:
            tw.add_file(name, Meta(0o644, 0), iter(blocks))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(f"f{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    root = tw.finish()
    assert root.stats.new_blocks == len(distinct)
    assert root.stats.reused_blocks == 3 * len(blocks) - len(distinct)
    reader = TreeReader(repo, root)
    files = {e.path: e for e in reader.walk() if e.type == FILE}
    for name in ("f0", "f1", "f2"):
        assert b"".join(reader.read_file(files[name])) == b"".join(blocks)
