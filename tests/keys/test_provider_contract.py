"""One contract, every key provider (file:// and awskms:// against moto's server): wrap and
unwrap, a wrong context refused, a revoked (disabled / removed) key refused with exit 4, the key
id recorded, and a repository made and reopened through ``open_repository``'s provider factory."""
from __future__ import annotations

import secrets

import pytest

from swarm.crypto.providers import load_provider
from swarm.errors import ExitCode, KeyError_, KeyMismatch, KeyProviderUnreachable, KeyRevoked
from swarm.repo import Repository
from swarm.sources.netutil import free_port
from swarm.storage.memory import MemoryStore
from tests.keys.conftest import REGION, KmsKey, ProviderUnderTest, new_kms_key

CTX = b"swarm-dek\0repo-1\0dek-1"


def test_wrap_unwrap_round_trip(provider: ProviderUnderTest) -> None:
    kek = provider.load()
    dek = secrets.token_bytes(32)
    wrapped = kek.wrap(dek, CTX)
    assert dek not in wrapped
    assert kek.unwrap(wrapped, CTX) == dek
    assert provider.load().unwrap(wrapped, CTX) == dek  # a new process unwraps it too


def test_wrong_context_refused(provider: ProviderUnderTest) -> None:
    kek = provider.load()
    wrapped = kek.wrap(secrets.token_bytes(32), CTX)
    for other in (b"swarm-dek\0repo-1\0dek-2", b"swarm-dek\0repo-2\0dek-1", b"swarm-key-check\0repo-1"):
        with pytest.raises(KeyMismatch):
            kek.unwrap(wrapped, other)


def test_revoked_key_refused_then_usable_again(provider: ProviderUnderTest) -> None:
    dek = secrets.token_bytes(32)
    wrapped = provider.load().wrap(dek, CTX)
    provider.revoke()
    with pytest.raises(KeyError_) as caught:
        provider.load().unwrap(wrapped, CTX)
    assert caught.value.exit_code == ExitCode.KEY
    provider.restore()
    assert provider.load().unwrap(wrapped, CTX) == dek


def test_key_id_recorded_with_every_wrapped_key(provider: ProviderUnderTest) -> None:
    kek = provider.load()
    repo = Repository.init(MemoryStore(), kek)
    assert repo.config.kek_id == kek.key_id
    assert kek.key_id == provider.load().key_id  # stable across loads (and aliases)
    w = repo.begin_backup("pg-logical")
    w.put_object("a", [b"hello"])
    m = w.commit({"engine": "postgresql"})
    import json
    store = repo._store
    for key in [i.key for i in store.list("keys/")]:
        assert json.loads(store.get(key))["kek_id"] == kek.key_id, key
    again = Repository.open(store, provider.load())
    assert b"".join(again.read_object(again.load_manifest(m.id), "a")) == b"hello"


def test_kms_key_id_is_the_arn_whatever_the_reference(kms_key: KmsKey) -> None:
    ids = {load_provider(kms_key.url(ref)).key_id for ref in (kms_key.alias, kms_key.key_id, kms_key.arn)}
    assert ids == {"awskms:" + kms_key.arn}


def test_kms_key_of_another_key_refused(kms_key: KmsKey) -> None:
    wrapped = load_provider(kms_key.url()).wrap(b"k" * 32, CTX)
    other = new_kms_key(kms_key.endpoint)
    with pytest.raises(KeyError_):
        load_provider(other.url()).unwrap(wrapped, CTX)


def test_kms_pending_deletion_is_revoked(kms_key: KmsKey) -> None:
    from tests.keys.conftest import kms_client

    kms_client(kms_key.endpoint).schedule_key_deletion(KeyId=kms_key.key_id, PendingWindowInDays=7)
    with pytest.raises(KeyRevoked) as caught:
        load_provider(kms_key.url()).wrap(b"k" * 32, CTX)
    assert "PendingDeletion" in caught.value.message


def test_kms_disabled_key_refused_even_though_the_server_would_decrypt(kms_key: KmsKey) -> None:
    """moto, like some KMS-compatible servers, decrypts with a disabled key: DescribeKey decides."""
    wrapped = load_provider(kms_key.url()).wrap(b"k" * 32, CTX)
    kms_key.disable()
    with pytest.raises(KeyRevoked) as caught:
        load_provider(kms_key.url()).unwrap(wrapped, CTX)
    assert caught.value.code == "key-revoked" and caught.value.exit_code == ExitCode.KEY
    assert kms_key.arn in caught.value.message


def test_kms_unreachable_is_exit_7(aws_env: None) -> None:
    url = f"awskms:///alias/x?region={REGION}&endpoint=http://127.0.0.1:{free_port()}"
    with pytest.raises(KeyProviderUnreachable) as caught:
        load_provider(url).wrap(b"k" * 32, CTX)
    assert caught.value.exit_code == ExitCode.UNAVAILABLE


def test_state_check_is_cached_for_max_age_then_repeated(kms_key: KmsKey) -> None:
    from swarm.config.urls import check_kms_url
    from swarm.crypto.providers.awskms import AwsKmsKey

    now = [0.0]
    kek = AwsKmsKey(check_kms_url(kms_key.url()), max_age=900, monotonic=lambda: now[0])
    wrapped = kek.wrap(b"k" * 32, CTX)
    kms_key.disable()
    now[0] = 899.0
    assert kek.unwrap(wrapped, CTX) == b"k" * 32  # within the bound: the cached check stands
    now[0] = 901.0
    with pytest.raises(KeyRevoked):  # past it: checked again, and refused
        kek.unwrap(wrapped, CTX)


def test_pkcs11_key_of_another_label_refused_and_ids_differ(softhsm) -> None:  # type: ignore[no-untyped-def]
    softhsm.add_key(softhsm.label + "-other")
    a, b = load_provider(softhsm.url()), load_provider(softhsm.url(softhsm.label + "-other"))
    assert a.key_id != b.key_id and a.key_id == load_provider(softhsm.url()).key_id
    with pytest.raises(KeyMismatch):
        b.unwrap(a.wrap(b"k" * 32, CTX), CTX)


def test_pkcs11_wrong_pin_is_key_unavailable(softhsm) -> None:  # type: ignore[no-untyped-def]
    from swarm.errors import KeyUnavailable

    softhsm.pin_file.write_text("0000\n")
    with pytest.raises(KeyUnavailable) as caught:
        load_provider(softhsm.url()).wrap(b"k" * 32, CTX)
    assert caught.value.exit_code == ExitCode.KEY


def test_pkcs11_token_without_the_key_is_key_unavailable(softhsm) -> None:  # type: ignore[no-untyped-def]
    from swarm.errors import KeyUnavailable

    with pytest.raises(KeyUnavailable) as caught:
        load_provider(softhsm.url(softhsm.label + "-gone")).unwrap(b"\0" * 60, CTX)
    assert "no such key" in caught.value.message
