"""Open a store from a URL: ``file:///path`` or ``s3://bucket/prefix``. Wraps it in retries."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from swarm.errors import ConfigError
from swarm.storage.base import Store
from swarm.storage.wrappers import RetryingStore


@dataclass(frozen=True)
class S3Options:
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str | None = None


def open_store(url: str, s3: S3Options | None = None, *, create: bool = True, retry: bool = True) -> Store:
    parsed = urlparse(url)
    inner: Store
    if parsed.scheme == "file":
        from swarm.storage.local import LocalStore

        if parsed.netloc not in ("", "localhost"):
            raise ConfigError(f"file URL {url!r} names a host", hint="Use file:///absolute/path.")
        inner = LocalStore(Path(unquote(parsed.path)), create=create)
    elif parsed.scheme == "s3":
        from swarm.storage.s3 import S3Store

        if not parsed.netloc:
            raise ConfigError(f"S3 URL {url!r} has no bucket", hint="Use s3://bucket/prefix.")
        o = s3 or S3Options()
        inner = S3Store(parsed.netloc, parsed.path.strip("/"), endpoint=o.endpoint, access_key=o.access_key,
                        secret_key=o.secret_key, region=o.region)
    elif not parsed.scheme and url.startswith("/"):
        return open_store(f"file://{url}", s3, create=create, retry=retry)
    else:
        raise ConfigError(f"unsupported repository URL {url!r}",
                          hint="Use file:///absolute/path or s3://bucket/prefix.")
    return RetryingStore(inner) if retry else inner
