"""The Store protocol and its contract.

Contract every implementation keeps (checked by tests/storage/test_contract.py):

* Keys are relative ``/``-separated paths of printable characters; no empty segment,
  no ``.`` or ``..`` segment, no leading or trailing ``/`` (``validate_key``).
* ``put`` is atomic: a reader sees the old object, no object, or the whole new object,
  never a part. With ``if_absent=True`` it raises ``ObjectExists`` instead of replacing.
  A crash during ``put`` leaves no object under the key (local: a ``.tmp-*`` file that
  ``list`` never returns).
* ``get`` of a missing key raises ``ObjectNotFound``; ``stat`` returns ``None``.
* ``get_range(key, offset, length)`` returns exactly ``length`` bytes from ``offset``, or
  fewer when the object ends first (``b""`` at or past the end); a missing key raises
  ``ObjectNotFound``. Restores read single frames of pack objects with it.
* ``list(prefix)`` yields every object whose key starts with ``prefix``, sorted by key.
* ``delete`` of a missing key is not an error.
* Failures that may pass on retry raise ``StoreUnavailable(transient=True)``; wrong
  credentials raise ``StoreAccessDenied``; nothing else escapes as an SDK exception.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from swarm.errors import ConfigError, NotFoundError, SwarmError, UnavailableError


class ObjectNotFound(NotFoundError):
    """An object (a repository file, a bucket key or version) does not exist."""

    code = "object-not-found"


class BucketNotFound(NotFoundError):
    """The bucket named by a URL does not exist (exit 9, like every missing thing)."""

    code = "bucket-not-found"


class ObjectExists(SwarmError):
    """A conditional create found the object already there (a lost race, or a retried write)."""

    code = "object-exists"


class StoreUnavailable(UnavailableError):
    """The storage endpoint (S3, a file system) cannot be reached or keeps failing."""

    code = "store-unavailable"


class StoreAccessDenied(ConfigError):
    """The storage endpoint refused the credentials (the hint names the settings to check)."""

    code = "access-denied"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None = None


@runtime_checkable
class Store(Protocol):
    """A dumb blob store. See the module docstring for the contract."""

    @property
    def url(self) -> str: ...

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        """Store ``data`` under ``key`` atomically; return the number of bytes written."""
        ...

    def get(self, key: str) -> bytes: ...

    def iter_get(self, key: str) -> Iterator[bytes]:
        """Yield the object's bytes in pieces; raises ObjectNotFound before the first piece."""
        ...

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """Bytes ``offset .. offset + length`` of the object (fewer if it ends first)."""
        ...

    def stat(self, key: str) -> ObjectInfo | None: ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]: ...

    def delete(self, key: str) -> None: ...


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ValueError (a programming error)."""
    if not key or key.startswith("/") or key.endswith("/") or "\\" in key:
        raise ValueError(f"invalid store key {key!r}")
    for part in key.split("/"):
        if part in ("", ".", "..") or any(ord(c) < 32 for c in part):
            raise ValueError(f"invalid store key {key!r}")
    return key


def check_range(offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise ValueError(f"invalid byte range offset={offset} length={length}")


def as_chunks(data: bytes | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(data, bytes | bytearray | memoryview):
        return (bytes(data),)
    return data
