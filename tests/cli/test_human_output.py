"""Human output reads as sentences: plan warnings one a line, no byte counters on a stage that
counts no bytes, and a total that turned out to be an estimate said to be one."""
from __future__ import annotations

import io

from rich.progress import Progress

from swarm.ui import render
from swarm.ui.progress import ProgressReporter, _BytesColumn, _SpeedColumn


def test_plan_warnings_are_one_sentence_a_line(capsys) -> None:  # type: ignore[no-untyped-def]
    warnings = ["timeline history 00000003.history cannot be read (damaged); that timeline cannot be followed",
                "the newest archived segment is 900 s old, while archive_timeout is 60 s"]
    render.dry_run_plan({"backup": "B", "timelines": [1, 2], "warnings": warnings}, as_json=False)
    out = capsys.readouterr().out
    assert "  - " + warnings[0] in out and "  - " + warnings[1] in out
    assert ", ".join(warnings) not in out
    assert "timelines  1, 2" in out  # a list of numbers stays on one line


def test_a_stage_that_counts_no_bytes_shows_no_byte_counters() -> None:
    now = [10.0]
    rep = ProgressReporter("lines", interval=60, stream=io.StringIO(), clock=lambda: now[0])
    rep.stage("starting PostgreSQL, recovering to the target")
    now[0] += 3
    assert rep.line() == "progress: starting PostgreSQL, recovering to the target, 3 s elapsed"
    snap = rep.snapshot()
    assert snap is not None and snap["done_bytes"] is None and snap["rate_bytes_per_s"] is None
    p = Progress()
    tid = p.add_task("recovering", total=None)
    task = p.tasks[tid]
    assert _BytesColumn().render(task).plain == "" and _SpeedColumn().render(task).plain == ""


def test_an_exceeded_total_is_called_an_estimate_and_done_stays_true() -> None:
    now = [0.0]
    rep = ProgressReporter("json", interval=60, stream=io.StringIO(), clock=lambda: now[0])
    rep.stage("base backup")
    rep.total(6_900_000)
    rep.advance(7_200_000)
    now[0] += 1
    snap = rep.snapshot()
    assert snap is not None
    assert snap["done_bytes"] == 7_200_000 and snap["total_bytes"] == 6_900_000
    assert snap["total_estimated"] is True and snap["percent"] == 100.0
    assert rep.line() == "progress: base backup: 7.2 MB (more than the estimated 6.9 MB), 7.2 MB/s, 1 s elapsed"
    p = Progress()
    tid = p.add_task("base backup", total=6_900_000, completed=7_200_000)
    task = p.tasks[tid]
    assert _BytesColumn().render(task).plain == "7.2 MB (estimated 6.9 MB)"
