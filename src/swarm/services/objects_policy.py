"""Apply and check a bucket protection policy (``model.bucket_policy``).

Capabilities are detected by trying, never assumed from the server's name:

* lifecycle: ``apply`` puts the full rule set; if the backend answers 501 / NotImplemented it
  retries without storage-class transitions and reports those parts unsupported.
  ``check`` is read only except for one probe, made only when a rule on the bucket lacks its
  transitions: it re-puts the bucket's *current* rules plus a probe rule with a far-off
  transition on the prefix ``.swarm-probe/``. A 501 proves the backend refuses transitions
  (nothing changed); an acceptance proves it supports them, and the current rules are put
  back at once (so the bucket is as it was), and the missing transitions are drift.
* replication: ``apply`` tries PutBucketReplication; 409 / 501 / NotImplemented means the
  backend has none, and replication is then ours (``swarm admin objects replicate``).
  ``check`` reads the configuration; if there is none it probes the same way and deletes
  the configuration again if the probe was accepted.
* object lock: applied as the bucket's default retention; a bucket created without object
  lock is reported with the fix (AWS allows enabling it on a versioned bucket; others need a
  new bucket).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from swarm.model.bucket_policy import (
    BucketPolicy,
    RuleReport,
    Status,
    compare_lifecycle,
    compare_lock,
    compare_replication,
    compare_versioning,
    normalize_rule,
)
from swarm.sources.objects import Bucket

# Enabled (SeaweedFS accepts a *disabled* transition rule and only refuses enabled ones), on a
# prefix swarm never writes, with a far-off day: harmless for the moment it exists on AWS.
PROBE_RULE = {"ID": "swarm-capability-probe", "Status": "Enabled", "Filter": {"Prefix": ".swarm-probe/"},
              "Transitions": [{"Days": 3650, "StorageClass": "STANDARD_IA"}]}


@dataclass
class PolicyResult:
    bucket: dict[str, Any]
    dr_bucket: str | None
    mode: str  # check | apply | dry-run
    rules: list[RuleReport] = field(default_factory=list)
    capabilities: dict[str, bool] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(r.status is Status.DRIFTED for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for r in self.rules:
            counts[str(r.status)] = counts.get(str(r.status), 0) + 1
        return {"bucket": self.bucket, "dr_bucket": self.dr_bucket, "mode": self.mode,
                "in_sync": not self.drifted, "counts": counts, "capabilities": self.capabilities,
                "rules": [r.to_dict() for r in self.rules]}


def _transitions_supported(bucket: Bucket, current_rules: list[dict[str, Any]]) -> bool:
    ok = bucket.try_put_lifecycle([*current_rules, PROBE_RULE])
    if ok:
        bucket.try_put_lifecycle(current_rules)  # put back exactly what was there
    return ok


def _replication_supported(bucket: Bucket, policy: BucketPolicy, dest: str) -> bool:
    """Any answer but "not implemented" proves the API exists (InvalidRequest: versioning is off)."""
    outcome = bucket.try_put_replication(policy.replication.to_s3(dest))
    if outcome == "ok":
        bucket.delete_replication()
    return outcome != "unsupported"


def check_policy(bucket: Bucket, policy: BucketPolicy, *, dr_bucket: str | None) -> PolicyResult:
    bucket.check_access()
    res = PolicyResult(bucket.cfg.public(), dr_bucket, "check")
    res.rules.append(compare_versioning(policy, bucket.versioning()))
    actual = bucket.lifecycle()
    supported = True
    wanted = {r.id: r for r in policy.lifecycle}
    have = {r.get("ID", ""): normalize_rule(r) for r in actual}
    if any(r.transitions and "Transitions" not in have.get(r.id, {}) for r in wanted.values()):
        supported = _transitions_supported(bucket, actual)
    res.capabilities["lifecycle_transitions"] = supported
    res.rules.extend(compare_lifecycle(policy, actual, transitions_supported=supported))
    res.rules.append(compare_lock(policy, bucket.object_lock()))
    res.rules.append(_check_replication(bucket, policy, dr_bucket, res))
    return res


def _check_replication(bucket: Bucket, policy: BucketPolicy, dr_bucket: str | None, res: PolicyResult
                       ) -> RuleReport:
    if not policy.replication.enabled:
        return RuleReport("replication", Status.IN_SYNC, "not required")
    if not dr_bucket:
        return RuleReport("replication", Status.DRIFTED, "a DR bucket", None, "no DR bucket configured",
                          instead="set SWARM_DR_OBJECTS_BUCKET")
    api, cfg = bucket.replication()
    if api and cfg is None:
        api = _replication_supported(bucket, policy, dr_bucket)
    res.capabilities["replication_api"] = api
    if not api:
        return _ours(dr_bucket)
    return compare_replication(policy, dr_bucket, cfg)


def _ours(dr_bucket: str) -> RuleReport:
    return RuleReport("replication", Status.UNSUPPORTED, f"replicate to {dr_bucket}", None,
                      "this backend has no replication API (409/501 on PutBucketReplication)",
                      instead="replication is done by swarm: schedule `swarm admin objects replicate` and "
                              "watch `swarm admin objects replication check`")


def apply_policy(bucket: Bucket, policy: BucketPolicy, *, dr_bucket: str | None, dry_run: bool = False
                 ) -> PolicyResult:
    """Make the bucket match the policy; report each rule. ``dry_run`` reports what would change
    (computed like ``check``, which may probe but leaves the bucket as it was)."""
    before = check_policy(bucket, policy, dr_bucket=dr_bucket)
    if dry_run:
        before.mode = "dry-run"
        before.rules = [RuleReport(r.name, Status.WOULD_APPLY, r.desired, r.actual, r.difference, r.instead)
                        if r.status is Status.DRIFTED else r for r in before.rules]
        return before
    res = PolicyResult(bucket.cfg.public(), dr_bucket, "apply", capabilities=dict(before.capabilities))
    by_name = {r.name: r for r in before.rules}
    # versioning first: lifecycle noncurrent rules and replication depend on it
    if by_name["versioning"].status is Status.DRIFTED:
        bucket.set_versioning(policy.versioning)
        res.rules.append(_applied(by_name["versioning"]))
    else:
        res.rules.append(by_name["versioning"])
    lc = [r for r in before.rules if r.name.startswith("lifecycle:")]
    if any(r.status is Status.DRIFTED for r in lc):
        full = policy.lifecycle_s3()
        if bucket.try_put_lifecycle(full):
            res.capabilities["lifecycle_transitions"] = True
            res.rules.extend(_applied(r) if r.status is Status.DRIFTED else r for r in lc
                             if r.desired is not None)
        else:
            if not bucket.try_put_lifecycle(policy.lifecycle_s3(with_transitions=False)):
                raise_unsupported_lifecycle(bucket)
            res.capabilities["lifecycle_transitions"] = False
            res.rules.extend(compare_lifecycle(policy, bucket.lifecycle(), transitions_supported=False))
            res.rules = [_applied(r) if r.status is Status.IN_SYNC and by_name[r.name].status is Status.DRIFTED
                         else r for r in res.rules]
    else:
        res.rules.extend(lc)
    lock = by_name["object_lock"]
    if lock.status is Status.DRIFTED:
        outcome = bucket.try_put_object_lock(policy.object_lock.to_s3())
        if outcome == "ok":
            res.rules.append(_applied(lock))
        else:
            res.rules.append(RuleReport(
                "object_lock", Status.UNSUPPORTED if outcome == "unsupported" else Status.DRIFTED,
                lock.desired, lock.actual, f"the bucket refused an object lock configuration ({outcome})",
                instead="object lock must be enabled when the bucket is created: create a new bucket with "
                        "object lock, replicate into it, and switch swarm to it"))
    else:
        res.rules.append(lock)
    repl = by_name["replication"]
    if repl.status is Status.DRIFTED and dr_bucket:
        outcome = bucket.try_put_replication(policy.replication.to_s3(dr_bucket))
        if outcome == "ok":
            res.capabilities["replication_api"] = True
            res.rules.append(_applied(repl))
        elif outcome == "unsupported":
            res.capabilities["replication_api"] = False
            res.rules.append(_ours(dr_bucket))
        else:
            res.rules.append(RuleReport("replication", Status.DRIFTED, repl.desired, repl.actual,
                                        f"the bucket refused the replication configuration ({outcome})",
                                        instead="native replication needs versioning on both buckets and an "
                                                "IAM role (set [replication] role); or run `swarm admin "
                                                "objects replicate`"))
    else:
        res.rules.append(repl)
    return res


def _applied(r: RuleReport) -> RuleReport:
    return RuleReport(r.name, Status.APPLIED, r.desired, r.actual, r.difference, r.instead)


def raise_unsupported_lifecycle(bucket: Bucket) -> None:
    from swarm.errors import RefusedError

    raise RefusedError(f"bucket {bucket.name} refuses lifecycle rules even without transitions",
                       hint="Expire objects with a scheduled job instead, or use a backend with lifecycle support.")
