"""The backup manifest: what a backup contains and how to prove it whole.

A manifest is the last thing written for a backup; a backup without one does not exist.
It is serialised as canonical JSON (sorted keys, no whitespace) and carries
``checksum`` = SHA-256 of that canonical form without the checksum field, so a damaged
manifest is detected before anything trusts it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from swarm.errors import IntegrityError

MANIFEST_VERSION = 1


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

    def body(self) -> dict[str, Any]:
        return {
            "version": self.version, "id": self.id, "kind": self.kind,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "dek_id": self.dek_id, "tool_version": self.tool_version,
            "objects": [o.to_dict() for o in self.objects], "source": self.source,
        }

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
        return cls(
            id=body["id"], kind=body["kind"], started_at=body["started_at"], finished_at=body["finished_at"],
            dek_id=body["dek_id"], tool_version=body.get("tool_version", ""), version=int(body["version"]),
            objects=tuple(ObjectEntry.from_dict(o) for o in body["objects"]), source=body.get("source", {}),
        )


def _checksum(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
