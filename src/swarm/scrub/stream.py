"""Streaming front-end: scrub a text stream into another.

``jsonl`` (and ``auto`` when the first non-blank line is a JSON value on its
own) is processed in batches of whole lines (:data:`BATCH_CHARS` characters or
so) in constant memory; ``json`` and ``text`` read the whole document.

With ``jobs > 1`` the JSONL batches are scrubbed by that many worker
processes, each with a :class:`Scrubber` under the same key; the main process
reads, writes the results in input order and merges the workers' reports into
the caller's.  Output and report are the same as with ``jobs=1``: a line's
result depends only on the line and the key.  The pool is only started when
the input has more than one batch.  If the process is killed, the output holds
a prefix of the result made of whole batches (and whatever the last write had
passed on); nothing else is left behind: each worker exits within a second
once its parent is gone.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TextIO

from swarm.scrub.report import ScrubReport
from swarm.scrub.scrubber import FORMATS, Scrubber

__all__ = ["BATCH_CHARS", "scrub_stream"]

BATCH_CHARS = 1 << 19  # about 512 K characters of whole lines per batch

_worker: Scrubber | None = None


def _init_worker(key: bytes) -> None:
    global _worker
    _worker = Scrubber(key)
    parent = os.getppid()

    def watch() -> None:  # a worker whose parent was killed (kill -9) must not wait forever
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="scrub-parent-watch", daemon=True).start()


def _scrub_batch(lines: list[str]) -> tuple[str, ScrubReport]:
    """In a worker: one batch scrubbed, and the report of that batch alone."""
    s = _worker
    assert s is not None
    s.report = ScrubReport()
    return s.scrub_lines(lines), s.report


def _batches(first: list[str], inp: TextIO, hint: int) -> Iterator[list[str]]:
    if first:
        yield first
    while True:
        lines = inp.readlines(hint)
        if not lines:
            return
        yield lines


def scrub_stream(inp: TextIO, out: TextIO, scrubber: Scrubber, fmt: str = "auto", jobs: int = 1,
                 batch_chars: int = BATCH_CHARS) -> None:
    """Read ``inp``, write the scrubbed text to ``out`` (format ``auto|text|json|jsonl``).

    ``jobs`` worker processes scrub JSONL batches (1: all in this process); the result and
    ``scrubber.report`` are the same for every ``jobs``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs}")
    if fmt in ("json", "text"):
        out.write(scrubber.scrub(inp.read(), fmt))
        return
    first: list[str] = []
    if fmt == "auto":
        for line in inp:
            first.append(line)
            if line.strip():
                break
        head = "".join(first)
        lone = first[-1] if first else ""
        try:
            json.loads(lone)
            is_lines = lone.strip()[:1] in ("{", "[")
        except ValueError:
            is_lines = False
        if not is_lines:
            out.write(scrubber.scrub(head + inp.read(), "auto"))
            return
    batches = _batches(first, inp, batch_chars)
    write = out.write
    one = next(batches, None)
    if one is None:
        return
    two = next(batches, None) if jobs > 1 else None
    if two is None:  # one batch (or one process): no pool
        write(scrubber.scrub_lines(one))
        for lines in batches:
            write(scrubber.scrub_lines(lines))
        return
    _parallel(scrubber, [one, two], batches, write, jobs)


def _parallel(scrubber: Scrubber, head: list[list[str]], rest: Iterator[list[str]],
              write: Callable[[str], object], jobs: int) -> None:
    """Batches to ``jobs`` worker processes, at most ``2 * jobs`` in flight, results in order."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    report = scrubber.report
    pending: deque[Future[tuple[str, ScrubReport]]] = deque()

    def drain_one() -> None:
        text, rep = pending.popleft().result()
        write(text)
        report.merge(rep)

    # a forked worker flushes the standard streams it inherited when it exits: leave nothing in them
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    ex = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(scrubber.key,))
    try:
        for lines in head:
            pending.append(ex.submit(_scrub_batch, lines))
        for lines in rest:
            if len(pending) >= 2 * jobs:
                drain_one()
            pending.append(ex.submit(_scrub_batch, lines))
        while pending:
            drain_one()
    except BaseException:
        ex.shutdown(wait=False, cancel_futures=True)
        raise
    ex.shutdown()
