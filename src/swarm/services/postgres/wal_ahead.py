"""WAL fetched before a restored server starts, so recovery does not wait on ``wal fetch``.

PostgreSQL runs ``restore_command`` once per file it wants, serially, and also for files that
do not exist (the segment after the last one, the history file of the next timeline, a
segment under each newer timeline of the path). Each run of ``swarm admin wal fetch`` is a
Python process that opens the repository: about a second on an idle machine, several on a
loaded one, and a restore to "latest" makes half a dozen of them even when only one segment
is replayed. ``prefetch_for_recovery`` therefore, before the server starts:

1. works out, from the plan and the archive's inventory, every WAL file recovery will ask for
   (the segments from ``plan.wal_from`` to the archive's end on each timeline of the path,
   the path's history files) and the ones it will ask for that are not archived (the next
   segment after the end, the next timeline's history file, the history file of timeline 1,
   which never exists but is asked for when the new timeline's history is written);
2. downloads the present ones (each verified by the repository, several at a time) into
   ``<spool>/ahead/`` and marks the absent ones with an empty ``<name>.absent``;
3. writes ``<spool>/restore-command.sh``, which answers from ``ahead/`` (copy: the server may
   ask twice for the same file), says "not archived" (exit 1) for a marked name, and runs
   swarm's own ``wal fetch`` for anything else, noting its name in ``ahead/fallback.log``.

What "not archived" means changes slightly: recovery to "latest" replays what was archived
when the restore began, not WAL archived while it runs (a segment not known then is still
asked of the repository, only the names checked absent are answered without it). At most
``max_segments`` segments are fetched ahead (disk space: 16 MiB each); beyond them the
script falls through to ``wal fetch`` and its own prefetcher, and no segment is marked absent.

A kill -9 during 1-3 leaves ``ahead/`` in the spool beside the data directory (WAL files,
private to the server user); the next restore into that directory empties it before use, and
a failed restore removes the whole spool. After promotion the caller removes ``ahead/`` (the
script stays: with no ``ahead/`` it always runs ``wal fetch``, as before).
"""
from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from swarm.errors import IntegrityError, WalUnreadable
from swarm.model import wal
from swarm.repo import Repository
from swarm.services.wal.archive import ArchiveInventory, inventory

AHEAD_DIR = "ahead"
SCRIPT_NAME = "restore-command.sh"
FALLBACK_LOG = "fallback.log"
AHEAD_MAX_SEGMENTS = 64
# restore_command's exit status when an archived file cannot be copied: above 125, so
# PostgreSQL aborts recovery instead of taking it for the end of the archive
_ABORT = 126


@dataclass
class WalAhead:
    """What was fetched ahead (``fetched``), what was checked absent (``absent``), and the
    ``restore_command`` that uses them."""

    dir: Path
    restore_command: str
    fetched: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    fetched_bytes: int = 0

    def fallbacks(self) -> list[str]:
        """Names the server asked ``wal fetch`` for (not answered from ``ahead/``), in order."""
        try:
            return (self.dir / FALLBACK_LOG).read_text().split()
        except OSError:
            return []

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def wanted_names(inv: ArchiveInventory, timelines: list[int], wal_from: str, wal_to: str, *,
                 to_archive_end: bool, max_segments: int = AHEAD_MAX_SEGMENTS) -> tuple[list[str], list[str]]:
    """``(present, absent)``: the archived WAL files recovery along ``timelines`` from
    ``wal_from`` to ``wal_to`` (or, ``to_archive_end``, to the newest archived segment of
    those timelines) will ask for, and the names it will ask for that the archive lacks.

    A segment archived only as ``<name>.partial`` counts as present (``wal fetch`` serves it in
    its place). Pure: reads only ``inv``.
    """
    size = inv.segment_size
    first = wal.parse_segment(wal_from, size).segno
    last = wal.parse_segment(wal_to, size).segno
    partials = set(inv.partials)

    def archived(name: str) -> bool:
        return inv.has(name) or name + ".partial" in partials

    if to_archive_end:
        for tli in timelines:
            for seg in inv.segments.get(tli, []):
                last = max(last, seg.segno)
        for p in partials:
            seg = wal.parse_segment(p[: -len(".partial")], size)
            if seg.tli in timelines:
                last = max(last, seg.segno)
    capped = last - first + 1 > max_segments
    if capped:
        last = first + max_segments - 1
    present: list[str] = []
    absent: list[str] = []
    for t in timelines:  # the path's histories; at the end the server also asks for its parent's (1 has none)
        (present if inv.has(wal.history_name(t)) else absent).append(wal.history_name(t))
    for segno in range(first, last + 1):
        for tli in timelines:
            name = wal.Segment(tli, segno, size).name
            (present if archived(name) else absent).append(name)
    if to_archive_end and not capped:
        for tli in timelines:
            name = wal.Segment(tli, last + 1, size).name
            if not archived(name):
                absent.append(name)
    nxt = max(timelines) + 1
    while inv.has(wal.history_name(nxt)):  # a newer timeline exists: the server fetches its history itself
        nxt += 1
    absent.append(wal.history_name(nxt))
    return present, absent


def _script(ahead: Path, fallback_command: str) -> str:
    a = shlex.quote(str(ahead))
    fallback = fallback_command.replace("%f", '"$1"').replace("%p", '"$2"')
    return (
        "#!/bin/sh\n"
        "# restore_command of a restore by swarm: WAL fetched before the server started, then `wal fetch`\n"
        f"a={a}\n"
        f'if [ -f "$a/$1" ]; then cp "$a/$1" "$2" && exit 0; exit {_ABORT}; fi\n'
        'if [ -f "$a/$1.absent" ]; then exit 1; fi\n'
        f'if [ -d "$a" ]; then echo "$1" >> "$a/{FALLBACK_LOG}"; fi\n'
        f"exec {fallback}\n"
    )


def prefetch_for_recovery(repo: Repository, spool: Path, *, timelines: list[int], wal_from: str, wal_to: str,
                          to_archive_end: bool, fallback_command: str, jobs: int = 4,
                          max_segments: int = AHEAD_MAX_SEGMENTS,
                          give: Callable[[Path], None] | None = None) -> WalAhead:
    """Steps 1-3 of the module docstring into ``spool`` (which must exist); return what was done.

    ``fallback_command`` is swarm's ``restore_command`` (``%f``, ``%p``); ``give(path)``, if
    set, hands a written path to the server user. Raises WalUnreadable (an IntegrityError)
    naming a WAL file recovery needs that the repository cannot read (damaged, truncated):
    the restore stops before the server starts, as recovery would have stopped there.
    """
    ahead = spool / AHEAD_DIR
    shutil.rmtree(ahead, ignore_errors=True)  # a killed run's leftovers
    ahead.mkdir(mode=0o700)
    inv = inventory(repo)
    present, absent = wanted_names(inv, timelines, wal_from, wal_to, to_archive_end=to_archive_end,
                                   max_segments=max_segments)
    out = WalAhead(ahead, "")

    def fetch(name: str) -> int:
        try:
            data = repo.find_wal(name)
            if data is None and wal.is_segment_name(name):
                data = repo.find_wal(wal.partial_name(wal.parse_segment(name, inv.segment_size)))
        except IntegrityError as exc:
            raise WalUnreadable(f"archived WAL cannot be read: {exc.message}",
                                hint="Restore to a target before that segment, or put an intact copy of it into "
                                     "the archive; `swarm admin wal status` lists the archive.") from exc
        if data is None:  # pruned since the inventory: leave it to `wal fetch`
            return -1
        part = ahead / f".{name}.part"
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(part, ahead / name)
        return len(data)

    with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="wal-ahead") as pool:
        for name, n in zip(present, pool.map(fetch, present), strict=True):
            if n >= 0:
                out.fetched.append(name)
                out.fetched_bytes += n
    for name in absent:
        (ahead / f"{name}.absent").touch(mode=0o600)
    out.absent = absent
    script = spool / SCRIPT_NAME
    script.write_text(_script(ahead, fallback_command))
    script.chmod(0o644)
    if give is not None:
        give(script)
        give(ahead)
        for p in ahead.iterdir():
            give(p)
    out.restore_command = f"sh {shlex.quote(str(script))} %f %p"
    return out
