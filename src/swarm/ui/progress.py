"""The CLI's Reporter (services.reporting.Reporter): progress on stderr, never on stdout.

Three modes, chosen by ``cli.common.progress``:

* ``bar``: stderr is a terminal: a rich bar with bytes done, of the total where the service
  gave one (``total``), rate and elapsed time; it disappears when the command ends;
* ``lines``: no terminal (cron, CI, a pipe): one plain line to stderr at most every
  ``interval`` seconds, and at least that often while a stage runs (a ticker thread, so a
  step that advances nothing for minutes still shows it is alive)::

      progress: dumping swarm (6 MB) with 2 jobs: 1.2 MB of 6.3 MB (19%), 0.4 MB/s, 3 s elapsed

* ``json`` (``--json``): the same cadence, one JSON document per line on stderr
  (``{"progress": {...}}``, fields below); stdout keeps its one JSON result;
* ``off``: nothing (an interval of 0 or less in ``lines``/``json`` mode).

Nothing is printed before the first ``stage``. ``advance`` may be called from several
threads at once.

A stage that counts no bytes (it never called ``total`` or ``advance``: waiting for WAL,
recovery) shows no byte counters: the line is ``progress: <stage>, 12 s elapsed``, the JSON
fields ``done_bytes``, ``total_bytes``, ``percent`` and ``rate_bytes_per_s`` are null, the bar
shows no amount or rate. A total is what the service expected (a physical backup's is an
estimate); once more bytes than that are done, ``done_bytes`` stays the true count,
``percent`` stays at 100, ``total_estimated`` is true (JSON) and the line reads ``7.2 MB (more
than the estimated 6.9 MB)``.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from swarm.ui.render import err, human_bytes

MODES = ("bar", "lines", "json", "off")
DEFAULT_INTERVAL_S = 5.0


class _BytesColumn(ProgressColumn):
    """``1.2 MB/6.3 MB`` with a total, ``1.2 MB`` without (never ``0/?``)."""

    def render(self, task: Task) -> Text:
        if task.total is None and not task.completed:
            return Text("")  # a stage that counts no bytes
        done = human_bytes(task.completed)
        if task.total is None:
            return Text(done)
        if task.completed > task.total:
            return Text(f"{done} (estimated {human_bytes(task.total)})")
        return Text(f"{done}/{human_bytes(task.total)}")


class _SpeedColumn(TransferSpeedColumn):
    """The transfer rate, or nothing for a stage that counts no bytes (never ``?``)."""

    def render(self, task: Task) -> Text:
        if task.total is None and not task.completed:
            return Text("")
        return super().render(task)


class ProgressReporter:
    def __init__(self, mode: str = "bar", *, interval: float = DEFAULT_INTERVAL_S,
                 stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode {mode!r} is not one of {', '.join(MODES)}")
        if mode in ("lines", "json") and interval <= 0:
            mode = "off"
        self.mode = mode
        self.interval = interval
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._stage_t0 = 0.0
        self._t0 = clock()
        self._done = 0
        self._total: int | None = None
        self._counted = False  # the current stage called total() or advance()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    # ---- context ----------------------------------------------------------------------------------
    def __enter__(self) -> ProgressReporter:
        self._t0 = self._clock()
        if self.mode == "bar":
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), _BytesColumn(),
                                      _SpeedColumn(), TimeElapsedColumn(), console=err, transient=True)
            self._progress.start()
        elif self.mode in ("lines", "json"):
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=5)
        if self._progress:
            self._progress.stop()

    # ---- Reporter ---------------------------------------------------------------------------------
    def stage(self, name: str) -> None:
        with self._lock:
            self._stage, self._stage_t0, self._done, self._total = name, self._clock(), 0, None
            self._counted = False
        if self._progress is not None:
            if self._task is not None:
                self._progress.update(self._task, visible=False)
            self._task = self._progress.add_task(name, total=None)

    def total(self, n: int) -> None:
        with self._lock:
            self._total = int(n)
            self._counted = True
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=n)

    def advance(self, n: int) -> None:
        with self._lock:
            self._done += n
            self._counted = True
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, n)

    # ---- lines / json -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any] | None:
        """The current stage's progress (the ``json`` mode's fields), or None before the first stage."""
        with self._lock:
            if self._stage is None:
                return None
            now = self._clock()
            stage_s = max(0.0, now - self._stage_t0)
            done, total, counted = self._done, self._total, self._counted
            return {"stage": self._stage, "done_bytes": done if counted else None, "total_bytes": total,
                    "total_estimated": bool(total) and done > (total or 0),
                    "percent": round(min(100.0, 100.0 * done / total), 1) if total else None,
                    "rate_bytes_per_s": (round(done / stage_s) if stage_s > 0 else 0) if counted else None,
                    "stage_elapsed_s": round(stage_s, 1), "elapsed_s": round(max(0.0, now - self._t0), 1)}

    def line(self) -> str | None:
        """The current progress as the ``lines`` mode prints it."""
        s = self.snapshot()
        if s is None:
            return None
        if s["done_bytes"] is None:  # a stage that counts no bytes
            return f"progress: {s['stage']}, {s['elapsed_s']:.0f} s elapsed"
        amount = human_bytes(s["done_bytes"])
        if s["total_estimated"]:
            amount += f" (more than the estimated {human_bytes(s['total_bytes'])})"
        elif s["total_bytes"]:
            amount += f" of {human_bytes(s['total_bytes'])} ({s['percent']:.0f}%)"
        return (f"progress: {s['stage']}: {amount}, {human_bytes(s['rate_bytes_per_s'])}/s, "
                f"{s['elapsed_s']:.0f} s elapsed")

    def emit(self) -> None:
        """Print the current progress now (``lines`` / ``json`` modes)."""
        if self.mode == "lines":
            text = self.line()
        elif self.mode == "json":
            snap = self.snapshot()
            text = None if snap is None else json.dumps({"progress": snap}, separators=(",", ":"))
        else:
            return
        if text is None:
            return
        stream = self._stream or sys.stderr
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):  # stderr closed: progress is not worth failing the command for
            self._stop.set()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit()
