"""What the object-protection services share: opening buckets, a bounded
parallel runner that isolates failures per key, and the result of per-key work."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

from swarm.errors import ConfigError, SwarmError
from swarm.sources.objects import Bucket, BucketConfig, KeyFailure

T = TypeVar("T")


def open_bucket(cfg: BucketConfig, *, workers: int = 8) -> Bucket:
    return Bucket(cfg, pool=max(10, workers * 2))


@dataclass
class KeyWork:
    """Counters and failures of a parallel per-key run (thread safe)."""

    failed: list[KeyFailure] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    _mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._mutex:
            self.counts[name] = self.counts.get(name, 0) + n

    def fail(self, key: str, version_id: str | None, exc: SwarmError) -> None:
        with self._mutex:
            self.failed.append(KeyFailure(key, version_id, exc.code, exc.message))


def run_bounded(items: Iterable[T], fn: Callable[[T], None], *, workers: int, work: KeyWork,
                key_of: Callable[[T], str]) -> None:
    """Run ``fn`` over ``items`` on ``workers`` threads with at most ``4 * workers`` queued, so
    a stream of millions of items never sits in memory. A ``SwarmError`` from one item is
    recorded against its key and the run goes on; any other exception (a bug, an injected
    crash, KeyboardInterrupt) stops submitting and is re-raised after running items finish.
    """
    limit = max(1, workers) * 4
    pending: set[Future[None]] = set()

    def one(item: T) -> None:
        try:
            fn(item)
        except SwarmError as exc:
            work.fail(key_of(item), None, exc)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="objects") as pool:
        try:
            for item in items:
                while len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                pending.add(pool.submit(one, item))
            for f in list(pending):
                f.result()
        except BaseException:
            for f in pending:
                f.cancel()
            raise


def require_distinct(a: BucketConfig, b: BucketConfig) -> None:
    if a.bucket == b.bucket and a.same_account(b):
        raise ConfigError(f"source and DR are the same bucket ({a.bucket} on {a.endpoint or 'AWS S3'})",
                          hint="Set SWARM_DR_OBJECTS_BUCKET (and SWARM_DR_OBJECTS_ENDPOINT for another server).")


def failures_dict(work: KeyWork, limit: int = 1000) -> list[dict[str, Any]]:
    return [f.to_dict() for f in sorted(work.failed, key=lambda f: f.key)[:limit]]
