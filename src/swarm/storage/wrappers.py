"""Behaviour that wraps any store: retries on transient errors, and faults for tests."""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from swarm.storage.base import ObjectInfo, Store, StoreUnavailable, as_chunks

T = TypeVar("T")


class RetryingStore:
    """Retry transient failures (``StoreUnavailable(transient=True)``) with jittered backoff.

    Permanent errors (not found, access denied, exists) pass through at once. A streamed
    ``put`` (an iterator) cannot be replayed, so it is attempted once here; the S3 driver's
    own per-request retries (botocore standard mode) cover its individual parts.
    """

    def __init__(self, inner: Store, *, attempts: int = 4, base_delay: float = 0.2, max_delay: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep

    @property
    def url(self) -> str:
        return self.inner.url

    def _retry(self, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except StoreUnavailable as exc:
                if not exc.transient or attempt == self.attempts:
                    if attempt > 1:
                        exc.message += f" (after {attempt} attempts)"
                        exc.args = (exc.message,)
                    raise
                delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
                self.sleep(delay * (0.5 + random.random() / 2))
        raise AssertionError("unreachable")

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        if isinstance(data, bytes | bytearray | memoryview):
            blob = bytes(data)
            return self._retry(lambda: self.inner.put(key, blob, if_absent=if_absent))
        return self.inner.put(key, data, if_absent=if_absent)

    def get(self, key: str) -> bytes:
        return self._retry(lambda: self.inner.get(key))

    def iter_get(self, key: str) -> Iterator[bytes]:
        return self._retry(lambda: self.inner.iter_get(key))

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        return self._retry(lambda: self.inner.get_range(key, offset, length))

    def stat(self, key: str) -> ObjectInfo | None:
        return self._retry(lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter(self._retry(lambda: list(self.inner.list(prefix))))

    def delete(self, key: str) -> None:
        self._retry(lambda: self.inner.delete(key))


class FaultyStore:
    """Inject faults for tests: flip a byte or truncate on read, fail the next N calls.

    ``flip_on_read[key] = offset`` flips the byte at ``offset`` (negative counts from the end);
    ``truncate_on_read[key] = n`` returns only the first ``n`` bytes; ``fail_next`` makes the
    next that many calls raise a transient ``StoreUnavailable``.
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.flip_on_read: dict[str, int] = {}
        self.truncate_on_read: dict[str, int] = {}
        self.fail_next = 0
        self.calls = 0

    @property
    def url(self) -> str:
        return self.inner.url

    def _maybe_fail(self) -> None:
        self.calls += 1
        if self.fail_next > 0:
            self.fail_next -= 1
            raise StoreUnavailable("injected transient failure (503 SlowDown)", transient=True)

    def _damage(self, key: str, blob: bytes) -> bytes:
        if key in self.flip_on_read and blob:
            b = bytearray(blob)
            b[self.flip_on_read[key]] ^= 0x01
            blob = bytes(b)
        if key in self.truncate_on_read:
            blob = blob[: self.truncate_on_read[key]]
        return blob

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        self._maybe_fail()
        return self.inner.put(key, b"".join(as_chunks(data)), if_absent=if_absent)

    def get(self, key: str) -> bytes:
        self._maybe_fail()
        return self._damage(key, self.inner.get(key))

    def iter_get(self, key: str) -> Iterator[bytes]:
        return iter([self.get(key)])

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._maybe_fail()
        blob = self._damage(key, self.inner.get(key))
        return blob[offset:offset + length]

    def stat(self, key: str) -> ObjectInfo | None:
        self._maybe_fail()
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        self._maybe_fail()
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self._maybe_fail()
        self.inner.delete(key)
