"""Open a store from a URL: ``file:///path`` or ``s3://bucket/prefix``. Wraps it in retries."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from swarm.config import urls
from swarm.storage.base import Store
from swarm.storage.wrappers import RetryingStore


@dataclass(frozen=True)
class S3Options:
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None
    # backup kind (and "wal") -> S3 storage class for that kind's data objects ([repository.storage_class])
    storage_class: tuple[tuple[str, str], ...] = ()


def open_store(url: str, s3: S3Options | None = None, *, create: bool = True, retry: bool = True) -> Store:
    """The store ``url`` names, parsed by ``swarm.config.urls.check_repository_url`` (the one
    parser of repository URLs; settings have already checked theirs, so a ConfigError here
    is for a URL given some other way)."""
    try:
        parsed = urls.check_repository_url(url)
    except urls.UrlProblem as exc:
        raise urls.invalid("repository", url, exc, setting="the repository URL", source="") from None
    inner: Store
    if parsed.scheme == "file":
        from swarm.storage.local import LocalStore

        inner = LocalStore(Path(parsed.path), create=create)
    else:
        from swarm.storage.s3 import S3Store

        o = s3 or S3Options()
        inner = S3Store(parsed.bucket, parsed.prefix, endpoint=o.endpoint, access_key=o.access_key,
                        secret_key=o.secret_key, region=o.region, storage_class=dict(o.storage_class))
    return RetryingStore(inner) if retry else inner
