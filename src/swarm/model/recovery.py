"""Recovery planning as pure decisions: which timeline, which base backup, which WAL segments.

Point-in-time recovery replays WAL along one *timeline history*: the followed timeline's
``.history`` file lists its ancestors and the LSN where each was left. Everything here is a
function of what the repository holds (physical backups and the WAL archive's names and
history files) and of what the operator asked for; the PITR service gathers those facts,
calls these functions and turns their refusals into operator errors.

The rules, as PostgreSQL applies them during recovery (``XLogFileReadAnyTLI``):

* the followed timeline ``T`` has a path of spans ``(tli, begin, end)``: the root timeline
  from LSN 0, each later one from the LSN where its parent was left, ``T`` itself open-ended;
* WAL segment number ``n`` is read from the newest timeline of the path whose span begins in or
  before segment ``n`` (the first segment of a new timeline holds the parent's WAL up to the
  switch and the child's after it), so coverage is checked **per timeline** along the path:
  a segment archived on a timeline that is not on the path never counts;
* a base backup can start recovery on ``T`` only if its timeline is on the path and it ended
  before that timeline was left (PostgreSQL: "requested timeline is not a child of this
  server's history").

Which timeline is followed (``choose_timeline``): an explicit number; ``latest`` (the newest
timeline in the archive); or ``current`` (the default): the timeline the configured primary is
on when it can be asked, else the newest archived one. Timelines in the archive that are not on
the followed path are reported as branches, so a restored copy that once archived into the
repository is visible instead of silently followed.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from swarm.model.wal import HistoryEntry, Lsn, Segment, segment_for_end, segment_of


class PlanRefused(ValueError):
    """A recovery the facts cannot support; ``reason`` is a stable kebab-case word for the caller."""

    def __init__(self, reason: str, message: str, **facts: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.facts = facts


@dataclass(frozen=True)
class BaseBackup:
    """What planning needs to know of one physical backup."""

    id: str
    timeline: int
    start_lsn: Lsn
    stop_lsn: Lsn
    stop_time: datetime
    xid_after: int = 0


@dataclass(frozen=True)
class Archive:
    """The WAL archive's contents by name: segment numbers per timeline, partial segments
    (``<segment>.partial``) per timeline, and parsed history files."""

    segment_size: int
    segments: Mapping[int, frozenset[int]] = field(default_factory=dict)
    partials: Mapping[int, frozenset[int]] = field(default_factory=dict)
    histories: Mapping[int, tuple[HistoryEntry, ...]] = field(default_factory=dict)

    def timelines(self) -> set[int]:
        return {t for t, s in self.segments.items() if s} | set(self.histories) | {
            t for t, s in self.partials.items() if s}

    def newest_timeline(self) -> int:
        return max(self.timelines() | {1})

    def has(self, seg: Segment) -> bool:
        return seg.segno in self.segments.get(seg.tli, frozenset())

    def has_partial(self, seg: Segment) -> bool:
        return seg.segno in self.partials.get(seg.tli, frozenset())


@dataclass(frozen=True)
class Span:
    """Timeline ``tli`` is followed from ``begin`` (inclusive) until ``end`` (exclusive; None: open)."""

    tli: int
    begin: Lsn
    end: Lsn | None

    def holds(self, lsn: Lsn) -> bool:
        return self.begin <= lsn and (self.end is None or lsn < self.end)


# ---- which timeline ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimelineChoice:
    tli: int
    reason: str


def parse_timeline_option(text: str | None) -> str | int:
    """``--target-timeline``: ``current`` (default), ``latest`` or a positive number."""
    value = (text or "current").strip().lower()
    if value in ("current", "latest"):
        return value
    try:
        n = int(value, 16) if value.startswith("0x") else int(value)
    except ValueError:
        raise ValueError(f"not a timeline: {text!r} (current, latest or a number such as 1)") from None
    if not 1 <= n <= 0xFFFFFFFF:
        raise ValueError(f"timeline {n} out of range")
    return n


def choose_timeline(option: str | int, archive: Archive, primary_tli: int | None,
                    primary_problem: str | None = None) -> TimelineChoice:
    """The timeline to follow, and why (the reason is shown to the operator)."""
    newest = archive.newest_timeline()
    if isinstance(option, int):
        return TimelineChoice(option, f"timeline {option} was asked for (--target-timeline {option})")
    if option == "latest":
        return TimelineChoice(newest, f"timeline {newest} is the newest in the archive (--target-timeline latest)")
    if primary_tli is not None:
        return TimelineChoice(primary_tli, f"timeline {primary_tli} is the one the configured primary is on")
    why = f" ({primary_problem})" if primary_problem else ""
    return TimelineChoice(newest, f"the primary could not be asked{why}: following the newest archived "
                                  f"timeline, {newest}")


def timeline_path(archive: Archive, tli: int) -> tuple[Span, ...]:
    """The spans recovery follows to reach timeline ``tli``, oldest first."""
    if tli == 1:
        return (Span(1, Lsn(0), None),)
    hist = archive.histories.get(tli)
    if hist is None:
        raise PlanRefused("history-missing", f"timeline {tli} has no history file ({tli:08X}.history) in the "
                                             "archive", timeline=tli)
    spans: list[Span] = []
    begin = Lsn(0)
    for e in hist:
        if e.switch_lsn < begin:
            raise PlanRefused("history-damaged", f"{tli:08X}.history goes backwards at timeline {e.parent_tli}",
                              timeline=tli)
        spans.append(Span(e.parent_tli, begin, e.switch_lsn))
        begin = e.switch_lsn
    if spans and spans[-1].tli >= tli:
        raise PlanRefused("history-damaged", f"{tli:08X}.history names timeline {spans[-1].tli} as an ancestor "
                                             f"of timeline {tli}", timeline=tli)
    spans.append(Span(tli, begin, None))
    return tuple(spans)


def branches(archive: Archive, path: Sequence[Span]) -> list[dict[str, object]]:
    """Timelines in the archive that are not on ``path``: where each left which timeline."""
    on_path = {s.tli for s in path}
    out: list[dict[str, object]] = []
    for t in sorted(archive.timelines() - on_path):
        hist = archive.histories.get(t)
        if hist:
            out.append({"timeline": t, "parent": hist[-1].parent_tli, "switch_lsn": str(hist[-1].switch_lsn)})
        else:
            out.append({"timeline": t, "parent": None, "switch_lsn": None})
    return out


def continued_ancestors(archive: Archive, path: Sequence[Span]) -> list[dict[str, object]]:
    """Ancestor timelines of ``path`` that have archived segments after the path left them: a server
    kept writing on that timeline after the followed one branched off (typically the primary, while
    a restored copy archived the branch). Their WAL after the switch is not on the followed path."""
    out: list[dict[str, object]] = []
    size = archive.segment_size
    for sp in path:
        if sp.end is None:
            continue
        left_segno = sp.end.value // size
        later = [n for n in archive.segments.get(sp.tli, frozenset()) if n > left_segno]
        if later:
            out.append({"timeline": sp.tli, "left_at": str(sp.end),
                        "archived_to": Segment(sp.tli, max(later), size).name})
    return out


# ---- which base backup ---------------------------------------------------------------------------
def on_path(backup: BaseBackup, path: Sequence[Span]) -> bool:
    """Can recovery along ``path`` start from ``backup``?"""
    for s in path:
        if s.tli == backup.timeline:
            return s.begin <= backup.start_lsn and (s.end is None or backup.stop_lsn <= s.end)
    return False


@dataclass(frozen=True)
class Target:
    """What the target says about itself, as far as planning can know it."""

    time: datetime | None = None
    lsn: Lsn | None = None
    xid: int | None = None

    def allows(self, b: BaseBackup) -> bool:
        """The backup ends at or before the target (so replay from it can stop there)."""
        if self.time is not None:
            return b.stop_time <= self.time
        if self.lsn is not None:
            return b.stop_lsn <= self.lsn
        if self.xid is not None:
            return b.xid_after <= self.xid
        return True


def choose_backup(backups: Sequence[BaseBackup], path: Sequence[Span], target: Target) -> BaseBackup:
    """The newest backup (by stop LSN) on the path that ends before the target."""
    if not backups:
        raise PlanRefused("no-backup", "there is no physical backup")
    fitting = [b for b in backups if target.allows(b)]
    if not fitting:
        raise PlanRefused("before-oldest-backup", "the target is earlier than the oldest backup's end")
    reachable = [b for b in fitting if on_path(b, path)]
    if not reachable:
        tlis = sorted({b.timeline for b in fitting})
        raise PlanRefused("no-backup-on-timeline",
                          f"no backup that ends before the target is on the history of timeline {path[-1].tli} "
                          f"(they are on timeline{'s' if len(tlis) > 1 else ''} {', '.join(map(str, tlis))})")
    return max(reachable, key=lambda b: (b.stop_lsn, b.id))


def check_backup(backup: BaseBackup, path: Sequence[Span], target: Target) -> None:
    """Refuse an operator-chosen backup that cannot reach the target along ``path``."""
    if not target.allows(backup):
        raise PlanRefused("target-before-backup", f"the target is before the end of backup {backup.id}")
    if not on_path(backup, path):
        raise PlanRefused("backup-off-timeline", f"backup {backup.id} (timeline {backup.timeline}, ended at "
                                                 f"{backup.stop_lsn}) is not on the history of timeline "
                                                 f"{path[-1].tli}")


# ---- which WAL -----------------------------------------------------------------------------------
def timeline_for_segment(path: Sequence[Span], segno: int, segment_size: int) -> int:
    """The timeline whose copy of segment ``segno`` recovery along ``path`` reads."""
    tli = path[0].tli
    for s in path:
        if s.begin.value // segment_size <= segno:
            tli = s.tli
    return tli


def path_segment(path: Sequence[Span], segno: int, segment_size: int) -> Segment:
    return Segment(timeline_for_segment(path, segno, segment_size), segno, segment_size)


def archived_end(archive: Archive, path: Sequence[Span], start_segno: int) -> tuple[int, bool] | None:
    """The newest segment number archived along ``path`` at or after ``start_segno`` (whichever
    timeline the path reads it from), and whether it exists only as ``.partial``; None if nothing."""
    size = archive.segment_size
    best: int | None = None
    for s in path:
        for n in archive.segments.get(s.tli, frozenset()):
            if n >= start_segno and (best is None or n > best) and timeline_for_segment(path, n, size) == s.tli:
                best = n
    tail = path[-1]
    if best is not None:
        nxt = path_segment(path, best + 1, size)
        if nxt.tli == tail.tli and archive.has_partial(nxt):
            return best + 1, True
        return best, False
    partial = [n for n in archive.partials.get(tail.tli, frozenset())
               if n >= start_segno and timeline_for_segment(path, n, size) == tail.tli]
    return (max(partial), True) if partial else None


@dataclass(frozen=True)
class WalCoverage:
    first: Segment
    last: Segment
    missing: tuple[Segment, ...]
    last_is_partial: bool
    beyond_archive: bool  # the target lies after everything archived along the path

    @property
    def complete(self) -> bool:
        return not self.missing


def wal_coverage(archive: Archive, path: Sequence[Span], backup: BaseBackup, target_lsn: Lsn | None) -> WalCoverage:
    """Which segments recovery from ``backup`` along ``path`` reads, up to ``target_lsn`` (or
    everything archived), and which of them the archive lacks."""
    size = archive.segment_size
    first_n = segment_of(backup.start_lsn, backup.timeline, size).segno
    backup_end_n = segment_for_end(backup.stop_lsn, backup.timeline, size).segno
    end = archived_end(archive, path, first_n)
    end_n, partial = end if end is not None else (backup_end_n, False)
    beyond = False
    last_n = end_n
    if target_lsn is not None:
        last_n = segment_of(target_lsn, 1, size).segno
        beyond = end is None or last_n > end_n
    last_n = max(last_n, backup_end_n)
    missing = []
    for n in range(first_n, last_n + 1):
        seg = path_segment(path, n, size)
        if archive.has(seg):
            continue
        if partial and n == end_n and archive.has_partial(seg):
            continue
        missing.append(seg)
    return WalCoverage(path_segment(path, first_n, size), path_segment(path, last_n, size), tuple(missing),
                       partial and last_n == end_n, beyond)


def segments_back_from(path: Sequence[Span], segno: int, segment_size: int, count: int,
                       archive: Archive) -> list[Segment]:
    """Up to ``count`` archived segments along ``path`` from ``segno`` going back (newest first)."""
    out: list[Segment] = []
    n = segno
    while n >= 0 and len(out) < count:
        seg = path_segment(path, n, segment_size)
        if archive.has(seg):
            out.append(seg)
        n -= 1
    return out


def archive_from_names(names: Iterable[str], segment_size: int,
                       histories: Mapping[int, tuple[HistoryEntry, ...]]) -> Archive:
    """An ``Archive`` from WAL file names (segments and ``.partial``) and parsed history files."""
    from swarm.model.wal import classify, parse_segment

    segs: dict[int, set[int]] = {}
    parts: dict[int, set[int]] = {}
    for name in names:
        try:
            kind = classify(name)
        except ValueError:
            continue
        if kind == "segment":
            s = parse_segment(name, segment_size)
            segs.setdefault(s.tli, set()).add(s.segno)
        elif kind == "partial":
            s = parse_segment(name.removesuffix(".partial"), segment_size)
            parts.setdefault(s.tli, set()).add(s.segno)
    return Archive(segment_size, {t: frozenset(v) for t, v in segs.items()},
                   {t: frozenset(v) for t, v in parts.items()}, dict(histories))
