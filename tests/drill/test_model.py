"""The drill's pure decisions: the ladder's verdict, RTO/RPO against the tier, and scratch names."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.model.drill import (
    RUNGS,
    TIERS,
    Rung,
    bucket_name,
    compare_counts,
    db_name,
    dir_name,
    drill_id_of,
    exit_code,
    judge,
    ladder_verdict,
    new_drill_id,
    rpo_seconds,
    tier,
)

outcome = st.sampled_from([True, False, None])


@given(st.lists(outcome, min_size=len(RUNGS), max_size=len(RUNGS)))
def test_ladder_validated_iff_every_rung_held(oks: list[bool | None]) -> None:
    v = ladder_verdict([Rung(n, ok) for n, ok in zip(RUNGS, oks, strict=True)])
    assert v.validated == all(ok is True for ok in oks)
    if False in oks:
        assert v.failed == RUNGS[oks.index(False)]  # the first failure is named
    else:
        assert v.failed is None
    assert set(v.not_run) == {n for n, ok in zip(RUNGS, oks, strict=True) if ok is None}


@given(st.sets(st.sampled_from(RUNGS)))
def test_a_missing_rung_is_never_validated(present: set[str]) -> None:
    v = ladder_verdict([Rung(n, True) for n in present])
    assert v.validated == (present == set(RUNGS))


durations = st.one_of(st.none(), st.floats(min_value=0, max_value=10 * 86400, allow_nan=False))


@given(st.booleans(), durations, durations, st.sampled_from(sorted(TIERS)))
def test_pass_only_when_validated_and_within_targets(validated: bool, rto: float | None, rpo: float | None,
                                                     name: str) -> None:
    t = tier(name)
    v = judge(validated, rto, rpo, t)
    within = ((t.rto_s is None or (rto is not None and rto <= t.rto_s))
              and (t.rpo_s is None or (rpo is not None and rpo <= t.rpo_s)))
    assert v.passed == (validated and within)
    assert exit_code(v) == (0 if v.passed else 1)
    assert bool(v.reasons) == (not v.passed)


def test_tier_targets() -> None:
    assert (tier("enterprise").rto_s, tier("enterprise").rpo_s) == (4 * 3600, 3600)
    assert (tier("team").rto_s, tier("team").rpo_s) == (86400, 86400)
    assert judge(True, 10**9, 10**9, tier("community")).passed  # community: validation alone
    assert not judge(True, 10.0, 3601.0, tier("enterprise")).passed
    assert "RPO" in judge(True, 10.0, 3601.0, tier("enterprise")).reasons[0]
    with pytest.raises(ValueError):
        tier("gold")


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.floats(min_value=-86400, max_value=86400, allow_nan=False))
def test_rpo_is_start_minus_point_never_negative(start: datetime, delta: float) -> None:
    s = start.replace(tzinfo=UTC)
    assert rpo_seconds(s, s - timedelta(seconds=delta)) == pytest.approx(max(0.0, delta), abs=1e-5)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
       st.text(alphabet="0123456789abcdef", min_size=6, max_size=6))
def test_names_carry_the_drill_id(now: datetime, rand: str) -> None:
    did = new_drill_id(now, rand)
    for name in (bucket_name(did), db_name(did), dir_name(did)):
        assert drill_id_of(name) == did
    assert 3 <= len(bucket_name(did)) <= 63 and bucket_name(did) == bucket_name(did).lower()
    assert db_name(did).isidentifier()
    assert drill_id_of("swarm-artefacts") is None and drill_id_of("swarm_drill_x") is None


def test_compare_counts() -> None:
    assert compare_counts({"a": 3, "b": 2}, {"a": 3, "b": 2, "c": 9}) == {}
    assert compare_counts({"a": 3, "b": 2}, {"a": 4}) == {"a": {"expected": 3, "found": 4},
                                                           "b": {"expected": 2, "found": 0}}
    assert compare_counts({"a": 3}, {"a": 4}, tolerance=1) == {}
