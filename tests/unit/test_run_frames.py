"""Run frames: consecutive new blocks of one file stored as one frame (``swarm.repo.packs``).

Runs are formed from new blocks only, never across files, never longer than ``RUN_BLOCKS``; every
block keeps its id and its own location (its index ``sub`` in the run); a run frame is bound to its
own identity (backup, run number) and opened once per read; damage names the blocks; old
6-element locations still load; threads and worker processes restore the same tree; repack keeps a
run whole while any block of it is live; the repository gains ``run-frames`` before its first run
frame is uploaded, and an older client refuses it.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from swarm.crypto.keys import create_key_file
from swarm.errors import FormatUnsupported, IntegrityError
from swarm.model.manifest import Manifest
from swarm.repo import Repository
from swarm.repo import repository as repository_module
from swarm.repo.chunker import FixedChunker
from swarm.repo.format import CONFIG_KEY, RUN_FRAMES, SUPPORTED_FEATURES, data_key
from swarm.repo.packs import BLOCK_SIZE, RUN_BLOCKS, Location, PackUpload
from swarm.repo.tree import FILE, ChunkRef, Entry, Meta, TreeReader, TreeRoot, TreeWriter
from swarm.storage.memory import MemoryStore

KIND = "pg-physical"
M = Meta(0o600, 0)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(MemoryStore(), create_key_file(tmp_path / "k"))


_ROWS = [random.Random(i).randbytes(64) for i in range(1500)]


def page(seed: int) -> bytes:
    """A distinct 32 KiB block of rows drawn from one pool: poor alone, compressible with its neighbours."""
    rnd = random.Random(seed)
    body = hashlib.sha256(str(seed).encode()).digest() + b"".join(rnd.choice(_ROWS) for _ in range(BLOCK_SIZE // 64))
    return body[:BLOCK_SIZE]


def backup(repo: Repository, files: dict[str, list[bytes]], parent: Manifest | None = None,
           uploads: list[PackUpload] | None = None) -> tuple[Manifest, TreeRoot]:
    known = TreeReader(repo, parent).referenced_blocks() if parent is not None else None
    bw = repo.begin_backup(KIND)
    if uploads is not None:
        put = bw.put_pack

        def watched(pack: PackUpload) -> object:
            uploads.append(pack)
            assert RUN_FRAMES in json.loads(repo._store.get(CONFIG_KEY))["features"], \
                "a pack was uploaded before the repository had the run-frames feature"
            return put(pack)
        bw.put_pack = watched  # type: ignore[method-assign]
    tw = TreeWriter(repo, bw, chunker=FixedChunker(BLOCK_SIZE), known=known, pack_target=256 << 10)
    tw.add_dir("", Meta(0o700, 0))
    for path, blocks in files.items():
        tw.add_file(path, M, iter(blocks))
    root = tw.finish()
    return bw.commit({"kind": KIND}), root


def files_of(repo: Repository, m: Manifest) -> dict[str, Entry]:
    return {e.path: e for e in TreeReader(repo, m).walk() if e.type == FILE}


def frames(entry: Entry) -> list[list[ChunkRef]]:
    """The entry's refs grouped by the frame they are stored in, in order of first use."""
    out: dict[tuple[str, int, int], list[ChunkRef]] = {}
    for r in entry.chunks:
        out.setdefault((r.loc.backup_id, r.loc.pack, r.loc.offset), []).append(r)
    return list(out.values())


def test_runs_are_consecutive_new_blocks_of_one_file_at_most_run_blocks(repo: Repository) -> None:
    a = [page(i) for i in range(2 * RUN_BLOCKS + 6)]
    b = [page(1000), a[3], page(1001), page(1002), page(1001), page(1003)]  # a known block, a repeat
    m, root = backup(repo, {"a": a, "b": b})
    got = files_of(repo, m)
    assert [len(f) for f in frames(got["a"])] == [RUN_BLOCKS, RUN_BLOCKS, 6]
    for f in frames(got["a"]):
        assert [r.loc.sub for r in f] == list(range(len(f)))  # in file order, one location each
        assert len({r.loc.frame for r in f}) == 1 and len({r.id for r in f}) == len(f)
    # b: page(1000) alone (the next block is a's): a one-block frame; 1001, 1002 a run of 2;
    # the repeated 1001 is referenced, not stored twice; 1003 follows a repeat: alone again
    refs = got["b"].chunks
    assert refs[0].loc.sub is None
    assert refs[1].loc == got["a"].chunks[3].loc  # never a run across files
    assert (refs[2].loc.sub, refs[3].loc.sub) == (0, 1) and refs[2].loc.offset == refs[3].loc.offset
    assert refs[4].loc == refs[2].loc and refs[4].id == refs[2].id
    assert refs[5].loc.sub is None
    a_frames = {(r.loc.pack, r.loc.offset) for r in got["a"].chunks}
    assert not a_frames & {(r.loc.pack, r.loc.offset) for i, r in enumerate(refs) if i != 1}
    assert root.stats.new_blocks == len(a) + 4 and root.stats.reused_blocks == 2
    reader = TreeReader(repo, m)
    assert b"".join(reader.read_file(got["a"])) == b"".join(a)
    assert b"".join(reader.read_file(got["b"])) == b"".join(b)
    assert reader.check(read_data=True) == []
    # compressed together: the runs take fewer bytes than the blocks would alone
    assert root.stats.stored_bytes < 0.7 * sum(len(_alone(repo, p)) for p in a + b[:1] + b[2:4] + b[5:])


def test_a_block_repeated_in_a_later_batch_splits_that_run_and_is_stored_once(repo: Repository) -> None:
    """Both batches of the file are sealed in the pool before the first is stored: the second's run
    holds a repeat of a block of the first; it is referenced, and the rest of that run sealed again."""
    from swarm.repo.tree import BATCH

    blocks = [page(i) for i in range(2 * BATCH)]
    blocks[BATCH + 10] = blocks[5]
    m, root = backup(repo, {"f": blocks})
    f = files_of(repo, m)["f"]
    assert root.stats.new_blocks == 2 * BATCH - 1 and root.stats.reused_blocks == 1
    assert f.chunks[BATCH + 10].loc == f.chunks[5].loc
    stored = {(r.loc.pack, r.loc.offset, r.loc.sub): r.id for r in f.chunks}  # each block stored once
    assert len(stored) == 2 * BATCH - 1 and len(set(stored.values())) == 2 * BATCH - 1
    # after the repeat: the rest of the run is one frame, never a frame holding the repeated block again
    assert f.chunks[BATCH + 11].loc.sub == 0 and f.chunks[2 * BATCH - 1].loc.same_frame(f.chunks[BATCH + 11].loc)
    assert f.chunks[BATCH + 9].loc.same_frame(f.chunks[BATCH].loc)
    assert b"".join(TreeReader(repo, m).read_file(f)) == b"".join(blocks)
    assert TreeReader(repo, m).check(read_data=True) == []


def _alone(repo: Repository, plain: bytes) -> bytes:
    from swarm.repo.packs import compress_block

    return compress_block(plain)


def test_a_block_of_a_run_is_found_by_the_next_backup_and_reads_back(repo: Repository, tmp_path: Path) -> None:
    a = [page(i) for i in range(40)]
    m1, _ = backup(repo, {"a": a})
    b = [page(500), a[17], a[18], page(501), a[5]]
    m2, root = backup(repo, {"b": b}, parent=m1)
    assert root.stats.reused_blocks == 3 and root.stats.new_blocks == 2
    refs = files_of(repo, m2)["b"].chunks
    assert refs[1].loc.backup_id == m1.id and refs[1].loc.sub == 17 and refs[2].loc.sub == 18
    reader = TreeReader(repo, m2)
    assert b"".join(reader.read_file(files_of(repo, m2)["b"])) == b"".join(b)
    assert repo.read_block(refs[4].loc, refs[4].id) == a[5]
    assert reader.check(read_data=True) == []
    for procs in (0, 2):
        dest = tmp_path / f"d{procs}"
        dest.mkdir()
        reader.materialize(dest, processes=procs)
        assert (dest / "b").read_bytes() == b"".join(b)


def test_threads_and_worker_processes_restore_the_same_tree(repo: Repository, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm.repo import rebuild

    monkeypatch.setattr(rebuild, "PIECE_BYTES", 5 * BLOCK_SIZE)  # pieces end inside runs
    zero = bytes(BLOCK_SIZE)
    files = {"big": [page(i) for i in range(3 * RUN_BLOCKS)] + [zero] * 5 + [page(9999)],
             "d/small": [page(7000), page(7001)[:100]], "zeros": [zero, zero, page(7002), zero]}
    m, _ = backup(repo, files)
    assert [len(f) for f in frames(files_of(repo, m)["big"])][:3] == [RUN_BLOCKS] * 3  # runs, 5 pieces each
    t, p = tmp_path / "t", tmp_path / "p"
    t.mkdir()
    p.mkdir()
    TreeReader(repo, m).materialize(t, jobs=2)
    TreeReader(repo, m).materialize(p, jobs=2, processes=2)
    for path, blocks in files.items():
        assert (t / path).read_bytes() == (p / path).read_bytes() == b"".join(blocks), path


def _run_of(repo: Repository, m: Manifest, path: str) -> list[ChunkRef]:
    return next(f for f in frames(files_of(repo, m)[path]) if len(f) > 1)


def test_a_damaged_byte_in_a_run_frame_names_its_blocks(repo: Repository, tmp_path: Path) -> None:
    m, _ = backup(repo, {"a": [page(i) for i in range(10)], "b": [page(i) for i in range(100, 104)]})
    run = _run_of(repo, m, "a")
    key = data_key(m.id, run[0].loc.pack_name())
    raw = bytearray(repo._store.get(key))
    raw[run[0].loc.offset + 40] ^= 0x01
    repo._store.put(key, bytes(raw))
    reader = TreeReader(repo, m)
    problems = reader.check(read_data=True)
    assert [p.where for p in problems] == ["a"], problems
    assert "fails authentication" in problems[0].message
    for r in run:  # every block of the damaged frame is named
        assert r.id[:16] in problems[0].message
    bad = reader.check_packs(m.id, [o for o in m.objects if o.name == run[0].loc.pack_name()])
    found = bad[run[0].loc.pack_name()]
    assert "SHA-256" in found[0] and len(found) == 2 and "fails authentication" in found[1]
    assert all(r.id[:16] in found[1] for r in run)
    for procs in (0, 2):
        dest = tmp_path / f"d{procs}"
        dest.mkdir()
        with pytest.raises(IntegrityError, match=rf"a: .*block {run[0].id[:16]}.*fails authentication"):
            reader.materialize(dest, processes=procs)


def test_a_location_swapped_for_another_frames_fails(repo: Repository) -> None:
    m, _ = backup(repo, {"a": [page(i) for i in range(6)], "b": [page(i) for i in range(100, 106)]})
    ra, rb = _run_of(repo, m, "a"), _run_of(repo, m, "b")
    assert ra[0].loc.frame != rb[0].loc.frame
    # another run frame's bytes served where this one's location points: the identity in the AD differs
    frame_b = repo.read_span(rb[0].loc, rb[0].loc.length)
    with pytest.raises(IntegrityError, match=rf"block {ra[2].id[:16]} .*fails authentication"):
        repo.open_block(frame_b, replace(ra[2].loc, length=len(frame_b)), ra[2].id)
    # the right bytes under another run's number: the same
    with pytest.raises(IntegrityError, match="fails authentication"):
        repo.read_block(replace(ra[2].loc, frame=rb[0].loc.frame), ra[2].id)
    # another frame's whole location for this block: it opens, and is not this block
    with pytest.raises(IntegrityError, match=rf"block {ra[2].id[:16]} content does not match its id"):
        repo.read_block(rb[2].loc, ra[2].id)
    # another index in the same run: not this block either; an index past the run's end
    with pytest.raises(IntegrityError, match="does not match its id"):
        repo.read_block(replace(ra[2].loc, sub=3), ra[2].id)
    with pytest.raises(IntegrityError, match="is not in its run frame"):
        repo.read_block(replace(ra[2].loc, sub=RUN_BLOCKS - 1), ra[2].id)
    assert repo.read_block(ra[2].loc, ra[2].id) == page(2)


def test_old_six_element_locations_load_and_new_ones_round_trip() -> None:
    old = ["20260101T000000Z-pg-physical-abcdef", 3, 7, 1234, 5678, "dek-1"]
    loc = Location.from_list(old)
    assert loc.sub is None and loc.to_list() == old
    bid = "ab" * 32
    assert ChunkRef.from_list([bid, 100, *old]) == ChunkRef(bid, 100, loc)
    new = [*old, 5]
    assert Location.from_list(new).sub == 5 and Location.from_list(new).to_list() == new
    assert ChunkRef.from_list([bid, 100, *new]).to_list() == [bid, 100, *new]
    for bad in (-1, RUN_BLOCKS, True, "1"):
        with pytest.raises(ValueError):
            ChunkRef.from_list([bid, 100, *old, bad])
    with pytest.raises(ValueError):
        ChunkRef.from_list([bid, 100, *new, 0])


def test_repack_keeps_a_run_whole_while_one_block_of_it_is_live(repo: Repository, tmp_path: Path) -> None:
    a = [page(i) for i in range(20)]
    m1, _ = backup(repo, {"a": a, "dead": [page(i) for i in range(300, 310)]})
    m2, _ = backup(repo, {"b": [page(900), a[11]]}, parent=m1)
    live_ref = files_of(repo, m2)["b"].chunks[1]
    assert live_ref.loc.backup_id == m1.id and live_ref.loc.sub == 11
    # what prune hands repack: the frames of m1's pack that m2 reads, by offset (a run once)
    live: dict[int, tuple[str, Location]] = {}
    for e in files_of(repo, m2).values():
        for r in e.chunks:
            if r.loc.backup_id == m1.id and r.loc.pack == live_ref.loc.pack:
                live[r.loc.offset] = (r.id, r.loc)
    written, freed = repo.repack(m1.id, live_ref.loc.pack, live)
    assert freed > 0 and written >= live_ref.loc.length
    repo.delete_backup(m1.id, reason="test")
    reader = TreeReader(repo, m2)
    assert reader.check(read_data=True) == []
    dest = tmp_path / "d"
    dest.mkdir()
    reader.materialize(dest, processes=2)
    assert (dest / "b").read_bytes() == page(900) + a[11]
    assert repo.read_block(live_ref.loc, live_ref.id) == a[11]


def test_the_feature_is_added_before_the_first_run_frame_and_an_old_client_refuses(
        repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    def features() -> list[str]:
        return list(json.loads(repo._store.get(CONFIG_KEY))["features"])

    assert RUN_FRAMES not in features()  # not at creation
    backup(repo, {"one": [page(1)], "two": [page(2)]})  # one block per file: no run, no feature
    assert RUN_FRAMES not in features()
    old_client = SUPPORTED_FEATURES - {RUN_FRAMES}
    with monkeypatch.context() as mp:
        mp.setattr(repository_module, "SUPPORTED_FEATURES", old_client)
        Repository.open(repo._store, repo.kek)  # an older swarm still opens it: no run frame yet
    uploads: list[PackUpload] = []
    backup(repo, {"a": [page(i) for i in range(10, 20)]}, uploads=uploads)  # checks the order per upload
    assert uploads and features().count(RUN_FRAMES) == 1
    backup(repo, {"b": [page(i) for i in range(30, 40)]})
    assert features().count(RUN_FRAMES) == 1
    with monkeypatch.context() as mp:
        mp.setattr(repository_module, "SUPPORTED_FEATURES", old_client)
        with pytest.raises(FormatUnsupported, match=RUN_FRAMES):
            Repository.open(repo._store, repo.kek)


def test_a_copy_gets_the_feature_before_its_first_pack_that_may_hold_run_frames(
        repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm.repo.copy import execute_copy, plan_copy

    class Watched(MemoryStore):
        watch = False

        def put(self, key: str, data: bytes, **kw: object) -> object:  # type: ignore[override]
            if self.watch and key.endswith(".pack"):
                assert RUN_FRAMES in json.loads(self.get(CONFIG_KEY))["features"], f"{key} copied first"
            return super().put(key, data, **kw)  # type: ignore[arg-type]

    backup(repo, {"one": [page(1)]})
    far, own = Watched(), create_key_file(tmp_path / "far.key")
    execute_copy(repo, plan_copy(repo, "far", far, own), far, own)  # the copy exists, without the feature
    assert RUN_FRAMES not in json.loads(far.get(CONFIG_KEY))["features"]
    m, _ = backup(repo, {"a": [page(i) for i in range(10)]})
    far.watch = True
    res = execute_copy(repo, plan_copy(repo, "far", far, own), far, own)
    assert res.backups == [m.id] and res.problems == {}
    assert json.loads(far.get(CONFIG_KEY))["features"].count(RUN_FRAMES) == 1
    copy = Repository.open(far, own)
    a = files_of(copy, m)["a"]
    assert b"".join(TreeReader(copy, m).read_file(a)) == b"".join(page(i) for i in range(10))
    with monkeypatch.context() as mp:
        mp.setattr(repository_module, "SUPPORTED_FEATURES", SUPPORTED_FEATURES - {RUN_FRAMES})
        with pytest.raises(FormatUnsupported, match=RUN_FRAMES):
            Repository.open(far, own)
