"""Version-aware replication between real SeaweedFS buckets (same server and two servers)."""
from __future__ import annotations

import pytest

from swarm.services.objects.replicate import check_replication, replicate
from swarm.sources.objects import SOURCE_VERSION_META, Bucket

from .conftest import get, put, snapshot


def history_signature(b: Bucket, key: str) -> list[tuple[bool, int, str]]:
    return [(v.is_delete_marker, v.size, v.etag) for v in b.key_history(key)]


def fill(src: Bucket) -> dict[str, list[str]]:
    vids: dict[str, list[str]] = {}
    for i in range(12):
        vids[f"pipeline_runs/r{i}/reports/r.json"] = [put(src, f"pipeline_runs/r{i}/reports/r.json",
                                                          f"report {i}".encode(), ContentType="application/json",
                                                          Metadata={"run": f"r{i}"},
                                                          Tagging="swarm-class=report")]
    odd = "odd keys/ä+b=c&d~(1).txt"
    vids[odd] = [put(src, odd, b"odd", Metadata={"note": "plain ascii"}, ContentType="text/plain; charset=utf-8")]
    key = "pipeline_runs/r0/models/m.bin"
    vids[key] = [put(src, key, b"v1" * 100), put(src, key, b"v2" * 150), put(src, key, b"v3" * 50)]
    src.add_delete_marker("pipeline_runs/r1/reports/r.json")
    gone = "pipeline_runs/r2/audit/a.pdf"
    put(src, gone, b"%PDF audit")
    src.add_delete_marker(gone)
    put(src, gone, b"%PDF audit again")
    return vids


@pytest.mark.parametrize("side", ["dr_same", "dr_remote"])
def test_replicates_every_version_and_marker_incrementally(src: Bucket, side: str,
                                                           request: pytest.FixtureRequest) -> None:
    dr: Bucket = request.getfixturevalue(side)
    vids = fill(src)
    res = replicate(src, dr, workers=4)
    d = res.to_dict()
    assert res.ok, d
    assert d["server_side"] is (side == "dr_same")
    assert d["versions_copied"] == 12 + 1 + 3 + 2 and d["delete_markers_copied"] == 2
    for key in vids:
        assert history_signature(dr, key) == history_signature(src, key)
    assert snapshot(dr) == snapshot(src)
    # metadata, content type, tags, and the source version id
    key = "pipeline_runs/r3/reports/r.json"
    head = dr.head(key)
    assert head["ContentType"] == "application/json"
    assert head["Metadata"]["run"] == "r3"
    assert head["Metadata"][SOURCE_VERSION_META] == vids[key][0]
    assert dr.tags(key) == {"swarm-class": "report"}
    odd = dr.head("odd keys/ä+b=c&d~(1).txt")
    assert odd["ContentType"] == "text/plain; charset=utf-8" and odd["Metadata"]["note"] == "plain ascii"
    assert head.get("StorageClass") in (None, "STANDARD")
    # a re-run copies nothing
    again = replicate(src, dr, workers=4).to_dict()
    assert again["versions_copied"] == 0 and again["delete_markers_copied"] == 0 and again["keys_changed"] == 0
    assert check_replication(src, dr).in_sync
    # incremental: one overwrite, one delete, one new key
    put(src, "pipeline_runs/r0/models/m.bin", b"v4")
    src.add_delete_marker("pipeline_runs/r5/reports/r.json")
    put(src, "pipeline_runs/r99/reports/new.json", b"{}")
    inc = replicate(src, dr, workers=4).to_dict()
    assert (inc["versions_copied"], inc["delete_markers_copied"], inc["keys_changed"]) == (2, 1, 3)
    assert snapshot(dr) == snapshot(src)
    assert check_replication(src, dr).in_sync


def test_crash_mid_run_then_rerun_converges(src: Bucket, dr_remote: Bucket) -> None:
    for i in range(30):
        put(src, f"k/{i:02d}", b"a" * i)
        if i % 3 == 0:
            put(src, f"k/{i:02d}", b"b" * i)
        if i % 5 == 0:
            src.add_delete_marker(f"k/{i:02d}")

    class Crash(Exception):
        pass

    def crash_after(n: int) -> None:
        if n >= 17:
            raise Crash("injected crash")

    with pytest.raises(Crash):
        replicate(src, dr_remote, workers=4, after_copy=crash_after)
    partial = check_replication(src, dr_remote)
    assert not partial.in_sync and partial.lag_s >= 0
    res = replicate(src, dr_remote, workers=4)
    assert res.ok
    total_entries = 30 + 10 + 6
    assert res.to_dict()["versions_copied"] + res.to_dict()["delete_markers_copied"] <= total_entries - 17
    final = check_replication(src, dr_remote)
    assert final.in_sync, final.to_dict()
    for i in range(30):
        assert history_signature(dr_remote, f"k/{i:02d}") == history_signature(src, f"k/{i:02d}")


def test_check_catches_planted_differences(src: Bucket, dr_remote: Bucket) -> None:
    for i in range(5):
        put(src, f"p/{i}", f"content {i}".encode())
    assert replicate(src, dr_remote).ok
    put(dr_remote, "p/1", b"tampered on DR")  # latest pointer differs
    put(dr_remote, "p/extra", b"only on DR")  # extra key
    put(src, "p/2", b"new on source")  # not yet replicated
    dr_remote.delete_version("p/3", dr_remote.key_history("p/3")[0].version_id)  # DR lost a key
    res = check_replication(src, dr_remote)
    d = res.to_dict()
    assert not res.in_sync
    kinds = {x["key"]: x["kind"] for x in d["differences"]}
    assert kinds == {"p/1": "latest_differs", "p/extra": "extra_on_dr", "p/2": "latest_differs",
                     "p/3": "missing_on_dr"}
    assert d["lag_s"] >= 0 and d["oldest_unreplicated"]
    # replicate repairs it: replays source on top of the tampered key, hides the extra one
    assert replicate(src, dr_remote).ok
    assert check_replication(src, dr_remote).in_sync
    assert get(dr_remote, "p/1") == b"content 1" and get(dr_remote, "p/extra") is None


def test_prefix_limits_the_run(src: Bucket, dr_same: Bucket) -> None:
    put(src, "a/1", b"x")
    put(src, "b/1", b"y")
    res = replicate(src, dr_same, prefix="a/").to_dict()
    assert res["versions_copied"] == 1
    assert get(dr_same, "b/1") is None
    assert check_replication(src, dr_same, prefix="a/").in_sync
    assert not check_replication(src, dr_same).in_sync


def test_keys_that_keep_failing_are_listed_and_the_rest_continues(src: Bucket, dr_same: Bucket) -> None:
    from swarm.errors import UnavailableError

    for i in range(5):
        put(src, f"f/{i}", b"x")
    put(src, "f/2", b"y")

    class Throttled(Bucket):
        def copy_version_to(self, dst, key, version_id, **kw):  # type: ignore[no-untyped-def]
            if key == "f/2":
                raise UnavailableError("copy f/2: 503 SlowDown", transient=True)
            return super().copy_version_to(dst, key, version_id, **kw)

    flaky = Throttled(src.cfg)
    res = replicate(flaky, dr_same, workers=2)
    d = res.to_dict()
    assert not res.ok and d["failed_count"] == 1
    assert d["failed"][0]["key"] == "f/2" and d["failed"][0]["version_id"]  # the oldest missing version
    assert d["versions_copied"] == 4
    assert dr_same.key_history("f/2") == []  # nothing of f/2 overtook the failed version
    assert replicate(src, dr_same).ok and check_replication(src, dr_same).in_sync


def test_fast_and_boto_listings_agree(src: Bucket) -> None:
    """The lean listing (raw XML) and boto3's (two lists re-merged in XML order) give the same stream."""
    from swarm.storage.s3 import make_client

    for i in range(7):
        put(src, f"l/{i % 3}", f"{i}".encode())
        if i % 2:
            src.add_delete_marker(f"l/{i % 3}")
    boto = Bucket(src.cfg, client=make_client(src.cfg.endpoint, src.cfg.access_key, src.cfg.secret_key))
    assert boto._fast is None and src._fast is not None
    fast = list(src.iter_versions("l/", page_size=4))
    slow = list(boto.iter_versions("l/", page_size=4))
    assert [(v.key, v.version_id, v.is_delete_marker, v.is_latest, v.size, v.etag) for v in fast] == \
           [(v.key, v.version_id, v.is_delete_marker, v.is_latest, v.size, v.etag) for v in slow]
    assert len(fast) == 10  # 7 versions, 3 delete markers, across pages of 4


def test_large_object_streams_multipart_across_endpoints(src: Bucket, dr_remote: Bucket) -> None:
    import os

    from swarm.sources.objects.bucket import STREAM_PUT_LIMIT

    body = os.urandom(STREAM_PUT_LIMIT + 123_457)
    put(src, "big/blob.bin", body, ContentType="application/x-big", Metadata={"kind": "model"})
    res = replicate(src, dr_remote, workers=2)
    assert res.ok and res.to_dict()["bytes_copied"] == len(body)
    assert get(dr_remote, "big/blob.bin") == body
    head = dr_remote.head("big/blob.bin")
    assert head["ContentType"] == "application/x-big" and head["Metadata"]["kind"] == "model"
    assert head["Metadata"][SOURCE_VERSION_META]
    assert check_replication(src, dr_remote).in_sync  # multipart ETag vs single-part: size decides
