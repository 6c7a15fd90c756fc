"""Content-addressed blocks in pack objects: the deduplicating store of physical backups.

A file is cut into blocks at fixed offsets (``BLOCK_SIZE``, 32 KiB: 4 PostgreSQL pages;
pages change in place, so a block at the same offset is unchanged unless one of its pages
was written; docs/design/physical-backups.md has the measurements behind the size).
A block's id is a keyed hash of its plaintext,
``HMAC-SHA256(dedup_key, plaintext)`` in hex, where ``dedup_key`` is a repository secret
wrapped by the KEK (``keys/dedup.json``): ids are stable across backups (so unchanged
blocks are found again) but reveal nothing about the content to someone without the key,
unlike a bare hash, which would confirm guesses of known pages.

New blocks go into pack objects ``data/<backup_id>/packs/<n>.pack`` of about
``PACK_TARGET`` bytes::

    header = b"SWPK" | version:u8 (=1) | codec:u8 (1 = zstd) | reserved:u16
    frame* = length:u32be | nonce:12 | ciphertext | tag:16       (one block, or a run of blocks)

A *one-block frame* is the block compressed with zstd and sealed with AES-256-GCM under the
backup's data key, with associated data ``"swarm-blk/1\\0" + repo_id + "\\0" + block_id``:
a frame that is altered, or served for another block id, does not open; after opening,
the plaintext's keyed hash must equal the id again.

A *run frame* (repository feature ``run-frames``) holds up to ``RUN_BLOCKS`` consecutive new
blocks of one file, compressed together as one zstd frame (``docs/design/physical-backups.md``,
"Block compression": 1.30x of whole-file zstd for blocks alone, about 1.0x for runs)::

    plaintext = count:u16be | size:u32be * count | block bytes, in order

sealed with associated data ``"swarm-run/1\\0" + repo_id + "\\0" + backup_id + "\\0" + number``
(``run_ad``), where ``number`` is the run's number in the backup that wrote it (unique there,
recorded in every block's ``Location.frame``): computable from any of its blocks' locations,
bound to that one frame, and to no block id. Opening it decompresses at most ``RUN_BYTES``
(plus the header), slices block ``sub`` out, and proves its keyed hash equals the id.

A block's ``Location`` (backup id, pack, frame index or run number, byte offset, stored
length, data key id, and for a block of a run frame its index ``sub`` in the run) is recorded
in every manifest that uses it, so each backup's index is self-contained for restore: a
restore reads frames by byte range and never needs another backup's manifest.
"""
from __future__ import annotations

import hmac
import json
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import zstandard

from swarm.crypto.aead import OpenFailed, open_sealed, seal
from swarm.errors import IntegrityError
from swarm.procs import keep_large_allocations

PACK_MAGIC = b"SWPK"
PACK_HEADER = PACK_MAGIC + struct.pack(">BBH", 1, 1, 0)
BLOCK_SIZE = 32 << 10
MAX_BLOCK = 1 << 20  # the largest block size a reader accepts (the index records the size used)
PACK_TARGET = 32 << 20
MAX_BLOCK_STORED = MAX_BLOCK + (MAX_BLOCK >> 4) + 4096
ZSTD_LEVEL = 3
_local = threading.local()  # one zstd decompression context per thread (they are not thread safe)
MAX_SPAN = 8 << 20  # adjacent frames of one pack are read in one range request of up to this size
# Runs: consecutive new blocks of one file stored as one frame (at most RUN_BLOCKS blocks and
# RUN_BYTES plaintext bytes; a reader refuses a run frame that holds more).
RUN_BLOCKS = 64
RUN_BYTES = RUN_BLOCKS * BLOCK_SIZE
assert RUN_BYTES >= MAX_BLOCK  # any one block fits in a run
_RUN_COUNT = struct.Struct(">H")
MAX_RUN_PLAIN = _RUN_COUNT.size + 4 * RUN_BLOCKS + RUN_BYTES  # a run frame's plaintext: header and blocks
MAX_FRAME_STORED = max(MAX_BLOCK_STORED, MAX_RUN_PLAIN + (MAX_RUN_PLAIN >> 4) + 4096)


def block_id(key: bytes, plain: bytes) -> str:
    return hmac.digest(key, plain, "sha256").hex()


def block_ad(repo_id: str, bid: str) -> bytes:
    return f"swarm-blk/1\0{repo_id}\0{bid}".encode()


def run_ad(repo_id: str, backup_id: str, number: int) -> bytes:
    """Associated data of run frame ``number`` of ``backup_id``: from its blocks' ``Location`` alone."""
    return f"swarm-run/1\0{repo_id}\0{backup_id}\0{number}".encode()


@dataclass(frozen=True)
class Location:
    """Where one block's frame is stored.

    ``frame``: a one-block frame's index in its pack; for a block of a run frame, the run's
    number in its backup (bound into the frame's associated data). ``sub``: the block's index
    in its run frame, None for a one-block frame (every location written before run frames,
    and the 6-element lists they are stored as). Blocks of one run share every field but ``sub``.
    """

    backup_id: str
    pack: int
    frame: int
    offset: int
    length: int
    dek_id: str
    sub: int | None = None

    def to_list(self) -> list[object]:
        out: list[object] = [self.backup_id, self.pack, self.frame, self.offset, self.length, self.dek_id]
        if self.sub is not None:
            out.append(self.sub)
        return out

    @classmethod
    def from_list(cls, v: list[object]) -> Location:
        if len(v) == 7:
            b, p, f, o, n, d, sub = v
            if not isinstance(sub, int) or isinstance(sub, bool) or not 0 <= sub < RUN_BLOCKS:
                raise ValueError(f"bad index {sub!r} of a block in its run frame")
            return cls(str(b), int(str(p)), int(str(f)), int(str(o)), int(str(n)), str(d), sub)
        b, p, f, o, n, d = v
        return cls(str(b), int(str(p)), int(str(f)), int(str(o)), int(str(n)), str(d))

    def same_frame(self, other: Location) -> bool:
        """Whether ``other`` is stored in the same frame (another block of the same run, or the same block)."""
        return (self.backup_id, self.pack, self.offset, self.length) == \
            (other.backup_id, other.pack, other.offset, other.length)

    def pack_name(self) -> str:
        return pack_name(self.pack)


def pack_name(n: int) -> str:
    return f"packs/{n:06d}.pack"


def pack_number(name: str) -> int | None:
    """``n`` of an original pack name ``packs/<n>.pack`` (6 digits), else None."""
    if name.startswith("packs/") and name.endswith(".pack") and len(name) == 17 and name[6:12].isdigit():
        return int(name[6:12])
    return None


def moved_name(n: int) -> str:
    """The pack map of original pack ``n`` (written by repack)."""
    return f"packs/{n:06d}.moved"


def repacked_name(n: int, generation: int) -> str:
    """Generation ``generation`` (1, 2, ...) of original pack ``n``, rewritten by repack."""
    return f"packs/{n:06d}.r{generation}.pack"


@dataclass(frozen=True)
class PackMap:
    """Where the live frames of original pack ``number`` are now: ``to`` (a ``repacked_name``) holds
    them; ``frames`` maps each frame's original byte offset to (offset in ``to``, stored length).
    ``size`` is the original pack's stored size (a forwarded ``stat`` reports it, so checks that a
    pack is long enough for its frames still hold)."""

    number: int
    generation: int
    size: int
    frames: dict[int, tuple[int, int]]
    at: str = ""  # when the repack wrote it (UTC ISO), for the operator

    @property
    def to(self) -> str:
        return repacked_name(self.number, self.generation)

    def translate(self, offset: int, length: int, *, where: str) -> int:
        """The offset in ``to`` of the span ``offset``..``offset + length`` of the original pack: the
        span must start at a frame and cover whole live frames, adjacent in both (repack keeps their
        order, and a reader's span covers frames its snapshot references, all live)."""
        first = self.frames.get(offset)
        if first is None:
            raise IntegrityError(f"{where}: no live frame at byte {offset} of the repacked pack")
        pos, new = offset, first[0]
        while pos < offset + length:
            hit = self.frames.get(pos)
            if hit is None or hit[0] != new + (pos - offset):
                raise IntegrityError(f"{where}: bytes {offset}..{offset + length} are not live frames of the "
                                     "repacked pack")
            pos += hit[1]
        if pos != offset + length:
            raise IntegrityError(f"{where}: bytes {offset}..{offset + length} end inside a frame")
        return first[0]

    def to_json(self) -> bytes:
        return json.dumps({"version": 1, "pack": self.number, "generation": self.generation, "size": self.size,
                           "at": self.at,
                           "frames": [[o, n, ln] for o, (n, ln) in sorted(self.frames.items())]},
                          separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, where: str) -> PackMap:
        try:
            d = json.loads(raw)
            if d.get("version") != 1:
                raise ValueError(f"version {d.get('version')!r}")
            return cls(int(d["pack"]), int(d["generation"]), int(d["size"]),
                       {int(o): (int(n), int(ln)) for o, n, ln in d["frames"]}, str(d["at"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{where}: the pack map is damaged ({exc})") from None


def compact(current: bytes, live: list[tuple[int, int]], *, where: str) -> tuple[bytes, dict[int, int]]:
    """A new pack holding, byte for byte and in order, the frames of ``current`` at the
    (offset in ``current``, stored length) pairs of ``live``; and old offset → new offset.
    Each frame's length prefix must agree with its length (IntegrityError otherwise)."""
    out = bytearray(PACK_HEADER)
    moved: dict[int, int] = {}
    for offset, length in sorted(set(live)):
        frame = current[offset:offset + length]
        if len(frame) != length or length < 4 or struct.unpack(">I", frame[:4])[0] != length - 4:
            raise IntegrityError(f"{where}: no frame of {length} bytes at byte {offset}")
        moved[offset] = len(out)
        out += frame
    return bytes(out), moved


@dataclass
class PackStats:
    packs: int = 0
    new_blocks: int = 0
    new_plain_bytes: int = 0
    stored_bytes: int = 0


@dataclass(frozen=True)
class PackUpload:
    """A finished pack: its name, stored bytes, and plaintext bytes of its blocks."""

    number: int
    data: bytes
    plain_size: int


_kept: list[bool] = []


def _keep_large_allocations_once() -> None:
    """Packs are assembled in ~33 MiB buffers: let the process reuse them (``swarm.procs``)."""
    if not _kept:
        _kept.append(keep_large_allocations())


class PackWriter:
    """Seal blocks into frames and upload full packs in the background.

    ``add`` is called from one thread (the tar reader); at most ``max_pending`` packs wait for
    upload, so memory stays near ``(max_pending + 1) * PACK_TARGET``. ``upload`` is called on
    the pool with each finished pack and must store it atomically. ``close`` flushes the last
    pack and raises the first upload error.
    """

    def __init__(self, *, repo_id: str, backup_id: str, dek_id: str, dek: bytes,
                 upload: Callable[[PackUpload], object], workers: int = 2, max_pending: int = 3,
                 pack_target: int = PACK_TARGET) -> None:
        self.repo_id = repo_id
        self.backup_id = backup_id
        self.dek_id = dek_id
        self._dek = dek
        self._upload = upload
        _keep_large_allocations_once()
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="pack-upload")
        self._slots = threading.Semaphore(max(1, max_pending))
        self._futures: list[Future[None]] = []
        self._cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
        self._pack_target = pack_target
        self._number = 0
        self._parts: list[bytes] = [PACK_HEADER]
        self._size = len(PACK_HEADER)
        self._frames = 0
        self._plain = 0
        self._runs = 0
        self._runs_lock = threading.Lock()
        self.stats = PackStats()

    def add(self, bid: str, plain: bytes) -> Location:
        return self.add_compressed(bid, len(plain), self._cctx.compress(plain))

    def add_compressed(self, bid: str, plain_size: int, compressed: bytes) -> Location:
        """``add`` of a block the caller compressed already (``compress_block``, e.g. in a pool)."""
        return self.add_frame(bid, plain_size, self.frame(bid, compressed))

    def frame(self, bid: str, compressed: bytes) -> bytes:
        """Block ``bid``'s stored frame (``length:u32 | sealed``), checked to open again. Touches no
        state of the writer: the tree store calls it from its compression pool."""
        ad = block_ad(self.repo_id, bid)
        sealed = seal(self._dek, compressed, ad)
        if open_sealed(self._dek, sealed, ad) != compressed:  # verify after encrypt
            raise IntegrityError("encryption self-check failed while sealing a block",
                                 hint="This points to a hardware (memory) or library fault; nothing was stored.")
        return struct.pack(">I", len(sealed)) + sealed

    def run_frame(self, blocks: Sequence[bytes]) -> tuple[int, bytes]:
        """(number, stored frame) of a new run frame holding ``blocks`` (up to ``RUN_BLOCKS`` blocks of
        at most ``RUN_BYTES`` together, in file order), checked to open again. Thread safe: the
        tree store calls it from its compression pool; ``number`` (unique in this backup, bound
        into the frame's associated data) is taken here, so numbers follow sealing order, not
        pack order. ``add_run`` appends it."""
        if not 1 <= len(blocks) <= RUN_BLOCKS or sum(len(b) for b in blocks) > RUN_BYTES:
            raise ValueError(f"a run of {len(blocks)} blocks, {sum(len(b) for b in blocks)} bytes, is too large")
        with self._runs_lock:
            number = self._runs
            self._runs += 1
        header = _RUN_COUNT.pack(len(blocks)) + struct.pack(f">{len(blocks)}I", *(len(b) for b in blocks))
        compressed = compress_block(header + b"".join(blocks))
        ad = run_ad(self.repo_id, self.backup_id, number)
        sealed = seal(self._dek, compressed, ad)
        if open_sealed(self._dek, sealed, ad) != compressed:  # verify after encrypt
            raise IntegrityError("encryption self-check failed while sealing a run of blocks",
                                 hint="This points to a hardware (memory) or library fault; nothing was stored.")
        return number, struct.pack(">I", len(sealed)) + sealed

    def add_run(self, number: int, sizes: Sequence[int], frame: bytes) -> list[Location]:
        """Append run frame ``number`` (from ``run_frame``, of blocks of ``sizes``) to the pack being
        filled; one ``Location`` per block (``sub`` = its index). Uploads the pack once full."""
        locs = [Location(self.backup_id, self._number, number, self._size, len(frame), self.dek_id, i)
                for i in range(len(sizes))]
        self._append(frame, len(sizes), sum(sizes))
        return locs

    def add_frame(self, bid: str, plain_size: int, frame: bytes) -> Location:
        """Append a frame made by ``frame`` to the pack being filled; upload the pack once full."""
        loc = Location(self.backup_id, self._number, self._frames, self._size, len(frame), self.dek_id)
        self._append(frame, 1, plain_size)
        return loc

    def _append(self, frame: bytes, blocks: int, plain_size: int) -> None:
        self._parts.append(frame)
        self._size += len(frame)
        self._frames += 1
        self._plain += plain_size
        self.stats.new_blocks += blocks
        self.stats.new_plain_bytes += plain_size
        self.stats.stored_bytes += len(frame)
        if self._size >= self._pack_target:
            self._flush()
        if self._futures and self._futures[0].done():
            self._raise_failed()

    def _flush(self) -> None:
        if not self._frames:
            return
        item = PackUpload(self._number, b"".join(self._parts), self._plain)
        self._slots.acquire()

        def run() -> None:
            try:
                self._upload(item)
            finally:
                self._slots.release()

        self._futures.append(self._pool.submit(run))
        self.stats.packs += 1
        self._number += 1
        self._parts = [PACK_HEADER]  # frames are kept apart until the pack is full: one copy, at the join
        self._size = len(PACK_HEADER)
        self._frames = 0
        self._plain = 0

    def seal_pack(self) -> None:
        """End the pack being filled now (if it holds a frame): the next ``add`` starts a new pack.

        The tree store calls it between a snapshot's data blocks and its tree nodes, so nodes
        sit in packs of their own (a check of the tree alone reads only those).
        """
        self._flush()
        self._raise_failed()

    def _raise_failed(self) -> None:
        """Raise the first upload error; forget uploads that finished well."""
        pending = []
        for f in self._futures:
            if f.done():
                f.result()
            else:
                pending.append(f)
        self._futures = pending

    def close(self) -> None:
        try:
            self._flush()
            for f in self._futures:
                f.result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def frame_runs(locs: Sequence[Location], max_span: int, *,
               alone: Callable[[int], bool] | None = None) -> Iterator[tuple[int, int, int]]:
    """``(i, j, span)`` for each run ``locs[i:j]`` of frames stored back to back in one pack, read
    in one request of ``span`` bytes from ``locs[i].offset`` (a run grows while it is under
    ``max_span``); consecutive locations in one frame (blocks of one run frame, or one block
    twice) join at no cost, so a location's frame starts at ``loc.offset - locs[i].offset`` of
    the span. An index for which ``alone(index)`` holds is a run of its own and ends the one
    before it."""
    i = 0
    while i < len(locs):
        first = last = locs[i]
        j, span = i + 1, first.length
        if alone is None or not alone(i):
            while j < len(locs) and (alone is None or not alone(j)):
                nxt = locs[j]
                if nxt.same_frame(last):
                    pass
                elif span < max_span and (nxt.backup_id, nxt.pack) == (first.backup_id, first.pack) \
                        and nxt.offset == first.offset + span:
                    span += nxt.length
                else:
                    break
                last = nxt
                j += 1
        yield i, j, span
        i = j


def compress_block(plain: bytes) -> bytes:
    """A block's compressed bytes as ``PackWriter.add`` stores them (a compressor per thread)."""
    cctx = getattr(_local, "cctx", None)
    if cctx is None:
        cctx = _local.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return cctx.compress(plain)


def open_frame(frame: bytes, *, dek: bytes, repo_id: str, bid: str, dedup_key: bytes, where: str) -> bytes:
    """The plaintext of one stored frame (``length:u32 | sealed``), proven to be block ``bid``."""
    if len(frame) < 4:
        raise IntegrityError(f"{where}: block {bid[:16]} frame truncated")
    (length,) = struct.unpack(">I", frame[:4])
    if length != len(frame) - 4 or length > MAX_BLOCK_STORED:
        raise IntegrityError(f"{where}: block {bid[:16]} frame length {length} does not match the index "
                             f"({len(frame) - 4})")
    try:
        compressed = open_sealed(dek, frame[4:], block_ad(repo_id, bid))
    except OpenFailed as exc:
        raise IntegrityError(f"{where}: block {bid[:16]} fails authentication (altered, or another block)") from exc
    try:
        plain = _dctx().decompress(compressed, max_output_size=MAX_BLOCK)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{where}: block {bid[:16]} does not decompress") from exc
    if block_id(dedup_key, plain) != bid:
        raise IntegrityError(f"{where}: block {bid[:16]} content does not match its id")
    return plain


def _dctx() -> zstandard.ZstdDecompressor:
    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def open_run(frame: bytes, *, dek: bytes, repo_id: str, loc: Location, bid: str, where: str) -> list[bytes]:
    """The blocks of the run frame ``frame`` (``length:u32 | sealed``) that ``loc`` (of block ``bid``)
    points into: authenticated as run ``loc.frame`` of ``loc.backup_id``, decompressed (at most
    ``MAX_RUN_PLAIN`` bytes) and cut by its header; not yet proven to be their ids (``run_block``).
    IntegrityError naming ``bid`` and the frame otherwise."""
    what = f"block {bid[:16]} (in the run frame at byte {loc.offset})"
    if len(frame) < 4:
        raise IntegrityError(f"{where}: {what}: frame truncated")
    (length,) = struct.unpack(">I", frame[:4])
    if length != len(frame) - 4 or length > MAX_FRAME_STORED:
        raise IntegrityError(f"{where}: {what}: frame length {length} does not match the index ({len(frame) - 4})")
    try:
        compressed = open_sealed(dek, frame[4:], run_ad(repo_id, loc.backup_id, loc.frame))
    except OpenFailed as exc:
        raise IntegrityError(f"{where}: {what} fails authentication (altered, or another frame)") from exc
    try:
        declared = zstandard.frame_content_size(compressed)
        if declared > MAX_RUN_PLAIN:
            raise IntegrityError(f"{where}: {what}: the run frame declares {declared} bytes, more than a run holds")
        plain = _dctx().decompress(compressed, max_output_size=MAX_RUN_PLAIN)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"{where}: {what} does not decompress") from exc
    head = _RUN_COUNT.size
    if len(plain) < head or not 1 <= _RUN_COUNT.unpack_from(plain)[0] <= RUN_BLOCKS \
            or len(plain) < head + 4 * _RUN_COUNT.unpack_from(plain)[0]:
        raise IntegrityError(f"{where}: {what}: the run frame's header is damaged")
    (count,) = _RUN_COUNT.unpack_from(plain)
    sizes = struct.unpack_from(f">{count}I", plain, head)
    pos = head + 4 * count
    if pos + sum(sizes) != len(plain):
        raise IntegrityError(f"{where}: {what}: the run frame's block sizes do not add up to its bytes")
    out = []
    for n in sizes:
        out.append(plain[pos:pos + n])
        pos += n
    return out


def run_block(blocks: Sequence[bytes], loc: Location, bid: str, *, dedup_key: bytes, where: str) -> bytes:
    """Block ``loc.sub`` of an opened run frame (``open_run``), proven to be ``bid``."""
    sub = -1 if loc.sub is None else loc.sub
    if not 0 <= sub < len(blocks):
        raise IntegrityError(f"{where}: block {bid[:16]} is not in its run frame at byte {loc.offset} "
                             f"(index {loc.sub} of {len(blocks)})")
    plain = blocks[sub]
    if block_id(dedup_key, plain) != bid:
        raise IntegrityError(f"{where}: block {bid[:16]} content does not match its id")
    return plain


def open_located(frame: bytes, loc: Location, *, dek: bytes, repo_id: str, bid: str, dedup_key: bytes,
                 where: str) -> bytes:
    """The plaintext of block ``bid`` stored at ``loc`` (``frame``: the stored frame ``loc`` names),
    proven to be ``bid``: ``open_frame`` for a one-block frame, ``open_run`` + ``run_block`` for a run."""
    if loc.sub is None:
        return open_frame(frame, dek=dek, repo_id=repo_id, bid=bid, dedup_key=dedup_key, where=where)
    return run_block(open_run(frame, dek=dek, repo_id=repo_id, loc=loc, bid=bid, where=where), loc, bid,
                     dedup_key=dedup_key, where=where)


def split_frames(pack: bytes, *, where: str) -> list[tuple[int, int]]:
    """(offset, length) of every frame in a whole pack; raises IntegrityError on a bad layout."""
    if not pack.startswith(PACK_HEADER):
        raise IntegrityError(f"{where}: bad pack header")
    out = []
    pos = len(PACK_HEADER)
    while pos < len(pack):
        if pos + 4 > len(pack):
            raise IntegrityError(f"{where}: truncated frame header at byte {pos}")
        (length,) = struct.unpack(">I", pack[pos:pos + 4])
        if length > MAX_FRAME_STORED or pos + 4 + length > len(pack):
            raise IntegrityError(f"{where}: frame at byte {pos} runs past the end of the pack")
        out.append((pos, 4 + length))
        pos += 4 + length
    return out
