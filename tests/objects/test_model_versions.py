"""The pure version model: state at T, restore plans, replication gaps (property tests)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.model.object_versions import (
    ActionKind,
    PlanSummary,
    Version,
    current,
    group_by_key,
    live_at,
    markers_on_top,
    merge_by_key,
    plan_key_restore,
    plan_restore,
    replication_gap,
    replication_lag_seconds,
    same_content,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ids = iter(range(10**9))


def ver(content: str | None, t: int, key: str = "k", storage_class: str = "STANDARD") -> Version:
    """An object version with ``content`` (None = delete marker) at T0 + t seconds."""
    vid = f"v{next(_ids)}"
    when = T0 + timedelta(seconds=t)
    if content is None:
        return Version(key, vid, when, is_delete_marker=True)
    return Version(key, vid, when, size=len(content), etag=f"etag-{content}", storage_class=storage_class)


# one event: (seconds since the previous event, content or None for a delete)
events = st.lists(st.tuples(st.integers(0, 3), st.one_of(st.none(), st.sampled_from(["a", "bb", "ccc", "dd"]))),
                  max_size=8)


def build(evts: list[tuple[int, str | None]], start: int = 0, key: str = "k") -> list[Version]:
    t, out = start, []
    for dt, content in evts:
        t += dt
        out.append(ver(content, t, key))
    return out


def apply(history: list[Version], target: list[Version], action, now: int) -> list[Version]:  # type: ignore[no-untyped-def]
    """What executing one action does to the target's history (a new latest entry)."""
    if action is None:
        return target
    if action.kind is ActionKind.COPY:
        s = action.source
        return [*target, Version(s.key, f"copy{next(_ids)}", T0 + timedelta(seconds=now), size=s.size, etag=s.etag)]
    if action.kind is ActionKind.DELETE:
        return [*target, ver(None, now, action.key)]
    return target


def test_state_at_t_basics() -> None:
    a, b, m, c = ver("a", 10), ver("bb", 20), ver(None, 30), ver("ccc", 40)
    h = [a, b, m, c]
    assert live_at(h, T0) is None
    assert live_at(h, T0 + timedelta(seconds=10)) == a
    assert live_at(h, T0 + timedelta(seconds=25)) == b
    assert live_at(h, T0 + timedelta(seconds=35)) is None  # deleted before T stays deleted
    assert current(h) == c
    assert current([a, m]) is None
    assert markers_on_top([a, m, ver(None, 31)]) and markers_on_top([a, b]) == []
    assert markers_on_top([ver(None, 1)]) == []  # nothing to come back to


def test_plan_cases() -> None:
    at = T0 + timedelta(seconds=25)
    a, b = ver("a", 10), ver("bb", 30)
    # overwritten after T: copy the T version back
    act = plan_key_restore([a, b], [a, b], at)
    assert act is not None and act.kind is ActionKind.COPY and act.source == a
    # created after T: delete
    act = plan_key_restore([b], [b], at)
    assert act is not None and act.kind is ActionKind.DELETE
    # deleted after T: copy back; unchanged: nothing
    assert plan_key_restore([a, ver(None, 30)], [a, ver(None, 30)], at).kind is ActionKind.COPY  # type: ignore[union-attr]
    assert plan_key_restore([a], [a], at) is None
    # deleted before T and still deleted: nothing
    assert plan_key_restore([a, ver(None, 20)], [a, ver(None, 20)], at) is None
    # archived version at T: reported, not copied
    g = ver("a", 5, storage_class="DEEP_ARCHIVE")
    assert plan_key_restore([g, b], [g, b], at).kind is ActionKind.ARCHIVED  # type: ignore[union-attr]
    # GLACIER_IR is instantly readable
    gi = ver("a", 5, storage_class="GLACIER_IR")
    assert plan_key_restore([gi, b], [gi, b], at).kind is ActionKind.COPY  # type: ignore[union-attr]


@settings(max_examples=400, deadline=None)
@given(evts=events, t=st.integers(0, 30))
def test_in_place_plan_reaches_state_at_t_and_is_idempotent(evts: list[tuple[int, str | None]], t: int) -> None:
    h = build(evts)
    at = T0 + timedelta(seconds=t)
    want = live_at(h, at)
    action = plan_key_restore(h, h, at)
    if want is not None and want.archived:
        return
    after = apply(h, h, action, now=100)
    assert same_content(current(after), want)
    # history up to T is untouched, so the state at T is the same and re-planning is empty
    assert live_at(after, at) == want
    assert plan_key_restore(after, after, at) is None


@settings(max_examples=400, deadline=None)
@given(src=events, tgt=events, t=st.integers(0, 30))
def test_plan_into_another_bucket(src: list[tuple[int, str | None]], tgt: list[tuple[int, str | None]], t: int) -> None:
    s, g = build(src), build(tgt)
    at = T0 + timedelta(seconds=t)
    action = plan_key_restore(s, g, at)
    after = apply(s, g, action, now=100)
    assert same_content(current(after), live_at(s, at))
    assert plan_key_restore(s, after, at) is None
    if same_content(current(g), live_at(s, at)):
        assert action is None  # unchanged keys are not copied again


@settings(max_examples=300, deadline=None)
@given(src=events, copied=st.integers(0, 8), junk=events, crash=st.integers(0, 8))
def test_replication_replay_converges(src: list[tuple[int, str | None]], copied: int,
                                      junk: list[tuple[int, str | None]], crash: int) -> None:
    s = build(src)
    # DR: some history the source no longer has, then the first `copied` source entries replayed
    dr = build(junk, key="k") + [Version("k", f"d{next(_ids)}", T0, v.is_delete_marker, size=v.size, etag=v.etag)
                                 for v in s[:copied]]
    gap = replication_gap("k", s, dr)
    # a crash after `crash` copies, then a full re-run
    for v in gap.missing[:crash]:
        dr = [*dr, Version("k", f"d{next(_ids)}", T0, v.is_delete_marker, size=v.size, etag=v.etag)]
    gap = replication_gap("k", s, dr)
    for v in gap.missing:
        dr = [*dr, Version("k", f"d{next(_ids)}", T0, v.is_delete_marker, size=v.size, etag=v.etag)]
    final = replication_gap("k", s, dr)
    assert final.in_sync and not final.missing
    if s:
        assert same_content(dr[-1], s[-1])  # the latest pointer matches


def test_replication_gap_detects_divergence_and_lag() -> None:
    a, b = ver("a", 1), ver("bb", 2)
    planted = ver("zzz", 3)
    gap = replication_gap("k", [a, b], [Version("k", "x", T0, size=1, etag="etag-a"), planted])
    assert gap.diverged and len(gap.missing) == 2
    ok = replication_gap("k", [a, b], [Version("k", "x", T0, size=1, etag="etag-a")])
    assert not ok.diverged and ok.missing == (b,)
    assert replication_lag_seconds([ok], T0 + timedelta(seconds=12)) == 10


def test_same_content_multipart_etags() -> None:
    one = Version("k", "1", T0, size=10, etag="abc")
    mp = Version("k", "2", T0, size=10, etag="def-2")
    assert same_content(one, mp)  # not comparable: size decides
    assert not same_content(one, Version("k", "3", T0, size=10, etag="xyz"))
    assert not same_content(one, Version("k", "4", T0, is_delete_marker=True))
    assert same_content(None, None) and not same_content(one, None)


def test_group_and_merge_streams() -> None:
    listing = [ver("b", 2, "a"), ver("a", 1, "a"), ver("c", 3, "b")]  # newest first within a key
    groups = list(group_by_key(listing))
    assert [k for k, _ in groups] == ["a", "b"] and groups[0][1][0].etag == "etag-a"
    merged = list(merge_by_key(groups, [("a", []), ("c", [ver("x", 1, "c")])]))
    assert [(k, len(s), len(t)) for k, s, t in merged] == [("a", 2, 0), ("b", 1, 0), ("c", 0, 1)]
    summary = PlanSummary()
    at = T0 + timedelta(seconds=1)
    for _k, s, t in merged:
        summary.add(plan_key_restore(s, t, at))
    assert summary.to_dict()["keys_examined"] == 3
    assert [a.kind for a in plan_restore(merged, at)] == [ActionKind.COPY, ActionKind.DELETE]
