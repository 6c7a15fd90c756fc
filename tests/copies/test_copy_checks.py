"""What ``repo copy`` checks on the copy, and what it no longer moves: an S3 copy trusts the
SHA-256 the server verifies on every put and never downloads what it wrote (counted with a
botocore event hook on the real SeaweedFS); any other store gets its stored size compared."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from swarm.crypto.keys import LocalKeyFile, create_key_file
from swarm.repo import Repository
from swarm.repo.copy import execute_copy, plan_copy, verified_puts
from swarm.repo.format import BACKUPS_PREFIX, DATA_PREFIX, WAL_PREFIX
from swarm.storage.memory import MemoryStore
from swarm.storage.s3 import S3Store
from swarm.storage.wrappers import RetryingStore
from tests.copies.test_copy_crash import make_source
from tests.stores import PassThroughStore


@pytest.fixture
def keys(tmp_path: Path) -> tuple[LocalKeyFile, LocalKeyFile]:
    return create_key_file(tmp_path / "primary.key"), create_key_file(tmp_path / "offsite.key")


def test_an_s3_copy_does_not_read_objects_back(keys: tuple[LocalKeyFile, LocalKeyFile], s3_client: Any,
                                               bucket: str) -> None:
    kek, own = keys
    source, ids = make_source(kek)
    gets: list[str] = []

    def count(params: dict[str, Any], **_kw: Any) -> None:
        gets.append(params["Key"])

    s3_client.meta.events.register("before-parameter-build.s3.GetObject", count)
    store = RetryingStore(S3Store(bucket, "copy", client=s3_client))  # as open_store builds it
    assert verified_puts(store)
    plan = plan_copy(source, "offsite", store, own)
    assert any(i.what == "data" for i in plan.items) and any(i.what == "wal" for i in plan.items)
    gets.clear()
    res = execute_copy(source, plan, store, own, stale_after=30, refresh_every=5)
    assert res.problems == {} and res.backups == ids
    read_back = [k for k in gets if k.startswith(tuple(f"copy/{p}" for p in (DATA_PREFIX, WAL_PREFIX,
                                                                               BACKUPS_PREFIX)))]
    assert read_back == [], f"objects downloaded again from the copy: {read_back}"
    # and the copy is whole: every object reads back with its manifest's SHA-256
    c = Repository.open(store, own)
    assert sorted(m.id for m in c.list_backups()) == sorted(ids)
    for m in c.list_backups():
        for e in m.objects:
            c.check_object(m, e)
        assert c.missing_refs(m) == []


class ShortStore(PassThroughStore):
    """Stores data objects one byte short, as if a write were lost (its ``put`` still returns the
    length it was given): the copy must notice without reading the object back."""

    @property
    def url(self) -> str:
        return "short://"

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        body = data if isinstance(data, bytes) else b"".join(data)
        if key.startswith(DATA_PREFIX):
            self.inner.put(key, body[:-1], if_absent=if_absent)
            return len(body)
        return self.inner.put(key, body, if_absent=if_absent)


def test_a_short_object_on_an_unverified_store_is_caught_by_its_size(keys: tuple[LocalKeyFile, LocalKeyFile]) -> None:
    kek, own = keys
    source, _ids = make_source(kek)
    store = ShortStore(MemoryStore())
    assert not verified_puts(store)
    plan = plan_copy(source, "offsite", store, own)  # type: ignore[arg-type]
    res = execute_copy(source, plan, store, own, stale_after=30, refresh_every=5)  # type: ignore[arg-type]
    assert res.problems and res.backups == []  # nothing listed that could not be restored
    assert all("bytes, not the" in p for p in res.problems.values())
    assert not [i for i in store.inner.list(DATA_PREFIX)]  # the short objects were removed
