"""DR drills as pure decisions: tier targets, the validation ladder's verdict, RTO/RPO against the
tier, and the names a drill gives what it creates (docs/dr-drill.md).

No I/O: ``swarm.services.drill`` provisions, restores and measures; this module only decides.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# ---- tiers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierTargets:
    """A support tier's recovery targets, in seconds; None: the tier promises none."""

    name: str
    rto_s: float | None
    rpo_s: float | None


TIERS: dict[str, TierTargets] = {
    "enterprise": TierTargets("enterprise", 4 * 3600.0, 3600.0),
    "team": TierTargets("team", 24 * 3600.0, 24 * 3600.0),
    "community": TierTargets("community", None, None),
}
DEFAULT_TIER = "enterprise"


def tier(name: str) -> TierTargets:
    """The targets of tier ``name`` (ValueError for an unknown one)."""
    try:
        return TIERS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown tier {name!r} (one of {', '.join(TIERS)})") from None


# ---- the validation ladder -------------------------------------------------------------------

# In the order they run; the first that fails stops the ladder (the rest are "not run").
RUNGS: tuple[str, ...] = ("repository", "pg_read", "amcheck", "api_pipelines", "row_counts", "integrity",
                          "objects_sample", "state")


@dataclass(frozen=True)
class Rung:
    """One rung's outcome: ``ok`` True (held), False (failed), None (not run: an earlier rung or
    phase failed); ``expected`` and ``found`` are the figures compared."""

    name: str
    ok: bool | None
    expected: Any = None
    found: Any = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "expected": self.expected, "found": self.found, "detail": self.detail}


@dataclass(frozen=True)
class LadderVerdict:
    validated: bool
    failed: str | None  # the first rung that failed (None when validated or none ran)
    not_run: tuple[str, ...]


def ladder_verdict(rungs: list[Rung] | tuple[Rung, ...]) -> LadderVerdict:
    """Validated only when every rung of ``RUNGS`` ran and held; otherwise the first rung (in
    ``RUNGS`` order) that failed, and the rungs that did not run. A missing rung counts as not run."""
    by = {r.name: r for r in rungs}
    failed = next((n for n in RUNGS if n in by and by[n].ok is False), None)
    not_run = tuple(n for n in RUNGS if n not in by or by[n].ok is None)
    return LadderVerdict(failed is None and not not_run, failed, not_run)


def compare_counts(expected: dict[str, int], found: dict[str, int], *, tolerance: int = 0) -> dict[str, Any]:
    """Tables whose row count differs by more than ``tolerance`` (a table missing from ``found``
    counts as 0 rows): ``{table: {"expected", "found"}}``. Tables only in ``found`` are ignored
    (they were not in production at the backup's point)."""
    out: dict[str, Any] = {}
    for t in sorted(expected):
        e, f = int(expected[t]), int(found.get(t, 0))
        if abs(e - f) > tolerance:
            out[t] = {"expected": e, "found": f}
    return out


# ---- RTO / RPO -------------------------------------------------------------------------------


def rpo_seconds(started_at: datetime, recovery_point: datetime) -> float:
    """RPO: drill start (disaster declared) minus the recovery point reached; never negative (a
    point after the start is a clock skew, not negative loss)."""
    return max(0.0, (started_at - recovery_point).total_seconds())


@dataclass(frozen=True)
class Verdict:
    verdict: str  # "pass" | "fail"
    reasons: tuple[str, ...] = field(default_factory=tuple)
    rto_ok: bool | None = None  # None: no target (community) or not measured
    rpo_ok: bool | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"


def judge(validated: bool, rto_s: float | None, rpo_s: float | None, targets: TierTargets,
          failed: str | None = None) -> Verdict:
    """Pass only when validated and within the tier's targets. A target the tier does not set is
    not weighed; an RTO or RPO that was not measured (None) fails a tier that sets one."""
    reasons: list[str] = []
    if not validated:
        reasons.append(f"not validated: {failed} failed" if failed else "not validated")
    rto_ok = rpo_ok = None
    if targets.rto_s is not None:
        rto_ok = rto_s is not None and rto_s <= targets.rto_s
        if not rto_ok:
            reasons.append(f"RTO {human_duration(rto_s)} exceeds the {targets.name} target "
                           f"{human_duration(targets.rto_s)}")
    if targets.rpo_s is not None:
        rpo_ok = rpo_s is not None and rpo_s <= targets.rpo_s
        if not rpo_ok:
            reasons.append(f"RPO {human_duration(rpo_s)} exceeds the {targets.name} target "
                           f"{human_duration(targets.rpo_s)}")
    return Verdict("pass" if not reasons else "fail", tuple(reasons), rto_ok, rpo_ok)


def human_duration(s: float | None, missing: str = "unmeasured") -> str:
    """``s`` seconds as people read a drill's times: ``42.0 s``, ``3.5 min``, ``1.2 h``; ``missing`` for None."""
    if s is None:
        return missing
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def exit_code(verdict: Verdict) -> int:
    """0 only for a pass; 1 for a drill that ran and failed."""
    return 0 if verdict.passed else 1


# ---- names -----------------------------------------------------------------------------------

DRILL_ID = re.compile(r"^d[0-9]{8}t[0-9]{6}-[0-9a-f]{6}$")
BUCKET_PREFIX = "swarm-drill-"
DB_PREFIX = "swarm_drill_"
DIR_PREFIX = "swarm-drill-"


def new_drill_id(now: datetime, rand_hex: str) -> str:
    """``dYYYYMMDDtHHMMSS-xxxxxx``: sorts by time, lower case and short enough for a bucket name."""
    if not re.fullmatch(r"[0-9a-f]{6}", rand_hex):
        raise ValueError("rand_hex must be 6 lower-case hex digits")
    return f"d{now.strftime('%Y%m%dt%H%M%S')}-{rand_hex}"


def is_drill_id(s: str) -> bool:
    return bool(DRILL_ID.fullmatch(s))


def bucket_name(drill_id: str) -> str:
    """The scratch bucket a drill creates: carries the id, 3..63 chars, S3-valid."""
    return BUCKET_PREFIX + drill_id


def db_name(drill_id: str) -> str:
    """The scratch database a drill creates (a valid unquoted identifier)."""
    return DB_PREFIX + drill_id.replace("-", "_")


def dir_name(drill_id: str) -> str:
    return DIR_PREFIX + drill_id


def drill_id_of(name: str) -> str | None:
    """The drill id a scratch bucket, database or directory name carries, if it is one of ours."""
    for prefix in (BUCKET_PREFIX, DB_PREFIX, DIR_PREFIX):
        if name.startswith(prefix):
            rest = name[len(prefix):]
            if prefix == DB_PREFIX and len(rest) == 23 and rest[16] == "_":
                rest = rest[:16] + "-" + rest[17:]
            if is_drill_id(rest):
                return rest
    return None
