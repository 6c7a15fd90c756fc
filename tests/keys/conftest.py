"""Fixtures for key-provider tests: moto's server (real HTTP, reached by boto3 as AWS would be,
from tests/objects/conftest.py), KMS keys made in it, and a factory giving each provider under
test together with a way to revoke and restore its key."""
from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from swarm.crypto.keys import KeyProvider, create_key_file
from swarm.crypto.providers import load_provider
from tests.objects.conftest import moto_endpoint  # noqa: F401  (the session's moto server)

REGION = "us-east-1"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials moto accepts (the autouse clean_env removed the developer's AWS_* variables)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


def kms_client(endpoint: str, region: str = REGION) -> Any:
    return boto3.client("kms", region_name=region, endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@dataclass
class KmsKey:
    endpoint: str
    key_id: str
    arn: str
    alias: str

    def url(self, ref: str | None = None) -> str:
        return f"awskms:///{ref or self.alias}?region={REGION}&endpoint={self.endpoint}"

    def disable(self) -> None:
        kms_client(self.endpoint).disable_key(KeyId=self.key_id)

    def enable(self) -> None:
        kms_client(self.endpoint).enable_key(KeyId=self.key_id)


def new_kms_key(endpoint: str) -> KmsKey:
    client = kms_client(endpoint)
    meta = client.create_key(Description="swarm test KEK")["KeyMetadata"]
    alias = f"alias/swarm-{secrets.token_hex(4)}"
    client.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
    return KmsKey(endpoint, meta["KeyId"], meta["Arn"], alias)


@pytest.fixture
def kms_key(moto_endpoint: str, aws_env: None) -> KmsKey:  # noqa: F811
    return new_kms_key(moto_endpoint)


@dataclass
class ProviderUnderTest:
    """``url``: the key URL; ``load()``: a fresh provider, as a new command would load it;
    ``revoke()`` / ``restore()``: make the key unusable / usable again at its provider."""

    kind: str
    url: str
    revoke: Callable[[], None]
    restore: Callable[[], None]

    def load(self) -> KeyProvider:
        return load_provider(self.url)


@pytest.fixture(params=["file", "awskms"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> ProviderUnderTest:
    if request.param == "file":
        path = tmp_path / "keys" / "repo.key"
        create_key_file(path)
        hidden = tmp_path / "keys" / "repo.key.offline"
        return ProviderUnderTest("file", f"file://{path}", lambda: path.rename(hidden),
                                 lambda: hidden.rename(path))
    key: KmsKey = request.getfixturevalue("kms_key")
    return ProviderUnderTest("awskms", key.url(), key.disable, key.enable)
