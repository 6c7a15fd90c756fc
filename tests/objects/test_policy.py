"""Bucket policy as code: the schema, and apply/check against SeaweedFS and moto (AWS shapes)."""
from __future__ import annotations

import secrets

import pytest

from swarm.devstack.seaweed import SeaweedServer
from swarm.errors import ConfigError
from swarm.model.bucket_policy import (
    DEFAULT_POLICY_TOML,
    Status,
    compare_lifecycle,
    default_policy,
    parse_policy,
)
from swarm.services.objects.policy import apply_policy, check_policy
from swarm.sources.objects import Bucket, BucketConfig
from swarm.storage.s3 import make_client

from .conftest import new_bucket


def statuses(res) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r["rule"]: r["status"] for r in res.to_dict()["rules"]}


def test_default_policy_reproduces_the_seed_table() -> None:
    p = default_policy()
    assert p.versioning and p.replication.enabled and p.replication.storage_class == "STANDARD_IA"
    rules = {r.id: r.to_s3() for r in p.lifecycle}
    audit = rules["audit-retention"]
    assert audit["Filter"] == {"Tag": {"Key": "swarm-class", "Value": "audit"}}
    assert audit["Transitions"] == [{"Days": 90, "StorageClass": "GLACIER_IR"},
                                    {"Days": 365, "StorageClass": "DEEP_ARCHIVE"}]
    assert audit["Expiration"] == {"Days": 2555}
    assert rules["conversations-retention"]["Expiration"] == {"Days": 365}
    nc = rules["noncurrent-and-incomplete"]
    assert nc["NoncurrentVersionExpiration"] and nc["AbortIncompleteMultipartUpload"]
    assert not p.object_lock.enabled


@pytest.mark.parametrize("text,message", [
    ("[lifecycle]\nrules = [{id = 'x'}]", "no action"),
    ("[[lifecycle.rules]]\nid = 'x'\nexpire_days = 0", "days >= 1"),
    ("[[lifecycle.rules]]\nid = 'x'\nexpires = 3", "unknown field"),
    ("[object_lock]\nmode = 'SOMETIMES'", "GOVERNANCE or COMPLIANCE"),
    ("[lifecyle]", "unknown section"),
    ("not toml [", "not valid TOML"),
])
def test_bad_policies_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_policy(text)
    assert message in exc.value.message


def test_prefix_and_tag_filter_and_drift_difference() -> None:
    p = parse_policy("[[lifecycle.rules]]\nid='r'\nprefix='pipeline_runs/'\ntags={a='1'}\nexpire_days=5")
    assert p.lifecycle[0].to_s3()["Filter"] == {"And": {"Prefix": "pipeline_runs/",
                                                        "Tags": [{"Key": "a", "Value": "1"}]}}
    actual = [{"ID": "r", "Status": "Enabled", "Filter": {"And": {"Prefix": "pipeline_runs/",
                                                                 "Tags": [{"Key": "a", "Value": "1"}]}},
               "Expiration": {"Days": 9}}, {"ID": "stray", "Status": "Enabled", "Filter": {},
                                            "Expiration": {"Days": 1}}]
    reports = {r.name: r for r in compare_lifecycle(p, actual, transitions_supported=True)}
    assert reports["lifecycle:r"].status is Status.DRIFTED and "Expiration" in reports["lifecycle:r"].difference
    assert reports["lifecycle:stray"].status is Status.DRIFTED


def test_seaweedfs_detects_unsupported_transitions_and_replication(seaweed: SeaweedServer) -> None:
    b = new_bucket(seaweed, versioned=False, prefix="pol")
    policy = default_policy()
    before = check_policy(b, policy, dr_bucket="dr-bucket")
    st = statuses(before)
    assert st["versioning"] == "drifted" and st["lifecycle:conversations-retention"] == "drifted"
    dry = apply_policy(b, policy, dr_bucket="dr-bucket", dry_run=True)
    assert statuses(dry)["versioning"] == "would-apply" and b.versioning() is None  # nothing changed
    res = apply_policy(b, policy, dr_bucket="dr-bucket")
    st = statuses(res)
    assert st["versioning"] == "applied"
    assert st["lifecycle:audit-retention"] == "unsupported"  # transitions → 501, expiration applied
    assert st["lifecycle:conversations-retention"] == "applied"
    assert st["replication"] == "unsupported"
    assert res.capabilities == {"lifecycle_transitions": False, "replication_api": False}
    audit = next(r for r in res.to_dict()["rules"] if r["rule"] == "lifecycle:audit-retention")
    assert "instead" in audit
    after = check_policy(b, policy, dr_bucket="dr-bucket")
    assert not after.drifted, after.to_dict()
    assert statuses(after)["lifecycle:audit-retention"] == "unsupported"
    assert {r.get("ID") for r in b.lifecycle()} == {"audit-retention", "conversations-retention",
                                                    "noncurrent-and-incomplete"}  # probe rule not left behind
    # drift: someone changes a rule
    rules = b.lifecycle()
    for r in rules:
        if r["ID"] == "conversations-retention":
            r["Expiration"] = {"Days": 30}
    b.try_put_lifecycle(rules)
    drift = check_policy(b, policy, dr_bucket="dr-bucket")
    assert drift.drifted and statuses(drift)["lifecycle:conversations-retention"] == "drifted"


def test_object_lock_policy_on_seaweedfs(seaweed: SeaweedServer) -> None:
    policy = parse_policy(DEFAULT_POLICY_TOML.replace("enabled = false ", "enabled = true "))
    assert policy.object_lock.enabled
    b = new_bucket(seaweed, lock=True, prefix="lockpol")
    res = apply_policy(b, policy, dr_bucket=None)
    assert statuses(res)["object_lock"] == "applied"
    assert statuses(check_policy(b, policy, dr_bucket=None))["object_lock"] == "in-sync"


def test_moto_applies_everything_natively(moto_endpoint: str) -> None:
    client = make_client(moto_endpoint, "testing", "testing")
    name, dr = "aws-" + secrets.token_hex(4), "aws-dr-" + secrets.token_hex(4)
    client.create_bucket(Bucket=name)
    client.create_bucket(Bucket=dr)
    b = Bucket(BucketConfig(name, moto_endpoint, "testing", "testing"))
    policy = default_policy()
    res = apply_policy(b, policy, dr_bucket=dr)
    st = statuses(res)
    assert set(st.values()) <= {"applied", "in-sync"}, res.to_dict()
    assert st["replication"] == "applied" and st["lifecycle:audit-retention"] == "applied"
    assert res.capabilities["lifecycle_transitions"] and res.capabilities["replication_api"]
    check = check_policy(b, policy, dr_bucket=dr)
    assert not check.drifted and set(statuses(check).values()) == {"in-sync"}, check.to_dict()
    rules = {r["ID"]: r for r in b.lifecycle()}
    assert rules["audit-retention"]["Transitions"][0]["StorageClass"] == "GLACIER_IR"
    # drift on the replication destination
    client.put_bucket_replication(Bucket=name, ReplicationConfiguration=policy.replication.to_s3("elsewhere"))
    assert statuses(check_policy(b, policy, dr_bucket=dr))["replication"] == "drifted"
