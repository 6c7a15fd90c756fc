"""Fixtures for key-provider tests: moto's server (real HTTP, reached by boto3 as AWS would be,
started as ``swarm dev up --kms`` starts it: ``swarm.devstack.kms.MotoServer``), KMS keys made in
it, and a factory giving each provider under test together with a way to revoke and restore its key."""
from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from swarm.crypto.keys import KeyProvider, create_key_file
from swarm.crypto.providers import load_provider
from swarm.devstack.kms import MotoServer

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's server for the session, as its own process (the dev stack's helper)."""
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server.endpoint
    server.stop()


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
def kms_key(moto_endpoint: str, aws_env: None) -> KmsKey:
    return new_kms_key(moto_endpoint)


@dataclass
class ProviderUnderTest:
    """``url``: the key URL; ``load()``: a fresh provider, as a new command would load it;
    ``revoke()`` / ``restore()``: make the key unusable / usable again at its provider."""

    kind: str
    url: str
    revoke: Callable[[], object]
    restore: Callable[[], None]

    def load(self) -> KeyProvider:
        return load_provider(self.url)


SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass
class SoftHsmKey:
    """An AES-256 key on a fresh SoftHSM token."""

    root: Path
    token: str
    label: str
    pin_file: Path

    def url(self, label: str | None = None) -> str:
        return (f"pkcs11:token={self.token};object={label or self.label}?module-path={SOFTHSM_MODULE}"
                f"&pin-source=file:{self.pin_file}")

    def add_key(self, label: str) -> None:
        import pkcs11

        token = pkcs11.lib(SOFTHSM_MODULE).get_token(token_label=self.token)
        with token.open(rw=True, user_pin=self.pin_file.read_text().strip()) as session:
            session.generate_key(pkcs11.KeyType.AES, 256, label=label, store=True,
                                 template={pkcs11.Attribute.SENSITIVE: True, pkcs11.Attribute.EXTRACTABLE: False})

    def lock_out(self) -> None:
        """Make the token refuse this key's users (a wrong PIN): what revoking access to an HSM key does."""
        self._pin = self.pin_file.read_text()
        self.pin_file.write_text("000000\n")

    def let_in(self) -> None:
        self.pin_file.write_text(self._pin)


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One SoftHSM token for the session, (label, PIN): the PKCS#11 library reads its configuration
    and its token list once per process, so tests add keys (each its own label) to this token."""
    import os
    import subprocess

    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = secrets.token_hex(4)
    token = f"swarm-{secrets.token_hex(3)}"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", token, "--so-pin", "so" + pin,
                    "--pin", pin], check=True, capture_output=True)
    return token, pin


@pytest.fixture
def softhsm(softhsm_token: tuple[str, str], tmp_path: Path) -> SoftHsmKey:
    """A real PKCS#11 token (SoftHSM, Debian softhsm2) with a new AES-256 key of its own label on it,
    and a PIN file of this test's own."""
    token, pin = softhsm_token
    pin_file = tmp_path / "softhsm.pin"
    pin_file.write_text(pin + "\n")
    key = SoftHsmKey(tmp_path, token, f"swarm-kek-{secrets.token_hex(4)}", pin_file)
    key.add_key(key.label)
    return key


@pytest.fixture(params=["file", "awskms", "pkcs11"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> ProviderUnderTest:
    if request.param == "file":
        path = tmp_path / "keys" / "repo.key"
        create_key_file(path)
        hidden = tmp_path / "keys" / "repo.key.offline"
        return ProviderUnderTest("file", f"file://{path}", lambda: path.rename(hidden),
                                 lambda: hidden.rename(path))
    if request.param == "pkcs11":
        hsm: SoftHsmKey = request.getfixturevalue("softhsm")
        return ProviderUnderTest("pkcs11", hsm.url(), hsm.lock_out, hsm.let_in)
    key: KmsKey = request.getfixturevalue("kms_key")
    return ProviderUnderTest("awskms", key.url(), key.disable, key.enable)
