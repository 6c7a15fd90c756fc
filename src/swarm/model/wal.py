"""WAL positions and file names, as pure functions (no I/O).

PostgreSQL addresses WAL by an LSN, a 64-bit byte position printed ``X/Y`` (high and low
32 bits in hex). WAL is cut into segments of ``segment_size`` bytes (16 MiB by default);
a segment's file name is ``TTTTTTTTXXXXXXXXYYYYYYYY``: timeline, then the segment number
split into "log" (``segno // segments_per_xlogid``) and "seg" (``segno % ...``), each 8
upper-case hex digits. ``<tli>.history`` files list a timeline's ancestors; ``<segment>.partial``
is the last, incomplete segment of a timeline that was promoted away from (or what
``pg_receivewal`` is still writing).

Everything here is total and side-effect free so it can be property tested; invalid input
raises ``ValueError`` (callers at the edge turn that into an operator error).
"""
from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

DEFAULT_SEGMENT_SIZE = 16 << 20
_LSN_RE = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")
_SEG_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")
_HISTORY_RE = re.compile(r"^([0-9A-F]{8})\.history$")
_PARTIAL_SUFFIX = ".partial"
_BACKUP_RE = re.compile(r"^([0-9A-F]{24})\.([0-9A-F]{8})\.backup$")
MAX_LSN = (1 << 64) - 1


@dataclass(frozen=True, order=True)
class Lsn:
    """A WAL position. Orders like the integer it wraps."""

    value: int

    def __post_init__(self) -> None:
        if not 0 <= self.value <= MAX_LSN:
            raise ValueError(f"LSN {self.value} out of range")

    @classmethod
    def parse(cls, text: str) -> Lsn:
        m = _LSN_RE.match(text.strip())
        if not m:
            raise ValueError(f"not an LSN: {text!r} (expected hex 'X/Y', e.g. 0/16B3748)")
        return cls((int(m.group(1), 16) << 32) | int(m.group(2), 16))

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"

    def __add__(self, n: int) -> Lsn:
        return Lsn(self.value + n)

    def __sub__(self, other: Lsn) -> int:
        return self.value - other.value


def segments_per_xlogid(segment_size: int = DEFAULT_SEGMENT_SIZE) -> int:
    _check_segment_size(segment_size)
    return 0x100000000 // segment_size


def _check_segment_size(segment_size: int) -> None:
    if segment_size < (1 << 20) or segment_size > (1 << 30) or segment_size & (segment_size - 1):
        raise ValueError(f"invalid WAL segment size {segment_size} (a power of two from 1 MiB to 1 GiB)")


@dataclass(frozen=True, order=True)
class Segment:
    """One WAL segment: timeline and segment number (orders by timeline, then number)."""

    tli: int
    segno: int
    segment_size: int = DEFAULT_SEGMENT_SIZE

    def __post_init__(self) -> None:
        _check_segment_size(self.segment_size)
        if not 1 <= self.tli <= 0xFFFFFFFF:
            raise ValueError(f"timeline {self.tli} out of range")
        if not 0 <= self.segno <= MAX_LSN // self.segment_size:
            raise ValueError(f"segment number {self.segno} out of range")

    @property
    def name(self) -> str:
        per = segments_per_xlogid(self.segment_size)
        return f"{self.tli:08X}{self.segno // per:08X}{self.segno % per:08X}"

    @property
    def start(self) -> Lsn:
        return Lsn(self.segno * self.segment_size)

    @property
    def end(self) -> Lsn:
        """The first LSN after this segment."""
        return Lsn(min(MAX_LSN, (self.segno + 1) * self.segment_size))

    def next(self) -> Segment:
        return Segment(self.tli, self.segno + 1, self.segment_size)

    def contains(self, lsn: Lsn) -> bool:
        return self.start <= lsn < self.end or (lsn.value == MAX_LSN and self.end.value == MAX_LSN)

    def __str__(self) -> str:
        return self.name


def parse_segment(name: str, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    """``000000010000000A000000FF`` → Segment(1, ...). Raises ValueError for anything else."""
    m = _SEG_RE.match(name)
    if not m:
        raise ValueError(f"not a WAL segment name: {name!r}")
    tli, log, seg = (int(g, 16) for g in m.groups())
    per = segments_per_xlogid(segment_size)
    if seg >= per:
        raise ValueError(f"WAL segment name {name!r} has a segment part beyond {per - 1:X}")
    return Segment(tli, log * per + seg, segment_size)


def is_segment_name(name: str) -> bool:
    return bool(_SEG_RE.match(name))


def segment_of(lsn: Lsn, tli: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    """The segment on timeline ``tli`` that holds the byte at ``lsn``."""
    return Segment(tli, lsn.value // segment_size, segment_size)


def segment_for_end(lsn: Lsn, tli: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Segment:
    """The segment holding the last byte *before* ``lsn`` (where WAL ending at ``lsn`` ends).

    A backup whose stop LSN sits exactly on a segment boundary needs only the segments before it.
    """
    return segment_of(Lsn(max(0, lsn.value - 1)), tli, segment_size)


def segments_between(start: Lsn, end: Lsn, tli: int, segment_size: int = DEFAULT_SEGMENT_SIZE) -> Iterator[Segment]:
    """Every segment on ``tli`` from the one holding ``start`` to the one holding the byte before ``end``."""
    if end < start:
        raise ValueError(f"end {end} before start {start}")
    first = segment_of(start, tli, segment_size)
    last = segment_for_end(end, tli, segment_size) if end > start else first
    for segno in range(first.segno, last.segno + 1):
        yield Segment(tli, segno, segment_size)


# ---- history, partial and backup-label file names -------------------------------------------
def history_name(tli: int) -> str:
    if not 1 <= tli <= 0xFFFFFFFF:
        raise ValueError(f"timeline {tli} out of range")
    return f"{tli:08X}.history"


def parse_history_name(name: str) -> int:
    m = _HISTORY_RE.match(name)
    if not m:
        raise ValueError(f"not a timeline history file name: {name!r}")
    return int(m.group(1), 16)


def is_history_name(name: str) -> bool:
    return bool(_HISTORY_RE.match(name))


def partial_name(segment: Segment) -> str:
    return segment.name + _PARTIAL_SUFFIX


def is_partial_name(name: str) -> bool:
    return name.endswith(_PARTIAL_SUFFIX) and is_segment_name(name[: -len(_PARTIAL_SUFFIX)])


def is_backup_history_name(name: str) -> bool:
    return bool(_BACKUP_RE.match(name))


def classify(name: str) -> str:
    """``segment``, ``partial``, ``history``, ``backup`` (a .backup label) or raise ValueError."""
    if is_segment_name(name):
        return "segment"
    if is_partial_name(name):
        return "partial"
    if is_history_name(name):
        return "history"
    if is_backup_history_name(name):
        return "backup"
    raise ValueError(f"not a WAL archive file name: {name!r}")


def timeline_of(name: str) -> int:
    """The timeline a WAL archive file belongs to (its first 8 hex digits)."""
    classify(name)
    return int(name[:8], 16)


@dataclass(frozen=True)
class HistoryEntry:
    """One line of a history file: ``parent_tli`` ended (switched away) at ``switch_lsn``."""

    parent_tli: int
    switch_lsn: Lsn
    reason: str


def parse_history(text: str) -> list[HistoryEntry]:
    """Parse a ``.history`` file: ``<parent tli>\\t<switch LSN>\\t<reason>`` lines; ``#`` comments."""
    out: list[HistoryEntry] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ValueError(f"bad history line: {raw!r}")
        out.append(HistoryEntry(int(parts[0]), Lsn.parse(parts[1]), parts[2] if len(parts) > 2 else ""))
    return out


def timeline_switch_points(history: list[HistoryEntry]) -> dict[int, Lsn]:
    """Ancestor timeline → the LSN where the following timeline branched off it."""
    return {e.parent_tli: e.switch_lsn for e in history}


# ---- gaps ----------------------------------------------------------------------------------
def find_gaps(present: Iterable[Segment], start: Segment, end: Segment) -> list[Segment]:
    """The segments from ``start`` to ``end`` (inclusive, same timeline) missing from ``present``."""
    if start.tli != end.tli or start.segment_size != end.segment_size:
        raise ValueError("gap search runs along one timeline and one segment size")
    have = {s.segno for s in present if s.tli == start.tli}
    return [Segment(start.tli, n, start.segment_size) for n in range(start.segno, end.segno + 1) if n not in have]


def missing_runs(present: Iterable[Segment]) -> list[tuple[Segment, Segment]]:
    """Holes inside what is present, per timeline: (first missing, last missing) pairs, in order."""
    by_tli: dict[int, list[Segment]] = {}
    for s in present:
        by_tli.setdefault(s.tli, []).append(s)
    out: list[tuple[Segment, Segment]] = []
    for tli in sorted(by_tli):
        segs = sorted(set(by_tli[tli]))
        for a, b in itertools.pairwise(segs):
            if b.segno > a.segno + 1:
                out.append((Segment(tli, a.segno + 1, a.segment_size), Segment(tli, b.segno - 1, a.segment_size)))
    return out


# ---- WAL page header ------------------------------------------------------------------------
XLP_LONG_HEADER_SYSID_OFFSET = 8 + 8 + 4 + 4  # magic,info,tli (8) + pageaddr (8) + rem_len (4) + pad (4)
XLP_LONG_HEADER_SEGSIZE_OFFSET = XLP_LONG_HEADER_SYSID_OFFSET + 8
XLP_LONG_HEADER = 0x0002


def header_system_identifier(first_page: bytes) -> int | None:
    """The system identifier in a segment's long page header (``xlp_sysid``), or None if absent.

    The first page of every segment starts with ``XLogLongPageHeaderData``: ``xlp_magic:u16,
    xlp_info:u16, xlp_tli:u32, xlp_pageaddr:u64, xlp_rem_len:u32`` (+4 padding), then
    ``xlp_sysid:u64`` at byte 24, little endian on the platforms we run on.
    """
    if len(first_page) < XLP_LONG_HEADER_SYSID_OFFSET + 8:
        return None
    info = int.from_bytes(first_page[2:4], "little")
    if not info & XLP_LONG_HEADER:
        return None
    return int.from_bytes(first_page[XLP_LONG_HEADER_SYSID_OFFSET:XLP_LONG_HEADER_SYSID_OFFSET + 8], "little")
