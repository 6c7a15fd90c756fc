"""Chunkers of the tree store: fixed offset-aligned blocks and keyed FastCDC, as properties."""
from __future__ import annotations

import random
import statistics

from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.repo.chunker import FastCDC, FixedChunker, gear_table, split

KEY = bytes(range(32))
SMALL = FastCDC.for_key(KEY, min_size=256, avg_size=1024, max_size=8192)


def rand(seed: int, n: int) -> bytes:
    return random.Random(seed).randbytes(n)


def pieces_of(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)] if sizes else len(data)
        out.append(data[pos:pos + n])
        pos += n
        i += 1
    return out


@given(st.binary(max_size=5000), st.integers(1, 700), st.lists(st.integers(1, 900), max_size=5))
def test_fixed_boundaries_at_multiples(data: bytes, size: int, reads: list[int]) -> None:
    c = FixedChunker(size)
    cuts = c.cut_points(data)
    assert all(p % size == 0 for p in cuts[:-1])
    assert (cuts[-1] if cuts else 0) == len(data)
    chunks = list(c.chunks(pieces_of(data, reads)))
    assert b"".join(chunks) == data
    assert [len(x) for x in chunks] == [len(x) for x in split(data, c)]
    assert all(len(x) == size for x in chunks[:-1])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**32), st.integers(0, 40000), st.lists(st.integers(1, 9000), max_size=4))
def test_cdc_concatenation_sizes_and_streaming(seed: int, n: int, reads: list[int]) -> None:
    data = rand(seed, n)
    chunks = split(data, SMALL)
    assert b"".join(chunks) == data
    assert all(SMALL.min_size <= len(x) <= SMALL.max_size for x in chunks[:-1])
    assert all(0 < len(x) <= SMALL.max_size for x in chunks[-1:])
    # reading the file in any piece sizes cuts it the same way
    assert list(SMALL.chunks(pieces_of(data, reads))) == chunks


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**32), st.integers(0, 30000), st.binary(min_size=1, max_size=3000))
def test_cdc_insertion_changes_only_nearby_chunks(seed: int, at: int, inserted: bytes) -> None:
    data = rand(seed, 60000)
    at = min(at, len(data))
    edited = data[:at] + inserted + data[at:]
    before, after = split(data, SMALL), split(edited, SMALL)
    # every chunk that ends before the insertion is unchanged
    ends = 0
    for i, chunk in enumerate(before):
        ends += len(chunk)
        if ends > at:
            break
        assert after[i] == chunk
    # the cuts re-synchronise after it: only a few chunks differ, the rest are shared
    new = [c for c in after if c not in set(before)]
    assert len(new) <= 3 + len(inserted) // SMALL.min_size, (len(new), len(after))


@settings(max_examples=15, deadline=None, derandomize=True)
@given(st.integers(0, 2**32), st.integers(0, 20000), st.integers(1, 2000))
def test_cdc_deletion_resyncs(seed: int, at: int, length: int) -> None:
    data = rand(seed, 40000)
    edited = data[:at] + data[at + length:]
    before = set(split(data, SMALL))
    new = [c for c in split(edited, SMALL) if c not in before]
    assert len(new) <= 3


def test_cdc_is_keyed_and_deterministic() -> None:
    data = rand(7, 100000)
    assert SMALL.cut_points(data) == FastCDC.for_key(KEY, min_size=256, avg_size=1024,
                                                     max_size=8192).cut_points(data)
    other = FastCDC.for_key(b"another key" * 3, min_size=256, avg_size=1024, max_size=8192)
    assert other.cut_points(data) != SMALL.cut_points(data)
    assert gear_table(KEY) != gear_table(b"x" * 32) and len(set(gear_table(KEY))) == 256


def test_cdc_defaults_average_between_32_and_64_kib() -> None:
    c = FastCDC.for_key(KEY)
    sizes = [len(x) for x in split(rand(1, 4 << 20), c)]
    assert 32 << 10 <= statistics.mean(sizes[:-1]) <= 64 << 10
    assert min(sizes[:-1]) >= 16 << 10 and max(sizes) <= 256 << 10
    assert c.spec() == {"kind": "fastcdc", "gear": "hmac-sha256/1", "min": 16384, "avg": 32768, "max": 262144}


def test_constant_data_is_cut_at_max_size() -> None:
    chunks = split(b"\0" * 20000, SMALL)
    assert b"".join(chunks) == b"\0" * 20000
    assert [len(x) for x in chunks] == [8192, 8192, 20000 - 16384]
