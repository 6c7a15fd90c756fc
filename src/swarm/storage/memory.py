"""An in-memory store for tests; keeps the same contract as the others."""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

from swarm.storage.base import ObjectExists, ObjectInfo, ObjectNotFound, as_chunks, check_range, validate_key


class MemoryStore:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, datetime]] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"memory://{id(self):x}"

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        validate_key(key)
        blob = b"".join(as_chunks(data))
        with self._lock:
            if if_absent and key in self.objects:
                raise ObjectExists(f"{key} already exists")
            self.objects[key] = (blob, datetime.now(UTC))
        return len(blob)

    def get(self, key: str) -> bytes:
        validate_key(key)
        try:
            return self.objects[key][0]
        except KeyError as exc:
            raise ObjectNotFound(f"{key} not found") from exc

    def iter_get(self, key: str) -> Iterator[bytes]:
        data = self.get(key)
        return iter([data[i:i + 65536] for i in range(0, len(data), 65536)] or [b""])

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        return self.get(key)[offset:offset + length]

    def stat(self, key: str) -> ObjectInfo | None:
        validate_key(key)
        item = self.objects.get(key)
        return ObjectInfo(key, len(item[0]), item[1]) if item else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            items = sorted((k, v) for k, v in self.objects.items() if k.startswith(prefix))
        return iter([ObjectInfo(k, len(v[0]), v[1]) for k, v in items])

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            self.objects.pop(key, None)
