"""Retention: which backups a policy keeps, with the rules that kept each, and what may be deleted.

Pure values and decisions, no I/O (``swarm.services.maintenance`` does the reading and deleting):

* ``Duration`` / ``parse_duration``: ``36h``, ``30d``, ``12w``, ``3mo``, ``7y`` (months and years are
  calendar months and years, counted back from *now*);
* ``KindPolicy`` / ``Policy``: the ``[retention]`` tables of ``swarm.toml`` (``policy_from_toml``);
  ``DEFAULT_POLICY`` is the seed's schedule table;
* ``decide(backups, policy, now)``: keep or remove for every backup, with reasons and ``until``;
* ``wal_removals``: which WAL archive files the kept backups (and the PITR window) no longer need;
* ``data_removals``: which data objects and data keys no kept backup needs.

Rules of ``decide``, per kind (``Candidate.kind``):

1. A backup *counts* toward the ``keep_*`` quotas only if it is complete and did not fail
   ``verify`` (``verified`` is ``"failed"``); a never-verified complete backup counts.
2. ``keep_within``: every backup (counting or not) that started within the duration before
   now is kept, ``until`` its start plus the duration.
3. ``keep_last``: the newest *n* counting backups. ``keep_daily`` / ``weekly`` / ``monthly`` /
   ``yearly``: like restic, walking the counting backups newest first, the first one of each new
   day (ISO week, month, year; UTC) is kept, until *n* such periods are kept.
4. A backup carrying a protecting tag (``Policy.keep_tags``; ``*`` = any tag) is never removed.
5. Floor: the newest counting backup that ``verify`` found good is never removed; when none was
   verified good, the newest counting one; when none counts, the newest complete one.
6. A backup that started after *now* (clock skew) is kept; a kind without a policy (a kind
   this swarm does not know yet) is kept whole.

The decision is deterministic (input order does not matter), never removes the floor, and
applying it to what it keeps removes nothing more (``keep_*`` quotas are satisfied by the same
backups; ``keep_within`` does not depend on the others).
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from swarm.model.refs import Needed

UNITS = {"h": "hours", "d": "days", "w": "weeks", "mo": "months", "y": "years"}
_DURATION_RE = re.compile(r"^\s*(\d{1,6})\s*(h|d|w|mo|y)\s*$")
COUNTS = ("keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
KIND_KEYS = frozenset({"keep_within", *COUNTS})
WAL_KEYS = frozenset({"window"})
TOP_KEYS = frozenset({"keep_tags", "wal", "safety_age"})


class PolicyError(ValueError):
    """A ``[retention]`` table is invalid; ``key`` names the offending key as written in TOML."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, order=True)
class Duration:
    """A retention duration: ``n`` units of ``h``, ``d``, ``w``, ``mo`` or ``y``."""

    n: int
    unit: str

    def __str__(self) -> str:
        return f"{self.n}{self.unit}"

    def before(self, t: datetime) -> datetime:
        """``t`` minus this duration (calendar months and years; the day clamped to the month's end)."""
        if self.unit in ("h", "d", "w"):
            return t - timedelta(**{UNITS[self.unit]: self.n})
        months = self.n * (12 if self.unit == "y" else 1)
        y, m = divmod(t.year * 12 + (t.month - 1) - months, 12)
        day = min(t.day, calendar.monthrange(y, m + 1)[1])
        return t.replace(year=y, month=m + 1, day=day)

    def after(self, t: datetime) -> datetime:
        """``t`` plus this duration (the inverse of ``before`` up to month-end clamping)."""
        if self.unit in ("h", "d", "w"):
            return t + timedelta(**{UNITS[self.unit]: self.n})
        months = self.n * (12 if self.unit == "y" else 1)
        y, m = divmod(t.year * 12 + (t.month - 1) + months, 12)
        day = min(t.day, calendar.monthrange(y, m + 1)[1])
        return t.replace(year=y, month=m + 1, day=day)


def parse_duration(text: Any, key: str = "duration") -> Duration:
    """``36h``, ``30d``, ``12w``, ``3mo``, ``7y``; PolicyError naming ``key`` otherwise."""
    m = _DURATION_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise PolicyError(key, f"{text!r} is not a duration (write e.g. 36h, 30d, 12w, 3mo or 7y)")
    return Duration(int(m.group(1)), m.group(2))


@dataclass(frozen=True)
class KindPolicy:
    """What to keep of one kind. Zero counts and no ``keep_within`` keep nothing but the floor and tags."""

    keep_within: Duration | None = None
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    def keeps_anything(self) -> bool:
        return self.keep_within is not None or any(getattr(self, c) > 0 for c in COUNTS)

    def describe(self) -> str:
        parts = [f"within {self.keep_within}"] if self.keep_within else []
        parts += [f"{c.removeprefix('keep_')} {getattr(self, c)}" for c in COUNTS if getattr(self, c)]
        return ", ".join(parts) or "nothing"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {c: getattr(self, c) for c in COUNTS if getattr(self, c)}
        if self.keep_within:
            out["keep_within"] = str(self.keep_within)
        return out


@dataclass(frozen=True)
class Policy:
    """The whole retention policy: per kind, the WAL window, protecting tags, the sweep safety age."""

    kinds: Mapping[str, KindPolicy]
    wal_window: Duration = Duration(7, "d")
    keep_tags: frozenset[str] = frozenset({"*"})
    safety_age: Duration = Duration(24, "h")

    def protects(self, tags: Iterable[str]) -> str | None:
        """The first protecting tag among ``tags`` (sorted), or None."""
        for t in sorted(tags):
            if "*" in self.keep_tags or t in self.keep_tags:
                return t
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"kinds": {k: v.to_dict() for k, v in sorted(self.kinds.items())},
                "wal": {"window": str(self.wal_window)}, "keep_tags": sorted(self.keep_tags),
                "safety_age": str(self.safety_age)}


# The seed's schedule table: logical nightly kept 30 days, physical weekly kept 3 months, WAL 7 days,
# state snapshots 30 days; object inventories and sets 30 days (the bucket's lifecycle rules govern
# the object versions themselves).
DEFAULT_KINDS: dict[str, KindPolicy] = {
    "pg-logical": KindPolicy(keep_within=Duration(30, "d")),
    "pg-physical": KindPolicy(keep_within=Duration(3, "mo")),
    "state": KindPolicy(keep_within=Duration(30, "d")),
    "objects": KindPolicy(keep_within=Duration(30, "d")),
    "set": KindPolicy(keep_within=Duration(30, "d")),
}
DEFAULT_POLICY = Policy(DEFAULT_KINDS)


def _count(v: Any, key: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise PolicyError(key, f"{v!r} is not a count (a whole number, 0 or more)")
    return v


def policy_from_toml(table: Mapping[str, Any] | None) -> Policy:
    """The policy from a ``[retention]`` TOML table (None or empty: the defaults).

    ``[retention.<kind>]`` replaces that kind's default entirely. Unknown keys, malformed
    durations and counts, and a kind table that keeps nothing raise PolicyError naming the key
    (``retention.pg-logical.keep_within``)."""
    if not table:
        return DEFAULT_POLICY
    if not isinstance(table, Mapping):
        raise PolicyError("retention", "is not a table")
    kinds = dict(DEFAULT_KINDS)
    window = DEFAULT_POLICY.wal_window
    tags = DEFAULT_POLICY.keep_tags
    safety = DEFAULT_POLICY.safety_age
    for name, value in table.items():
        key = f"retention.{name}"
        if name == "wal":
            if not isinstance(value, Mapping):
                raise PolicyError(key, "is not a table")
            for k in value:
                if k not in WAL_KEYS:
                    raise PolicyError(f"{key}.{k}", f"unknown key (known: {', '.join(sorted(WAL_KEYS))})")
            if "window" in value:
                window = parse_duration(value["window"], f"{key}.window")
        elif name == "keep_tags":
            if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
                raise PolicyError(key, "is not a list of tags")
            tags = frozenset(value)
        elif name == "safety_age":
            safety = parse_duration(value, key)
        elif isinstance(value, Mapping):
            if not re.match(r"^[a-z][a-z0-9-]{0,30}$", name):
                raise PolicyError(key, "is not a backup kind")
            args: dict[str, Any] = {}
            for k, v in value.items():
                if k not in KIND_KEYS:
                    raise PolicyError(f"{key}.{k}", f"unknown key (known: {', '.join(sorted(KIND_KEYS))})")
                args[k] = parse_duration(v, f"{key}.{k}") if k == "keep_within" else _count(v, f"{key}.{k}")
            kp = KindPolicy(**args)
            if not kp.keeps_anything():
                raise PolicyError(key, "keeps nothing: set keep_within or a keep_* count above 0 (the newest good "
                                       "backup would be the only one kept)")
            kinds[name] = kp
        else:
            raise PolicyError(key, f"unknown key (known: {', '.join(sorted(TOP_KEYS))} and [retention.<kind>] "
                                   "tables)")
    return Policy(kinds, window, tags, safety)


# ---- the decision -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One backup as retention sees it. ``verified``: ``"good"``, ``"failed"`` or None (never verified)."""

    id: str
    kind: str
    time: datetime  # its start
    complete: bool = True
    verified: str | None = None
    tags: frozenset[str] = frozenset()
    parts: tuple[str, ...] = ()  # a backup set's parts (their ids): a kept set keeps them

    @property
    def counts(self) -> bool:
        """Whether it counts toward the ``keep_*`` quotas."""
        return self.complete and self.verified != "failed"


@dataclass(frozen=True)
class Decision:
    """Keep or remove one backup, and why. ``until``: when ``keep_within`` stops keeping it (None when
    something else keeps it, for as long as it stays the newest of its period, tagged or the floor)."""

    id: str
    kind: str
    keep: bool
    reasons: tuple[str, ...]
    until: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "keep": self.keep, "reasons": list(self.reasons),
                "until": self.until.isoformat().replace("+00:00", "Z") if self.until else None}


def _period(unit: str, t: datetime) -> tuple[int, ...]:
    if unit == "keep_daily":
        return (t.year, t.month, t.day)
    if unit == "keep_weekly":
        iso = t.isocalendar()
        return (iso.year, iso.week)
    if unit == "keep_monthly":
        return (t.year, t.month)
    return (t.year,)


def _newest_first(items: Iterable[Candidate]) -> list[Candidate]:
    return sorted(items, key=lambda c: (c.time, c.id), reverse=True)


def decide(backups: Iterable[Candidate], policy: Policy, now: datetime) -> list[Decision]:
    """Keep or remove every backup (module docstring for the rules), sorted by (kind, time, id)."""
    by_kind: dict[str, list[Candidate]] = {}
    backups_by_id: dict[str, Candidate] = {}
    for c in backups:
        by_kind.setdefault(c.kind, []).append(c)
        backups_by_id[c.id] = c
    out: list[Decision] = []
    for kind, items in sorted(by_kind.items()):
        reasons: dict[str, list[str]] = {c.id: [] for c in items}
        until: dict[str, datetime] = {}
        kp = policy.kinds.get(kind)
        ordered = _newest_first(items)
        if kp is None:
            for c in items:
                reasons[c.id].append(f"no retention rules for kind {kind!r} in this swarm: kept")
        else:
            counting = [c for c in ordered if c.counts]
            if kp.keep_within is not None:
                edge = kp.keep_within.before(now)
                for c in items:
                    if c.time >= edge:
                        reasons[c.id].append(f"within {kp.keep_within}")
                        until[c.id] = kp.keep_within.after(c.time)
            for c in counting[:kp.keep_last]:
                reasons[c.id].append(f"last {kp.keep_last}")
            for unit in COUNTS[1:]:
                n = getattr(kp, unit)
                seen: set[tuple[int, ...]] = set()
                for c in counting:
                    if len(seen) >= n:
                        break
                    p = _period(unit, c.time)
                    if p not in seen:
                        seen.add(p)
                        reasons[c.id].append(f"{unit.removeprefix('keep_')} {n}")
            good = [c for c in counting if c.verified == "good"]
            complete = [c for c in ordered if c.complete]
            floor = (good or counting or complete or ordered)[:1]
            for c in floor:
                what = ("newest verified backup" if good else "newest complete backup" if counting or complete
                        else "newest backup")
                reasons[c.id].append(f"{what} of {kind} (never removed)")
        for c in items:
            tag = policy.protects(c.tags)
            if tag is not None:
                reasons[c.id].append(f"tagged {tag}")
            if c.time > now:
                reasons[c.id].append("started after now (clock skew): kept")
        for c in sorted(items, key=lambda c: (c.time, c.id)):
            r = reasons[c.id]
            if not r:
                why = ("failed verify" if c.verified == "failed" else "incomplete" if not c.complete
                       else "outside the policy")
                out.append(Decision(c.id, kind, False, (f"{why} ({kp.describe() if kp else ''})",)))
            else:
                only_within = all(x.startswith("within ") for x in r)
                out.append(Decision(c.id, kind, True, tuple(r), until.get(c.id) if only_within else None))
    return _keep_parts_of_kept_sets(out, backups_by_id)


def _keep_parts_of_kept_sets(decisions: list[Decision], by_id: Mapping[str, Candidate]) -> list[Decision]:
    """A kept backup set keeps its parts (a set is restored from its parts' manifests), whatever their
    own kind's rules say; a removed set keeps nothing of them."""
    keepers: dict[str, list[str]] = {}
    for d in decisions:
        if d.keep:
            for part in by_id[d.id].parts:
                keepers.setdefault(part, []).append(d.id)
    out = []
    for d in decisions:
        sets = keepers.get(d.id)
        if not sets:
            out.append(d)
            continue
        why = tuple(f"part of kept set {s}" for s in sorted(sets))
        out.append(Decision(d.id, d.kind, True, (*d.reasons, *why) if d.keep else why, None))
    return out


# ---- what may be deleted ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BaseBackup:
    """A kept physical backup, for WAL retention: its timeline, start and stop segments and start time."""

    id: str
    timeline: int
    start_wal: str
    stop_wal: str


@dataclass(frozen=True)
class StoredFile:
    """A file the repository holds: ``name`` (WAL: the archive name; data: ``<backup>/<object>``; keys:
    the data key id), its stored size and store mtime (None when the store does not say)."""

    name: str
    size: int = 0
    modified: datetime | None = None


@dataclass(frozen=True)
class Removal:
    """One file to delete, and why."""

    what: str  # "data" | "dek" | "wal"
    name: str
    size: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "name": self.name, "size": self.size, "reason": self.reason}


def _position(name: str) -> tuple[int, int] | None:
    """(timeline, log * 2^32 + seg) of a segment-named WAL file (segment, ``.partial``, ``.backup``)."""
    head = name[:24]
    if len(head) != 24 or any(ch not in "0123456789ABCDEF" for ch in head):
        return None
    return int(head[:8], 16), (int(head[8:16], 16) << 32) | int(head[16:24], 16)


def wal_removals(files: Iterable[StoredFile], kept_bases: Iterable[BaseBackup], needed: Needed,
                 window: Duration, now: datetime) -> list[Removal]:
    """The WAL archive files no kept backup needs (pure).

    Kept: history files (always); every segment of a kept backup's refs ranges (``needed``);
    every file from the start of the oldest kept base backup on (a segment of its timeline or a
    later one at or after its start segment: the PITR reach the kept physical backups give);
    files younger than ``window`` (a window older than the oldest base backup keeps nothing more:
    the window never keeps a base backup, nor WAL before one it keeps); files whose mtime is
    unknown; a ``.partial`` is removed once its completed segment is archived. Everything else
    before the oldest kept base backup is removed. Without a kept physical backup only the
    window keeps WAL."""
    files = list(files)
    names = {f.name for f in files}
    starts = [p for b in kept_bases if (p := _position(b.start_wal)) is not None]
    edge = window.before(now)
    out: list[Removal] = []
    for f in sorted(files, key=lambda f: f.name):
        if f.name.endswith(".history") or "/" in f.name:
            continue
        pos = _position(f.name)
        if pos is None:
            continue  # not a WAL name this swarm knows: kept
        if f.name.endswith(".partial") and f.name[:24] in names:
            out.append(Removal("wal", f.name, f.size, f"partial of a completed segment ({f.name[:24]} is archived)"))
            continue
        if needed.needs_wal(f.name):
            continue
        if any(pos[0] >= s[0] and pos[1] >= s[1] for s in starts):
            continue
        if f.modified is None or f.modified >= edge:
            continue
        why = "before the oldest kept base backup" if starts else "no physical backup is kept"
        out.append(Removal("wal", f.name, f.size, f"{why} and older than the WAL window ({window})"))
    return out


@dataclass(frozen=True)
class DataListing:
    """What the repository's data and key namespaces hold (for ``data_removals``)."""

    data: Mapping[str, Mapping[str, StoredFile]]  # backup id -> object name -> file
    deks: Mapping[str, StoredFile]  # data key id -> file
    manifests: frozenset[str]  # backups whose manifest is present and kept (damaged ones included)
    removed: Mapping[str, str] = field(default_factory=dict)  # backup id -> dek id: deleted by this prune
    tombstoned: frozenset[str] = frozenset()  # deleted by an earlier prune
    protected_deks: frozenset[str] = frozenset()  # e.g. the WAL data key of an older repository


def data_removals(listing: DataListing, needed: Needed, cutoff: datetime) -> list[Removal]:
    """Data objects and data keys no kept backup needs (pure).

    Kept: what ``needed`` names; everything under a backup whose manifest is present; data keys in
    ``protected_deks``; and, for a backup with neither manifest nor tombstone (an interrupted or
    still running backup), everything modified at or after ``cutoff`` (or of unknown age). The
    caller sets ``cutoff`` to the earlier of now minus the safety age and the start of the oldest
    live writer. Data of backups removed now or tombstoned earlier goes whatever its age."""
    out: list[Removal] = []
    gone = set(listing.removed) | set(listing.tombstoned)
    for backup_id in sorted(listing.data):
        if backup_id in listing.manifests:
            continue
        for name, f in sorted(listing.data[backup_id].items()):
            if needed.needs_data(backup_id, name):
                continue
            if backup_id in gone:
                why = "of a backup removed by this prune" if backup_id in listing.removed else \
                    "of a backup removed by an earlier prune"
            elif f.modified is not None and f.modified < cutoff:
                why = "left by an interrupted backup (no manifest)"
            else:
                continue
            out.append(Removal("data", f"{backup_id}/{name}", f.size, why))
    owner = {dek: b for b, dek in listing.removed.items()}
    for dek_id, f in sorted(listing.deks.items()):
        if dek_id in needed.deks or dek_id in listing.protected_deks:
            continue
        if dek_id in owner:
            out.append(Removal("dek", dek_id, f.size, f"data key of removed backup {owner[dek_id]}"))
        elif f.modified is not None and f.modified < cutoff:
            out.append(Removal("dek", dek_id, f.size, "data key no backup uses (an interrupted backup, or "
                                                      "one removed earlier)"))
    return out
