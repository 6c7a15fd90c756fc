"""Each client's memory of the repositories it has used: the newest authenticated catalogue
state it has seen (``swarm.model.catalogue``), one JSON file per repository id.

``CatalogueWatch(directory)`` keeps ``<directory>/<repo_id>.json`` (mode 0600, in a 0700
directory; ``swarm.services.context`` puts it under ``$SWARM_HOME/security/``). A copy of the
repository (``[[repository.copies]]``, same repository id in another place) is remembered on its
own: ``CatalogueWatch(directory, copy=NAME)`` keeps ``<repo_id>@<NAME>.json``, so a copy that lags
the primary (or was pruned on its own) is never reported as a rollback of the primary, and a
rollback of the copy is measured against what this client saw of that copy. It lives with
the client, not in the repository, so someone who can only write the repository cannot reset
it. ``update`` is read-merge-write under an ``flock`` on a sibling lock file, so two swarm
processes of one host never lose each other's state, and the file is replaced by rename: a
kill -9 leaves the old state or the new one, never a torn file (at worst a ``.tmp-*`` file,
overwritten next time).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from swarm.errors import ConfigError
from swarm.model.catalogue import CatalogueState


class CatalogueWatch:
    def __init__(self, directory: Path, *, copy: str | None = None) -> None:
        self.directory = Path(directory)
        if copy is not None and (not copy or "/" in copy or copy.startswith(".")):
            raise ValueError(f"invalid copy name {copy!r}")
        self.copy = copy

    def _stem(self, repo_id: str) -> str:
        return repo_id if self.copy is None else f"{repo_id}@{self.copy}"

    def path(self, repo_id: str) -> Path:
        return self.directory / f"{self._stem(repo_id)}.json"

    def load(self, repo_id: str) -> CatalogueState:
        """The remembered state; an empty state if this client never used the repository."""
        try:
            raw = self.path(repo_id).read_text()
        except FileNotFoundError:
            return CatalogueState()
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path(repo_id)}: {exc.strerror}") from exc
        try:
            return CatalogueState.from_dict(json.loads(raw))
        except (ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{self.path(repo_id)} (what this client remembers of repository {repo_id}) is damaged",
                              hint="Remove it to start remembering afresh (rollbacks before now then go "
                                   "unnoticed).") from exc

    @contextlib.contextmanager
    def _locked(self, repo_id: str) -> Iterator[None]:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{self._stem(repo_id)}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(self, repo_id: str, change: Callable[[CatalogueState], CatalogueState]) -> CatalogueState:
        """Replace the remembered state by ``change(remembered)`` atomically; return the new state."""
        with self._locked(repo_id):
            new = change(self.load(repo_id))
            target = self.path(repo_id)
            tmp = target.with_name(f".tmp-{secrets.token_hex(6)}-{target.name}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"repo_id": repo_id, **({"copy": self.copy} if self.copy else {}), **new.to_dict()}, fh,
                      indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            return new
