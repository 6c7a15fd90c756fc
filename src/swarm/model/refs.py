"""Explicit references: what a backup needs besides its own manifest, and what a set of backups needs.

Every manifest of format version 2 carries ``refs`` (``Refs``), written with the manifest
(which is still written last). Backups depend on each other and on shared places in four
ways, and each is listed:

* ``packs``: every pack the backup's tree or block index reads, as ``(backup id, name)``,
  its own packs included (a physical backup reads blocks first stored by earlier backups);
* ``objects``: data objects of *other* backups it reads (an objects backup's copied versions,
  ``versions/<hash>`` stored by an earlier backup of the bucket);
* ``deks``: every data key needed to read all of that (its own, the other backups' keys
  named by its blocks and objects, and the WAL data key when it needs WAL);
* ``wal``: WAL ranges, ``(timeline, first segment, last segment)`` inclusive, that the backup
  needs to become consistent (a physical backup: from its start to its stop segment).

``needed(kept)`` answers, without I/O, "what does this set of kept backups need?": the
foundation of garbage collection (issue #12) and of ``verify`` (every ref exists). It is
monotone (more kept backups never need less) and a backup's needs never depend on which
other backups are kept.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from swarm.model.manifest import Manifest

SEGMENT_NAME_LEN = 24


@dataclass(frozen=True, order=True)
class DataRef:
    """A data object of a backup: ``data/<backup_id>/<name>`` (a pack is ``packs/<n>.pack``)."""

    backup_id: str
    name: str

    def to_list(self) -> list[str]:
        return [self.backup_id, self.name]


@dataclass(frozen=True, order=True)
class WalRange:
    """WAL segments ``first`` .. ``last`` (inclusive, 24-hex names) of one timeline."""

    timeline: int
    first: str
    last: str

    def __post_init__(self) -> None:
        for name in (self.first, self.last):
            if len(name) != SEGMENT_NAME_LEN or any(c not in "0123456789ABCDEF" for c in name):
                raise ValueError(f"not a WAL segment name: {name!r}")
            if int(name[:8], 16) != self.timeline:
                raise ValueError(f"segment {name} is not of timeline {self.timeline}")
        if self.first > self.last:
            raise ValueError(f"WAL range {self.first}..{self.last} is reversed")

    def contains(self, segment: str) -> bool:
        """True if ``segment`` (a 24-hex name) lies in this range (same timeline, within bounds)."""
        seg = segment[:SEGMENT_NAME_LEN]
        return len(seg) == SEGMENT_NAME_LEN and seg[:8] == self.first[:8] and self.first <= seg <= self.last

    def to_dict(self) -> dict[str, Any]:
        return {"timeline": self.timeline, "first": self.first, "last": self.last}


@dataclass(frozen=True)
class Refs:
    """What one backup needs outside its own objects (see the module docstring). Sorted, unique."""

    packs: tuple[DataRef, ...] = ()
    objects: tuple[DataRef, ...] = ()
    deks: tuple[str, ...] = ()
    wal: tuple[WalRange, ...] = ()

    @classmethod
    def of(cls, *, packs: Iterable[DataRef] = (), objects: Iterable[DataRef] = (), deks: Iterable[str] = (),
           wal: Iterable[WalRange] = ()) -> Refs:
        """Refs normalised: each list sorted and without duplicates."""
        return cls(tuple(sorted(set(packs))), tuple(sorted(set(objects))), tuple(sorted(set(deks))),
                   tuple(sorted(set(wal))))

    @property
    def backups(self) -> frozenset[str]:
        """The backups whose data this one reads (its own id included when it has packs)."""
        return frozenset(r.backup_id for r in (*self.packs, *self.objects))

    def to_dict(self) -> dict[str, Any]:
        return {"packs": [p.to_list() for p in self.packs], "objects": [o.to_list() for o in self.objects],
                "deks": list(self.deks), "wal": [w.to_dict() for w in self.wal]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Refs:
        """Parse ``refs`` strictly; ValueError (or KeyError/TypeError) on anything malformed."""
        if not isinstance(d, Mapping):
            raise ValueError("refs is not an object")
        unknown = set(d) - {"packs", "objects", "deks", "wal"}
        if unknown:
            raise ValueError(f"unknown refs fields {sorted(unknown)}")

        def data(v: Any) -> DataRef:
            if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) and x for x in v)):
                raise ValueError(f"bad data reference {v!r}")
            if ".." in v[1].split("/") or v[1].startswith("/") or "/" in v[0]:
                raise ValueError(f"unsafe data reference {v!r}")
            return DataRef(v[0], v[1])

        deks = [str(k) for k in d.get("deks", [])]
        if any(not k.startswith("dek-") or "/" in k for k in deks):
            raise ValueError("bad data key id in refs")
        return cls.of(packs=(data(v) for v in d.get("packs", [])), objects=(data(v) for v in d.get("objects", [])),
                      deks=deks,
                      wal=(WalRange(int(w["timeline"]), str(w["first"]), str(w["last"])) for w in d.get("wal", [])))

    def merge(self, other: Refs) -> Refs:
        return Refs.of(packs=(*self.packs, *other.packs), objects=(*self.objects, *other.objects),
                       deks=(*self.deks, *other.deks), wal=(*self.wal, *other.wal))


def pack_refs(locations: Iterable[tuple[str, str, str]]) -> tuple[set[DataRef], set[str]]:
    """``(backup_id, pack name, dek_id)`` of every block a backup reads → its pack refs and data keys."""
    packs: set[DataRef] = set()
    deks: set[str] = set()
    for backup_id, name, dek_id in locations:
        packs.add(DataRef(backup_id, name))
        deks.add(dek_id)
    return packs, deks


@dataclass(frozen=True)
class Needed:
    """What a set of kept backups needs, all together (``needed``).

    ``manifests``: the kept backups' ids; ``data``: every data object (own objects, packs of
    any backup, other backups' objects); ``deks``: every data key (each backup's own and those
    its refs name); ``wal``: every WAL range (not merged; a segment is needed if any range of
    its timeline contains it).
    """

    manifests: frozenset[str] = frozenset()
    data: frozenset[DataRef] = frozenset()
    deks: frozenset[str] = frozenset()
    wal: frozenset[WalRange] = frozenset()
    unreferenced: Mapping[str, str] = field(default_factory=dict)  # backup id -> why its refs are unknown

    def needs_data(self, backup_id: str, name: str) -> bool:
        return DataRef(backup_id, name) in self.data

    def needs_wal(self, segment: str) -> bool:
        return any(r.contains(segment) for r in self.wal)

    def backups(self) -> frozenset[str]:
        """Every backup whose data is needed (not necessarily its manifest)."""
        return frozenset(r.backup_id for r in self.data)

    def issubset(self, other: Needed) -> bool:
        return (self.manifests <= other.manifests and self.data <= other.data and self.deks <= other.deks
                and self.wal <= other.wal)


def own_needs(m: Manifest) -> tuple[set[DataRef], set[str], set[WalRange]]:
    """What one backup needs: its own objects (packs among them) and data key, plus its refs."""
    data = {DataRef(m.id, o.name) for o in m.objects}
    deks = {m.dek_id}
    wal: set[WalRange] = set()
    if m.refs is not None:
        data.update(m.refs.packs)
        data.update(m.refs.objects)
        deks.update(m.refs.deks)
        wal.update(m.refs.wal)
    return data, deks, wal


def needed(kept: Iterable[Manifest]) -> Needed:
    """What the kept backups need (pure). A manifest without ``refs`` (format version 1) is
    listed in ``unreferenced``: a caller deleting data must refuse while any is there."""
    manifests: set[str] = set()
    data: set[DataRef] = set()
    deks: set[str] = set()
    wal: set[WalRange] = set()
    unknown: dict[str, str] = {}
    for m in kept:
        manifests.add(m.id)
        d, k, w = own_needs(m)
        data |= d
        deks |= k
        wal |= w
        if m.refs is None:
            unknown[m.id] = "its manifest has no refs (format version 1: run `swarm admin repo upgrade`)"
    return Needed(frozenset(manifests), frozenset(data), frozenset(deks), frozenset(wal), unknown)

