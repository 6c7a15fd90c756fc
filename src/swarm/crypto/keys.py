"""Key-encryption-key providers.

A ``KeyProvider`` wraps and unwraps data keys; it never hands out its own key. The local
provider keeps a 256-bit key in a JSON file of mode 0600:

    {"format": "swarm-kek/1", "key_id": "kek-1a2b3c4d5e6f7a8b", "created_at": "...", "key": "<base64>"}

``key_id`` is derived from the key itself, so a file that was edited or swapped is noticed.
Losing the key file makes every backup sealed with it unrecoverable: keep a copy offline
(``docs/keys.md``).
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from swarm.crypto.aead import KEY_SIZE, OpenFailed, new_key, open_sealed, seal
from swarm.errors import ConfigError, KeyError_, KeyMismatch, KeyMissing

KEY_FILE_FORMAT = "swarm-kek/1"


class KeyProvider(Protocol):
    @property
    def key_id(self) -> str: ...

    @property
    def description(self) -> str: ...

    def wrap(self, dek: bytes, context: bytes) -> bytes: ...

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Raise ``KeyError_`` if the wrapped key was not made by this KEK (or was altered)."""
        ...


def _key_id(key: bytes) -> str:
    return "kek-" + hashlib.sha256(b"swarm-kek-id\0" + key).hexdigest()[:16]


class LocalKeyFile:
    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = key
        self._id = _key_id(key)

    @property
    def key_id(self) -> str:
        return self._id

    @property
    def description(self) -> str:
        return f"local key file {self.path} ({self._id})"

    def wrap(self, dek: bytes, context: bytes) -> bytes:
        return seal(self._key, dek, b"swarm-wrap\0" + context)

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        try:
            return open_sealed(self._key, wrapped, b"swarm-wrap\0" + context)
        except OpenFailed as exc:
            raise KeyMismatch(f"{self.description} cannot unwrap this data key",
                            hint="This repository was sealed with another key. Point SWARM_KEY_URL (or "
                                 "[repository] key in swarm.toml) at the key file used to create it.") from exc


def key_path_from_url(url: str) -> Path:
    """The key file a ``file:///path`` (or plain path) key URL names; ConfigError for anything else."""
    from swarm.config.urls import UrlProblem, check_key_url

    if url.startswith(("awskms:", "pkcs11:")):
        raise ConfigError(f"key URL {url!r} names a KMS or PKCS#11 key, not a key file",
                          hint="This command needs a key file: use file:///path/to/key.")
    try:
        return Path(check_key_url(url)).expanduser()
    except UrlProblem as exc:
        raise ConfigError(f"key URL {url!r}: {exc}",
                          hint="Use file:///path/to/key or awskms:///<key>?region=R (Vault transit is not "
                               "built).") from exc


def create_key_file(path: Path) -> LocalKeyFile:
    """Write a new random key to ``path`` (mode 0600); refuse to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = new_key()
    body = {"format": KEY_FILE_FORMAT, "key_id": _key_id(key),
            "created_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "key": base64.b64encode(key).decode()}
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise ConfigError(f"key file {path} already exists; refusing to overwrite it",
                          hint="Backups sealed with that key need it. Use it as it is, or choose another path.") \
            from exc
    with os.fdopen(fd, "w") as fh:
        json.dump(body, fh, indent=1)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    return LocalKeyFile(path, key)


WAL_PUSH_FORMAT = "swarm-wal-push/1"
WAL_READ_FORMAT = "swarm-wal-read/1"


class WalOnlyKey:
    """What the PostgreSQL server user holds instead of the key-encryption key (``swarm.crypto.walbox``).

    ``swarm-wal-push/1`` files (always, for ``archive_command``): the repository's WAL public key
    and WAL MAC key: enough to archive WAL, not to read anything. ``swarm-wal-read/1`` files (only
    for the length of one restore, for ``restore_command``): the WAL private key too: enough to
    read WAL, nothing else. Neither can wrap or unwrap data keys: such a call raises KeyMissing
    naming what this key is for."""

    def __init__(self, path: Path, repo_id: str, public: bytes, mac_key: bytes, private: bytes | None) -> None:
        self.path = path
        self.repo_id = repo_id
        self.wal_public = public
        self.wal_mac_key = mac_key
        self.wal_private = private
        self._id = ("wal-read-" if private else "wal-push-") + hashlib.sha256(public).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._id

    @property
    def description(self) -> str:
        return f"WAL-only key file {self.path} ({self._id})"

    def _refuse(self) -> KeyMissing:
        return KeyMissing(f"{self.description} can only {'read' if self.wal_private else 'archive'} WAL of "
                          f"repository {self.repo_id}; this needs the repository's key-encryption key",
                          hint="The PostgreSQL server user holds no more than WAL archiving needs: run this "
                               "command as the swarm operator, with SWARM_KEY_URL.")

    def wrap(self, dek: bytes, context: bytes) -> bytes:
        raise self._refuse()

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        raise self._refuse()


def wal_key_doc(repo_id: str, public: bytes, mac_key: bytes, private: bytes | None = None) -> bytes:
    """The bytes of a WAL-only key file (push without ``private``, read with it)."""
    body = {"format": WAL_READ_FORMAT if private else WAL_PUSH_FORMAT, "repo_id": repo_id,
            "public": base64.b64encode(public).decode(), "mac_key": base64.b64encode(mac_key).decode()}
    if private:
        body["private"] = base64.b64encode(private).decode()
    return (json.dumps(body, indent=1) + "\n").encode()


def load_key_file(path: Path) -> LocalKeyFile | WalOnlyKey:
    """Read and check a key file. Errors say what is wrong and how to fix it."""
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise KeyMissing(f"key file {path} does not exist",
                        hint="Create one with `swarm admin keys init`, or point SWARM_KEY_URL at the key the "
                             "repository was created with.") from exc
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyMissing(f"key file {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o})",
                        hint=f"Run `chmod 600 {path}`.")
    try:
        body = json.loads(path.read_text())
        if body.get("format") in (WAL_PUSH_FORMAT, WAL_READ_FORMAT):
            private = base64.b64decode(body["private"], validate=True) if body["format"] == WAL_READ_FORMAT else None
            return WalOnlyKey(path, str(body["repo_id"]), base64.b64decode(body["public"], validate=True),
                              base64.b64decode(body["mac_key"], validate=True), private)
        if body.get("format") != KEY_FILE_FORMAT:
            raise ValueError("format")
        key = base64.b64decode(body["key"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        raise KeyError_(f"key file {path} is not a swarm key file", hint="Restore it from your key backup.") \
            from exc
    if len(key) != KEY_SIZE or _key_id(key) != body.get("key_id"):
        raise KeyError_(f"key file {path} is damaged (its key does not match its key_id)",
                        hint="Restore it from your key backup.")
    return LocalKeyFile(path, key)
