"""The PKCS#11 key provider: an AES key on a token (an HSM, or SoftHSM in tests) named by an RFC
7512 URI, ``pkcs11:token=T;object=LABEL?module-path=/path/lib.so&pin-source=file:/path/pin``.

The key never leaves the token: ``wrap`` and ``unwrap`` are AES-256-GCM operations on the token
(``CKM_AES_GCM``), a random 96-bit nonce from the token, additional data ``"swarm-wrap\\0" +
context``; the wrapped bytes are ``nonce(12) || ciphertext || tag(16)``. ``key_id`` is
``"p11-" + SHA-256(token serial, label, the GMAC of an empty message under a fixed nonce)[:16 hex]``:
another key under the same label gets another id.

A token that is absent, a key that is not on it, or a PIN the token refuses fails closed with
``KeyUnavailable`` (exit 4): nothing sealed with the key can be read while it stays so. A wrapped
key the token cannot open (another key, another context) is ``KeyMismatch``. Each call opens and
closes a session (one per wrap or unwrap; the repository caches what it unwraps).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from swarm.config.urls import Pkcs11Url
from swarm.errors import ConfigError, KeyMismatch, KeyUnavailable

_KCV_NONCE = b"\0" * 12


class Pkcs11Key:
    def __init__(self, url: Pkcs11Url) -> None:
        self.url = url
        self._id: str | None = None

    @property
    def description(self) -> str:
        return f"PKCS#11 key {self.url.object!r} on token {self.url.token!r}"

    def _pin(self) -> str | None:
        if self.url.pin_value is not None:
            return self.url.pin_value
        if self.url.pin_source is None:
            return None
        try:
            return Path(self.url.pin_source).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the PIN of {self.description} from {self.url.pin_source} ({exc})",
                              hint="Fix pin-source in the key URL.") from exc

    def _run(self, fn: Any) -> Any:
        import pkcs11
        from pkcs11 import exceptions as p11e

        try:
            lib = pkcs11.lib(self.url.module_path)
        except (RuntimeError, OSError) as exc:
            raise ConfigError(f"cannot load the PKCS#11 module {self.url.module_path} ({exc})",
                              hint="Fix module-path in the key URL (e.g. /usr/lib/softhsm/libsofthsm2.so).") \
                from exc
        try:
            token = lib.get_token(token_label=self.url.token)
            with token.open(user_pin=self._pin()) as session:
                key = session.get_key(object_class=pkcs11.ObjectClass.SECRET_KEY, key_type=pkcs11.KeyType.AES,
                                      label=self.url.object)
                return fn(pkcs11, session, key, str(token.serial))
        except p11e.NoSuchToken as exc:
            raise KeyUnavailable(f"{self.description}: no token {self.url.token!r} is present",
                                 hint="Insert or configure the token; nothing sealed with its key can be read "
                                      "until then. Nothing was written.") from exc
        except p11e.NoSuchKey as exc:
            raise KeyUnavailable(f"{self.description}: the token holds no such key",
                                 hint="The key was removed from the token: restore it from the HSM's backup. "
                                      "Nothing was written.") from exc
        except (p11e.PinIncorrect, p11e.PinLocked, p11e.PinExpired, p11e.UserNotLoggedIn) as exc:
            raise KeyUnavailable(f"{self.description}: the token refuses the PIN ({type(exc).__name__})",
                                 hint="Fix the PIN file named by pin-source. Nothing was written.") from exc

    @property
    def key_id(self) -> str:
        if self._id is None:
            def kcv(p: Any, session: Any, key: Any, serial: str) -> str:
                tag = key.encrypt(b"", mechanism=p.Mechanism.AES_GCM,
                                  mechanism_param=p.GCMParams(_KCV_NONCE, b"swarm-key-id", 128))
                digest = hashlib.sha256(b"\0".join([serial.encode(), self.url.object.encode(), bytes(tag)]))
                return "p11-" + digest.hexdigest()[:16]
            self._id = str(self._run(kcv))
        return self._id

    def check_now(self) -> None:
        """Open a session and find the key (``KeyUnavailable`` if the token, the PIN or the key is
        missing); nothing is encrypted."""
        self._run(lambda p, session, key, serial: None)

    def wrap(self, dek: bytes, context: bytes) -> bytes:
        def op(p: Any, session: Any, key: Any, serial: str) -> bytes:
            nonce = bytes(session.generate_random(96))
            ct = key.encrypt(dek, mechanism=p.Mechanism.AES_GCM,
                             mechanism_param=p.GCMParams(nonce, b"swarm-wrap\0" + context, 128))
            return nonce + bytes(ct)
        return bytes(self._run(op))

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        from pkcs11 import exceptions as p11e

        def op(p: Any, session: Any, key: Any, serial: str) -> bytes:
            try:
                return bytes(key.decrypt(wrapped[12:], mechanism=p.Mechanism.AES_GCM,
                                         mechanism_param=p.GCMParams(wrapped[:12], b"swarm-wrap\0" + context, 128)))
            except (p11e.EncryptedDataInvalid, p11e.EncryptedDataLenRange, p11e.FunctionFailed,
                    p11e.GeneralError) as exc:
                raise KeyMismatch(f"{self.description} cannot unwrap this data key (another key or context)",
                                  hint="Point SWARM_KEY_URL at the key the repository was created with.") from exc
        return bytes(self._run(op))
