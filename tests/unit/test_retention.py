"""Retention: the pure decision (``swarm.model.retention``), its invariants as properties, and the
``[retention]`` table's bad input."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.model.manifest import Manifest, ObjectEntry
from swarm.model.refs import DataRef, Refs, WalRange, needed
from swarm.model.retention import (
    DEFAULT_POLICY,
    BaseBackup,
    Candidate,
    DataListing,
    Duration,
    KindPolicy,
    Policy,
    PolicyError,
    StoredFile,
    data_removals,
    decide,
    parse_duration,
    policy_from_toml,
    wal_removals,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
KINDS = ["pg-logical", "pg-physical", "state", "objects"]

durations = st.builds(Duration, st.integers(1, 40), st.sampled_from(["h", "d", "w", "mo", "y"]))
kind_policies = st.builds(KindPolicy, keep_within=st.none() | durations, keep_last=st.integers(0, 4),
                          keep_daily=st.integers(0, 5), keep_weekly=st.integers(0, 4),
                          keep_monthly=st.integers(0, 3), keep_yearly=st.integers(0, 2))
policies = st.builds(lambda kinds, tags: Policy(kinds, keep_tags=tags),
                     st.dictionaries(st.sampled_from(KINDS), kind_policies, max_size=4),
                     st.sampled_from([frozenset({"*"}), frozenset({"legal-hold"}), frozenset()]))


@st.composite
def candidates(draw: st.DrawFn) -> list[Candidate]:
    n = draw(st.integers(0, 25))
    out = []
    for i in range(n):
        age = draw(st.integers(-2, 400 * 24))  # hours; a few in the future
        out.append(Candidate(id=f"b{i:03d}", kind=draw(st.sampled_from([*KINDS, "set"])),
                             time=NOW - timedelta(hours=age), complete=draw(st.booleans() | st.just(True)),
                             verified=draw(st.sampled_from([None, None, "good", "failed"])),
                             tags=frozenset(draw(st.lists(st.sampled_from(["legal-hold", "x"]), max_size=1)))))
    ids = [c.id for c in out]
    for i, c in enumerate(out):  # a set names up to three other backups as its parts
        if c.kind == "set" and ids:
            parts = tuple(draw(st.lists(st.sampled_from(ids), max_size=3, unique=True)))
            out[i] = Candidate(c.id, c.kind, c.time, c.complete, c.verified, c.tags, tuple(p for p in parts
                                                                                         if p != c.id))
    return out


def kept_ids(decisions: list) -> set[str]:
    return {d.id for d in decisions if d.keep}


@settings(max_examples=300)
@given(candidates(), policies)
def test_never_removes_the_newest_good_backup_of_a_kind(backups: list[Candidate], policy: Policy) -> None:
    kept = kept_ids(decide(backups, policy, NOW))
    for kind in {b.kind for b in backups}:
        of_kind = sorted((b for b in backups if b.kind == kind), key=lambda b: (b.time, b.id))
        good = [b for b in of_kind if b.counts and b.verified == "good"]
        counting = [b for b in of_kind if b.counts]
        floor = (good or counting or [b for b in of_kind if b.complete] or of_kind)[-1]
        assert floor.id in kept, (kind, floor)


@settings(max_examples=300)
@given(candidates(), policies)
def test_deterministic_whatever_the_order(backups: list[Candidate], policy: Policy) -> None:
    a = decide(backups, policy, NOW)
    b = decide(list(reversed(backups)), policy, NOW)
    assert a == b
    assert {d.id for d in a} == {b.id for b in backups}


@settings(max_examples=300)
@given(candidates(), policies)
def test_applying_twice_removes_nothing_more(backups: list[Candidate], policy: Policy) -> None:
    kept = kept_ids(decide(backups, policy, NOW))
    again = decide([b for b in backups if b.id in kept], policy, NOW)
    assert all(d.keep for d in again)


@settings(max_examples=300)
@given(candidates(), policies)
def test_tagged_backups_never_removed(backups: list[Candidate], policy: Policy) -> None:
    kept = kept_ids(decide(backups, policy, NOW))
    for b in backups:
        if policy.protects(b.tags):
            assert b.id in kept


@settings(max_examples=300)
@given(candidates(), policies)
def test_failed_verify_never_counts_toward_quotas(backups: list[Candidate], policy: Policy) -> None:
    for d in decide(backups, policy, NOW):
        b = next(x for x in backups if x.id == d.id)
        if not b.counts:
            quota = [r for r in d.reasons if r.split(" ")[0] in ("last", "daily", "weekly", "monthly", "yearly")]
            assert not quota, d


@settings(max_examples=200)
@given(candidates(), policies)
def test_failing_a_verify_never_makes_a_good_backup_go(backups: list[Candidate], policy: Policy) -> None:
    """Marking one backup failed can only free quota for others: no *counting* backup that was kept
    by a quota loses it... except through the floor moving; what must hold: the set of counting
    backups kept by quotas among the rest never shrinks."""
    if not backups:
        return
    target = backups[0]
    flipped = [Candidate(b.id, b.kind, b.time, b.complete, "failed", b.tags) if b.id == target.id else b
               for b in backups]
    before = {d.id for d in decide(backups, policy, NOW) if d.keep and d.id != target.id
              and any(r.split(" ")[0] in ("last", "daily", "weekly", "monthly", "yearly", "within")
                      for r in d.reasons)}
    after = kept_ids(decide(flipped, policy, NOW))
    # a quota slot the failed backup held passes to an older one; nothing kept by a rule is dropped
    assert before <= after | {target.id}


def test_quotas_pick_newest_per_period() -> None:
    days = [Candidate(f"d{i}", "pg-logical", NOW - timedelta(days=i, hours=h)) for i in range(10) for h in (1, 5)]
    policy = Policy({"pg-logical": KindPolicy(keep_daily=3)})
    kept = kept_ids(decide(days, policy, NOW))
    newest_per_day = sorted(days, key=lambda c: c.time, reverse=True)
    assert len(kept) == 3
    assert newest_per_day[0].id in kept


def test_failed_backup_gives_its_slot_to_the_previous_one() -> None:
    a = Candidate("a", "pg-logical", NOW - timedelta(days=2), verified="good")
    b = Candidate("b", "pg-logical", NOW - timedelta(days=1), verified="failed")
    decisions = {d.id: d for d in decide([a, b], Policy({"pg-logical": KindPolicy(keep_last=1)}), NOW)}
    assert decisions["a"].keep and not decisions["b"].keep
    assert "failed verify" in decisions["b"].reasons[0]


def test_newest_verified_kept_over_newer_unverified() -> None:
    old = Candidate("old", "pg-physical", NOW - timedelta(days=300), verified="good")
    new = Candidate("new", "pg-physical", NOW - timedelta(days=200))
    policy = Policy({"pg-physical": KindPolicy(keep_within=Duration(1, "d"))})
    decisions = {d.id: d for d in decide([old, new], policy, NOW)}
    assert decisions["old"].keep and "newest verified" in decisions["old"].reasons[0]
    assert not decisions["new"].keep


def test_unknown_kind_is_kept_and_until_is_given() -> None:
    s = Candidate("s", "set", NOW - timedelta(days=900))
    x = Candidate("x", "pg-logical", NOW - timedelta(days=3))
    d = {d.id: d for d in decide([s, x], Policy({"pg-logical": KindPolicy(keep_within=Duration(30, "d"))}), NOW)}
    assert d["s"].keep and "no retention rules" in d["s"].reasons[0]
    assert d["x"].until == NOW - timedelta(days=3) + timedelta(days=30) or d["x"].until is None


# ---- durations and the TOML table ---------------------------------------------------------------------
@pytest.mark.parametrize("text,expected", [("36h", NOW - timedelta(hours=36)), ("30d", NOW - timedelta(days=30)),
                                           ("12w", NOW - timedelta(weeks=12)),
                                           ("3mo", datetime(2026, 8, 27, 12, tzinfo=UTC)),
                                           ("7y", datetime(2019, 11, 27, 12, tzinfo=UTC))])
def test_durations(text: str, expected: datetime) -> None:
    assert parse_duration(text).before(NOW) == expected


def test_month_end_is_clamped() -> None:
    assert Duration(1, "mo").before(datetime(2026, 3, 31, tzinfo=UTC)) == datetime(2026, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize("table,key", [
    ({"pg-logical": {"keep_within": "30 days"}}, "retention.pg-logical.keep_within"),
    ({"pg-logical": {"keep_within": "30m"}}, "retention.pg-logical.keep_within"),
    ({"pg-logical": {"keep_forever": 1}}, "retention.pg-logical.keep_forever"),
    ({"pg-logical": {"keep_last": -1}}, "retention.pg-logical.keep_last"),
    ({"pg-logical": {"keep_last": "3"}}, "retention.pg-logical.keep_last"),
    ({"wal": {"window": "7"}}, "retention.wal.window"),
    ({"wal": {"windo": "7d"}}, "retention.wal.windo"),
    ({"colour": "blue"}, "retention.colour"),
    ({"pg-logical": {"keep_last": 0}}, "retention.pg-logical"),
    ({"safety_age": "soon"}, "retention.safety_age"),
])
def test_bad_tables_name_the_key(table: dict, key: str) -> None:
    with pytest.raises(PolicyError) as exc:
        policy_from_toml(table)
    assert exc.value.key == key


def test_a_kind_table_replaces_the_default_entirely() -> None:
    p = policy_from_toml({"pg-logical": {"keep_daily": 7}, "wal": {"window": "3d"}, "keep_tags": ["legal-hold"]})
    assert p.kinds["pg-logical"] == KindPolicy(keep_daily=7)
    assert p.kinds["pg-physical"] == DEFAULT_POLICY.kinds["pg-physical"]
    assert p.wal_window == Duration(3, "d") and p.keep_tags == frozenset({"legal-hold"})
    assert policy_from_toml(None) == DEFAULT_POLICY


# ---- what may be deleted ----------------------------------------------------------------------------
def _seg(tli: int, n: int) -> str:
    return f"{tli:08X}{n >> 8:08X}{n & 0xFF:08X}"


def _manifest(i: int, kind: str, packs: list[tuple[str, str]], dek: str, wal: list[WalRange] | None = None,
              objs: tuple[str, ...] = ("a",)) -> Manifest:
    bid = f"202611{i:02d}T000000Z-{kind}-{i:06x}"
    refs = Refs.of(packs=(DataRef(*p) for p in packs), deks=[dek], wal=wal or [])
    return Manifest(id=bid, kind=kind, started_at=f"2026-11-{i:02d}T00:00:00Z", finished_at="x", dek_id=dek,
                    objects=tuple(ObjectEntry(o, 1, 1, "0" * 64, "0" * 64) for o in objs), source={},
                    tool_version="t", refs=refs)


@st.composite
def repositories(draw: st.DrawFn) -> tuple[list[Manifest], set[str]]:
    n = draw(st.integers(1, 8))
    ms: list[Manifest] = []
    for i in range(1, n + 1):
        bid = f"202611{i:02d}T000000Z-pg-physical-{i:06x}"
        packs = [(bid, f"packs/{k:06d}.pack") for k in range(draw(st.integers(0, 2)))]
        for m in ms:  # reuse packs of earlier backups
            for p in (m.refs.packs if m.refs else ()):
                if draw(st.booleans()):
                    packs.append((p.backup_id, p.name))
        ms.append(_manifest(i, "pg-physical", packs, f"dek-{i:016x}", objs=("tree.json", *[p[1] for p in packs
                                                                                          if p[0] == bid])))
    kept = {m.id for m in ms if draw(st.booleans())}
    return ms, kept


@settings(max_examples=300)
@given(repositories(), st.integers(0, 48))
def test_never_removes_data_a_kept_backup_references(repo: tuple[list[Manifest], set[str]], cut_h: int) -> None:
    ms, kept = repo
    need = needed(m for m in ms if m.id in kept)
    old = NOW - timedelta(days=10)
    data: dict[str, dict[str, StoredFile]] = {}
    for m in ms:
        for o in m.objects:
            data.setdefault(m.id, {})[o.name] = StoredFile(o.name, 1, old)
    data["20261130T000000Z-state-00beef"] = {"x": StoredFile("x", 5, old), "y": StoredFile("y", 5, NOW)}
    deks = {m.dek_id: StoredFile(m.dek_id, 1, old) for m in ms}
    removed = {m.id: m.dek_id for m in ms if m.id not in kept}
    listing = DataListing(data, deks, frozenset(kept), removed)
    cutoff = NOW - timedelta(hours=cut_h)
    out = data_removals(listing, need, cutoff)
    for r in out:
        if r.what == "data":
            bid, name = r.name.split("/", 1)
            assert not need.needs_data(bid, name)
            assert bid not in kept
        else:
            assert r.name not in need.deks
    names = {r.name for r in out}
    assert "20261130T000000Z-state-00beef/y" not in names  # younger than the cutoff: a live writer's
    assert ("20261130T000000Z-state-00beef/x" in names) == (old < cutoff)
    # applying twice: what remains needs no further removal
    left = {b: {n: f for n, f in objs.items() if f"{b}/{n}" not in names} for b, objs in data.items()}
    left_deks = {k: f for k, f in deks.items() if k not in names}
    again = data_removals(DataListing(left, left_deks, frozenset(kept), {}, frozenset(removed)), need, cutoff)
    assert again == []


@settings(max_examples=300)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=40, unique=True), st.lists(st.integers(0, 60), max_size=3),
       st.integers(1, 20))
def test_wal_kept_from_the_oldest_kept_base_backup(segs: list[int], bases: list[int], window_days: int) -> None:
    files = [StoredFile(_seg(1, n), 16, NOW - timedelta(days=61 - n)) for n in segs]
    files.append(StoredFile("00000002.history", 1, NOW - timedelta(days=100)))
    kept = [BaseBackup(f"b{n}", 1, _seg(1, n), _seg(1, n + 1)) for n in bases]
    ranges = [WalRange(1, b.start_wal, b.stop_wal) for b in kept]
    need = needed([_manifest(1, "pg-physical", [], "dek-0000000000000001", ranges)])
    window = Duration(window_days, "d")
    out = {r.name for r in wal_removals(files, kept, need, window, NOW)}
    assert "00000002.history" not in out
    oldest = min(bases) if bases else None
    for f in files[:-1]:
        n = int(f.name[16:], 16)
        if oldest is not None and n >= oldest:
            assert f.name not in out  # PITR from the oldest kept base backup
        elif f.modified and f.modified >= window.before(NOW):
            assert f.name not in out  # within the window
        else:
            assert f.name in out  # before every kept base and older than the window
    # twice: nothing more
    left = [f for f in files if f.name not in out]
    assert wal_removals(left, kept, need, window, NOW) == []


def test_partial_goes_once_its_segment_is_archived() -> None:
    files = [StoredFile(_seg(1, 5) + ".partial", 3, NOW), StoredFile(_seg(1, 5), 16, NOW),
             StoredFile(_seg(1, 6) + ".partial", 3, NOW)]
    out = wal_removals(files, [BaseBackup("b", 1, _seg(1, 1), _seg(1, 2))], needed([]), Duration(7, "d"), NOW)
    assert [r.name for r in out] == [_seg(1, 5) + ".partial"]


@given(candidates(), policies)
def test_a_kept_set_keeps_its_parts(backups: list[Candidate], policy: Policy) -> None:
    decided = {d.id: d for d in decide(backups, policy, NOW)}
    for c in backups:
        if decided[c.id].keep:
            for part in c.parts:
                assert decided[part].keep and any(c.id in r for r in decided[part].reasons)
