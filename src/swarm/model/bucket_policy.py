"""Bucket protection policy as code: the schema, the default, and the pure comparison of a
policy with what a bucket reports.

The policy is a TOML file (schema in docs/objects.md; ``DEFAULT_POLICY_TOML`` below is the
default and reproduces the seed's table). This module turns it into the S3 API's shapes
(``lifecycle_rules``, ``replication_config``, ``lock_config``) and compares desired with
actual per rule (``compare_*``), returning ``RuleReport`` values. Whether the backend
*supports* a feature is decided by the sources layer, which tries the call; this module only
records the verdict it is given.

Why lifecycle rules filter on the ``swarm-class`` tag: swarm writes artefacts under
``pipeline_runs/<run_id>/{models,reports,audit,conversations}/``, so the seed's prefix
filters (``audit/``, ``conversations/``) would never match anything: S3 prefixes anchor
at the start of the key. The application tags every artefact with ``swarm-class``, and a
tag filter follows the class wherever the path puts it. A rule may add a ``prefix`` too
(an ``And`` filter) to narrow it to one tree.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from swarm.errors import ConfigError

DEFAULT_POLICY_TOML = """\
# swarm bucket protection policy (schema: docs/objects.md).
# Reproduces the seed's table; lifecycle rules filter on the swarm-class tag because
# artefacts live under pipeline_runs/<run_id>/<class>/..., where a prefix such as
# "audit/" never matches.

[versioning]
enabled = true

[[lifecycle.rules]]
id = "audit-retention"
tags = { "swarm-class" = "audit" }
transitions = [
  { days = 90, storage_class = "GLACIER_IR" },
  { days = 365, storage_class = "DEEP_ARCHIVE" },
]
expire_days = 2555   # 7 years

[[lifecycle.rules]]
id = "conversations-retention"
tags = { "swarm-class" = "conversation" }
expire_days = 365

[[lifecycle.rules]]
id = "noncurrent-and-incomplete"
# Point-in-time restore reaches back as far as noncurrent versions are kept.
noncurrent_expire_days = 90
abort_incomplete_multipart_days = 7

[object_lock]
enabled = false          # needs a bucket created with object lock; applies bucket-wide
mode = "GOVERNANCE"      # or COMPLIANCE
days = 2555

[replication]
enabled = true
storage_class = "STANDARD_IA"
# role = "arn:aws:iam::123456789012:role/swarm-replication"  # AWS native replication only
"""


class Status(StrEnum):
    IN_SYNC = "in-sync"
    DRIFTED = "drifted"
    UNSUPPORTED = "unsupported"
    APPLIED = "applied"  # changed by this run (apply)
    WOULD_APPLY = "would-apply"  # dry run


@dataclass(frozen=True)
class Transition:
    days: int
    storage_class: str


@dataclass(frozen=True)
class LifecycleRule:
    id: str
    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    transitions: tuple[Transition, ...] = ()
    expire_days: int | None = None
    noncurrent_expire_days: int | None = None
    abort_incomplete_multipart_days: int | None = None
    enabled: bool = True

    def to_s3(self, *, with_transitions: bool = True) -> dict[str, Any]:
        rule: dict[str, Any] = {"ID": self.id, "Status": "Enabled" if self.enabled else "Disabled",
                                "Filter": self._filter()}
        if self.transitions and with_transitions:
            rule["Transitions"] = [{"Days": t.days, "StorageClass": t.storage_class} for t in self.transitions]
        if self.expire_days is not None:
            rule["Expiration"] = {"Days": self.expire_days}
        if self.noncurrent_expire_days is not None:
            rule["NoncurrentVersionExpiration"] = {"NoncurrentDays": self.noncurrent_expire_days}
        if self.abort_incomplete_multipart_days is not None:
            rule["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": self.abort_incomplete_multipart_days}
        return rule

    def _filter(self) -> dict[str, Any]:
        tags = [{"Key": k, "Value": v} for k, v in self.tags]
        if len(tags) == 1 and not self.prefix:
            return {"Tag": tags[0]}
        if tags:
            return {"And": {"Prefix": self.prefix, "Tags": tags} if self.prefix else {"Tags": tags}}
        return {"Prefix": self.prefix}


@dataclass(frozen=True)
class ObjectLockPolicy:
    enabled: bool = False
    mode: str = "GOVERNANCE"
    days: int = 2555

    def to_s3(self) -> dict[str, Any]:
        return {"ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": self.mode, "Days": self.days}}}


@dataclass(frozen=True)
class ReplicationPolicy:
    enabled: bool = True
    storage_class: str = "STANDARD_IA"
    role: str = ""
    prefix: str = ""

    def to_s3(self, dest_bucket: str) -> dict[str, Any]:
        return {"Role": self.role or "arn:aws:iam::000000000000:role/swarm-replication",
                "Rules": [{"ID": "swarm-dr", "Status": "Enabled", "Priority": 1,
                           "Filter": {"Prefix": self.prefix},
                           "DeleteMarkerReplication": {"Status": "Enabled"},
                           "Destination": {"Bucket": f"arn:aws:s3:::{dest_bucket}",
                                           "StorageClass": self.storage_class}}]}


@dataclass(frozen=True)
class BucketPolicy:
    versioning: bool = True
    lifecycle: tuple[LifecycleRule, ...] = ()
    object_lock: ObjectLockPolicy = field(default_factory=ObjectLockPolicy)
    replication: ReplicationPolicy = field(default_factory=ReplicationPolicy)

    def lifecycle_s3(self, *, with_transitions: bool = True) -> list[dict[str, Any]]:
        return [r.to_s3(with_transitions=with_transitions) for r in self.lifecycle]


_RULE_KEYS = {"id", "prefix", "tags", "transitions", "expire_days", "noncurrent_expire_days",
              "abort_incomplete_multipart_days", "enabled"}
_LOCK_MODES = {"GOVERNANCE", "COMPLIANCE"}


def _int(d: dict[str, Any], name: str, where: str) -> int | None:
    v = d.get(name)
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ConfigError(f"policy {where}: {name} must be a whole number of days >= 1, not {v!r}")
    return v


def parse_policy(text: str, *, where: str = "policy") -> BucketPolicy:
    """Parse and validate a policy document; errors name the offending field."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}", hint="See docs/objects.md for the schema.") from exc
    unknown = set(doc) - {"versioning", "lifecycle", "object_lock", "replication"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}",
                          hint="Sections: versioning, lifecycle, object_lock, replication.")
    rules = []
    seen: set[str] = set()
    for i, r in enumerate(doc.get("lifecycle", {}).get("rules", [])):
        at = f"{where} lifecycle.rules[{i}]"
        bad = set(r) - _RULE_KEYS
        if bad:
            raise ConfigError(f"{at}: unknown field(s) {sorted(bad)}", hint=f"Fields: {sorted(_RULE_KEYS)}.")
        rid = r.get("id")
        if not isinstance(rid, str) or not rid or rid in seen:
            raise ConfigError(f"{at}: every rule needs a unique string id")
        seen.add(rid)
        transitions = []
        for t in r.get("transitions", []):
            days = _int(t, "days", at)
            if days is None or not isinstance(t.get("storage_class"), str):
                raise ConfigError(f"{at}: a transition needs days and storage_class")
            transitions.append(Transition(days, t["storage_class"]))
        rule = LifecycleRule(
            id=rid, prefix=str(r.get("prefix", "")),
            tags=tuple(sorted((str(k), str(v)) for k, v in dict(r.get("tags", {})).items())),
            transitions=tuple(sorted(transitions, key=lambda t: t.days)),
            expire_days=_int(r, "expire_days", at), noncurrent_expire_days=_int(r, "noncurrent_expire_days", at),
            abort_incomplete_multipart_days=_int(r, "abort_incomplete_multipart_days", at),
            enabled=bool(r.get("enabled", True)))
        if not (rule.transitions or rule.expire_days or rule.noncurrent_expire_days
                or rule.abort_incomplete_multipart_days):
            raise ConfigError(f"{at}: rule {rid} has no action (transitions, expire_days, ...)")
        rules.append(rule)
    lk = doc.get("object_lock", {})
    lock = ObjectLockPolicy(bool(lk.get("enabled", False)), str(lk.get("mode", "GOVERNANCE")).upper(),
                            _int(lk, "days", f"{where} object_lock") or 2555)
    if lock.mode not in _LOCK_MODES:
        raise ConfigError(f"{where} object_lock.mode must be GOVERNANCE or COMPLIANCE, not {lock.mode!r}")
    rp = doc.get("replication", {})
    repl = ReplicationPolicy(bool(rp.get("enabled", True)), str(rp.get("storage_class", "STANDARD_IA")),
                             str(rp.get("role", "")), str(rp.get("prefix", "")))
    return BucketPolicy(bool(doc.get("versioning", {}).get("enabled", True)), tuple(rules), lock, repl)


def default_policy() -> BucketPolicy:
    return parse_policy(DEFAULT_POLICY_TOML, where="the default policy")


# ---- comparison ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleReport:
    """One line of `policy check` / `policy apply`."""

    name: str  # "versioning", "lifecycle:<id>", "object_lock", "replication"
    status: Status
    desired: Any = None
    actual: Any = None
    difference: str = ""
    instead: str = ""  # for unsupported: what to do instead

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"rule": self.name, "status": str(self.status)}
        for k in ("desired", "actual", "difference", "instead"):
            v = getattr(self, k)
            if v not in (None, ""):
                d[k] = v
        return d


def normalize_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """An S3 lifecycle rule in a canonical form (servers differ in empty fields and order)."""
    out: dict[str, Any] = {"ID": rule.get("ID", ""), "Status": rule.get("Status", "Enabled")}
    flt = rule.get("Filter")
    if flt is None and "Prefix" in rule:
        flt = {"Prefix": rule["Prefix"]}
    flt = dict(flt or {"Prefix": ""})
    if "And" in flt:
        a = flt["And"]
        tags = sorted((t["Key"], t["Value"]) for t in a.get("Tags", []))
        prefix = a.get("Prefix", "")
        if len(tags) == 1 and not prefix:
            flt = {"Tag": {"Key": tags[0][0], "Value": tags[0][1]}}
        else:
            flt = {"And": {"Prefix": prefix, "Tags": [{"Key": k, "Value": v} for k, v in tags]}
                   if prefix else {"Tags": [{"Key": k, "Value": v} for k, v in tags]}}
    out["Filter"] = flt
    if rule.get("Transitions"):
        out["Transitions"] = sorted(({"Days": int(t["Days"]), "StorageClass": t["StorageClass"]}
                                     for t in rule["Transitions"] if "Days" in t), key=lambda t: t["Days"])
    exp = rule.get("Expiration") or {}
    if exp.get("Days"):
        out["Expiration"] = {"Days": int(exp["Days"])}
    nce = rule.get("NoncurrentVersionExpiration") or {}
    if nce.get("NoncurrentDays"):
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(nce["NoncurrentDays"])}
    ab = rule.get("AbortIncompleteMultipartUpload") or {}
    if ab.get("DaysAfterInitiation"):
        out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": int(ab["DaysAfterInitiation"])}
    return out


def _diff(desired: dict[str, Any], actual: dict[str, Any]) -> str:
    parts = []
    for k in sorted(set(desired) | set(actual)):
        if desired.get(k) != actual.get(k):
            parts.append(f"{k}: want {desired.get(k)!r}, have {actual.get(k)!r}")
    return "; ".join(parts)


def compare_lifecycle(policy: BucketPolicy, actual_rules: list[dict[str, Any]], *,
                      transitions_supported: bool) -> list[RuleReport]:
    """Per desired rule: in sync, drifted (with the difference) or unsupported.

    When the backend refuses transitions, a rule whose only difference is the missing
    transitions is reported unsupported (with what to do instead); any other difference is
    still drift. Rules present on the bucket but not in the policy are reported drifted too.
    """
    have = {r.get("ID", ""): normalize_rule(r) for r in actual_rules}
    reports = []
    for rule in policy.lifecycle:
        want = normalize_rule(rule.to_s3())
        got = have.pop(rule.id, None)
        name = f"lifecycle:{rule.id}"
        if got == want:
            reports.append(RuleReport(name, Status.IN_SYNC, want, got))
            continue
        if rule.transitions and not transitions_supported:
            reduced = normalize_rule(rule.to_s3(with_transitions=False))
            if got == reduced or (got is None and not _has_action(reduced)):
                reports.append(RuleReport(
                    name, Status.UNSUPPORTED, want, got,
                    difference="storage-class transitions are refused by this backend (501 NotImplemented)",
                    instead="keep the objects in STANDARD here, or move them with a scheduled job; the "
                            "expiration part of the rule is applied"))
                continue
        reports.append(RuleReport(name, Status.DRIFTED, want, got,
                                  difference="rule missing on the bucket" if got is None else _diff(want, got)))
    for rid, got in sorted(have.items()):
        reports.append(RuleReport(f"lifecycle:{rid}", Status.DRIFTED, None, got,
                                  difference="rule on the bucket is not in the policy"))
    return reports


def _has_action(rule: dict[str, Any]) -> bool:
    return any(k in rule for k in ("Transitions", "Expiration", "NoncurrentVersionExpiration",
                                   "AbortIncompleteMultipartUpload"))


def compare_versioning(policy: BucketPolicy, status: str | None) -> RuleReport:
    want = "Enabled" if policy.versioning else "Suspended-or-off"
    ok = (status == "Enabled") == policy.versioning
    return RuleReport("versioning", Status.IN_SYNC if ok else Status.DRIFTED, want, status or "off",
                      "" if ok else f"versioning is {status or 'off'}")


def compare_lock(policy: BucketPolicy, actual: dict[str, Any] | None) -> RuleReport:
    if not policy.object_lock.enabled:
        return RuleReport("object_lock", Status.IN_SYNC, "not required", actual)
    want = policy.object_lock.to_s3()
    got = actual or None
    if got is not None:
        ret = (got.get("Rule") or {}).get("DefaultRetention") or {}
        got = {"ObjectLockEnabled": got.get("ObjectLockEnabled"),
               "Rule": {"DefaultRetention": {"Mode": ret.get("Mode"), "Days": ret.get("Days")}}}
    if got == want:
        return RuleReport("object_lock", Status.IN_SYNC, want, got)
    return RuleReport("object_lock", Status.DRIFTED, want, got,
                      "object lock is not configured" if got is None else _diff(want, got))


def compare_replication(policy: BucketPolicy, dest_bucket: str | None, actual: dict[str, Any] | None
                        ) -> RuleReport:
    """Native replication: destination bucket, storage class and status must match.
    (moto reports DeleteMarkerReplication as Disabled whatever was sent, so it is not compared.)"""
    if not policy.replication.enabled:
        return RuleReport("replication", Status.IN_SYNC, "not required", actual)
    want = {"Bucket": f"arn:aws:s3:::{dest_bucket}", "StorageClass": policy.replication.storage_class,
            "Status": "Enabled"}
    got = None
    for r in (actual or {}).get("Rules", []):
        dest = r.get("Destination", {})
        got = {"Bucket": dest.get("Bucket"), "StorageClass": dest.get("StorageClass"), "Status": r.get("Status")}
        if got == want:
            return RuleReport("replication", Status.IN_SYNC, want, got)
    return RuleReport("replication", Status.DRIFTED, want, got,
                      "no replication configuration" if got is None else _diff(want, got))
