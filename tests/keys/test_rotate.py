"""`keys rotate` / `keys retire`: every wrapped secret is rewrapped (data untouched), file → file,
file → KMS and KMS → KMS; killed before every write and rerun it converges, with both keys reading
every backup at every point; the old key reads until `retire`, then is refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from swarm.crypto.keys import KeyProvider, create_key_file
from swarm.crypto.providers import load_provider
from swarm.errors import KeyMismatch, KeyRevoked, RefusedError
from swarm.repo import Repository
from swarm.repo import rotate as rot
from swarm.repo.format import DATA_PREFIX
from swarm.storage.memory import MemoryStore
from tests.keys.conftest import KmsKey, new_kms_key
from tests.unit.test_repo_upgrade import DyingStore, Killed


def populate(store: MemoryStore, kek: KeyProvider, n: int = 3) -> dict[str, bytes]:
    repo = Repository.init(store, kek)
    out = {}
    for i in range(n):
        w = repo.begin_backup("pg-logical")
        w.put_object("a", [b"payload %d" % i])
        out[w.commit({"engine": "postgresql"}).id] = b"payload %d" % i
    repo.dedup_key()
    repo.wal_keys()
    return out


def readable(store: MemoryStore, kek: KeyProvider, backups: dict[str, bytes]) -> None:
    repo = Repository.open(store, kek)
    for backup_id, payload in backups.items():
        assert b"".join(repo.read_object(repo.load_manifest(backup_id), "a")) == payload
    assert repo.wal_keys().private is not None
    repo.dedup_key()


def data_objects(store: MemoryStore) -> dict[str, bytes]:
    return {i.key: store.get(i.key) for i in store.list(DATA_PREFIX)}


def file_key(tmp_path: Path, name: str) -> KeyProvider:
    create_key_file(tmp_path / name)
    return load_provider(f"file://{tmp_path / name}")


@pytest.fixture(params=["file-file", "file-kms", "kms-kms"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[KeyProvider, KeyProvider]:
    if request.param == "file-file":
        return file_key(tmp_path, "old.key"), file_key(tmp_path, "new.key")
    kms: KmsKey = request.getfixturevalue("kms_key")
    new = load_provider(new_kms_key(kms.endpoint).url())
    if request.param == "file-kms":
        return file_key(tmp_path, "old.key"), new
    return load_provider(kms.url()), new


def test_rotate_then_retire(pair: tuple[KeyProvider, KeyProvider]) -> None:
    old, new = pair
    store = MemoryStore()
    backups = populate(store, old)
    data = data_objects(store)
    with pytest.raises(KeyMismatch):
        Repository.open(store, new)
    dry = rot.rotate(store, old, new, dry_run=True)
    assert len(dry.rewrapped) == dry.files >= 6 and dry.config_updated
    with pytest.raises(KeyMismatch):  # a dry run writes nothing
        Repository.open(store, new)
    result = rot.rotate(store, old, new)
    assert result.rewrapped == dry.rewrapped and result.config_updated
    assert data_objects(store) == data  # no data re-encrypted
    readable(store, new, backups)
    readable(store, old, backups)  # the old key reads until retired
    st = rot.status(store)
    assert st["primary"] == new.key_id and st["rotation_complete"]
    assert [k["kek_id"] for k in st["keys"]] == [new.key_id, old.key_id]
    assert sorted(st["backups"]) == sorted(backups)
    for key in rot.wrapped_files(store):
        assert rot.key_ids_of(json.loads(store.get(key))) == [new.key_id, old.key_id]
    again = rot.rotate(store, old, new)  # a rerun changes nothing
    assert again.rewrapped == [] and not again.config_updated
    with pytest.raises(RefusedError):
        rot.retire(store, new, new.key_id)
    rot.retire(store, new, old.key_id)
    readable(store, new, backups)
    with pytest.raises(KeyMismatch):
        Repository.open(store, old)
    for key in rot.wrapped_files(store):
        assert rot.key_ids_of(json.loads(store.get(key))) == [new.key_id]


def test_killed_at_every_write_then_rerun_converges(tmp_path: Path) -> None:
    old, new = file_key(tmp_path, "old.key"), file_key(tmp_path, "new.key")
    base = MemoryStore()
    backups = populate(base, old)
    total = len(rot.wrapped_files(base)) + 2  # the feature flag, each file, the config
    for die_at in range(1, total + 1):
        store = MemoryStore()
        for i in base.list(""):
            store.put(i.key, base.get(i.key))
        with pytest.raises(Killed):
            rot.rotate(DyingStore(store, die_at), old, new)  # type: ignore[arg-type]
        readable(store, old, backups)  # the old key reads everything at every point
        rot.rotate(store, old, new)
        readable(store, new, backups)
        readable(store, old, backups)
        assert rot.status(store)["rotation_complete"]
    # and the retire, killed after its config write: the rerun finishes it
    with pytest.raises(Killed):
        rot.retire(DyingStore(store, 2), new, old.key_id)  # type: ignore[arg-type]
    rot.retire(store, new, old.key_id)
    readable(store, new, backups)
    assert [k["kek_id"] for k in rot.status(store)["keys"]] == [new.key_id]


def test_data_key_wrapped_by_the_old_key_after_rotation_blocks_retire(tmp_path: Path) -> None:
    """A backup that ran with the old key while the rotation finished: nothing lost, retire refuses
    until a rerun of rotate has rewrapped its data key."""
    old, new = file_key(tmp_path, "old.key"), file_key(tmp_path, "new.key")
    store = MemoryStore()
    backups = populate(store, old)
    writer = Repository.open(store, old)
    rot.rotate(store, old, new)
    w = writer.begin_backup("pg-logical")
    w.put_object("a", [b"late"])
    backups[w.commit({"engine": "postgresql"}).id] = b"late"
    readable(store, old, backups)
    assert not rot.status(store)["rotation_complete"]
    with pytest.raises(RefusedError):
        rot.retire(store, new, old.key_id)
    rot.rotate(store, old, new)
    rot.retire(store, new, old.key_id)
    readable(store, new, backups)


def recording_kms(key: KmsKey, calls: list[str]) -> KeyProvider:
    """A KMS provider for ``key`` whose boto3 client records every KMS operation it sends."""
    from swarm.config.urls import check_kms_url
    from swarm.crypto.providers.awskms import AwsKmsKey
    from tests.keys.conftest import kms_client

    client = kms_client(key.endpoint)
    client.meta.events.register("before-call.kms.*", lambda model, **kw: calls.append(model.name))
    return AwsKmsKey(check_kms_url(key.url()), client=client)


def test_kms_to_kms_rotation_uses_reencrypt_and_the_old_key_can_then_be_disabled(kms_key: KmsKey) -> None:
    """No plaintext secret leaves KMS: every file (and the key check) is rewrapped by one ReEncrypt
    with the encryption context kept; the only Decrypt is the key check proving the old key opens
    the repository. Afterwards the new key alone reads everything, with the old key disabled."""
    target = new_kms_key(kms_key.endpoint)
    store = MemoryStore()
    backups = populate(store, load_provider(kms_key.url()))
    old_calls: list[str] = []
    new_calls: list[str] = []
    old, new = recording_kms(kms_key, old_calls), recording_kms(target, new_calls)
    result = rot.rotate(store, old, new)
    calls = old_calls + new_calls
    assert calls.count("ReEncrypt") == len(result.rewrapped) + 1 >= 7, calls
    assert calls.count("Decrypt") == 1 and "Encrypt" not in calls and "GenerateDataKey" not in calls, calls
    for key in rot.wrapped_files(store):
        body = json.loads(store.get(key))
        assert rot.key_ids_of(body) == ["awskms:" + target.arn, "awskms:" + kms_key.arn]
    kms_key.disable()
    readable(store, load_provider(target.url()), backups)  # the new key alone restores everything
    with pytest.raises(KeyRevoked):
        Repository.open(store, load_provider(kms_key.url()))
    rot.retire(store, load_provider(target.url()), "awskms:" + kms_key.arn)  # no call to the disabled key
    readable(store, load_provider(target.url()), backups)
