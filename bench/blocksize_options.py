"""How to store a physical backup's 32 KiB blocks in fewer bytes: the options measured on real files.

Read-only: reads the files of a PostgreSQL data directory (a copy, or a running cluster's: the
figures are sizes, not a consistent backup), the way a base backup sees them (``pg_wal`` and the
files ``pg_basebackup`` leaves out are skipped), and compresses them in memory. Nothing is written.

    .venv/bin/python bench/blocksize_options.py /path/to/data [--options a,c,d,cd,e,levels,more,online,pipeline,final]
        [--sample-mb 16] [--repeat 3] [--after /path/to/data-after-a-change] [--json out.json]

For each option it prints the bytes stored (every frame's 32-byte overhead included: a 4-byte
length, a 12-byte nonce and a 16-byte AES-GCM tag), that ÷ whole-file zstd level 3 (what
pgBackRest stores with compress-type=zst, one frame per file, a relation file being at most one
1 GB segment), and the compress and decompress CPU seconds per GB of plaintext (one thread,
``time.process_time``; encryption and hashing are the same for every option and left out).

Options (blocks are cut at fixed 32 KiB offsets of each file; a block whose content was already
seen in this backup is stored once, as the backup does):

* a: today: every distinct block compressed alone, zstd level 3;
* b: every file whole, zstd level 3 (the reference: pgBackRest);
* c: a zstd dictionary (64 KiB, 112 KiB) trained on a sample of the blocks, every block
  compressed alone with it; the sample is drawn at random from all blocks ("random") or is the
  first blocks of the backup in stream order ("first", what a backup can train on before it
  writes), and the ratio is also given for the blocks outside the sample ("held out");
* d: runs of up to N consecutive new blocks of one file as one frame (N = 4, 8, 16, 32), dedup ids
  still per 32 KiB block; a read of one block must fetch the whole frame and decompress up to it;
* cd: c and d together (a 112 KiB dictionary, runs of up to N blocks);
* e: 128 KiB blocks compressed alone (the bound for "larger blocks for cold segments": every
  file counted as cold);
* more: larger dictionaries and samples; zstd levels 4 and 5;
* online: a first backup training its own dictionary from a reservoir sample as it goes, files in
  path order and shuffled (``pg_basebackup`` sends them in directory order);
* levels: zstd levels 1, 3, 6 (and a dictionary at each) for the options that came close;
* ``--after``: the next backup after a change (only its new blocks are stored), against
  pgBackRest's incremental (changed files whole): today's single blocks, the previous backup's
  dictionary, runs, both;
* pipeline: the whole per-block CPU of a backup (keyed hash, compress, seal, open again and
  compare) and of a restore (open, decompress, keyed hash again), one block per frame against
  runs of 8 and 32 blocks;
* final: the rows of the table in docs/design/physical-backups.md, CPU the median of ``--repeat`` runs;
* built: the tree writer as built (``swarm.repo.tree.TreeWriter``: run frames with their header,
  runs cut at slices of ``RUN_BLOCKS``, a lone new block in a frame of its own, directory nodes,
  hashing and sealing in its pool) storing the files into an in-memory repository, with runs of
  up to 32 and 64 blocks: the bytes it stores, and the CPU of the backup and of reading every file
  back (threads of this process; ``time.process_time``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zstandard

# bench/copy.py would shadow the standard library's copy module for the swarm imports below
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

BLOCK = 32 << 10
FRAME_OVERHEAD = 4 + 12 + 16  # length:u32 | nonce:12 | ciphertext | tag:16
# What pg_basebackup leaves out of a base backup (PostgreSQL 15, basebackup.c), besides pg_wal's contents.
SKIP_DIRS = {"pg_wal", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans",
             "pg_replslot"}
SKIP_FILES = {"postmaster.pid", "postmaster.opts", "pg_internal.init", "backup_label", "tablespace_map"}


def walk(datadir: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(datadir):
        rel = Path(root).relative_to(datadir)
        if rel == Path("."):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        else:
            dirs.sort()
        for name in sorted(files):
            if name in SKIP_FILES or name.startswith("pgsql_tmp"):
                continue
            p = Path(root) / name
            if p.is_file() and not p.is_symlink():
                yield p


def load(datadir: Path) -> list[tuple[str, bytes]]:
    out = []
    for p in walk(datadir):
        try:
            out.append((str(p.relative_to(datadir)), p.read_bytes()))
        except FileNotFoundError:  # a running cluster removed it
            continue
    return out


def blocks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


class Result:
    def __init__(self, name: str) -> None:
        self.name = name
        self.stored = 0
        self.frames = 0
        self.plain = 0
        self.c_cpu = 0.0
        self.d_cpu = 0.0
        self.extra: dict[str, Any] = {}

    def row(self, ref: int) -> dict[str, Any]:
        gb = self.plain / 1e9
        return {"option": self.name, "stored": self.stored, "frames": self.frames, "ratio": self.stored / ref,
                "compress_cpu_s_per_gb": self.c_cpu / gb, "decompress_cpu_s_per_gb": self.d_cpu / gb, **self.extra}


def whole_files(files: list[tuple[str, bytes]], level: int) -> Result:
    r = Result(f"b: whole file, zstd {level}")
    cctx = zstandard.ZstdCompressor(level=level)
    dctx = zstandard.ZstdDecompressor()
    outs = []
    t = time.process_time()
    for _, data in files:
        outs.append(cctx.compress(data))
    r.c_cpu = time.process_time() - t
    t = time.process_time()
    for o in outs:
        dctx.decompress(o, max_output_size=1 << 31)
    r.d_cpu = time.process_time() - t
    r.stored = sum(len(o) for o in outs)  # pgBackRest's per-file overhead (a few bytes) left out
    r.frames = len(outs)
    r.plain = sum(len(d) for _, d in files)
    return r


def distinct_blocks(files: list[tuple[str, bytes]], size: int) -> list[bytes]:
    seen: set[bytes] = set()
    out = []
    for _, data in files:
        for b in blocks_of(data, size):
            if b not in seen:  # the backup keys blocks by a keyed hash; the content itself is the same test
                seen.add(b)
                out.append(b)
    return out


def blocks_alone(name: str, blocks: list[bytes], level: int,
                 dictionary: zstandard.ZstdCompressionDict | None = None) -> tuple[Result, list[int]]:
    r = Result(name)
    if dictionary is not None:
        cctx = zstandard.ZstdCompressor(level=level, dict_data=dictionary)
        dctx = zstandard.ZstdDecompressor(dict_data=dictionary)
    else:
        cctx = zstandard.ZstdCompressor(level=level)
        dctx = zstandard.ZstdDecompressor()
    outs = []
    t = time.process_time()
    for b in blocks:
        outs.append(cctx.compress(b))
    r.c_cpu = time.process_time() - t
    t = time.process_time()
    for o in outs:
        dctx.decompress(o, max_output_size=1 << 20)
    r.d_cpu = time.process_time() - t
    sizes = [len(o) for o in outs]
    r.stored = sum(sizes) + FRAME_OVERHEAD * len(outs)
    r.frames = len(outs)
    r.plain = sum(len(b) for b in blocks)
    return r, sizes


def train(blocks: list[bytes], dict_size: int, level: int, how: str, sample_mb: int,
          seed: int = 1) -> tuple[zstandard.ZstdCompressionDict, set[int], float]:
    n = min(len(blocks), (sample_mb << 20) // BLOCK)
    if how == "random":
        idx = set(random.Random(seed).sample(range(len(blocks)), n))
    else:
        idx = set(range(n))
    samples = [blocks[i] for i in sorted(idx)]
    t = time.process_time()
    d = zstandard.train_dictionary(dict_size, samples, level=level, threads=1, steps=8)
    cpu = time.process_time() - t
    return d, idx, cpu


def runs(name: str, files: list[tuple[str, bytes]], level: int, n: int,
         dictionary: zstandard.ZstdCompressionDict | None = None) -> Result:
    """Consecutive new blocks of one file, up to ``n``, compressed as one frame."""
    r = Result(name)
    kw: dict[str, Any] = {"dict_data": dictionary} if dictionary is not None else {}
    cctx = zstandard.ZstdCompressor(level=level, **kw)
    dctx = zstandard.ZstdDecompressor(**kw)
    seen: set[bytes] = set()
    groups: list[list[bytes]] = []
    for _, data in files:
        cur: list[bytes] = []
        for b in blocks_of(data, BLOCK):
            if b in seen:
                if cur:
                    groups.append(cur)
                    cur = []
                continue
            seen.add(b)
            cur.append(b)
            if len(cur) == n:
                groups.append(cur)
                cur = []
        if cur:
            groups.append(cur)
    joined = [b"".join(g) for g in groups]
    outs = []
    t = time.process_time()
    for j in joined:
        outs.append(cctx.compress(j))
    r.c_cpu = time.process_time() - t
    t = time.process_time()
    for o in outs:
        dctx.decompress(o, max_output_size=n * BLOCK)
    r.d_cpu = time.process_time() - t
    r.stored = sum(len(o) for o in outs) + FRAME_OVERHEAD * len(outs)
    r.frames = len(outs)
    r.plain = sum(len(j) for j in joined)
    nblocks = sum(len(g) for g in groups)
    # A read of one block (a later backup reusing it, a restore of one file): the whole frame is
    # fetched, and the frame decompressed up to and including the block.
    fetched = sum((len(o) + FRAME_OVERHEAD) * len(g) for o, g in zip(outs, groups, strict=True))
    decoded = sum(sum(range(1, len(g) + 1)) * BLOCK for g in groups)
    r.extra = {"blocks_per_frame": nblocks / len(groups), "one_block_read_fetches_bytes": fetched / nblocks,
               "one_block_read_decompresses_bytes": decoded / nblocks}
    return r


def online(files: list[tuple[str, bytes]], thresholds_mb: list[int], sample_blocks: int = 512,
           seed: int = 0) -> tuple[int, float]:
    """A first backup that trains its own dictionary as it goes: blocks in stream order, a reservoir
    sample of ``sample_blocks`` of the new blocks seen so far, a 112 KiB dictionary trained from it
    (fast fixed parameters) each time ``thresholds_mb`` MB of new blocks have been seen, every block
    compressed alone with the newest dictionary (none before the first threshold).
    Returns (bytes stored, dictionaries included; training CPU seconds)."""
    rng = random.Random(seed)
    seen: set[bytes] = set()
    sample: list[bytes] = []
    n = stored = 0
    cctx = zstandard.ZstdCompressor(level=3)
    todo = [t << 20 for t in thresholds_mb]
    tcpu = 0.0
    for _, data in files:
        for b in blocks_of(data, BLOCK):
            if b in seen:
                continue
            seen.add(b)
            n += 1
            if len(sample) < sample_blocks:
                sample.append(b)
            elif (j := rng.randrange(n)) < sample_blocks:
                sample[j] = b
            if todo and n * BLOCK >= todo[0]:
                todo.pop(0)
                t = time.process_time()
                d = zstandard.train_dictionary(112 << 10, sample, level=3, threads=1, k=1024, d=8, f=20, accel=1)
                tcpu += time.process_time() - t
                stored += len(d.as_bytes()) + FRAME_OVERHEAD
                cctx = zstandard.ZstdCompressor(level=3, dict_data=d)
            stored += len(cctx.compress(b)) + FRAME_OVERHEAD
    return stored, tcpu


def second_backup(before: list[tuple[str, bytes]], after: list[tuple[str, bytes]], ref_dict_mb: int,
                  emit: Any) -> None:
    """The next backup of the same cluster after a change: only its blocks not in ``before`` are
    stored. Compared with pgBackRest's incremental (every changed file whole, zstd 3)."""
    old = {b for _, data in before for b in blocks_of(data, BLOCK)}
    old_files = dict(before)
    changed = [(n, d) for n, d in after if old_files.get(n) != d]
    if not changed:
        print("second backup: no file changed, nothing to store", flush=True)
        return
    incr = whole_files(changed, 3)
    ref = incr.stored
    new_runs: list[list[bytes]] = []
    seen = set(old)
    for _, data in after:
        cur: list[bytes] = []
        for b in blocks_of(data, BLOCK):
            if b in seen:
                if cur:
                    new_runs.append(cur)
                    cur = []
                continue
            seen.add(b)
            cur.append(b)
        if cur:
            new_runs.append(cur)
    new = [b for r in new_runs for b in r]
    lengths = sorted(len(r) for r in new_runs)
    print(f"second backup: {len(changed)} files changed ({sum(len(d) for _, d in changed) / 1e6:.1f} MB), "
          f"{len(new)} new blocks ({len(new) * BLOCK / 1e6:.1f} MB) in {len(new_runs)} runs; "
          f"{sum(1 for x in lengths if x == 1)} runs of one block, longest {lengths[-1] if lengths else 0}", flush=True)
    incr.name = "second backup, b: changed files whole, zstd 3 (pgBackRest incr)"
    emit(incr.row(ref))
    old_blocks = distinct_blocks(before, BLOCK)
    d, _, _ = train(old_blocks, 112 << 10, 3, "random", ref_dict_mb)  # trained on the previous backup
    emit(blocks_alone("second backup, a: new blocks alone, zstd 3", new, 3)[0].row(ref))
    emit(blocks_alone("second backup, c: new blocks alone, previous backup's dictionary", new, 3, d)[0].row(ref))
    only_new = [(f"run{i}", b"".join(r)) for i, r in enumerate(new_runs)]  # each run is its own "file"
    emit(runs("second backup, d: runs of up to 32 new blocks", only_new, 3, 32).row(ref))
    emit(runs("second backup, c+d: dictionary + runs of up to 32", only_new, 3, 32, d).row(ref))


def pipeline(files: list[tuple[str, bytes]], n: int, level: int = 3,
             dictionary: zstandard.ZstdCompressionDict | None = None) -> dict[str, Any]:
    """The whole per-block work of a backup and of a restore, as ``PackWriter.add`` and
    ``open_frame`` do it, with runs of up to ``n`` new blocks per frame (1 = today): backup =
    keyed hash of every block + compress + seal + open again and compare (verify after
    encrypt); restore = open + decompress + keyed hash of every block again. CPU s/GB."""
    from swarm.crypto.aead import open_sealed, seal
    from swarm.repo.packs import block_id

    key, dek, ad = os.urandom(32), os.urandom(32), b"swarm-blk/1\0repo\0id"
    kw: dict[str, Any] = {"dict_data": dictionary} if dictionary is not None else {}
    cctx = zstandard.ZstdCompressor(level=level, **kw)
    dctx = zstandard.ZstdDecompressor(**kw)
    seen: set[str] = set()
    frames: list[tuple[bytes, list[str]]] = []
    plain = stored = 0
    t = time.process_time()
    for _, data in files:
        cur: list[bytes] = []
        ids: list[str] = []

        def flush(cur: list[bytes], ids: list[str]) -> None:
            body = cctx.compress(b"".join(cur))
            sealed = seal(dek, body, ad)
            if open_sealed(dek, sealed, ad) != body:
                raise AssertionError("self-check")
            frames.append((sealed, ids))

        for b in blocks_of(data, BLOCK):
            bid = block_id(key, b)
            if bid in seen:
                if cur:
                    flush(cur, ids)
                    cur, ids = [], []
                continue
            seen.add(bid)
            plain += len(b)
            cur.append(b)
            ids.append(bid)
            if len(cur) == n:
                flush(cur, ids)
                cur, ids = [], []
        if cur:
            flush(cur, ids)
    backup_cpu = time.process_time() - t
    stored = sum(len(f) + 4 for f, _ in frames)
    t = time.process_time()
    for sealed, ids in frames:
        out = dctx.decompress(open_sealed(dek, sealed, ad), max_output_size=n * BLOCK)
        for i, bid in enumerate(ids):
            if block_id(key, out[i * BLOCK:(i + 1) * BLOCK]) != bid:
                raise AssertionError("id")
    restore_cpu = time.process_time() - t
    gb = plain / 1e9
    return {"stored": stored, "backup_cpu_s_per_gb": backup_cpu / gb, "restore_cpu_s_per_gb": restore_cpu / gb}


def built(files: list[tuple[str, bytes]], n: int) -> dict[str, Any]:
    """Store ``files`` with the tree writer as built, runs of up to ``n`` blocks (the module's
    ``RUN_BLOCKS`` set to ``n`` for the call), into a fresh in-memory repository; read them back."""
    import tempfile

    from swarm.crypto.keys import create_key_file
    from swarm.repo import Repository, packs, tree
    from swarm.repo.chunker import FixedChunker
    from swarm.storage.memory import MemoryStore

    names = ("RUN_BLOCKS", "RUN_BYTES", "MAX_RUN_PLAIN", "MAX_FRAME_STORED")
    saved = {k: getattr(packs, k) for k in names}
    packs.RUN_BLOCKS = tree.RUN_BLOCKS = n  # type: ignore[misc]
    packs.RUN_BYTES = tree.RUN_BYTES = n * BLOCK  # type: ignore[misc]
    packs.MAX_RUN_PLAIN = 2 + 4 * n + n * BLOCK  # type: ignore[misc]
    packs.MAX_FRAME_STORED = max(packs.MAX_BLOCK_STORED, packs.MAX_RUN_PLAIN * 17 // 16 + 4096)  # type: ignore[misc]
    try:
        with tempfile.TemporaryDirectory() as d:
            repo = Repository.init(MemoryStore(), create_key_file(Path(d) / "k"))
            bw = repo.begin_backup("pg-physical")
            tw = tree.TreeWriter(repo, bw, chunker=FixedChunker(BLOCK))
            t = time.process_time()
            for path, data in files:
                tw.add_file(path, tree.Meta(0o600, 0), iter(blocks_of(data, BLOCK)))
            root = tw.finish()
            backup_cpu = time.process_time() - t
            reader = tree.TreeReader(repo, root)
            t = time.process_time()
            for e in reader.walk():
                if e.type == tree.FILE:
                    for _ in reader.read_file(e):
                        pass
            restore_cpu = time.process_time() - t
    finally:
        for k, v in saved.items():
            setattr(packs, k, v)
        tree.RUN_BLOCKS, tree.RUN_BYTES = saved["RUN_BLOCKS"], saved["RUN_BYTES"]
    gb = sum(len(d) for _, d in files) / 1e9
    return {"option": f"built: tree writer, runs of up to {n}", "stored": root.stats.stored_bytes,
            "new_blocks": root.stats.new_blocks, "backup_cpu_s_per_gb": backup_cpu / gb,
            "restore_cpu_s_per_gb": restore_cpu / gb}


def fmt(row: dict[str, Any]) -> str:
    s = (f"{row['option']:<58} {row['stored'] / 1e6:9.1f} MB  {row['ratio']:5.3f}x  "
         f"c {row['compress_cpu_s_per_gb']:5.2f} s/GB  d {row['decompress_cpu_s_per_gb']:5.2f} s/GB  "
         f"frames {row['frames']}")
    if "held_out_ratio" in row:
        s += f"  held-out {row['held_out_ratio']:.3f}x  train {row['train_cpu_s']:.1f} s"
    if "one_block_read_fetches_bytes" in row:
        s += (f"  1-block read: fetch {row['one_block_read_fetches_bytes'] / 1024:.0f} KiB, "
              f"decompress {row['one_block_read_decompresses_bytes'] / 1024:.0f} KiB")
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datadir", type=Path)
    ap.add_argument("--options", default="a,b,c,d,e")
    ap.add_argument("--sample-mb", type=int, default=16, help="training sample for the dictionaries (MB of blocks)")
    ap.add_argument("--after", type=Path, help="a copy of the same cluster after a change: measure the next backup")
    ap.add_argument("--repeat", type=int, default=3, help="runs per row of --options final (CPU: the median)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    opts = set(args.options.split(","))
    files = load(args.datadir)
    total = sum(len(d) for _, d in files)
    blocks = distinct_blocks(files, BLOCK)
    print(f"{len(files)} files, {total / 1e6:.1f} MB; {len(blocks)} distinct 32 KiB blocks "
          f"({sum(len(b) for b in blocks) / 1e6:.1f} MB); load average {os.getloadavg()[0]:.2f}", flush=True)
    rows: list[dict[str, Any]] = []
    ref_r = whole_files(files, 3)
    ref = ref_r.stored

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        print(fmt(row), flush=True)

    emit(ref_r.row(ref))
    if "a" in opts:
        emit(blocks_alone("a: each 32 KiB block alone, zstd 3", blocks, 3)[0].row(ref))
    if "c" in opts:
        for how in ("random", "first"):
            for dsize in (64 << 10, 112 << 10):
                d, idx, tcpu = train(blocks, dsize, 3, how, args.sample_mb)
                res, sizes = blocks_alone(f"c: dict {dsize >> 10} KiB ({how} {args.sample_mb} MB sample), zstd 3",
                                          blocks, 3, d)
                held = [i for i in range(len(blocks)) if i not in idx]
                alone, _ = blocks_alone("", [blocks[i] for i in held], 3)
                ref_part = sum(sizes[i] + FRAME_OVERHEAD for i in held)
                res.stored += len(d.as_bytes()) + FRAME_OVERHEAD  # the dictionary is stored once, sealed
                row = res.row(ref)
                # held out: the blocks outside the training sample, with the dictionary ÷ without it,
                # times option a's ratio (so comparable with the other rows)
                row["held_out_vs_alone"] = ref_part / alone.stored
                row["held_out_ratio"] = row["held_out_vs_alone"] * (
                    rows[1]["ratio"] if "a" in opts else float("nan"))
                row["train_cpu_s"] = tcpu
                row["dict_bytes"] = len(d.as_bytes())
                emit(row)
    if "d" in opts:
        for n in (4, 8, 16, 32):
            emit(runs(f"d: runs of up to {n} new blocks as one frame, zstd 3", files, 3, n).row(ref))
    if "cd" in opts:
        d, _, _ = train(blocks, 112 << 10, 3, "random", args.sample_mb)
        for n in (4, 8, 16, 32):
            res = runs(f"c+d: dict 112 KiB (random) + runs of up to {n}, zstd 3", files, 3, n, d)
            res.stored += len(d.as_bytes()) + FRAME_OVERHEAD
            emit(res.row(ref))
    if "e" in opts:
        big = distinct_blocks(files, 128 << 10)
        emit(blocks_alone("e: each 128 KiB block alone, zstd 3", big, 3)[0].row(ref))
    if "levels" in opts:
        for level in (1, 3, 6):
            emit(whole_files(files, level).row(ref))
            emit(blocks_alone(f"a: each 32 KiB block alone, zstd {level}", blocks, level)[0].row(ref))
            d, _, _ = train(blocks, 112 << 10, level, "random", args.sample_mb)
            res, _ = blocks_alone(f"c: dict 112 KiB (random), zstd {level}", blocks, level, d)
            res.stored += len(d.as_bytes()) + FRAME_OVERHEAD
            emit(res.row(ref))
            emit(runs(f"d: runs of up to 8, zstd {level}", files, level, 8).row(ref))
            emit(runs(f"c+d: dict 112 KiB + runs of up to 8, zstd {level}", files, level, 8, d).row(ref))
    if "more" in opts:
        for dsize, mb in ((112 << 10, 64), (256 << 10, 64)):
            d, _, tcpu = train(blocks, dsize, 3, "random", mb)
            res, _ = blocks_alone(f"c: dict {dsize >> 10} KiB (random {mb} MB sample), zstd 3", blocks, 3, d)
            res.stored += len(d.as_bytes()) + FRAME_OVERHEAD
            row = res.row(ref)
            row["train_cpu_s"] = tcpu
            emit(row)
        for level in (4, 5):
            emit(whole_files(files, level).row(ref))
            d, _, _ = train(blocks, 112 << 10, level, "random", args.sample_mb)
            res, _ = blocks_alone(f"c: dict 112 KiB (random), zstd {level}", blocks, level, d)
            res.stored += len(d.as_bytes()) + FRAME_OVERHEAD
            emit(res.row(ref))
            for n in (8, 32):
                emit(runs(f"d: runs of up to {n}, zstd {level}", files, level, n).row(ref))
            res = runs(f"c+d: dict 112 KiB + runs of up to 8, zstd {level}", files, level, 8, d)
            res.stored += len(d.as_bytes()) + FRAME_OVERHEAD
            emit(res.row(ref))
    if "online" in opts:
        orders = {"path order": files, "shuffled (seed 1)": random.Random(1).sample(files, len(files)),
                  "shuffled (seed 2)": random.Random(2).sample(files, len(files))}
        for oname, order in orders.items():
            for ths in ([32], [8, 32, 128], [16, 64, 256]):
                got, tcpu = online(order, ths)
                print(f"c online, files in {oname}, dictionaries trained at {ths} MB: {got / 1e6:.1f} MB "
                      f"{got / ref:.3f}x, training {tcpu:.2f} s CPU", flush=True)
                rows.append({"option": f"c online {oname} {ths}", "stored": got, "ratio": got / ref,
                             "train_cpu_s": tcpu})
    if args.after is not None:
        second_backup(files, load(args.after), args.sample_mb, emit)
    if "pipeline" in opts:  # hash + compress + seal + verify, and open + decompress + hash: CPU s/GB
        for n in (1, 8, 32):
            got = [pipeline(files, n) for _ in range(args.repeat)]
            bk = sorted(g["backup_cpu_s_per_gb"] for g in got)[len(got) // 2]
            rs = sorted(g["restore_cpu_s_per_gb"] for g in got)[len(got) // 2]
            name = "a: one block per frame" if n == 1 else f"d: runs of up to {n} new blocks per frame"
            print(f"pipeline, {name}, zstd 3: stored {got[0]['stored'] / 1e6:.1f} MB "
                  f"({got[0]['stored'] / ref:.3f}x); backup {bk:.2f} s/GB, restore {rs:.2f} s/GB CPU "
                  f"(median of {len(got)})", flush=True)
            rows.append({"option": f"pipeline {name}", "stored": got[0]["stored"], "ratio": got[0]["stored"] / ref,
                         "backup_cpu_s_per_gb": bk, "restore_cpu_s_per_gb": rs})
    if "final" in opts:  # the rows of docs/design/physical-backups.md, CPU as the median of --repeat runs
        d, _, _ = train(blocks, 112 << 10, 3, "random", args.sample_mb)
        cases: list[tuple[str, Any]] = [
            ("a: each 32 KiB block alone, zstd 3", lambda: blocks_alone("", blocks, 3)[0]),
            ("c: dict 112 KiB, each block alone, zstd 3", lambda: blocks_alone("", blocks, 3, d)[0]),
            ("d: runs of up to 8, zstd 3", lambda: runs("", files, 3, 8)),
            ("d: runs of up to 32, zstd 3", lambda: runs("", files, 3, 32)),
            ("d: runs of up to 64, zstd 3", lambda: runs("", files, 3, 64)),
            ("d: runs of up to 32, zstd 4", lambda: runs("", files, 4, 32)),
            ("d: runs of up to 128, zstd 3", lambda: runs("", files, 3, 128)),
            ("d: runs of up to 32, zstd 1", lambda: runs("", files, 1, 32)),
            ("d: runs of up to 32, zstd 5", lambda: runs("", files, 5, 32)),
            ("d: runs of up to 32, zstd 6", lambda: runs("", files, 6, 32)),
            ("c+d: dict 112 KiB + runs of up to 32, zstd 3", lambda: runs("", files, 3, 32, d)),
            ("e: each 128 KiB block alone, zstd 3", lambda: blocks_alone("", distinct_blocks(files, 128 << 10), 3)[0]),
            ("b: whole file, zstd 3", lambda: whole_files(files, 3)),
        ]
        for name, fn in cases:
            got = [fn() for _ in range(args.repeat)]
            r = got[0]
            r.name = name
            r.c_cpu = sorted(g.c_cpu for g in got)[len(got) // 2]
            r.d_cpu = sorted(g.d_cpu for g in got)[len(got) // 2]
            if name.startswith("c"):
                r.stored += len(d.as_bytes()) + FRAME_OVERHEAD
            emit(r.row(ref))
    if "built" in opts:
        for n in (32, 64):
            b = built(files, n)
            b["ratio"] = b["stored"] / ref
            print(f"{b['option']}: stored {b['stored'] / 1e6:.1f} MB ({b['ratio']:.3f}x); backup "
                  f"{b['backup_cpu_s_per_gb']:.2f} s/GB, reading back {b['restore_cpu_s_per_gb']:.2f} s/GB CPU",
                  flush=True)
            rows.append(b)
    if args.json:
        args.json.write_text(json.dumps({"files": len(files), "bytes": total, "rows": rows}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
