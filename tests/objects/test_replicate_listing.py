"""How a replication pass reads the two sides (real SeaweedFS, two servers).

A pass with nothing to do must cost listings only, and on the DR side the cheap latest-only
listing when every source key has one version; the mixed listing must decide every key exactly
as the two full version listings would.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from swarm.model.object_versions import current, replication_gap
from swarm.services.objects import listing
from swarm.services.objects.replicate import _pairs, check_replication, replicate
from swarm.sources.objects import Bucket

from .conftest import put, snapshot


class Requests:
    """Every HTTP request one bucket object sends, by either client: boto3 (a botocore
    ``before-send`` hook) and the lean SigV4 path (its urllib3 pool's ``request``)."""

    def __init__(self, b: Bucket) -> None:
        self.seen: list[tuple[str, str]] = []  # (method, path?query)
        b.client.meta.events.register("before-send.s3", self._boto)
        fast = b._fast
        assert fast is not None
        inner = fast.http.request

        def request(method: str, url: str, *a: Any, **kw: Any) -> Any:
            self.seen.append((method, url.split("://", 1)[1].split("/", 1)[1]))
            return inner(method, url, *a, **kw)

        fast.http.request = request

    def _boto(self, request: Any, **_: Any) -> None:
        self.seen.append((request.method, request.url.split("://", 1)[1].split("/", 1)[1]))

    def clear(self) -> None:
        self.seen.clear()

    def object_requests(self, bucket: str) -> list[tuple[str, str]]:
        """Requests that address an object (a key in the path) or change anything."""
        return [(m, p) for m, p in self.seen
                if m not in ("GET", "HEAD") or p.split("?", 1)[0].strip("/") != bucket]

    def full_version_listings(self) -> list[str]:
        """ListObjectVersions pages other than the one-entry access probe."""
        return [p for m, p in self.seen if "versions" in p.split("?", 1)[-1] and "max-keys=1&" not in p + "&"]


def test_a_pass_with_nothing_to_do_lists_only_and_reads_dr_latest_entries(src: Bucket, dr_remote: Bucket) -> None:
    for i in range(30):
        put(src, f"pipeline_runs/r{i:02d}/reports/r.json", f"report {i}".encode())
    first = replicate(src, dr_remote, workers=4).to_dict()
    assert first["ok"] and first["versions_copied"] == 30
    s_req, d_req = Requests(src), Requests(dr_remote)
    again = replicate(src, dr_remote, workers=4).to_dict()
    assert again["ok"] and again["keys_examined"] == 30
    assert (again["versions_copied"], again["delete_markers_copied"], again["keys_changed"]) == (0, 0, 0)
    # no request per object, nothing written, on either side
    assert s_req.object_requests(src.name) == [] and d_req.object_requests(dr_remote.name) == []
    # the source is read with one version listing; DR with its latest entries only
    assert len(s_req.full_version_listings()) == 1
    assert d_req.full_version_listings() == []
    assert any("list-type=2" in p for _, p in d_req.seen)


def _decisions(triples: Iterator[tuple[str, list[Any], list[Any]]]) -> dict[str, tuple[tuple[str, ...], bool]]:
    """What replicate would do per key: source version ids to replay, or hide a DR-only key."""
    out = {}
    for key, s_hist, d_hist in triples:
        gap = replication_gap(key, s_hist, d_hist)
        hide = not s_hist and current(d_hist) is not None
        if gap.missing or hide:
            out[key] = (tuple(v.version_id for v in gap.missing), hide)
    return out


def test_mixed_listing_decides_every_key_as_the_full_listings_do(src: Bucket, dr_remote: Bucket,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "SWITCH_BACK", 2)
    dr = dr_remote
    for k in ("a1", "a2", "b", "c", "e1", "e2", "f", "g", "h1", "h2"):
        put(src, k, f"{k} v1".encode())
    put(src, "f", b"f v2")  # multi-version key, replicated in full below
    assert replicate(src, dr, workers=2).ok
    # now plant every case (keys sort in this order)
    dr.add_delete_marker("b")  # DR's newest is a delete marker: hidden from the latest listing
    put(dr, "c", b"written on DR")  # DR latest differs
    put(dr, "d-only-dr", b"x")  # live only on DR: replication hides it
    put(dr, "d2-deleted-dr", b"x")
    dr.add_delete_marker("d2-deleted-dr")  # only on DR and deleted there: nothing to do
    put(src, "g", b"g v2")  # a new version on the source
    put(src, "i-new", b"new")  # not on DR at all
    src.add_delete_marker("j-gone")  # only a delete marker on the source
    modes: list[str] = []
    mixed = _decisions(listing.pairs(src, dr, "", on_mode=modes.append))
    full = _decisions(_pairs(src, dr, ""))
    assert mixed == full
    assert set(full) == {"b", "c", "d-only-dr", "g", "i-new", "j-gone"}
    # latest until b; versions from b; back to latest after two decidable keys; and so on
    assert modes[:3] == ["latest", "versions", "latest"] and set(modes) == {"latest", "versions"}
    res = replicate(src, dr, workers=2)
    assert res.ok, res.to_dict()
    assert check_replication(src, dr).in_sync
    assert snapshot(dr) == snapshot(src)
    assert replicate(src, dr, workers=2).to_dict()["keys_changed"] == 0


def test_prefix_is_honoured_by_both_listings(src: Bucket, dr_remote: Bucket) -> None:
    for k in ("x/1", "x/2", "y/1"):
        put(src, k, k.encode())
    assert replicate(src, dr_remote, prefix="x/", workers=2).to_dict()["versions_copied"] == 2
    put(dr_remote, "y/only-dr", b"x")
    keys = [k for k, _s, _d in listing.pairs(src, dr_remote, "x/")]
    assert keys == ["x/1", "x/2"]
