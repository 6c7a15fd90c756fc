"""model.recovery: timeline choice, timeline paths, base backup choice and per-timeline WAL coverage.

The scenario tests replay the defect a new user hit: a restored copy archived its timeline 2
into the production archive, and every later plan followed it, merging segment numbers across
timelines. The property tests check the rules on random timeline trees.
"""
from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.model import recovery
from swarm.model.recovery import Archive, BaseBackup, PlanRefused, Target
from swarm.model.wal import HistoryEntry, Lsn

SEG = 16 << 20
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def lsn(segno: int, offset: int = 0) -> Lsn:
    return Lsn(segno * SEG + offset)


def backup(bid: str, tli: int, start_seg: int, stop_seg: int, minutes: int = 0) -> BaseBackup:
    return BaseBackup(bid, tli, lsn(start_seg, 40), lsn(stop_seg, 400), T0 + timedelta(minutes=minutes), 100)


def polluted_archive() -> Archive:
    """The primary on timeline 1 archived segments 1..10; a restored copy branched at segment 4
    and archived 00000002.history and its segments 4 and 5."""
    return Archive(SEG, {1: frozenset(range(1, 11)), 2: frozenset({4, 5})}, {},
                   {2: (HistoryEntry(1, lsn(4, 1000), "no recovery target specified"),)})


def test_current_follows_the_primary_not_the_copy() -> None:
    arch = polluted_archive()
    choice = recovery.choose_timeline("current", arch, primary_tli=1)
    assert choice.tli == 1 and "primary" in choice.reason
    path = recovery.timeline_path(arch, choice.tli)
    assert [s.tli for s in path] == [1]
    b = backup("b1", 1, 2, 2)
    cov = recovery.wal_coverage(arch, path, b, None)
    assert cov.complete and cov.last.name == "00000001000000000000000A"
    assert recovery.branches(arch, path) == [{"timeline": 2, "parent": 1, "switch_lsn": str(lsn(4, 1000))}]


def test_without_a_primary_the_newest_archived_timeline_is_followed_and_said() -> None:
    arch = polluted_archive()
    choice = recovery.choose_timeline("current", arch, None, "no primary is configured")
    assert choice.tli == 2 and "no primary is configured" in choice.reason
    assert recovery.choose_timeline("latest", arch, primary_tli=1).tli == 2
    assert recovery.choose_timeline(1, arch, primary_tli=2).tli == 1


def test_a_timeline_that_went_on_after_the_branch_is_reported() -> None:
    """Following the copy's timeline 2, timeline 1's segments 5..10 (after the branch at segment 4) are
    WAL that this restore leaves out: the planner must say so (and, without a primary, refuse)."""
    arch = polluted_archive()
    assert recovery.continued_ancestors(arch, recovery.timeline_path(arch, 2)) == [
        {"timeline": 1, "left_at": str(lsn(4, 1000)), "archived_to": "00000001000000000000000A"}]
    assert recovery.continued_ancestors(arch, recovery.timeline_path(arch, 1)) == []
    # the copy branched after everything the primary archived: nothing went on
    quiet = Archive(SEG, {1: frozenset(range(1, 5)), 2: frozenset({4, 5})}, {}, arch.histories)
    assert recovery.continued_ancestors(quiet, recovery.timeline_path(quiet, 2)) == []


def test_coverage_is_per_timeline_never_merged() -> None:
    """Following timeline 2, segment 6 must come from timeline 2: timeline 1's segment 6 (after the
    branch) does not count, so 'latest' ends at timeline 2's segment 5 and a target in 6 is beyond."""
    arch = polluted_archive()
    path = recovery.timeline_path(arch, 2)
    assert [(s.tli, s.end) for s in path] == [(1, lsn(4, 1000)), (2, None)]
    b = backup("b1", 1, 2, 2)
    cov = recovery.wal_coverage(arch, path, b, None)
    assert cov.complete and cov.last.name == "000000020000000000000005"
    assert [recovery.path_segment(path, n, SEG).name for n in (3, 4)] == [
        "000000010000000000000003", "000000020000000000000004"]
    assert recovery.wal_coverage(arch, path, b, lsn(7)).beyond_archive
    # a hole on timeline 2 is a hole even though timeline 1 has that segment number
    holed = Archive(SEG, {1: frozenset(range(1, 11)), 2: frozenset({4, 6})}, {}, arch.histories)
    cov = recovery.wal_coverage(holed, path, b, None)
    assert [s.name for s in cov.missing] == ["000000020000000000000005"]


def test_backup_after_the_branch_is_not_on_the_copy_timeline() -> None:
    arch = polluted_archive()
    late = backup("b-late", 1, 6, 6, minutes=60)
    early = backup("b-early", 1, 2, 2)
    path2 = recovery.timeline_path(arch, 2)
    assert recovery.choose_backup([early, late], path2, Target()) == early
    with pytest.raises(PlanRefused) as ei:
        recovery.check_backup(late, path2, Target())
    assert ei.value.reason == "backup-off-timeline"
    assert recovery.choose_backup([early, late], recovery.timeline_path(arch, 1), Target()) == late


def test_history_file_missing_is_refused() -> None:
    arch = Archive(SEG, {1: frozenset({1}), 3: frozenset({2})}, {}, {})
    with pytest.raises(PlanRefused) as ei:
        recovery.timeline_path(arch, 3)
    assert ei.value.reason == "history-missing"


def test_partial_tail_counts_only_at_the_end() -> None:
    arch = Archive(SEG, {1: frozenset({1, 2, 3})}, {1: frozenset({4})}, {})
    path = recovery.timeline_path(arch, 1)
    cov = recovery.wal_coverage(arch, path, backup("b", 1, 1, 1), None)
    assert cov.complete and cov.last_is_partial and cov.last.segno == 4


def test_target_before_every_backup() -> None:
    arch = Archive(SEG, {1: frozenset({1, 2, 3})}, {}, {})
    with pytest.raises(PlanRefused) as ei:
        recovery.choose_backup([backup("b", 1, 2, 2, minutes=10)], recovery.timeline_path(arch, 1),
                               Target(time=T0))
    assert ei.value.reason == "before-oldest-backup"


@pytest.mark.parametrize("text,want", [("current", "current"), ("LATEST", "latest"), ("3", 3), ("0x10", 16)])
def test_parse_timeline_option(text: str, want: object) -> None:
    assert recovery.parse_timeline_option(text) == want


@pytest.mark.parametrize("text", ["0", "-1", "newest", "1.5"])
def test_parse_timeline_option_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        recovery.parse_timeline_option(text)


# ---- properties on random timeline trees -------------------------------------------------------
@st.composite
def trees(draw: st.DrawFn) -> tuple[Archive, dict[int, int]]:
    """Timelines 1..k; each t > 1 branched off an earlier one at a random LSN (after its parent began);
    each timeline archived a random subset of segments from where it began."""
    k = draw(st.integers(1, 5))
    begin: dict[int, int] = {1: 0}  # timeline -> first LSN
    histories: dict[int, tuple[HistoryEntry, ...]] = {}
    for t in range(2, k + 1):
        parent = draw(st.integers(1, t - 1))
        switch = draw(st.integers(begin[parent] + 1, begin[parent] + 12 * SEG))
        histories[t] = (*histories.get(parent, ()), HistoryEntry(parent, Lsn(switch), ""))
        begin[t] = switch
    segs = {t: frozenset(n for n in range(begin[t] // SEG, begin[t] // SEG + 16) if draw(st.booleans()) or
                         draw(st.booleans())) for t in range(1, k + 1)}
    return Archive(SEG, segs, {}, histories), begin


@settings(max_examples=300, deadline=None)
@given(trees(), st.data())
def test_paths_are_contiguous_and_end_at_the_followed_timeline(tree: tuple[Archive, dict[int, int]],
                                                               data: st.DataObject) -> None:
    arch, _begin = tree
    t = data.draw(st.sampled_from(sorted(arch.timelines() | {1})))
    path = recovery.timeline_path(arch, t)
    assert path[0].begin == Lsn(0) and path[-1].tli == t and path[-1].end is None
    for a, b in itertools.pairwise(path):
        assert a.end == b.begin and a.tli < b.tli
    # every LSN is held by exactly one span
    probe = Lsn(data.draw(st.integers(0, 40 * SEG)))
    assert sum(1 for s in path if s.holds(probe)) == 1


@settings(max_examples=300, deadline=None)
@given(trees(), st.data())
def test_coverage_reads_only_the_path_timelines(tree: tuple[Archive, dict[int, int]], data: st.DataObject) -> None:
    """What is missing depends only on the archive of the timelines on the path: adding every segment
    of every other timeline changes nothing; every segment read is on the timeline the path says."""
    arch, begin = tree
    t = data.draw(st.sampled_from(sorted(arch.timelines() | {1})))
    path = recovery.timeline_path(arch, t)
    src = data.draw(st.sampled_from(path))
    start = max(src.begin.value, begin[src.tli])
    stop_hi = src.end.value - 1 if src.end is not None else start + 4 * SEG
    start_lsn = data.draw(st.integers(start, max(start, stop_hi)))
    stop_lsn = data.draw(st.integers(start_lsn, max(start_lsn, stop_hi)))
    b = BaseBackup("b", src.tli, Lsn(start_lsn), Lsn(stop_lsn), T0)
    assert recovery.on_path(b, path)
    cov = recovery.wal_coverage(arch, path, b, None)
    on = {s.tli for s in path}
    flooded = Archive(SEG, {tli: (v if tli in on else frozenset(range(0, 64))) for tli, v in
                            {**{x: frozenset() for x in range(1, 7)}, **arch.segments}.items()},
                      {}, arch.histories)
    cov2 = recovery.wal_coverage(flooded, path, b, None)
    assert cov2.missing == cov.missing and cov2.last == cov.last
    for n in range(cov.first.segno, cov.last.segno + 1):
        seg = recovery.path_segment(path, n, SEG)
        assert seg.tli in on
        assert (seg in cov.missing) == (not arch.has(seg))
        span = next(s for s in path if s.tli == seg.tli)
        assert span.begin.value // SEG <= n


@settings(max_examples=200, deadline=None)
@given(trees(), st.data())
def test_chosen_backup_is_the_newest_usable_on_the_path(tree: tuple[Archive, dict[int, int]],
                                                        data: st.DataObject) -> None:
    arch, begin = tree
    tlis = sorted(begin)
    backups = []
    for i in range(data.draw(st.integers(1, 6))):
        tli = data.draw(st.sampled_from(tlis))
        start = data.draw(st.integers(begin[tli], begin[tli] + 20 * SEG))
        backups.append(BaseBackup(f"b{i}", tli, Lsn(start), Lsn(start + data.draw(st.integers(0, 3 * SEG))),
                                  T0 + timedelta(minutes=i)))
    t = data.draw(st.sampled_from(tlis))
    path = recovery.timeline_path(arch, t)
    usable = [b for b in backups if recovery.on_path(b, path)]
    if not usable:
        with pytest.raises(PlanRefused):
            recovery.choose_backup(backups, path, Target())
        return
    chosen = recovery.choose_backup(backups, path, Target())
    assert chosen in usable and all(b.stop_lsn <= chosen.stop_lsn for b in usable)
