"""Sealed metadata: manifests, restore points and tombstones, encrypted and authenticated.

Everything in the repository that says what a backup is or where it may be restored from is
*metadata*: a manifest (objects with their checksums, the source: database names, table and
column names, row counts, hosts), a restore point, a tombstone. Anyone who can write the
repository's storage could otherwise rewrite it (an unkeyed checksum can be recomputed), and
anyone who can read it would learn the schema. So each metadata object is sealed:

    "SWMD" | version:u8 = 1 | codec:u8 = 1 (zstd) | reserved:u16 = 0 | nonce:12 | ciphertext | tag:16

AES-256-GCM under the *metadata key*, with associated data
``"swarm-meta/1\\0" + repo_id + "\\0" + store key + "\\0" + header``: a sealed object moved to
another key (another backup id, another restore point) or to another repository fails to
open, as does one altered by a single bit. The metadata key is derived (HKDF-SHA256, info
``"swarm-meta-aead/1"``) from the repository's 256-bit metadata secret, which is random and
kept only wrapped by the key-encryption key (``keys/meta.json``, like ``keys/dedup.json``):
whoever lacks the key-encryption key can neither read nor forge metadata.

What sealing cannot stop is a *replay*: an older sealed object put back under its own key, or
one deleted. Tombstones and each client's remembered catalogue (``swarm.repo.watch``,
``swarm.model.catalogue``) report those.
"""
from __future__ import annotations

import struct

import zstandard
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from swarm.crypto.aead import OpenFailed, open_sealed, seal

MAGIC = b"SWMD"
VERSION = 1
CODEC_ZSTD = 1
HEADER = MAGIC + struct.pack(">BBH", VERSION, CODEC_ZSTD, 0)
_MAX_PLAIN = 256 << 20  # a manifest of any real backup is far below this


class MetadataUnreadable(Exception):
    """The bytes are not a sealed metadata object of this repository (message says why)."""


def metadata_key(secret: bytes) -> bytes:
    """The AES-256-GCM key for sealed metadata, derived from the repository's metadata secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"swarm-meta-aead/1").derive(secret)


def _ad(repo_id: str, store_key: str) -> bytes:
    return b"swarm-meta/1\0" + repo_id.encode() + b"\0" + store_key.encode() + b"\0" + HEADER


def is_sealed(raw: bytes) -> bool:
    return raw[:4] == MAGIC


def seal_metadata(key: bytes, repo_id: str, store_key: str, plain: bytes) -> bytes:
    """Compress and seal ``plain`` for storage under ``store_key``."""
    packed = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(plain)
    return HEADER + seal(key, packed, _ad(repo_id, store_key))


def open_metadata(key: bytes, repo_id: str, store_key: str, raw: bytes) -> bytes:
    """The plaintext of a sealed metadata object stored under ``store_key``; MetadataUnreadable if
    it is not sealed, of another version, or fails authentication (altered, moved, forged)."""
    if not is_sealed(raw):
        raise MetadataUnreadable("it is not sealed (written outside swarm, or by a pre-release swarm)")
    if raw[:8] != HEADER:
        raise MetadataUnreadable(f"unknown sealed-metadata header {raw[:8]!r}")
    try:
        packed = open_sealed(key, raw[8:], _ad(repo_id, store_key))
    except OpenFailed:
        raise MetadataUnreadable("it fails authentication: it was altered, moved from another name, or not "
                                 "written with this repository's key") from None
    try:
        return zstandard.ZstdDecompressor().decompress(packed, max_output_size=_MAX_PLAIN)
    except zstandard.ZstdError as exc:  # authenticated but not zstd: a writer bug, not tampering
        raise MetadataUnreadable(f"its content does not decompress ({exc})") from exc
