"""Public-key sealing of WAL data keys, so the PostgreSQL server user can archive WAL it cannot read.

``wal push`` runs as the server user for every segment. It holds only the repository's WAL
*public* key (X25519) and a WAL MAC key; for each file it draws a fresh 256-bit data key, seals
the file with it (the framed format of every object), and seals that data key to the public key:

    box = ephemeral_public(32) || AES-256-GCM(k, data_key, ad)      (32 + 12 + 32 + 16 = 92 bytes)
    k   = HKDF-SHA256(X25519(ephemeral_private, wal_public), salt = ephemeral_public || wal_public,
                      info = "swarm-wal-box/1")

Only the holder of the WAL *private* key (swarm with the key-encryption key, or the server user
for the length of one restore) can open a box. The MAC key only lets a pusher recognise a file
already archived (``mac``); it reveals nothing about other files.
"""
from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from swarm.crypto.aead import KEY_SIZE, NONCE_SIZE, TAG_SIZE, OpenFailed, open_sealed, seal

PUBLIC_SIZE = 32
BOX_SIZE = PUBLIC_SIZE + NONCE_SIZE + KEY_SIZE + TAG_SIZE
_RAW = serialization.Encoding.Raw


def new_private_key() -> bytes:
    """32 random bytes: an X25519 private key."""
    return X25519PrivateKey.generate().private_bytes(_RAW, serialization.PrivateFormat.Raw,
                                                     serialization.NoEncryption())


def public_of(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def _box_key(shared: bytes, eph_public: bytes, public: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_SIZE, salt=eph_public + public,
                info=b"swarm-wal-box/1").derive(shared)


def seal_to(public: bytes, data_key: bytes, ad: bytes) -> bytes:
    """A box only the private key of ``public`` opens, holding ``data_key``, bound to ``ad``."""
    eph = X25519PrivateKey.generate()
    eph_public = eph.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(public))
    return eph_public + seal(_box_key(shared, eph_public, public), data_key, ad)


def open_box(private: bytes, box: bytes, ad: bytes) -> bytes:
    """The data key in ``box``; OpenFailed if it was not sealed to this key or ``ad`` differs."""
    if len(box) != BOX_SIZE:
        raise OpenFailed("WAL key box of the wrong size")
    eph_public = box[:PUBLIC_SIZE]
    key = X25519PrivateKey.from_private_bytes(private)
    public = key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    try:
        shared = key.exchange(X25519PublicKey.from_public_bytes(eph_public))
    except ValueError as exc:  # an all-zero shared secret: a crafted ephemeral key
        raise OpenFailed("invalid ephemeral key") from exc
    return open_sealed(_box_key(shared, eph_public, public), box[PUBLIC_SIZE:], ad)


def mac(mac_key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of a WAL file's plaintext: how a pusher recognises a file already archived."""
    return hmac.new(mac_key, data, hashlib.sha256).digest()
