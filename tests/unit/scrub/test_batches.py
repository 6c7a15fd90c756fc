"""Batched JSONL (``Scrubber.scrub_lines``) and worker processes (``scrub_stream(jobs=...)``).

The reference is the line-by-line loop the stream ran before: ``scrub_line`` on every line.
``scrub_lines`` copies lines without a candidate through unparsed; the output and the report
must be exactly the loop's, on random lines and on every kind of value that only shows up
after decoding (``\\u`` escapes, JSON held in strings, values split over fields).
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from swarm.scrub import Scrubber
from swarm.scrub import scrubber as sc
from swarm.scrub.stream import scrub_stream

from .helpers import AADHAAR, KEY, VISA
from .test_corpus import REPO, SHARED, _load
from .test_properties import json_values, texts

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference(lines: list[str]) -> tuple[str, dict[str, object]]:
    """The line-by-line loop (what ``scrub_stream`` did before batches)."""
    s = Scrubber(KEY)
    return "".join(s.scrub_line(x) for x in lines), s.report.to_dict()


def batched(lines: list[str]) -> tuple[str, dict[str, object]]:
    s = Scrubber(KEY)
    return s.scrub_lines(lines), s.report.to_dict()


def stream_lines(payload: str) -> list[str]:
    """Lines as the CLI's text stream yields them (newline="": "\\n", "\\r" and "\\r\\n" end a line)."""
    return io.StringIO(payload, newline="").readlines()


# values that are only candidates once decoded, or only as a whole over several fields (scrubbed)
DECODED_ONLY = [
    '{"args": "{\\"m\\": \\"a.b\\u0040example.com\\"}"}',                   # JSON in a string: "@" once decoded
    '{"args": "{\\"phone\\": \\"98765\\u002043210\\"}"}',                   # ... a digit run once decoded
    '{"p1": "4111", "p2": "1111", "p3": "1111", "p4": "1111"}',                  # a card split over fields
    '{"args": "{\\"p1\\": \\"4111\\", \\"p2\\": \\"1111\\", \\"p3\\": \\"1111\\", \\"p4\\": \\"1111\\"}"}',
    json.dumps({"uid": [AADHAAR[:4], AADHAAR[4:8], AADHAAR[8:]]}),               # Aadhaar over array items
    '{"country_code": "+44", "number": "20 7946 0958"}',
    '{"country_code": "+49", "number": "301234"}',                               # no 7-digit run at all
    '{"args": "{\\"dial_code\\": \\"+49\\", \\"phone\\": \\"301234\\"}"}',
    "https://mail.example.net/r?to=a.b%40example.com",                           # not JSON: text
]
# escapes that the scrubber never decodes (no candidate in the raw text): left as they are
ESCAPED = ['{"m": "write to a.b\\u0040example.com"}', '{"m": "call \\u002b91 98765\\u002043210"}',
           '{"args": "{\\"m\\": \\"a.b\\\\u0040example.com\\"}"}']
CLEAN = ['{"id": "abc", "n": 12, "ok": true}', "plain words only", "[1, 2, 3]", '{"v": "v2.14.3"}', "{broken"]


@pytest.mark.parametrize("line", DECODED_ONLY)
def test_values_found_only_after_decoding_are_scrubbed(line: str) -> None:
    lines = [line + "\n"]
    out, rep = batched(lines)
    assert out != lines[0], "the candidate pass let a line with PII through"
    assert (out, rep) == reference(lines)


@pytest.mark.parametrize("line", ESCAPED)
def test_escapes_without_candidate_same_as_line_loop(line: str) -> None:
    lines = [line + "\n"]
    assert batched(lines) == reference(lines)


def test_clean_lines_are_copied_and_counted() -> None:
    lines = [x + "\n" for x in CLEAN] + ["\n", "   \n", "\r\n", "\t"]
    out, rep = batched(lines)
    assert out == "".join(lines)
    assert rep["documents"] == len(CLEAN) and rep["total"] == 0
    assert (out, rep) == reference(lines)


def test_path_is_passed_on() -> None:
    lines = [x + "\n" for x in DECODED_ONLY + CLEAN]
    a, b = Scrubber(KEY), Scrubber(KEY)
    assert a.scrub_lines(lines, "$.artefact") == "".join(b.scrub_line(x, "$.artefact") for x in lines)
    assert a.report.to_dict() == b.report.to_dict()
    assert any(p.startswith("$.artefact") for p in a.report.to_dict()["by_path"])


def test_mixed_batch_keeps_order() -> None:
    lines = stream_lines("".join(x + "\n" for pair in zip(CLEAN, DECODED_ONLY, strict=False) for x in pair)
                         + f"card {VISA}\r\nlast line {VISA}")
    assert batched(lines) == reference(lines)


line_pieces = st.one_of(
    json_values.map(json.dumps),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False)),
    json_values.map(lambda v: json.dumps({"args": json.dumps(v)})),
    texts,
    st.sampled_from(DECODED_ONLY + ESCAPED + CLEAN + ["", " "]),
)


@SETTINGS
@given(st.lists(st.tuples(line_pieces, st.sampled_from(["\n", "\r\n", "\r"])), max_size=12), st.booleans())
@example([('{"m": "a.b\\u0040ex.com"}', "\n"), ('{"x": 1}', "\n")], False)
def test_scrub_lines_same_as_line_loop(rows: list[tuple[str, str]], last_open: bool) -> None:
    payload = "".join(a + b for a, b in rows)
    if last_open and rows:
        payload = payload[: -len(rows[-1][1])]
    lines = stream_lines(payload)
    assert batched(lines) == reference(lines)


def _synthetic_payload(n: int) -> str:
    gen = _load(REPO / "bench" / "scrub_corpus.py", "scrub_corpus_batches")
    return "".join(json.dumps({"id": r["id"], "text": r["text"]}, ensure_ascii=False) + "\n"
                   for r in gen.generate(7, n))


@pytest.mark.parametrize("fmt", ["jsonl", "auto"])
def test_worker_processes_give_the_same_output_and_report(fmt: str) -> None:
    dev = (SHARED / "corpus_dev.jsonl").read_text(encoding="utf-8")
    payload = _synthetic_payload(200) + "\n" + dev + "not json " + VISA + "\n"
    results = []
    for jobs, batch in ((1, 1 << 19), (2, 4096), (3, 777)):
        s = Scrubber(KEY)
        out = io.StringIO()
        scrub_stream(io.StringIO(payload), out, s, fmt, jobs=jobs, batch_chars=batch)
        results.append((out.getvalue(), s.report.to_dict()))
    assert results[0] == results[1] == results[2]
    assert results[0][1]["total"] > 1000


def test_jobs_must_be_positive() -> None:
    with pytest.raises(ValueError, match="jobs"):
        scrub_stream(io.StringIO(""), io.StringIO(), Scrubber(KEY), "jsonl", jobs=0)


def test_cli_jobs_through_real_pipes(tmp_path: Path) -> None:
    """The command with workers writes to a real stdout exactly what one process writes."""
    env = dict(os.environ, SWARM_SCRUB_KEY=KEY.hex(), PYTHONPATH=str(REPO / "src"))
    payload = (_synthetic_payload(300) * 3).encode()  # more than one batch
    outs = []
    for jobs in ("1", "2"):
        rep = tmp_path / f"report-{jobs}.json"
        r = subprocess.run([sys.executable, "-m", "swarm.cli.commands.scrub", "--format", "jsonl", "--jobs", jobs,
                            "--report", str(rep)], input=payload, capture_output=True, env=env, check=True)
        outs.append((r.stdout, rep.read_text()))
    assert outs[0] == outs[1]
    assert outs[0][0].count(b"\n") == payload.count(b"\n")


def test_killed_parent_leaves_no_worker_behind(tmp_path: Path) -> None:
    """kill -9 of the command while workers run: they exit on their own within seconds."""
    env = dict(os.environ, SWARM_SCRUB_KEY=KEY.hex(), PYTHONPATH=str(REPO / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "swarm.cli.commands.scrub", "--format", "jsonl", "--jobs", "2"],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    assert proc.stdin is not None
    chunk = _synthetic_payload(300).encode()
    for _ in range(20):  # more than one batch, so that the pool starts; stdin stays open
        proc.stdin.write(chunk)
    proc.stdin.flush()
    children: list[int] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(children) < 2:
        time.sleep(0.2)
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False).stdout
        children = [int(x) for x in out.split()]
    assert len(children) >= 2, "no worker processes were started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    deadline = time.monotonic() + 10
    alive = children
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [c for c in alive if Path(f"/proc/{c}").exists() and "zombie" not in _state(c)]
    assert not alive, f"workers still running after their parent was killed: {alive}"


def _state(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.lower()
    except OSError:
        return "gone zombie"
    return ""


@SETTINGS
@given(st.lists(st.one_of(texts, st.sampled_from(DECODED_ONLY + ESCAPED + CLEAN + ["\\u", "%4", "%40", '"+1"'])),
                max_size=8).map("\n".join), st.lists(st.integers(0, 400), max_size=6))
def test_next_candidate_same_as_one_pattern(text: str, steps: list[int]) -> None:
    cache = [-1] * 5
    pos = 0
    for step in [0, *steps]:
        pos = min(len(text), pos + step)
        m = sc._CANDIDATE.search(text, pos)
        assert sc.next_candidate(text, pos, cache) == (m.start() if m else len(text))
