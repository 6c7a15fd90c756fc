"""The framed object format: round trips, and every kind of damage is caught and named."""
from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.crypto.aead import new_key
from swarm.errors import IntegrityError
from swarm.repo import objects
from swarm.repo.objects import WriteStats, decode_stream, encode_stream

KEY = new_key()
CTX = b"repo\0backup/obj\0"


def encode(data: bytes, chunk: int = 1000, key: bytes = KEY, ctx: bytes = CTX) -> tuple[bytes, WriteStats]:
    stats = WriteStats()
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] or [b""]
    return b"".join(encode_stream(iter(pieces), key, ctx, stats)), stats


def decode(blob: bytes, key: bytes = KEY, ctx: bytes = CTX, sha: str | None = None) -> bytes:
    return b"".join(decode_stream(iter([blob]), key, ctx, name="obj", expected_sha256=sha))


@pytest.fixture(autouse=True)
def small_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects, "FRAME_SIZE", 4096)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=20000), st.integers(min_value=1, max_value=5000))
def test_roundtrip(data: bytes, chunk: int) -> None:
    blob, stats = encode(data, chunk)
    assert decode(blob, sha=stats.sha256) == data
    assert stats.size == len(data) and stats.stored_size == len(blob)


def test_exact_frame_multiple_has_no_empty_trailing_frame() -> None:
    blob, _ = encode(b"x" * 8192, 4096)
    frames = 0
    pos = len(objects.HEADER)
    while pos < len(blob):
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        pos += 4 + n
        frames += 1
    assert frames == 2


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=1, max_size=9000), st.data())
def test_any_flipped_byte_is_detected(data: bytes, draw: st.DataObject) -> None:
    blob, stats = encode(data)
    pos = draw.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    bad = bytearray(blob)
    bad[pos] ^= 0x40
    with pytest.raises(IntegrityError, match="obj"):
        decode(bytes(bad), sha=stats.sha256)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=9000), st.data())
def test_any_truncation_is_detected(data: bytes, draw: st.DataObject) -> None:
    blob, _ = encode(data)
    cut = draw.draw(st.integers(min_value=0, max_value=len(blob) - 1))
    with pytest.raises(IntegrityError):
        decode(blob[:cut])


def test_dropping_whole_last_frame_is_detected() -> None:
    blob, _ = encode(b"a" * 10000)
    pos, starts = len(objects.HEADER), []
    while pos < len(blob):
        starts.append(pos)
        (n,) = struct.unpack(">I", blob[pos:pos + 4])
        pos += 4 + n
    with pytest.raises(IntegrityError, match="truncated"):
        decode(blob[:starts[-1]])


def test_object_moved_to_another_name_fails() -> None:
    blob, _ = encode(b"secret rows")
    with pytest.raises(IntegrityError, match="authentication"):
        decode(blob, ctx=b"repo\0backup/other\0")


def test_wrong_key_fails() -> None:
    blob, _ = encode(b"secret rows")
    with pytest.raises(IntegrityError):
        decode(blob, key=new_key())


def test_trailing_garbage_is_detected() -> None:
    blob, _ = encode(b"abc")
    with pytest.raises(IntegrityError, match="after the final frame"):
        decode(blob + b"\0")


def test_plaintext_is_not_in_the_stored_bytes() -> None:
    secret = b"4111 1111 1111 1111 card of a customer " * 50
    blob, _ = encode(secret)
    assert b"4111 1111" not in blob
