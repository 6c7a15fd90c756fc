"""Framed, compressed, encrypted objects.

Stored layout of one object::

    header  = b"SWOB" | version:u8 (=1) | codec:u8 (1 = zstd) | reserved:u16 (=0)
    frame*  = length:u32be | nonce:12 | ciphertext | tag:16      (length counts nonce..tag)

Each frame holds up to ``FRAME_SIZE`` bytes of plaintext, compressed on its own with zstd,
then sealed with AES-256-GCM under the backup's data key. The associated data of frame *i*
is ``context || header || i:u64be || final:u8``: a frame moved to another object or position,
a dropped last frame (truncation) or an altered header all fail to open. An empty object
is one final frame of empty plaintext.

Writers stream: memory stays at about two frames whatever the object size. After sealing,
each frame is opened again and compared (catches a broken cipher or RAM fault before the
bytes leave the machine).
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import zstandard

from swarm.crypto.aead import OpenFailed, open_sealed, seal
from swarm.errors import IntegrityError

MAGIC = b"SWOB"
VERSION = 1
CODEC_ZSTD = 1
HEADER = MAGIC + struct.pack(">BBH", VERSION, CODEC_ZSTD, 0)
FRAME_SIZE = 4 << 20
MAX_FRAME_STORED = FRAME_SIZE + (FRAME_SIZE >> 4) + 4096  # zstd worst case plus AEAD overhead
ZSTD_LEVEL = 3


def _ad(context: bytes, index: int, final: bool) -> bytes:
    return context + HEADER + struct.pack(">QB", index, 1 if final else 0)


@dataclass
class WriteStats:
    """Filled in while the stored stream is consumed."""

    size: int = 0
    stored_size: int = 0
    sha256: str = ""
    plain_sha256: str = ""
    _stored: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)
    _plain: hashlib._Hash = field(default_factory=hashlib.sha256, repr=False)


def _reframe(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        while len(buf) >= size:
            yield bytes(buf[:size])
            del buf[:size]
    yield bytes(buf)


def encode_stream(plain: Iterable[bytes], key: bytes, context: bytes, stats: WriteStats) -> Iterator[bytes]:
    """Yield the stored bytes of an object whose plaintext is ``plain``; fills ``stats``."""
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    stats._stored.update(HEADER)
    stats.stored_size += len(HEADER)
    yield HEADER
    frames = _reframe(plain, FRAME_SIZE)
    current = next(frames)
    index = 0
    while True:
        following = next(frames, None)
        # _reframe always ends with one (possibly empty) tail; a tail that is empty and not the
        # only frame is dropped so every frame but the last is full and the last is marked final.
        if following is not None and following == b"" and current:
            following = None
        final = following is None
        stats._plain.update(current)
        stats.size += len(current)
        compressed = cctx.compress(current)
        ad = _ad(context, index, final)
        sealed = seal(key, compressed, ad)
        if open_sealed(key, sealed, ad) != compressed:  # verify after encrypt
            raise IntegrityError("encryption self-check failed: sealed data did not open to its input",
                                 hint="This points to a hardware (memory) or library fault; nothing was stored.")
        frame = struct.pack(">I", len(sealed)) + sealed
        stats._stored.update(frame)
        stats.stored_size += len(frame)
        yield frame
        if final:
            break
        assert following is not None
        current = following
        index += 1
    stats.sha256 = stats._stored.hexdigest()
    stats.plain_sha256 = stats._plain.hexdigest()


class _Reader:
    """Pull exact byte counts out of a chunk iterator."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self.sha = hashlib.sha256()
        self.consumed = 0

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            nxt = next(self._chunks, None)
            if nxt is None:
                break
            self._buf += nxt
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self.sha.update(out)
        self.consumed += len(out)
        return out

    def at_end(self) -> bool:
        return not self.read_ahead()

    def read_ahead(self) -> bool:
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return False
            self._buf += nxt
        return True


def decode_stream(stored: Iterator[bytes], key: bytes, context: bytes, *, name: str,
                  expected_sha256: str | None = None) -> Iterator[bytes]:
    """Yield the plaintext of a stored object, verifying every frame.

    Raises ``IntegrityError`` naming ``name`` on a bad header, a frame that fails its tag,
    truncation (no final frame), trailing bytes, or a SHA-256 different from ``expected_sha256``
    (checked when the stream ends, so a consumer must treat output as provisional until then).
    """
    r = _Reader(stored)
    if r.read(len(HEADER)) != HEADER:
        raise IntegrityError(f"object {name}: bad header (not a swarm object, or an unknown format version)")
    dctx = zstandard.ZstdDecompressor()
    index = 0
    while True:
        raw_len = r.read(4)
        if len(raw_len) < 4:
            raise IntegrityError(f"object {name}: truncated after {r.consumed} bytes (final frame missing)")
        (length,) = struct.unpack(">I", raw_len)
        if length > MAX_FRAME_STORED:
            raise IntegrityError(f"object {name}: frame {index} claims {length} bytes, more than any frame can hold")
        sealed = r.read(length)
        if len(sealed) < length:
            raise IntegrityError(f"object {name}: truncated in frame {index}")
        final = False
        try:
            compressed = open_sealed(key, sealed, _ad(context, index, False))
        except OpenFailed:
            try:
                compressed = open_sealed(key, sealed, _ad(context, index, True))
                final = True
            except OpenFailed as exc:
                raise IntegrityError(f"object {name}: frame {index} fails authentication (bytes altered, or "
                                     f"moved from another object)") from exc
        try:
            yield dctx.decompress(compressed, max_output_size=FRAME_SIZE)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"object {name}: frame {index} does not decompress") from exc
        if final:
            break
        index += 1
    if not r.at_end():
        raise IntegrityError(f"object {name}: unexpected bytes after the final frame")
    if expected_sha256 is not None and r.sha.hexdigest() != expected_sha256:
        raise IntegrityError(f"object {name}: SHA-256 {r.sha.hexdigest()[:16]}... differs from the manifest's "
                             f"{expected_sha256[:16]}...")
