"""Key-encryption-key providers, one interface (``swarm.crypto.keys.KeyProvider``), chosen by the
key URL (``SWARM_KEY_URL``):

* ``file:///path`` (or a plain path): a local key file (``LocalKeyFile``), or a WAL-only key file
  for the PostgreSQL server user (``WalOnlyKey``);
* ``awskms:///<key id | key ARN | alias/name>?region=R[&endpoint=URL]``: an AWS KMS key
  (``swarm.crypto.providers.awskms.AwsKmsKey``), imported only when such a URL is used;
* ``pkcs11:token=T;object=LABEL?module-path=...&pin-source=file:...`` (RFC 7512): an AES key on a
  PKCS#11 token (``swarm.crypto.providers.pkcs11.Pkcs11Key``).

Every provider: ``wrap(dek, context)`` / ``unwrap(wrapped, context)``, the context bound so a
wrapped key moved elsewhere is refused (``KeyMismatch``); a key its provider no longer lets be
used fails closed (``KeyRevoked`` / ``KeyUnavailable``, exit 4); a provider that cannot be reached
is ``KeyProviderUnreachable`` (exit 7). ``key_id`` is recorded with every wrapped key.
"""
from __future__ import annotations

from swarm.crypto.keys import KeyProvider, LocalKeyFile, key_path_from_url, load_key_file
from swarm.errors import ConfigError, KeyMismatch


def load_provider(url: str) -> KeyProvider:
    """The key provider a key URL names. ConfigError for a malformed URL; a key file's own errors
    (KeyMissing, KeyError_) for ``file://``. A KMS provider makes no call until first used."""
    if url.startswith("awskms:"):
        from swarm.config.urls import UrlProblem, check_kms_url
        from swarm.crypto.providers.awskms import AwsKmsKey

        try:
            parsed = check_kms_url(url)
        except UrlProblem as exc:
            raise ConfigError(f"key URL {url!r}: {exc}",
                              hint="Write awskms:///<key id, key ARN or alias/name>?region=R[&endpoint=URL].") \
                from exc
        return AwsKmsKey(parsed)
    if url.startswith("pkcs11:"):
        from swarm.config.urls import UrlProblem, check_pkcs11_url
        from swarm.crypto.providers.pkcs11 import Pkcs11Key

        try:
            p11 = check_pkcs11_url(url)
        except UrlProblem as exc:
            raise ConfigError(f"key URL {url!r}: {exc}",
                              hint="Write pkcs11:token=T;object=LABEL?module-path=/path/lib.so"
                                   "&pin-source=file:/path/pin (RFC 7512).") from exc
        return Pkcs11Key(p11)
    return load_key_file(key_path_from_url(url))


def is_key_file_url(url: str) -> bool:
    """True when the key URL names a local key file (``file://`` or a path)."""
    return not url.startswith(("awskms:", "pkcs11:"))


def check_available(provider: KeyProvider) -> None:
    """Ask the provider, now, whether the key-encryption key can be used (no wrap or unwrap):

    * AWS KMS: ``DescribeKey``'s ``KeyState``, read afresh (the same check every command makes
      before its first wrap or unwrap, without the 15-minute cache): ``KeyRevoked`` unless
      ``Enabled``, ``KeyUnavailable`` when access is denied;
    * PKCS#11: the token is present, accepts the PIN and holds the key (``KeyUnavailable`` if not);
    * a key file: it is still there, readable, 0600, and holds the same key (``KeyMissing`` /
      ``KeyMismatch`` if not).

    ``KeyProviderUnreachable`` (exit 7) when the provider cannot be asked. Returns None when the key
    is usable. Read only: nothing is written anywhere."""
    check = getattr(provider, "check_now", None)
    if callable(check):
        check()
        return
    if isinstance(provider, LocalKeyFile):
        again = load_key_file(provider.path)
        if again.key_id != provider.key_id:
            raise KeyMismatch(f"the key file {provider.path} now holds another key ({again.key_id}, not "
                              f"{provider.key_id})",
                              hint="Put the repository's key file back (from its offline copy).")


def rewrap(old: KeyProvider, new: KeyProvider, wrapped: bytes, context: bytes) -> bytes:
    """``new``'s wrap of the secret ``old`` wrapped as ``wrapped`` under ``context`` (the same context).

    Between two KMS keys of one region and endpoint this is one ``ReEncrypt``: the secret is never
    in this process's memory. Otherwise the secret is unwrapped by ``old`` and wrapped by ``new``.
    Errors as the providers raise them (``KeyMismatch``, ``KeyRevoked``, ...)."""
    reencrypt = getattr(new, "reencrypt_from", None)
    can = getattr(new, "can_reencrypt_from", None)
    if callable(reencrypt) and callable(can) and can(old):
        return bytes(reencrypt(old, wrapped, context))
    return new.wrap(old.unwrap(wrapped, context), context)
