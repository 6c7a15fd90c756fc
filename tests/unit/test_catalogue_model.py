"""Property tests of rollback detection (``swarm.model.catalogue``): pure functions."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swarm.model.catalogue import CatalogueState, accept, advance, findings, partial_progress

ids = st.sets(st.sampled_from([f"b{i}" for i in range(8)]))
gens = st.dictionaries(st.sampled_from(["p1", "p2", "p3"]), st.integers(1, 5))
progress = st.dictionaries(st.sampled_from(["w1.partial", "w2.partial"]), st.integers(0, 100))


@st.composite
def states(draw: st.DrawFn) -> CatalogueState:
    return CatalogueState(frozenset(draw(ids)), frozenset(draw(ids)), draw(gens), draw(progress))


@given(states())
def test_a_state_seen_again_unchanged_has_nothing_new(s: CatalogueState) -> None:
    remembered = advance(CatalogueState(), s)
    # only what is wrong in s itself (manifests with tombstones) is reported
    replayed = {("backup-replayed", b) for b in s.backups & s.tombstones}
    assert {(f.kind, f.name) for f in findings(remembered, s)} == replayed


@given(states(), states())
def test_growth_is_never_reported(seen: CatalogueState, extra: CatalogueState) -> None:
    """More backups, more tombstones for backups that are gone, higher generations and more WAL:
    the normal life of a repository reports nothing."""
    seen = CatalogueState(seen.backups - seen.tombstones, seen.tombstones, seen.restore_points, seen.partials)
    pruned = seen.backups & extra.tombstones
    now = CatalogueState((seen.backups - pruned) | (extra.backups - extra.tombstones - seen.tombstones),
                         seen.tombstones | extra.tombstones,
                         {k: max(v, extra.restore_points.get(k, 0)) for k, v in
                          {**extra.restore_points, **seen.restore_points}.items()},
                         {k: max(v, extra.partials.get(k, 0)) for k, v in {**extra.partials, **seen.partials}.items()})
    assert findings(seen, now) == []


@given(states(), st.data())
def test_every_shrink_is_reported(seen: CatalogueState, data: st.DataObject) -> None:
    seen = CatalogueState(seen.backups - seen.tombstones, seen.tombstones, seen.restore_points, seen.partials)
    gone = data.draw(st.sets(st.sampled_from(sorted(seen.backups))) if seen.backups else st.just(set()))
    lost_tombs = data.draw(st.sets(st.sampled_from(sorted(seen.tombstones))) if seen.tombstones else st.just(set()))
    older = {k: v - 1 for k, v in seen.restore_points.items()}
    shorter = {k: v - 1 for k, v in seen.partials.items() if v > 0}
    now = CatalogueState(seen.backups - gone, seen.tombstones - lost_tombs, older, shorter)
    got = {(f.kind, f.name) for f in findings(seen, now)}
    assert {("backup-deleted", b) for b in gone} <= got
    assert {("tombstone-deleted", b) for b in lost_tombs} <= got
    assert {("restore-point-rolled-back", k) for k in older} <= got
    assert {("partial-rolled-back", k) for k in shorter} <= got


@given(states(), states())
def test_advance_never_forgets(seen: CatalogueState, now: CatalogueState) -> None:
    new = advance(seen, now)
    assert seen.tombstones | now.tombstones == new.tombstones
    assert (seen.backups - now.tombstones - seen.tombstones) <= new.backups  # a vanished backup stays reported
    assert all(new.restore_points[k] >= v for k, v in seen.restore_points.items())
    assert all(new.partials[k] >= max(v, seen.partials.get(k, 0)) for k, v in now.partials.items())
    # and what it remembers reports the same deletions again next time
    again = {(f.kind, f.name) for f in findings(new, now) if f.kind == "backup-deleted"}
    first = {(f.kind, f.name) for f in findings(seen, now) if f.kind == "backup-deleted"}
    assert first <= again


@given(states(), states())
def test_accept_clears_everything(seen: CatalogueState, now: CatalogueState) -> None:
    now = CatalogueState(now.backups - now.tombstones, now.tombstones, now.restore_points, now.partials)
    assert findings(accept(now), now) == []


@given(states())
def test_state_round_trips_through_json(s: CatalogueState) -> None:
    assert CatalogueState.from_dict(s.to_dict()) == s


@given(st.binary(max_size=64), st.integers(0, 64))
def test_partial_progress_ignores_the_zero_tail(wal: bytes, pad: int) -> None:
    assert partial_progress(wal + b"\0" * pad) == partial_progress(wal) == len(wal.rstrip(b"\0"))
