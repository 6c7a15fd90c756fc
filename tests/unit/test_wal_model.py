"""Pure WAL names and positions, recovery targets: examples and hypothesis properties."""
from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.model import wal
from swarm.model.targets import RecoveryTarget, from_options, parse_time
from swarm.model.wal import Lsn, Segment

SIZES = st.sampled_from([1 << 20, 16 << 20, 64 << 20, 1 << 30])
LSNS = st.integers(0, wal.MAX_LSN).map(Lsn)


def test_lsn_examples() -> None:
    assert str(Lsn.parse("0/16B3748")) == "0/16B3748"
    assert Lsn.parse("1/0").value == 1 << 32
    assert Lsn.parse("a/ff") == Lsn.parse("A/FF")
    for bad in ["", "0", "0/", "/1", "g/1", "1/2/3", "123456789/0"]:
        with pytest.raises(ValueError):
            Lsn.parse(bad)


def test_segment_examples() -> None:
    s = wal.segment_of(Lsn.parse("0/3000028"), 1)
    assert s.name == "000000010000000000000003"
    assert wal.parse_segment("00000002000000010000000A") == Segment(2, 256 + 10)
    assert Segment(1, 255).next().name == "000000010000000100000000"
    assert wal.segment_for_end(Lsn.parse("0/4000000"), 1).name == "000000010000000000000003"
    names = [s.name for s in wal.segments_between(Lsn.parse("0/2000028"), Lsn.parse("0/4000100"), 1)]
    assert names == ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004"]
    with pytest.raises(ValueError):
        wal.parse_segment("000000010000000000000100")  # seg part beyond FF for 16 MiB segments
    with pytest.raises(ValueError):
        wal.parse_segment("00000001000000000000000g")


@given(LSNS)
def test_lsn_roundtrip(lsn: Lsn) -> None:
    assert Lsn.parse(str(lsn)) == lsn


@given(LSNS, LSNS)
def test_lsn_order_is_integer_order(a: Lsn, b: Lsn) -> None:
    assert (a < b) == (a.value < b.value)
    assert (a - b) == a.value - b.value


@given(st.integers(1, 0xFFFFFFFF), LSNS, SIZES)
def test_segment_name_roundtrip_and_containment(tli: int, lsn: Lsn, size: int) -> None:
    s = wal.segment_of(lsn, tli, size)
    assert wal.parse_segment(s.name, size) == s
    assert s.contains(lsn)
    assert wal.is_segment_name(s.name) and wal.classify(s.name) == "segment"
    assert wal.timeline_of(s.name) == tli


@given(st.integers(1, 5), st.integers(0, 10**6), st.integers(0, 10**6))
def test_segment_names_sort_like_segments(tli: int, a: int, b: int) -> None:
    sa, sb = Segment(tli, a), Segment(tli, b)
    assert (sa.name < sb.name) == (sa < sb)
    assert sa.next().segno == a + 1 and sa.next().start == sa.end


@given(st.integers(0, 1 << 40), st.integers(0, 1 << 28))
def test_segments_between_is_contiguous(start: int, length: int) -> None:
    a, b = Lsn(start), Lsn(start + length)
    segs = list(wal.segments_between(a, b, 1))
    assert segs and segs[0].contains(a)
    assert all(y.segno == x.segno + 1 for x, y in itertools.pairwise(segs))
    if length:
        assert segs[-1].contains(Lsn(b.value - 1))


def test_history_and_partial_names() -> None:
    assert wal.history_name(2) == "00000002.history"
    assert wal.parse_history_name("0000000A.history") == 10
    assert wal.classify("00000002.history") == "history"
    assert wal.classify("000000010000000000000003.partial") == "partial"
    assert wal.classify("000000010000000000000003.00000028.backup") == "backup"
    assert wal.partial_name(Segment(1, 3)) == "000000010000000000000003.partial"
    for bad in ["x.history", "000000010000000000000003.part", "../00000002.history"]:
        with pytest.raises(ValueError):
            wal.classify(bad)


@given(st.integers(1, 0xFFFFFFFF))
def test_history_name_roundtrip(tli: int) -> None:
    assert wal.parse_history_name(wal.history_name(tli)) == tli


def test_parse_history() -> None:
    text = "1\t0/3000148\tbefore 2026-11-24 02:00:00+00\n# comment\n\n2\t0/5000000\tno recovery target specified\n"
    h = wal.parse_history(text)
    assert [(e.parent_tli, str(e.switch_lsn)) for e in h] == [(1, "0/3000148"), (2, "0/5000000")]
    assert wal.timeline_switch_points(h)[1] == Lsn.parse("0/3000148")


def test_gaps() -> None:
    have = [Segment(1, n) for n in (2, 3, 5, 8)]
    assert [s.name[-2:] for s in wal.find_gaps(have, Segment(1, 2), Segment(1, 8))] == ["04", "06", "07"]
    assert wal.find_gaps(have, Segment(1, 2), Segment(1, 3)) == []
    runs = wal.missing_runs([*have, Segment(2, 9), Segment(2, 11)])
    assert [(a.name, b.name) for a, b in runs] == [
        ("000000010000000000000004", "000000010000000000000004"),
        ("000000010000000000000006", "000000010000000000000007"),
        ("00000002000000000000000A", "00000002000000000000000A")]


@given(st.sets(st.integers(0, 200), min_size=1), st.integers(0, 100), st.integers(0, 100))
def test_gaps_property(present: set[int], a: int, span: int) -> None:
    segs = [Segment(1, n) for n in present]
    gaps = wal.find_gaps(segs, Segment(1, a), Segment(1, a + span))
    assert {g.segno for g in gaps} == set(range(a, a + span + 1)) - present


def test_header_system_identifier() -> None:
    page = bytearray(40)
    page[2:4] = (wal.XLP_LONG_HEADER).to_bytes(2, "little")
    page[24:32] = (7311234567890123456).to_bytes(8, "little")
    assert wal.header_system_identifier(bytes(page)) == 7311234567890123456
    page[2:4] = b"\0\0"
    assert wal.header_system_identifier(bytes(page)) is None
    assert wal.header_system_identifier(b"short") is None


# ---- targets ---------------------------------------------------------------------------------
def test_targets() -> None:
    t = from_options(time="2026-11-24T02:31:38Z")
    assert t.kind == "time" and t.time == datetime(2026, 11, 24, 2, 31, 38, tzinfo=UTC)
    assert t.settings() == {"recovery_target_time": "2026-11-24 02:31:38.000000+00"}
    assert from_options(lsn="0/3000060").settings() == {"recovery_target_lsn": "0/3000060"}
    assert from_options(xid="1234").xid == 1234
    assert from_options(name="before-migration").settings() == {"recovery_target_name": "before-migration"}
    assert from_options(latest=True).settings() == {}
    assert parse_time("2026-11-24 02:31:38+01").hour == 2
    assert parse_time("2026-11-24 02:31:38").tzinfo is UTC


@pytest.mark.parametrize("kw", [{}, {"time": "x", "lsn": "0/1"}, {"latest": True, "xid": "5"}])
def test_targets_need_exactly_one(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        from_options(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind,value", [("time", "yesterday"), ("lsn", "12"), ("xid", "abc"), ("xid", "1"),
                                        ("name", "bad name; drop"), ("latest", "x"), ("nope", "1")])
def test_invalid_targets(kind: str, value: str) -> None:
    with pytest.raises(ValueError):
        RecoveryTarget(kind, value)
