"""The AWS KMS key provider: ``awskms:///<key id | key ARN | alias/name>?region=R[&endpoint=URL]``.

The key-encryption key never leaves KMS: ``wrap`` is ``Encrypt`` and ``unwrap`` is ``Decrypt``,
both with an encryption context that binds the purpose, the repository id and (for a data key)
the data key id, so a wrapped key moved to another repository or another data key's file is
refused by KMS itself. Rotating from another key of the same region and endpoint uses
``ReEncrypt`` (``reencrypt_from``), so no plaintext key leaves KMS. The wrapped bytes are KMS's
ciphertext blob, stored as the key files under ``keys/`` already store a wrapped key; the
provider's key id (``awskms:<key ARN>``, resolved from an alias once) is recorded next to each of
them by the repository.

Before first use, and again once ``max_age`` seconds (default 15 minutes) have passed, the key's
``KeyState`` is read with ``DescribeKey``: anything but ``Enabled`` (disabled, pending deletion,
pending import, unavailable) fails closed with ``KeyRevoked`` (exit 4), because some
KMS-compatible servers still decrypt with a disabled key. A key that no longer exists is
``KeyRevoked`` too; access denied is ``KeyUnavailable`` (exit 4); a KMS endpoint that cannot be
reached is ``KeyProviderUnreachable`` (exit 7): the key may be fine, try again.

Credentials come from boto3's usual chain (environment, profile, instance role). This module is
the only one of ``swarm.crypto`` that imports boto3 (``docs/design/decisions.md``).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.exceptions
from botocore.config import Config

from swarm.config.urls import KmsUrl
from swarm.errors import ConfigError, KeyMismatch, KeyProviderUnreachable, KeyRevoked, KeyUnavailable

DEFAULT_MAX_AGE = 15 * 60.0

_REVOKED_CODES = {"DisabledException", "KMSInvalidStateException", "NotFoundException"}
_DENIED_CODES = {"AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
                 "KMSInvalidSignatureException"}


def encryption_context(context: bytes) -> dict[str, str]:
    """The KMS encryption context for swarm's wrap context ``purpose\\0repo_id[\\0data key id]``.

    Readable in CloudTrail: ``{"swarm": purpose, "repo_id": ..., "dek_id": ...}``. Any other shape is
    carried whole (hex) so it is still bound."""
    try:
        parts = context.decode().split("\0")
    except UnicodeDecodeError:
        parts = []
    if 2 <= len(parts) <= 3 and all(parts):
        out = {"swarm": parts[0], "repo_id": parts[1]}
        if len(parts) == 3:
            out["dek_id"] = parts[2]
        return out
    return {"swarm-context": context.hex()}


class AwsKmsKey:
    """A KMS symmetric key used as the key-encryption key. See the module docstring for the contract."""

    def __init__(self, url: KmsUrl, *, max_age: float = DEFAULT_MAX_AGE, client: Any = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.max_age = max_age
        self._monotonic = monotonic
        self._client = client or boto3.session.Session().client(
            "kms", region_name=url.region, endpoint_url=url.endpoint,
            config=Config(connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"}))
        self._arn: str | None = None
        self._checked_at: float | None = None

    @property
    def key_id(self) -> str:
        """``awskms:<key ARN>``: the same for every alias of the key (one DescribeKey on first use)."""
        if self._arn is None:
            self.check()
        assert self._arn is not None
        return "awskms:" + self._arn

    @property
    def description(self) -> str:
        name = self._arn or self.url.key
        return f"AWS KMS key {name} ({self.url.region}{', ' + self.url.endpoint if self.url.endpoint else ''})"

    def _call(self, op: str, **kw: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = getattr(self._client, op)(**kw)
            return result
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError) as exc:
            raise KeyProviderUnreachable(
                f"{self.description} cannot be reached ({exc})",
                hint="Check the network and the KMS endpoint; the key itself may be fine. Nothing was written.") \
                from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise ConfigError(f"no AWS credentials to use {self.description}",
                              hint="Set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or an instance "
                                   "role.") from exc
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if op in ("decrypt", "re_encrypt") and code in ("IncorrectKeyException", "AccessDeniedException"):
                # DescribeKey just succeeded: the ciphertext is another key's (AWS says IncorrectKey,
                # some compatible servers AccessDenied), or this caller lacks kms:Decrypt
                raise KeyMismatch(f"{self.description} cannot unwrap this data key: it was wrapped by another "
                                  f"key, or these credentials lack kms:Decrypt ({code})",
                                  hint="Point SWARM_KEY_URL at the key the repository was created with (`swarm "
                                       "admin keys status` lists its keys), or grant kms:Decrypt.") from exc
            if code == "InvalidCiphertextException":
                raise KeyMismatch(f"{self.description} cannot unwrap this data key (wrong key or wrong context)",
                                  hint="This repository was sealed with another key. Point SWARM_KEY_URL at the "
                                       "key it was created with.") from exc
            if code in _REVOKED_CODES:
                self._checked_at = None
                raise KeyRevoked(f"{self.description} is disabled, pending deletion or deleted ({code})",
                                 hint="Enable the key again (aws kms enable-key, or cancel-key-deletion then "
                                      "enable-key); nothing sealed with it can be read until then. Nothing was "
                                      "written.") from exc
            if code in _DENIED_CODES:
                raise KeyUnavailable(f"{self.description} refuses this caller ({code})",
                                     hint="Grant kms:DescribeKey, kms:Encrypt and kms:Decrypt on the key to these "
                                          "credentials. Nothing was written.") from exc
            raise KeyProviderUnreachable(f"{self.description} failed: {code or exc}",
                                         hint="Try again; if it persists check the KMS service health.") from exc

    def check(self) -> None:
        """Read the key's state (``DescribeKey``) unless it was read less than ``max_age`` seconds ago;
        ``KeyRevoked`` unless it is ``Enabled``. Called before every wrap and unwrap."""
        now = self._monotonic()
        if self._checked_at is not None and now - self._checked_at < self.max_age:
            return
        meta = self._call("describe_key", KeyId=self.url.key)["KeyMetadata"]
        self._arn = str(meta["Arn"])
        state = str(meta.get("KeyState", "Enabled" if meta.get("Enabled") else "Disabled"))
        if state != "Enabled":
            raise KeyRevoked(f"{self.description} is {state}: every backup sealed with it is unrecoverable while it "
                             "stays so",
                             hint="Enable the key again (aws kms enable-key, or cancel-key-deletion then "
                                  "enable-key). Nothing was written.",
                             details={"key_id": "awskms:" + self._arn, "key_state": state})
        self._checked_at = now

    def check_now(self) -> None:
        """``check`` without the cache: the key's state as KMS reports it now (``swarm admin status``)."""
        self._checked_at = None
        self.check()

    def wrap(self, dek: bytes, context: bytes) -> bytes:
        self.check()
        out = self._call("encrypt", KeyId=self._arn, Plaintext=dek, EncryptionContext=encryption_context(context))
        return bytes(out["CiphertextBlob"])

    def can_reencrypt_from(self, old: object) -> bool:
        """Whether a key wrapped by ``old`` can be rewrapped for this key inside KMS (``ReEncrypt``):
        ``old`` is a KMS key reached through the same region and endpoint."""
        return isinstance(old, AwsKmsKey) and (old.url.region, old.url.endpoint) == (self.url.region,
                                                                                    self.url.endpoint)

    def reencrypt_from(self, old: AwsKmsKey, wrapped: bytes, context: bytes) -> bytes:
        """Rewrap ``wrapped`` (``old``'s wrap of a secret under ``context``) for this key with one
        ``ReEncrypt``: KMS decrypts and encrypts inside itself, so the plaintext secret never leaves it,
        and the encryption context is kept. Both keys' states are checked first (``KeyRevoked``).
        Needs ``kms:ReEncryptFrom`` on ``old`` and ``kms:ReEncryptTo`` on this key."""
        old.check()
        self.check()
        ctx = encryption_context(context)
        out = self._call("re_encrypt", CiphertextBlob=wrapped, SourceKeyId=old._arn, SourceEncryptionContext=ctx,
                         DestinationKeyId=self._arn, DestinationEncryptionContext=ctx)
        return bytes(out["CiphertextBlob"])

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        self.check()
        out = self._call("decrypt", KeyId=self._arn, CiphertextBlob=wrapped,
                         EncryptionContext=encryption_context(context))
        return bytes(out["Plaintext"])
