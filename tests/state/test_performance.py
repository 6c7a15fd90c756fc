"""What keeps state snapshots fast without changing what they store: the parent's tree is read
once to load the change cache, and FastCDC's span loop cuts exactly where the byte-at-a-time
loop does (the figures are bench/state.py's, not a timed test)."""
from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.repo import Repository
from swarm.repo.chunker import _M64, WINDOW, FastCDC
from swarm.repo.tree import TreeReader
from swarm.services.state.backup import (
    CDC_AVG,
    CDC_MAX,
    CDC_MIN,
    StateScope,
    backup_state,
    parent_facts,
    state_snapshots,
)
from tests.state.conftest import make_state_dir

KEY = bytes(range(32))


def reference_cut(c: FastCDC, data: bytes, start: int = 0) -> int:
    """The specification of a cut: one byte at a time, the fingerprint reduced mod 2**64 each step."""
    n = len(data)
    if n - start <= c.min_size:
        return n
    limit = start + min(n - start, c.max_size)
    i = start + c.min_size
    fp = 0
    for b in data[i - WINDOW:i]:
        fp = ((fp << 1) + c.gear[b]) & _M64
    while i < limit:
        fp = ((fp << 1) + c.gear[data[i]]) & _M64
        i += 1
        if not fp & c.mask:
            return i
    return limit


def reference_points(c: FastCDC, data: bytes) -> list[int]:
    out, pos = [], 0
    while pos < len(data):
        pos = reference_cut(c, data, pos)
        out.append(pos)
    return out


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(0, 2**32), st.integers(0, 40000), st.sampled_from([(64, 256), (256, 256), (256, 1024), (1000, 512)]))
def test_span_loop_cuts_where_the_byte_loop_does(seed: int, n: int, sizes: tuple[int, int]) -> None:
    c = FastCDC.for_key(KEY, min_size=sizes[0], avg_size=sizes[1], max_size=8192)
    data = random.Random(seed).randbytes(n)
    assert c.cut_points(data) == reference_points(c, data)


def test_state_chunker_cuts_unchanged_on_json_and_repetitive_data() -> None:
    c = FastCDC.for_key(KEY, min_size=CDC_MIN, avg_size=CDC_AVG, max_size=CDC_MAX)
    rng = random.Random(7)
    json_like = b"".join(b'{"i": %d, "payload": "%s"}\n' % (i, rng.randbytes(rng.randrange(10, 200)).hex().encode())
                         for i in range(8000))
    for data in (json_like, bytes(700_000), b"ab" * 300_000 + rng.randbytes(50_000)):
        assert c.cut_points(data) == reference_points(c, data)


@pytest.mark.parametrize("repo", ["file"], indirect=True)
def test_change_cache_reads_each_parent_node_once(repo: Repository, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    make_state_dir(state)
    backup_state(repo, StateScope(state), recent_s=0)
    parent = state_snapshots(repo)[-1]
    reads: Counter[str] = Counter()
    real_node = TreeReader._node

    def counting_node(self: TreeReader, refs: tuple, path: str) -> list:  # type: ignore[type-arg]
        reads[path] += 1
        return real_node(self, refs, path)

    monkeypatch.setattr(TreeReader, "_node", counting_node)
    known, files = parent_facts(repo, parent)
    assert reads and set(reads.values()) == {1}, reads  # every directory node fetched and decrypted once
    assert set(files) >= {"cron/jobs.json", "batch/run-0000/status.json", "big.bin"}
    monkeypatch.undo()
    assert known == repo.present_blocks(TreeReader(repo, parent).referenced_blocks())


@pytest.mark.parametrize("repo", ["file"], indirect=True)
def test_rehash_of_an_unchanged_file_checks_its_checksum_and_cuts_nothing(
        repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    make_state_dir(state)
    backup_state(repo, StateScope(state), recent_s=0)
    cut: list[int] = []
    real_chunks = FastCDC.chunks

    def counting_chunks(self: FastCDC, pieces):  # type: ignore[no-untyped-def]
        cut.append(1)
        return real_chunks(self, pieces)

    monkeypatch.setattr(FastCDC, "chunks", counting_chunks)
    res = backup_state(repo, StateScope(state), recent_s=0, rehash_share=1.0)
    cache = res.manifest.source["cache"]
    assert cache["rehashed"] == cache["read"] == res.manifest.source["files"]  # every file
    assert cache["mismatched"] == [] and cut == []  # read and checked, never cut or stored again
    assert res.stats["new_blocks"] == 0
