"""Typed views of a manifest's ``source``: what each kind of backup records about what it copied.

The manifest keeps ``source`` as the JSON object it was written with (old backups carry
fields of earlier versions; an unknown field is kept, never dropped), and these classes
parse it once: ``Manifest.logical`` / ``.physical`` / ``.objects_source`` (or
``typed_source()``) return one of them, raising ``IntegrityError`` naming the field when a
required one is missing or of the wrong type. Readers use the attributes instead of
``source.get("...")`` by string.

``Kind`` is the set of backup kinds, with the strings manifests and ids carry on disk.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from swarm.errors import IntegrityError


class Kind(StrEnum):
    """A backup's kind, as written in manifests and backup ids."""

    PG_LOGICAL = "pg-logical"
    PG_PHYSICAL = "pg-physical"
    OBJECTS = "objects"
    STATE = "state"
    SET = "set"


def _req(src: Mapping[str, Any], key: str, typ: type, where: str) -> Any:
    v = src.get(key)
    if typ is int and isinstance(v, bool):
        v = None
    if not isinstance(v, typ):
        raise IntegrityError(f"{where}: source field {key!r} is missing or not a {typ.__name__}",
                             hint="The manifest cannot be used; take a new backup.")
    return v


def _opt_int(src: Mapping[str, Any], key: str) -> int | None:
    v = src.get(key)
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


def _opt_str(src: Mapping[str, Any], key: str) -> str | None:
    v = src.get(key)
    return str(v) if v is not None else None


@dataclass(frozen=True)
class LogicalSource:
    """``source`` of a ``pg-logical`` backup (docs/design/repository-format.md)."""

    database: str | None
    server_version: str | None
    system_identifier: str | None
    db_url: str | None
    row_counts: Mapping[str, int]
    parallel_tables: Mapping[str, Any]
    table_data: str | None  # "copy" for backups whose rows are COPY parts; None for the oldest format
    encoding: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def parse(cls, src: Mapping[str, Any], where: str = "manifest") -> LogicalSource:
        counts = src.get("row_counts") or {}
        if not isinstance(counts, dict) or not all(isinstance(v, int) for v in counts.values()):
            raise IntegrityError(f"{where}: source field 'row_counts' is not a map of counts")
        tables = src.get("parallel_tables") or {}
        if not isinstance(tables, dict):
            raise IntegrityError(f"{where}: source field 'parallel_tables' is not an object")
        return cls(_opt_str(src, "database"), _opt_str(src, "server_version"), _opt_str(src, "system_identifier"),
                   _opt_str(src, "db_url"), dict(counts), dict(tables), _opt_str(src, "table_data"),
                   _opt_str(src, "encoding"), src)

    @property
    def rows(self) -> int:
        return sum(self.row_counts.values())


@dataclass(frozen=True)
class PhysicalSource:
    """``source`` of a ``pg-physical`` backup. ``format``: ``tree`` (``tree.json``) or ``blocks``
    (``index.json``, written before physical backups moved onto the tree store)."""

    format: str
    system_identifier: str
    timeline: int
    start_lsn: str
    stop_lsn: str
    start_wal: str
    stop_wal: str
    wal_segments: tuple[str, ...]
    segment_size: int
    stop_time: str
    start_time: str | None
    xid_after: int | None
    server_version: str | None
    db_url: str | None
    files: int | None
    size: int | None
    block_size: int | None
    dedup_base: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def parse(cls, src: Mapping[str, Any], where: str = "manifest") -> PhysicalSource:
        segs = src.get("wal_segments") or []
        if not isinstance(segs, list) or not all(isinstance(s, str) for s in segs):
            raise IntegrityError(f"{where}: source field 'wal_segments' is not a list of names")
        return cls(format=str(src.get("format") or "blocks"),
                   system_identifier=str(_req(src, "system_identifier", str, where)),
                   timeline=int(_req(src, "timeline", int, where)),
                   start_lsn=_req(src, "start_lsn", str, where), stop_lsn=_req(src, "stop_lsn", str, where),
                   start_wal=_req(src, "start_wal", str, where), stop_wal=_req(src, "stop_wal", str, where),
                   wal_segments=tuple(segs), segment_size=int(_req(src, "segment_size", int, where)),
                   stop_time=_req(src, "stop_time", str, where), start_time=_opt_str(src, "start_time"),
                   xid_after=_opt_int(src, "xid_after"), server_version=_opt_str(src, "server_version"),
                   db_url=_opt_str(src, "db_url"), files=_opt_int(src, "files"), size=_opt_int(src, "size"),
                   block_size=_opt_int(src, "block_size"), dedup_base=_opt_str(src, "dedup_base"), raw=src)

    @property
    def is_tree(self) -> bool:
        return self.format == "tree"


@dataclass(frozen=True)
class ObjectsSource:
    """``source`` of an ``objects`` backup (a pinned inventory of a bucket's versions)."""

    bucket: str
    endpoint: str | None
    prefix: str
    at: str | None
    copy_data: bool
    keys: int | None
    bytes: int | None
    references: tuple[str, ...]  # other backups whose copied versions it reads
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def parse(cls, src: Mapping[str, Any], where: str = "manifest") -> ObjectsSource:
        refs = src.get("references") or []
        if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
            raise IntegrityError(f"{where}: source field 'references' is not a list of backup ids")
        return cls(bucket=str(_req(src, "bucket", str, where)), endpoint=_opt_str(src, "endpoint"),
                   prefix=str(src.get("prefix") or ""), at=_opt_str(src, "at"), copy_data=bool(src.get("copy_data")),
                   keys=_opt_int(src, "keys"), bytes=_opt_int(src, "bytes"), references=tuple(refs), raw=src)


def _list_of_dicts(src: Mapping[str, Any], key: str, where: str) -> tuple[dict[str, Any], ...]:
    v = src.get(key) or []
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise IntegrityError(f"{where}: source field {key!r} is not a list of objects")
    return tuple(dict(x) for x in v)


@dataclass(frozen=True)
class StateSource:
    """``source`` of a ``state`` backup: a snapshot of the state directory (docs/state.md).

    ``complete`` is false when something could not be read (``unreadable``) or was not read
    consistently (``inconsistent``); ``excluded`` lists what was left out on purpose (path and
    reason: swarm's own files, secrets by name or content), ``skipped`` the sockets, FIFOs and
    devices. Values of secrets are never recorded.
    """

    state_dir: str
    complete: bool
    files: int
    dirs: int
    symlinks: int
    hardlinks: int
    size: int
    parent: str | None
    started_ns: int
    excluded: tuple[dict[str, Any], ...]
    skipped: tuple[dict[str, Any], ...]
    unreadable: tuple[dict[str, Any], ...]
    inconsistent: tuple[dict[str, Any], ...]
    cache: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def parse(cls, src: Mapping[str, Any], where: str = "manifest") -> StateSource:
        cache = src.get("cache") or {}
        if not isinstance(cache, dict):
            raise IntegrityError(f"{where}: source field 'cache' is not an object")
        complete = src.get("complete")
        if not isinstance(complete, bool):
            raise IntegrityError(f"{where}: source field 'complete' is missing or not a bool",
                                 hint="The manifest cannot be used; take a new backup.")
        return cls(state_dir=str(_req(src, "state_dir", str, where)), complete=complete,
                   files=int(_req(src, "files", int, where)), dirs=int(_req(src, "dirs", int, where)),
                   symlinks=int(_req(src, "symlinks", int, where)), hardlinks=_opt_int(src, "hardlinks") or 0,
                   size=int(_req(src, "size", int, where)), parent=_opt_str(src, "parent"),
                   started_ns=int(_req(src, "started_ns", int, where)),
                   excluded=_list_of_dicts(src, "excluded", where), skipped=_list_of_dicts(src, "skipped", where),
                   unreadable=_list_of_dicts(src, "unreadable", where),
                   inconsistent=_list_of_dicts(src, "inconsistent", where), cache=dict(cache), raw=src)


SET_PARTS = ("postgres", "objects", "state")


@dataclass(frozen=True)
class SetSource:
    """``source`` of a ``set`` backup: the three stores backed up at one consistency point ``at``
    (docs/sets.md). ``parts`` names each part's backup id (``postgres``, ``objects``, ``state``);
    ``method`` is ``logical`` (``at`` = the exported snapshot's time) or ``physical`` (``at`` =
    the time of ``restore_point``, recorded with the base backup); ``figures`` are production's
    counts at ``at`` (``pipelines_total``, ``row_counts``) for a drill to compare with."""

    at: str
    method: str
    parts: Mapping[str, str]
    figures: Mapping[str, Any]
    restore_point: str | None
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def parse(cls, src: Mapping[str, Any], where: str = "manifest") -> SetSource:
        parts = src.get("parts")
        if not isinstance(parts, dict) or set(parts) != set(SET_PARTS) or \
                not all(isinstance(v, str) for v in parts.values()):
            raise IntegrityError(f"{where}: source field 'parts' must name the {', '.join(SET_PARTS)} backups",
                                 hint="The manifest cannot be used; take a new backup set.")
        method = str(_req(src, "method", str, where))
        if method not in ("logical", "physical"):
            raise IntegrityError(f"{where}: source field 'method' is {method!r}, not logical or physical")
        figures = src.get("figures") or {}
        return cls(at=str(_req(src, "at", str, where)), method=method, parts=dict(parts),
                   figures=dict(figures) if isinstance(figures, dict) else {},
                   restore_point=_opt_str(src, "restore_point"), raw=src)


Source = LogicalSource | PhysicalSource | ObjectsSource | StateSource | SetSource

PARSERS: dict[str, Any] = {Kind.PG_LOGICAL: LogicalSource.parse, Kind.PG_PHYSICAL: PhysicalSource.parse,
                           Kind.OBJECTS: ObjectsSource.parse, Kind.STATE: StateSource.parse,
                           Kind.SET: SetSource.parse}
