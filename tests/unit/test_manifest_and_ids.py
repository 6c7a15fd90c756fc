from __future__ import annotations

from datetime import UTC, datetime

import pytest

from swarm.errors import IntegrityError, NotFoundError
from swarm.model.ids import check_backup_id, is_backup_id, new_backup_id
from swarm.model.manifest import Manifest, ObjectEntry
from swarm.model.rowcounts import compare_row_counts


def make_manifest() -> Manifest:
    return Manifest(id="20261124T000000Z-pg-logical-abcdef", kind="pg-logical", started_at="2026-11-24T00:00:00Z",
                    finished_at="2026-11-24T00:00:05Z", dek_id="dek-1",
                    objects=(ObjectEntry("pgdump/toc.dat", 10, 60, "a" * 64, "b" * 64),),
                    source={"row_counts": {"public.runs": 3}})


def test_manifest_roundtrip() -> None:
    m = make_manifest()
    assert Manifest.from_json(m.to_json(), where="m") == m


def test_manifest_tamper_detected() -> None:
    raw = make_manifest().to_json().replace(b'"public.runs": 3', b'"public.runs": 4')
    with pytest.raises(IntegrityError, match="checksum"):
        Manifest.from_json(raw, where="m")


def test_manifest_from_future_refused() -> None:
    import hashlib
    import json

    body = make_manifest().body()
    body["version"] = 99
    body["checksum"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    with pytest.raises(IntegrityError, match=r"Upgrade|newer"):
        Manifest.from_json(json.dumps(body).encode(), where="m")


def test_backup_ids_sort_by_time_and_validate() -> None:
    a = new_backup_id("pg-logical", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    b = new_backup_id("pg-logical", datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert a < b and is_backup_id(a)
    assert a.startswith("20260102T030405Z-pg-logical-")
    for bad in ["../etc/passwd", "x", "20260102T030405Z-pg-logical-zzzzzz", a + "/x"]:
        assert not is_backup_id(bad)
        with pytest.raises(NotFoundError):
            check_backup_id(bad)


def test_row_count_comparison() -> None:
    c = compare_row_counts({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 0})
    assert not c.validated
    assert {t.table for t in c.mismatches} == {"b", "c"}
    assert c.to_dict()["c"] == {"expected": None, "restored": 0}
    assert compare_row_counts({"a": 1}, {"a": 1}).validated
