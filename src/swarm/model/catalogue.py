"""Rollback detection: what a client has seen of a repository, compared with what it sees now.

Sealing (``swarm.repo.metadata``) makes every manifest and restore point unforgeable, but a
writer of the storage can still *delete* one, or put back an *older* sealed copy (a manifest a
prune deleted, a restore point before ``--replace``, an earlier ``.partial`` WAL file). As borg
does, each client remembers the newest authenticated state it has seen of each repository
(``swarm.repo.watch`` keeps it in ``SWARM_HOME``) and compares:

* a backup it has seen whose manifest is gone, with no tombstone: deleted outside swarm;
* a backup with a tombstone (deleted by prune) whose manifest is present: replayed (or a prune
  interrupted between its two steps; a re-run removes it);
* a tombstone it has seen that is gone: the evidence of a deletion was removed;
* a restore point at a lower generation than seen (an older record put back) or gone;
* a ``.partial`` WAL file holding less WAL than this client has seen in it.

Pure functions only: ``findings`` (what is wrong now) and ``advance`` (the state to remember).
``advance`` never forgets a backup that vanished without a tombstone, so the finding stays
until an operator accepts it (``swarm admin repo accept-rollback``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CatalogueState:
    """What is (or was) in a repository's catalogue: live backup ids, tombstoned ids, restore point
    generations by name, and WAL ``.partial`` progress (bytes of WAL before the zero tail) by name."""

    backups: frozenset[str] = frozenset()
    tombstones: frozenset[str] = frozenset()
    restore_points: Mapping[str, int] = field(default_factory=dict)
    partials: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"backups": sorted(self.backups), "tombstones": sorted(self.tombstones),
                "restore_points": dict(sorted(self.restore_points.items())),
                "partials": dict(sorted(self.partials.items()))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CatalogueState:
        return cls(frozenset(map(str, d.get("backups", ()))), frozenset(map(str, d.get("tombstones", ()))),
                   {str(k): int(v) for k, v in dict(d.get("restore_points", {})).items()},
                   {str(k): int(v) for k, v in dict(d.get("partials", {})).items()})


@dataclass(frozen=True)
class Finding:
    """One sign of rollback or deletion: ``kind`` (a kebab-case word), ``name`` (backup id, restore
    point or WAL file) and ``problem`` (a sentence)."""

    kind: str
    name: str
    problem: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "problem": self.problem}


def findings(seen: CatalogueState, now: CatalogueState, *, restore_points: bool = True,
             backups: bool = True) -> list[Finding]:
    """Everything in ``now`` that contradicts ``seen`` (sorted by kind, then name). ``backups`` /
    ``restore_points`` False skip those parts (when ``now`` did not list them)."""
    out: list[Finding] = []
    if backups:
        for b in sorted(seen.backups - seen.tombstones - now.backups - now.tombstones):
            out.append(Finding("backup-deleted", b, f"backup {b} was in this repository and its manifest is gone "
                                                    "without a tombstone: it was deleted outside swarm"))
        for b in sorted(now.backups & now.tombstones):
            out.append(Finding("backup-replayed", b, f"backup {b} was deleted by prune but its manifest is present "
                                                     "again: a replayed manifest, or an interrupted prune"))
        for b in sorted(seen.tombstones - now.tombstones):
            out.append(Finding("tombstone-deleted", b, f"the tombstone of backup {b} (deleted by prune) is gone: "
                                                       "the record of a deletion was removed"))
    if restore_points:
        for name, gen in sorted(seen.restore_points.items()):
            cur = now.restore_points.get(name)
            if cur is None:
                out.append(Finding("restore-point-deleted", name, f"restore point {name!r} was in this repository "
                                                                  "and is gone"))
            elif cur < gen:
                out.append(Finding("restore-point-rolled-back", name,
                                   f"restore point {name!r} is at generation {cur}, older than generation {gen} "
                                   "seen before: an older record was put back"))
    for name, progress in sorted(now.partials.items()):
        had = seen.partials.get(name, 0)
        if progress < had:
            out.append(Finding("partial-rolled-back", name,
                               f"WAL file {name} holds {progress} bytes of WAL, less than the {had} this client "
                               "has seen in it: an older copy was put back"))
    return sorted(out, key=lambda f: (f.kind, f.name))


def advance(seen: CatalogueState, now: CatalogueState, *, restore_points: bool = True,
            backups: bool = True) -> CatalogueState:
    """The state to remember after seeing ``now``: every backup seen and not tombstoned (a backup
    that vanished without a tombstone is kept, so it is reported again), every tombstone, and the
    highest restore point generation and ``.partial`` progress per name."""
    if backups:
        tomb = seen.tombstones | now.tombstones
        live = (seen.backups | now.backups) - tomb
    else:
        tomb, live = seen.tombstones, seen.backups
    points = dict(seen.restore_points)
    if restore_points:
        for name, gen in now.restore_points.items():
            points[name] = max(gen, points.get(name, 0))
    partials = dict(seen.partials)
    for name, progress in now.partials.items():
        partials[name] = max(progress, partials.get(name, 0))
    return CatalogueState(frozenset(live), frozenset(tomb), points, partials)


def accept(now: CatalogueState) -> CatalogueState:
    """The state an operator accepts after reviewing the findings: exactly what is there now (a
    manifest whose tombstone is gone becomes a backup again; nothing is reported until the next
    change)."""
    return CatalogueState(now.backups - now.tombstones, now.tombstones, dict(now.restore_points),
                          dict(now.partials))


def partial_progress(data: bytes) -> int:
    """How much WAL a ``.partial`` file holds: its length without the trailing zero bytes
    (pg_receivewal pads a partial segment with zeros; WAL grows, so a newer copy is never shorter)."""
    return len(data.rstrip(b"\0"))
