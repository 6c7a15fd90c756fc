"""Point-in-time restore, undelete, versions, and the faults around them (real SeaweedFS)."""
from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from swarm.devstack.seaweed import SeaweedServer
from swarm.errors import RefusedError, SwarmError
from swarm.services.objects.replicate import replicate
from swarm.services.objects.restore import restore_at, undelete, versions
from swarm.sources.objects import Bucket

from .conftest import get, new_bucket, put, snapshot


def tick() -> datetime:
    """A moment strictly between writes: last-modified has 1 s granularity on SeaweedFS."""
    time.sleep(1.1)
    t = datetime.now(UTC)
    time.sleep(1.1)
    return t


def scenario(b: Bucket) -> tuple[datetime, dict[str, bytes]]:
    """Writes on both sides of T; returns T and the expected content at T."""
    put(b, "d/keep", b"unchanged")
    put(b, "d/over", b"over v1")
    put(b, "d/del-after", b"deleted after T")
    put(b, "d/del-before", b"deleted before T")
    b.add_delete_marker("d/del-before")
    put(b, "d/twice", b"twice v1")
    put(b, "d/twice", b"twice v2")
    put(b, "d/recreated", b"recreated v1")
    b.add_delete_marker("d/recreated")
    at = tick()
    put(b, "d/over", b"over v2")
    put(b, "d/over", b"over v3")
    b.add_delete_marker("d/del-after")
    put(b, "d/new-after", b"created after T")
    put(b, "d/twice", b"twice v3")
    b.add_delete_marker("d/twice")
    put(b, "d/recreated", b"recreated v2")
    put(b, "other/untouched", b"outside the prefix")
    expected = {"d/keep": b"unchanged", "d/over": b"over v1", "d/del-after": b"deleted after T",
                "d/twice": b"twice v2"}
    return at, expected


def test_point_in_time_in_place_dry_run_then_real(src: Bucket) -> None:
    at, expected = scenario(src)
    before = snapshot(src)
    n_versions = sum(1 for _ in src.iter_versions())
    dry = restore_at(src, src, at, prefix="d/", dry_run=True).to_dict()
    assert dry["plan"] == {"keys_examined": 7, "unchanged": 2, "copy": 3, "delete": 2, "archived": 0,
                           "bytes_to_copy": len(b"over v1") + len(b"deleted after T") + len(b"twice v2")}
    assert {(a["action"], a["key"]) for a in dry["actions"]} == {
        ("copy", "d/over"), ("copy", "d/del-after"), ("copy", "d/twice"), ("delete", "d/new-after"),
        ("delete", "d/recreated")}
    assert snapshot(src) == before and sum(1 for _ in src.iter_versions()) == n_versions  # nothing changed
    res = restore_at(src, src, at, prefix="d/")
    assert res.ok and res.to_dict()["done"] == {"copied": 3, "bytes": dry["plan"]["bytes_to_copy"], "deleted": 2}
    after = snapshot(src)
    assert {k: v for k, v in after.items() if k.startswith("d/")} == expected
    assert after["other/untouched"] == b"outside the prefix"
    # history kept: the overwritten versions are still there
    assert len(src.key_history("d/over")) == 4
    # idempotent: a second run plans nothing
    again = restore_at(src, src, at, prefix="d/", dry_run=True).to_dict()["plan"]
    assert again["copy"] == again["delete"] == 0


def test_restore_into_another_bucket_and_from_dr(src: Bucket, seaweed: SeaweedServer, dr_remote: Bucket) -> None:
    at, expected = scenario(src)
    other = new_bucket(seaweed, versioned=False, prefix="copy")
    put(other, "d/stale", b"stale")  # not in the source at T: removed
    res = restore_at(src, other, at, prefix="d/")
    assert res.ok
    assert snapshot(other) == expected
    assert restore_at(src, other, at, prefix="d/", dry_run=True).to_dict()["plan"]["copy"] == 0
    # from DR: the DR side's history carries replication times, so replicate first, then take T after
    assert replicate(src, dr_remote).ok
    t_dr = tick()
    src.add_delete_marker("d/keep")  # an accident on the primary after T
    put(src, "d/over", b"over v4")
    res = restore_at(dr_remote, src, t_dr, prefix="d/")
    assert res.ok, res.to_dict()
    live = {k: v for k, v in snapshot(src).items() if k.startswith("d/")}
    assert live == {k: v for k, v in snapshot(dr_remote).items() if k.startswith("d/")}
    assert live["d/keep"] == b"unchanged" and live["d/over"] == b"over v3"


def test_undelete_key_and_prefix(src: Bucket) -> None:
    put(src, "u/a", b"a1")
    put(src, "u/a", b"a2")
    src.add_delete_marker("u/a")
    src.add_delete_marker("u/a")
    put(src, "u/b", b"b1")
    src.add_delete_marker("u/b")
    put(src, "u/live", b"live")
    dry = undelete(src, prefix="u/", dry_run=True).to_dict()
    assert dry["undeleted"] == 2 and get(src, "u/a") is None
    res = undelete(src, key="u/a").to_dict()
    assert res["ok"] and res["markers_removed"] == 2 and get(src, "u/a") == b"a2"
    assert undelete(src, prefix="u/").to_dict()["undeleted"] == 1 and get(src, "u/b") == b"b1"
    with pytest.raises(SwarmError) as exc:
        undelete(src, key="u/live")
    assert exc.value.code == "not-found"
    v = versions(src, "u/a")
    assert [x["delete_marker"] for x in v["versions"]] == [False, False] and v["versions"][0]["is_latest"]


def test_versioning_off_is_a_clear_error(seaweed: SeaweedServer) -> None:
    plain = new_bucket(seaweed, versioned=False, prefix="plain")
    put(plain, "x", b"x")
    with pytest.raises(RefusedError) as exc:
        restore_at(plain, plain, datetime.now(UTC))
    assert "versioning" in exc.value.message and "Enable versioning" in (exc.value.hint or "")
    assert exc.value.exit_code == 8


def test_wrong_credentials_fail_before_any_change(src: Bucket, dr_remote: Bucket) -> None:
    put(src, "w/1", b"x")
    bad_dr = Bucket(replace(dr_remote.cfg, secret_key="wrong"))
    with pytest.raises(SwarmError) as exc:
        replicate(src, bad_dr)
    assert exc.value.code == "access-denied" and exc.value.exit_code == 3
    assert get(dr_remote, "w/1") is None


def test_object_lock_refusal_is_per_key(seaweed: SeaweedServer) -> None:
    b = new_bucket(seaweed, lock=True, prefix="lock")
    put(b, "l/a", b"a")
    put(b, "l/held", b"held")
    b.client.put_object_legal_hold(Bucket=b.name, Key="l/held", LegalHold={"Status": "ON"})
    put(b, "l/c", b"c")
    # undelete-style removal of a locked *version* is refused; the other keys go on
    b.add_delete_marker("l/a")
    b.add_delete_marker("l/c")
    res = undelete(b, prefix="l/").to_dict()
    assert res["ok"] and get(b, "l/a") == b"a"
    # removing locked versions: delete a specific version of each key
    from swarm.services.objects.common import KeyWork, run_bounded

    work = KeyWork()

    def purge(key: str) -> None:
        b.delete_version(key, b.key_history(key)[-1].version_id)
        work.add("purged")

    run_bounded(["l/a", "l/held", "l/c"], purge, workers=2, work=work, key_of=lambda k: k)
    assert [f.key for f in work.failed] == ["l/held"] and work.counts["purged"] == 2
    assert work.failed[0].error == "access-denied"
    b.client.put_object_legal_hold(Bucket=b.name, Key="l/held", LegalHold={"Status": "OFF"})


def test_transient_errors_are_retried_per_key() -> None:
    from swarm.errors import UnavailableError

    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise UnavailableError("503 SlowDown", transient=True)
        return "ok"

    assert Bucket.retrying(flaky, sleep=lambda _s: None) == "ok" and len(calls) == 3
    with pytest.raises(UnavailableError):
        Bucket.retrying(lambda: (_ for _ in ()).throw(UnavailableError("down", transient=True)),
                        attempts=2, sleep=lambda _s: None)


def test_a_time_before_the_bucket_or_in_the_future_is_refused(src: Bucket) -> None:
    put(src, "guard/a", b"x")
    before = snapshot(src, "guard/")
    for at in (datetime(2020, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)):
        with pytest.raises(RefusedError) as exc:
            restore_at(src, src, at, prefix="guard/")
        assert exc.value.exit_code == 8 and "--force" in (exc.value.hint or "")
    assert snapshot(src, "guard/") == before
    plan = restore_at(src, src, datetime(2020, 1, 1, tzinfo=UTC), prefix="guard/", dry_run=True,
                      force=True).to_dict()["plan"]
    assert plan["delete"] == 1
