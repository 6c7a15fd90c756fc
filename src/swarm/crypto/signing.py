"""Ed25519 signatures: keys, fingerprints, sign and verify. Pure functions, no file I/O.

A deployment signs what it exports (run archives, ``swarm.services.transfer``) with its own
Ed25519 key; a deployment that imports verifies the signature against the public keys it
was told to trust. Keys travel as PEM (PKCS#8 for the private key, SubjectPublicKeyInfo for
the public key), which OpenSSL and every other tool read too.

A public key is named by its fingerprint, ``ed25519:`` + the first 16 hex digits of the
SHA-256 of its 32 raw bytes. The fingerprint is a name for people and file names, never a
proof: verification always uses the full public key.

Every function raises ``SigningKeyError`` for input that is not a key of the expected kind;
``verify`` returns False (never raises) for a signature that does not hold.
"""
from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from swarm.errors import SigningKeyError

ALGORITHM = "ed25519"
FINGERPRINT_PREFIX = "ed25519:"
RAW_PUBLIC_BYTES = 32
SIGNATURE_BYTES = 64


def new_private_key() -> bytes:
    """A fresh private key, as its 32 raw bytes."""
    return Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                      serialization.NoEncryption())


def _private(raw: bytes) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError("not an Ed25519 private key") from exc


def _public(raw: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise SigningKeyError("not an Ed25519 public key") from exc


def public_key(private: bytes) -> bytes:
    """The 32 raw bytes of the public key of ``private``."""
    return _private(private).public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(public: bytes) -> str:
    """``ed25519:<first 16 hex of SHA-256(raw public key)>``."""
    _public(public)
    return FINGERPRINT_PREFIX + hashlib.sha256(public).hexdigest()[:16]


def private_to_pem(private: bytes) -> bytes:
    return _private(private).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())


def private_from_pem(data: bytes) -> bytes:
    """The raw private key in an unencrypted PKCS#8 PEM; ``SigningKeyError`` for anything else."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError("not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"a {type(key).__name__} key, not an Ed25519 key")
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def public_to_pem(public: bytes) -> bytes:
    return _public(public).public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_from_pem(data: bytes) -> bytes:
    """The raw public key in a SubjectPublicKeyInfo PEM; ``SigningKeyError`` for anything else
    (a private key included: it must never be handed around as a "public key" file)."""
    if b"PRIVATE KEY" in data:
        raise SigningKeyError("this is a private key; give the public key (`swarm admin keys export-public`)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError("not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"a {type(key).__name__} key, not an Ed25519 key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign(private: bytes, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message``."""
    return _private(private).sign(message)


def verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True only if ``signature`` is ``public``'s signature of exactly ``message``."""
    if len(signature) != SIGNATURE_BYTES:
        return False
    try:
        _public(public).verify(signature, message)
    except InvalidSignature:
        return False
    return True
