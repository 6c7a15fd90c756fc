"""The backup manifest: what a backup contains and how to prove it whole.

A manifest is the last thing written for a backup; a backup without one does not exist.
It is serialised as canonical JSON (sorted keys, no whitespace) and carries
``checksum`` = SHA-256 of that canonical form without the checksum field, so a damaged
manifest is detected before anything trusts it.

Version 2 (repository format 2) adds ``refs`` (``swarm.model.refs.Refs``): what the backup
needs from other backups and shared places. A version-2 manifest without ``refs`` is
damaged; a version-1 manifest has none (``refs`` is None) until ``swarm admin repo
upgrade`` rewrites it. ``source`` stays the JSON object it was written with; the typed
views (``logical``, ``physical``, ``objects_source``, ``typed_source()``) parse it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from swarm.errors import IntegrityError
from swarm.model.refs import Refs
from swarm.model.sources import PARSERS, Kind, LogicalSource, ObjectsSource, PhysicalSource, Source

MANIFEST_VERSION = 2


@dataclass(frozen=True)
class ObjectEntry:
    """One stored object of a backup.

    ``name`` is relative to the backup (``pgdump/toc.dat``); ``size`` is the plaintext
    length, ``stored_size`` the bytes in the store, ``sha256`` the SHA-256 of those stored
    bytes (what ``verify`` recomputes), ``plain_sha256`` the SHA-256 of the plaintext.
    """

    name: str
    size: int
    stored_size: int
    sha256: str
    plain_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "stored_size": self.stored_size,
                "sha256": self.sha256, "plain_sha256": self.plain_sha256}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObjectEntry:
        return cls(name=str(d["name"]), size=int(d["size"]), stored_size=int(d["stored_size"]),
                   sha256=str(d["sha256"]), plain_sha256=str(d["plain_sha256"]))


@dataclass(frozen=True)
class Manifest:
    """Everything about one backup. ``source`` is engine specific (server version, row counts...)."""

    id: str
    kind: str
    started_at: str
    finished_at: str
    dek_id: str
    objects: tuple[ObjectEntry, ...]
    source: dict[str, Any] = field(default_factory=dict)
    tool_version: str = ""
    version: int = MANIFEST_VERSION
    refs: Refs | None = None  # None only in a version-1 manifest (before the repository's upgrade)

    def __post_init__(self) -> None:
        if self.version >= 2 and self.refs is None:
            object.__setattr__(self, "refs", Refs())  # a version-2 manifest always has refs

    @property
    def size(self) -> int:
        return sum(o.size for o in self.objects)

    @property
    def stored_size(self) -> int:
        return sum(o.stored_size for o in self.objects)

    def object(self, name: str) -> ObjectEntry:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(name)

    # ---- typed views of ``source`` ----------------------------------------------------------
    def typed_source(self) -> Source | None:
        """The source parsed for this kind (None for a kind this swarm has no class for).
        IntegrityError naming the field when the manifest lacks one its kind requires."""
        parse = PARSERS.get(self.kind)
        return None if parse is None else parse(self.source, f"manifest of {self.id}")  # type: ignore[no-any-return]

    def _typed(self, kind: Kind, cls: type) -> Any:
        if self.kind != kind:
            raise ValueError(f"backup {self.id} is a {self.kind} backup, not {kind.value}")
        out = self.typed_source()
        assert isinstance(out, cls)
        return out

    @property
    def logical(self) -> LogicalSource:
        return self._typed(Kind.PG_LOGICAL, LogicalSource)  # type: ignore[no-any-return]

    @property
    def physical(self) -> PhysicalSource:
        return self._typed(Kind.PG_PHYSICAL, PhysicalSource)  # type: ignore[no-any-return]

    @property
    def objects_source(self) -> ObjectsSource:
        return self._typed(Kind.OBJECTS, ObjectsSource)  # type: ignore[no-any-return]

    def with_refs(self, refs: Refs) -> Manifest:
        """This manifest at version 2 with ``refs`` (what ``repo upgrade`` writes)."""
        return Manifest(id=self.id, kind=self.kind, started_at=self.started_at, finished_at=self.finished_at,
                        dek_id=self.dek_id, objects=self.objects, source=self.source,
                        tool_version=self.tool_version, version=MANIFEST_VERSION, refs=refs)

    def body(self) -> dict[str, Any]:
        body = {
            "version": self.version, "id": self.id, "kind": self.kind,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "dek_id": self.dek_id, "tool_version": self.tool_version,
            "objects": [o.to_dict() for o in self.objects], "source": self.source,
        }
        if self.refs is not None:
            body["refs"] = self.refs.to_dict()
        return body

    def to_json(self) -> bytes:
        body = self.body()
        body["checksum"] = _checksum(body)
        return json.dumps(body, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, where: str) -> Manifest:
        try:
            body = json.loads(raw)
            stored = body.pop("checksum")
        except (ValueError, KeyError, AttributeError) as exc:
            raise IntegrityError(f"manifest {where} is not valid JSON with a checksum",
                                 hint="Run `swarm admin verify` on the other backups; this one cannot be "
                                      "trusted.") from exc
        if _checksum(body) != stored:
            raise IntegrityError(f"manifest {where} fails its checksum: it was altered or damaged",
                                 hint="Do not restore from this backup; take a new one and run `swarm admin "
                                      "verify` on the rest.")
        if int(body.get("version", 0)) > MANIFEST_VERSION:
            raise IntegrityError(f"manifest {where} has format version {body['version']}, newer than this "
                                 f"tool understands ({MANIFEST_VERSION})",
                                 hint="Upgrade swarm to read this backup.")
        version = int(body.get("version", 0))
        refs: Refs | None = None
        try:
            if version >= 2:
                refs = Refs.from_dict(body["refs"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"manifest {where} has damaged or missing refs ({exc})",
                                 hint="Do not restore from this backup; run `swarm admin verify` on the rest.") from exc
        return cls(
            id=body["id"], kind=body["kind"], started_at=body["started_at"], finished_at=body["finished_at"],
            dek_id=body["dek_id"], tool_version=body.get("tool_version", ""), version=version,
            objects=tuple(ObjectEntry.from_dict(o) for o in body["objects"]), source=body.get("source", {}),
            refs=refs,
        )


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
