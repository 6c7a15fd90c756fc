"""The archive model, without I/O: member names, limits, manifest integrity, classification."""
from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.errors import IntegrityError, RefusedError
from swarm.model.archive import (
    Limits,
    Member,
    RunManifest,
    check_member,
    check_name,
    check_ratio,
    classify,
    new_run_id,
    rekey,
)

GOOD = ["manifest.json", "rows/run_events.jsonl", "objects/reports/summary.json", "objects/a b/ü.txt"]
BAD = ["", "/etc/passwd", "C:/x", "../x", "objects/../../x", "objects//x", "objects/./x", "objects/x\\..\\y",
       "objects/x\x00", "rows/x.json", "rows/X-Y.jsonl", "other/x", "objects/", "manifest.json/x", "a" * 2000]


@pytest.mark.parametrize("name", GOOD)
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_bad_names(name: str) -> None:
    with pytest.raises(RefusedError):
        check_name(name)


@given(st.text(min_size=1, max_size=60))
def test_no_accepted_name_escapes(name: str) -> None:
    try:
        check_name(name)
    except RefusedError:
        return
    assert not name.startswith("/") and ".." not in name.split("/") and "\\" not in name


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "device", "fifo", "dir", "sparse"])
def test_only_regular_files(kind: str) -> None:
    with pytest.raises(RefusedError, match="only regular files"):
        check_member("objects/x", kind, 0, 1, Limits())


def test_member_limits() -> None:
    lim = Limits(max_members=2, max_member_bytes=10, max_manifest_bytes=20)
    check_member("manifest.json", "file", 20, 0, lim)
    with pytest.raises(RefusedError, match="first archive member"):
        check_member("objects/x", "file", 1, 0, lim)
    with pytest.raises(RefusedError, match="over the limit"):
        check_member("objects/x", "file", 11, 1, lim)
    with pytest.raises(RefusedError, match="more than 2 members"):
        check_member("objects/x", "file", 1, 2, lim)
    with pytest.raises(RefusedError, match="second manifest"):
        check_member("manifest.json", "file", 1, 1, lim)


def test_ratio() -> None:
    lim = Limits(max_total_bytes=1000, max_ratio=10, ratio_floor_bytes=100)
    check_ratio(99, 1, lim)  # under the floor: any ratio
    check_ratio(500, 50, lim)
    with pytest.raises(RefusedError, match="bomb"):
        check_ratio(500, 49, lim)
    with pytest.raises(RefusedError, match="more than 1000"):
        check_ratio(1001, 1000, lim)


def manifest() -> RunManifest:
    sha = "a" * 64
    return RunManifest(run_id="run_0123456789", pipeline_id="pl_0001", schema_version=1, created_at="2026-01-01T00:00Z",
                       source={"database": "postgresql://u:***@h/db"}, scrubbed=True, contains_pii=False,
                       scrub={"report": {"total": 0}}, tables={"pipelines": "id", "runs": "id", "run_events": "run_id"},
                       members=[Member("rows/pipelines.jsonl", 1, sha, "rows", rows=1),
                                Member("rows/runs.jsonl", 1, sha, "rows", rows=1),
                                Member("rows/run_events.jsonl", 1, sha, "rows", rows=1),
                                Member("objects/r/x.json", 5, sha, "object", key="r/x.json", tags={"c": "d"},
                                       treatment="scrubbed")])


def test_manifest_round_trip_and_self_checksum() -> None:
    m = manifest()
    data = m.to_bytes()
    again = RunManifest.from_bytes(data)
    assert again.to_bytes() == data and again.members == m.members
    d = json.loads(data)
    d["contains_pii"] = True
    with pytest.raises(IntegrityError, match="checksum"):
        RunManifest.from_bytes(json.dumps(d).encode())
    with pytest.raises(IntegrityError, match="not valid JSON"):
        RunManifest.from_bytes(b"{")


def test_manifest_rejects_inconsistent_entries() -> None:
    m = manifest()
    m.members[3] = dataclasses.replace(m.members[3], key="../x.json")
    with pytest.raises(IntegrityError, match="does not match"):
        RunManifest.from_bytes(m.to_bytes())
    m = manifest()
    m.members.append(m.members[0])
    with pytest.raises(IntegrityError, match="twice"):
        RunManifest.from_bytes(m.to_bytes())
    m = manifest()
    m.format_version = 99
    with pytest.raises(RefusedError, match="newer"):
        RunManifest.from_bytes(m.to_bytes())
    m = manifest()
    m.run_id = "../../etc"
    with pytest.raises(RefusedError, match="not a valid run id"):
        RunManifest.from_bytes(m.to_bytes())


def test_classify() -> None:
    assert classify("models/model.safetensors", {"swarm-class": "model"}) == ("model", "")
    assert classify("weights/w.pt", {}) == ("model", "")
    assert classify("reports/summary.json", {}) == ("text", "json")
    assert classify("conversations/c.jsonl", {}) == ("text", "jsonl")
    for name in ("a.csv", "a.txt", "a.html", "a.md"):
        assert classify(f"reports/{name}", {}) == ("text", "text")
    assert classify("audit/audit.pdf", {}) == ("binary", "")
    assert classify("img/x.png", {}) == ("binary", "")
    assert classify("x/noext", {}, "text/plain; charset=utf-8") == ("text", "text")


def test_ids() -> None:
    assert new_run_id("00ff00ff00") == "run_00ff00ff00"
    assert len(new_run_id()) == 14
    assert rekey("pipeline_runs/run_a/x/y", "run_a", "run_b") == "pipeline_runs/run_b/x/y"
    assert rekey("elsewhere/run_a/x", "run_a", "run_b") == "elsewhere/run_a/x"
