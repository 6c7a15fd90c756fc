"""Key URLs: file://, awskms:/// and pkcs11: parsed, and malformed ones refused with exit 3 saying
what is wrong."""
from __future__ import annotations

import pytest

from swarm.config.urls import UrlProblem, check_key_url, check_kms_url, check_pkcs11_url
from swarm.crypto.providers import load_provider
from swarm.errors import ConfigError


def test_kms_urls() -> None:
    assert check_kms_url("awskms:///alias/swarm?region=eu-west-1").key == "alias/swarm"
    u = check_kms_url("awskms:///1234abcd?region=us-east-1&endpoint=http://127.0.0.1:9")
    assert (u.key, u.region, u.endpoint) == ("1234abcd", "us-east-1", "http://127.0.0.1:9")
    assert check_kms_url("awskms:///arn:aws:kms:eu-central-1:111122223333:key/mrk-1").region == "eu-central-1"
    assert check_key_url("awskms:///alias/x?region=us-east-1") == "awskms:///alias/x?region=us-east-1"


@pytest.mark.parametrize("url, says", [
    ("awskms:///alias/x", "no region"),
    ("awskms://alias/x?region=us-east-1", "names a host"),
    ("awskms:///?region=us-east-1", "names no key"),
    ("awskms:///alias/x?region=us-east-1&colour=red", "unknown parameter"),
    ("awskms:///alias/x?region=us-east-1&endpoint=ftp://x", "http"),
])
def test_bad_kms_urls(url: str, says: str) -> None:
    with pytest.raises(UrlProblem, match=says):
        check_kms_url(url)
    with pytest.raises(ConfigError):
        load_provider(url)


def test_pkcs11_urls() -> None:
    u = check_pkcs11_url("pkcs11:token=prod;object=swarm%20kek?module-path=/usr/lib/softhsm/libsofthsm2.so"
                         "&pin-source=file:/etc/swarm/pin")
    assert (u.token, u.object, u.module_path, u.pin_source) == ("prod", "swarm kek", "/usr/lib/softhsm/libsofthsm2.so",
                                                                "/etc/swarm/pin")
    assert check_pkcs11_url("pkcs11:token=t;object=o?module-path=/m.so&pin-source=file:///p").pin_source == "/p"


@pytest.mark.parametrize("url, says", [
    ("pkcs11:token=t?module-path=/m.so", "no object"),
    ("pkcs11:token=t;object=o", "no module-path"),
    ("pkcs11:token=t;object=o?module-path=m.so", "absolute"),
    ("pkcs11:token=t;object=o;type=private?module-path=/m.so", "secret key"),
    ("pkcs11:token=t;object=o;flavour=x?module-path=/m.so", "unknown attribute"),
])
def test_bad_pkcs11_urls(url: str, says: str) -> None:
    with pytest.raises(UrlProblem, match=says):
        check_pkcs11_url(url)
    with pytest.raises(ConfigError):
        load_provider(url)


def test_vault_refused() -> None:
    with pytest.raises(UrlProblem, match="not supported"):
        check_key_url("vault://transit/keys/swarm")
