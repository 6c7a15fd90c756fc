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
    """Make the bucket match the policy; report each rule (applied, in sync, unsupported, or
    drifted when the bucket refused the change).

    ``dry_run`` walks the same steps with the same decisions and writes nothing: support is
    known from ``check``'s probes (which leave the bucket as it was), so a rule apply would
    report ``unsupported`` is ``unsupported`` in the dry run too, and ``would-apply`` means
    apply will say ``applied``. Object lock is not probed (enabling it cannot be undone): a
    backend that refuses it is only found by apply.

    Steps, in order: versioning (lifecycle noncurrent rules and replication depend on it),
    lifecycle (one put of the whole rule set; without transitions if the backend refuses
    them), object lock, replication. Each is one S3 request, so a kill -9 between them leaves
    the earlier ones applied; re-running converges.
    """
    before = check_policy(bucket, policy, dr_bucket=dr_bucket)
    done = Status.WOULD_APPLY if dry_run else Status.APPLIED
    res = PolicyResult(bucket.cfg.public(), dr_bucket, "dry-run" if dry_run else "apply",
                       capabilities=dict(before.capabilities))
    by_name = {r.name: r for r in before.rules}
    if by_name["versioning"].status is Status.DRIFTED:
        if not dry_run:
            bucket.set_versioning(policy.versioning)
        res.rules.append(_as(by_name["versioning"], done))
    else:
        res.rules.append(by_name["versioning"])
    res.rules.extend(_apply_lifecycle(bucket, policy, before, res, done, dry_run=dry_run))
    lock = by_name["object_lock"]
    if lock.status is Status.DRIFTED:
        outcome = "ok" if dry_run else bucket.try_put_object_lock(policy.object_lock.to_s3())
        if outcome == "ok":
            res.rules.append(_as(lock, done))
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
        # check has probed: a backend without the API is already reported unsupported
        outcome = "ok" if dry_run else bucket.try_put_replication(policy.replication.to_s3(dr_bucket))
        if outcome == "ok":
            if not dry_run:
                res.capabilities["replication_api"] = True
            res.rules.append(_as(repl, done))
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


def _apply_lifecycle(bucket: Bucket, policy: BucketPolicy, before: PolicyResult, res: PolicyResult,
                     done: Status, *, dry_run: bool) -> list[RuleReport]:
    """The lifecycle rules' reports after putting the policy's rule set (one request, which
    also removes rules the policy does not have: those are reported ``done`` too). Where the
    backend refuses transitions (known from ``check``'s probe in a dry run, from the put's
    answer otherwise) the rules are put without them, and a rule whose only difference is
    the transitions is ``unsupported``."""
    lc = [r for r in before.rules if r.name.startswith("lifecycle:")]
    if not any(r.status is Status.DRIFTED for r in lc):
        return lc
    if dry_run:
        full_ok = before.capabilities.get("lifecycle_transitions", True)
    else:
        full_ok = bucket.try_put_lifecycle(policy.lifecycle_s3())
        res.capabilities["lifecycle_transitions"] = full_ok
    if full_ok:
        return [_as(r, done) if r.status is Status.DRIFTED else r for r in lc]
    reduced = policy.lifecycle_s3(with_transitions=False)
    if not dry_run and not bucket.try_put_lifecycle(reduced):
        raise_unsupported_lifecycle(bucket)
    after = compare_lifecycle(policy, reduced if dry_run else bucket.lifecycle(), transitions_supported=False)
    was = {r.name: r for r in lc}
    out = [_as(r, done) if r.status is Status.IN_SYNC and was[r.name].status is Status.DRIFTED else r
           for r in after]
    seen = {r.name for r in after}
    out += [_as(r, done) for r in lc if r.name not in seen and r.status is Status.DRIFTED]  # removed strays
    return out


def _as(r: RuleReport, status: Status) -> RuleReport:
    return RuleReport(r.name, status, r.desired, r.actual, r.difference, r.instead)


def raise_unsupported_lifecycle(bucket: Bucket) -> None:
    from swarm.errors import RefusedError

    raise RefusedError(f"bucket {bucket.name} refuses lifecycle rules even without transitions",
                       hint="Expire objects with a scheduled job instead, or use a backend with lifecycle support.")
