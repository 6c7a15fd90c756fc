"""Test stores that wrap a real one: a base that passes every call through, and a store that
"dies" (kill -9) instead of performing its N-th write. Tests subclass ``PassThroughStore`` and
override the one call they change."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from swarm.storage.base import ObjectInfo


class Killed(BaseException):
    """kill -9: nothing after it runs (not an Exception, so no handler cleans up on the way out)."""


class PassThroughStore:
    """Every store call goes to ``inner`` unchanged."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def url(self) -> str:
        return str(self.inner.url)

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        return int(self.inner.put(key, data, if_absent=if_absent))

    def get(self, key: str) -> bytes:
        return bytes(self.inner.get(key))

    def iter_get(self, key: str) -> Iterator[bytes]:
        return iter(self.inner.iter_get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return bytes(self.inner.get_range(key, offset, length))

    def stat(self, key: str) -> ObjectInfo | None:
        return self.inner.stat(key)  # type: ignore[no-any-return]

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self.inner.list(prefix))

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class DyingStore(PassThroughStore):
    """Dies (raises Killed) instead of performing its ``die_at``-th put; counts the puts."""

    def __init__(self, inner: Any, die_at: int) -> None:
        super().__init__(inner)
        self.die_at = die_at
        self.puts = 0

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        self.puts += 1
        if self.puts == self.die_at:
            raise Killed(key)
        return super().put(key, data, if_absent=if_absent)
