"""AES-256-GCM with the caller's associated data; the only code that calls the cipher.

``seal`` returns ``nonce(12) || ciphertext || tag(16)`` with a random nonce. Associated
data binds a sealed blob to its place (repository id, object key, frame index), so a blob
moved, swapped or truncated fails to open.
"""
from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZE = 32


class OpenFailed(Exception):
    """The tag did not verify: wrong key, or the bytes / associated data changed."""


def new_key() -> bytes:
    return os.urandom(KEY_SIZE)


def seal(key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, ad)


def open_sealed(key: bytes, blob: bytes, ad: bytes) -> bytes:
    if len(blob) < NONCE_SIZE + TAG_SIZE:
        raise OpenFailed("sealed blob too short")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_SIZE], blob[NONCE_SIZE:], ad)
    except InvalidTag as exc:
        raise OpenFailed("authentication tag mismatch") from exc
