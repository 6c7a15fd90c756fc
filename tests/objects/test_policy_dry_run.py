"""``objects policy apply --dry-run`` tells the truth: every rule it calls ``would-apply`` is
``applied`` by the real apply, and what apply reports ``unsupported`` the dry run reports
``unsupported`` too (probed the same way, the bucket left as it was)."""
from __future__ import annotations

import pytest

from swarm.devstack.seaweed import SeaweedServer
from swarm.model.bucket_policy import DEFAULT_POLICY_TOML, default_policy, parse_policy
from swarm.services.objects.policy import apply_policy

from .conftest import new_bucket

EXPECTED = {"applied": "would-apply", "in-sync": "in-sync", "unsupported": "unsupported", "drifted": "drifted"}


def statuses(res) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r["rule"]: r["status"] for r in res.to_dict()["rules"]}


def _snapshot(b):  # type: ignore[no-untyped-def]
    return b.versioning(), b.lifecycle(), b.object_lock(), b.replication()


@pytest.mark.parametrize("case", ["unversioned", "versioned", "lock-wanted-on-plain-bucket", "stray-rule"])
def test_dry_run_predicts_apply_rule_by_rule(seaweed: SeaweedServer, case: str) -> None:
    policy = default_policy()
    if case == "lock-wanted-on-plain-bucket":
        policy = parse_policy(DEFAULT_POLICY_TOML.replace("enabled = false ", "enabled = true "))
        assert policy.object_lock.enabled
    b = new_bucket(seaweed, versioned=case != "unversioned", prefix="dry")
    if case == "stray-rule":
        assert b.try_put_lifecycle([{"ID": "stray", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                                     "Expiration": {"Days": 1}}])
    before = _snapshot(b)
    dry = apply_policy(b, policy, dr_bucket="dr-bucket", dry_run=True)
    assert _snapshot(b) == before  # the dry run changed nothing
    real = apply_policy(b, policy, dr_bucket="dr-bucket")
    want = {rule: EXPECTED[status] for rule, status in statuses(real).items()}
    assert statuses(dry) == want, (dry.to_dict(), real.to_dict())
    assert dry.capabilities == real.capabilities
    if case == "stray-rule":
        assert statuses(real)["lifecycle:stray"] == "applied"  # removed, and said so
        assert "stray" not in {r.get("ID") for r in b.lifecycle()}
