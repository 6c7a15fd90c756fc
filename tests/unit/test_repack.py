"""The repack choice (``swarm.model.repack``): restic's greedy rule under an unused-space budget."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm.errors import ConfigError
from swarm.model.repack import Budget, PackUse, choose, parse_budget


def test_parse_budget() -> None:
    assert parse_budget("10%") == Budget(percent=10.0)
    assert parse_budget("0%") == Budget(percent=0.0)
    assert parse_budget("50MB") == Budget(bytes=50_000_000)
    assert parse_budget("1GiB") == Budget(bytes=1 << 30)
    assert parse_budget("0") == Budget(bytes=0)
    for bad in ("ten", "110%", "5 parsecs", ""):
        with pytest.raises(ConfigError):
            parse_budget(bad)


def test_greedy_by_unused_bytes() -> None:
    packs = [PackUse("a", 1008, 1000), PackUse("b", 1008, 100), PackUse("c", 1008, 500), PackUse("k", 1008, 0,
                                                                                                  candidate=False)]
    c = choose(packs, Budget(bytes=600))
    assert [p.key for p in c.chosen] == ["b", "c"]  # 900 + 500 unused; then 1000 left... until <= 600
    assert c.unused_after <= 600 or all(p in c.chosen for p in packs if p.candidate and p.unused)
    assert c.freed == 1400 and c.rewritten == 108 + 508
    assert choose(packs, Budget(percent=0)).chosen == (packs[1], packs[2])  # "a" has no unused byte
    assert choose(packs, Budget(percent=100)).chosen == ()


uses = st.lists(st.builds(lambda size, live_share, cand, i: PackUse(f"p{i}", size + 8, int(size * live_share), cand),
                          st.integers(0, 10**6), st.floats(0, 1), st.booleans(), st.integers(0, 10**6)),
                max_size=30, unique_by=lambda p: p.key)
budgets = st.one_of(st.builds(lambda p: Budget(percent=p), st.floats(0, 100)),
                    st.builds(lambda b: Budget(bytes=b), st.integers(0, 10**7)))


@settings(max_examples=300, deadline=None)
@given(uses, budgets)
def test_choice_invariants(packs: list[PackUse], budget: Budget) -> None:
    c = choose(packs, budget)
    chosen = {p.key for p in c.chosen}
    # only candidates with unused bytes; within the budget, or every candidate taken
    assert all(p.candidate and p.unused > 0 for p in c.chosen)
    assert c.unused_after <= c.limit or chosen == {p.key for p in packs if p.candidate and p.unused > 0}
    assert c.unused_after == c.unused_before - c.freed
    # minimal: without the last chosen pack the budget was not met yet
    if c.chosen:
        assert c.unused_after + c.chosen[-1].unused > c.limit
    # greedy: every pack left out has no more unused bytes than the least one chosen
    if c.chosen:
        least = min(p.unused for p in c.chosen)
        assert all(p.unused <= least for p in packs if p.candidate and p.key not in chosen)
    # deterministic, independent of order
    assert choose(list(reversed(packs)), budget) == c
    # a share: what is left is within p of the bytes left (when the budget is met)
    if budget.percent is not None and c.unused_after <= c.limit and budget.percent < 100:
        left_total = c.total - c.freed
        assert c.unused_after <= left_total * budget.percent / 100 + 1
