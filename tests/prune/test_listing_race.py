"""A listing of backups that races a prune: the prune removes a manifest after the listing named it
and before it is read. Regression for the failure of ``test_concurrency.py::test_backups_and_prunes_at_once``
("backup <id> does not exist" raised out of ``list_backups`` in a writer that was not holding a lock)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from swarm.services.maintenance.prune import prune
from swarm.storage.base import ObjectInfo
from swarm.storage.local import LocalStore
from tests.prune.conftest import PruneEnv, future, policy

KEEP_ONE = policy("[retention.state]\nkeep_last = 1\n")


class PruneAfterListing:
    """A store whose next listing of ``backups/`` runs ``between`` after the listing is taken and
    before the caller reads what it names (a prune in another process, paused at the right point)."""

    def __init__(self, inner: LocalStore, between: Callable[[], Any]) -> None:
        self.inner = inner
        self.between: Callable[[], Any] | None = between

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        listed = list(self.inner.list(prefix))
        if prefix == "backups/" and self.between is not None:
            between, self.between = self.between, None
            between()
        return iter(listed)


def test_a_manifest_pruned_between_listing_and_reading_is_not_listed(penv: PruneEnv) -> None:
    repo = penv.open()
    ids = []
    for i in range(3):
        penv.change(i)
        ids.append(penv.snapshot(repo))
    pruned: list[str] = []
    store = PruneAfterListing(LocalStore(penv.repo_dir),
                              lambda: pruned.extend(prune(penv.open(clock=future(1)), KEEP_ONE).removed_backups))
    racing = penv.open(store=store)
    listed = [m.id for m in racing.list_backups()]
    assert len(pruned) == 2 and set(pruned) < set(ids)
    kept = [b for b in ids if b not in pruned]
    assert listed == kept, (listed, ids, pruned)  # what was removed meanwhile is not listed; no BackupNotFound
    damaged: dict[str, str] = {}
    assert [m.id for m in penv.open().list_backups(damaged)] == kept and damaged == {}
