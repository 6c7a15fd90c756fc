"""Download a backup's objects into a local directory, verifying every byte on the way."""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from swarm.errors import SwarmError
from swarm.model.manifest import Manifest, ObjectEntry
from swarm.repo import Repository
from swarm.services.reporting import NullReporter, Reporter


def materialize(repo: Repository, manifest: Manifest, prefix: str, dest: Path, *, jobs: int = 2,
                reporter: Reporter | None = None,
                on_error: Callable[[ObjectEntry, SwarmError], None] | None = None) -> list[Path]:
    """Write every object under ``prefix`` to ``dest/<name minus prefix>``.

    A file is written to ``.part`` and renamed only once its object verified completely
    (AEAD of every frame and the manifest SHA-256). Without ``on_error`` the first damaged
    object raises; with it, damaged objects are reported and the rest continue.
    """
    reporter = reporter or NullReporter()
    dest.mkdir(parents=True, exist_ok=True)
    entries = [o for o in manifest.objects if o.name.startswith(prefix)]
    reporter.total(sum(o.size for o in entries))

    def fetch(entry: ObjectEntry) -> Path | None:
        target = dest / entry.name[len(prefix):]
        part = target.with_name(target.name + ".part")
        try:
            with open(part, "wb") as fh:
                for chunk in repo.read_object(manifest, entry.name):
                    fh.write(chunk)
                    reporter.advance(len(chunk))
            os.replace(part, target)
            return target
        except SwarmError as exc:
            part.unlink(missing_ok=True)
            if on_error is None:
                raise
            on_error(entry, exc)
            return None

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(fetch, entries))
    return [p for p in results if p is not None]
