"""The run export archive (``swarm admin export`` / ``import``): names, limits, manifest. Pure.

An archive is a gzip-compressed tar holding, in this order:

* ``manifest.json``: always the first member; describes everything else (see :class:`RunManifest`);
* ``rows/<table>.jsonl``: one JSON object per row (``row_to_json`` of the source row);
* ``objects/<key relative to pipeline_runs/<run_id>/>``: the run's artefacts.

Only regular files with names of that shape are allowed. Everything else (absolute
paths, ``..``, links, devices, FIFOs, directories, duplicates, members the manifest does
not list) is refused by :func:`check_member` before a byte of it is used. The manifest
carries the SHA-256 and size of every other member and its own checksum.

No I/O here: the streaming reader that enforces :class:`Limits` lives in
``swarm.services.transfer.tario``.
"""
from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from swarm.errors import HostileArchive, IntegrityError, RefusedError

FORMAT = "swarm-run-export"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
ROWS_DIR = "rows/"
OBJECTS_DIR = "objects/"
RUN_PREFIX = "pipeline_runs/"

RUN_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")  # what the read API serves
_TABLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_NAME = 1024


@dataclass(frozen=True)
class Limits:
    """What an import accepts. Checked while streaming, before anything is written."""

    max_members: int = 100_000
    max_member_bytes: int = 16 << 30  # one artefact
    max_total_bytes: int = 64 << 30  # everything decompressed
    max_manifest_bytes: int = 64 << 20
    max_ratio: float = 200.0  # decompressed / compressed ...
    ratio_floor_bytes: int = 16 << 20  # ... once this much has been decompressed

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _refuse(message: str, **details: object) -> RefusedError:
    return HostileArchive(message, hint="The archive is not a well-formed swarm run export; nothing was "
                                      "written. Export the run again with `swarm admin export`.",
                        details=dict(details))


def check_run_id(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id):
        raise RefusedError(f"{run_id!r} is not a valid run id (1-64 letters, digits, _ or -)")
    return run_id


def new_run_id(token: str | None = None) -> str:
    """A fresh id of the platform's shape, ``run_`` + 10 hex digits."""
    return "run_" + (token if token is not None else secrets.token_hex(5))


def run_prefix(run_id: str) -> str:
    return f"{RUN_PREFIX}{check_run_id(run_id)}/"


def row_member(table: str) -> str:
    if not _TABLE_RE.match(table):
        raise ValueError(f"invalid table name {table!r}")
    return f"{ROWS_DIR}{table}.jsonl"


def object_member(relative_key: str) -> str:
    """The archive name of an object, from its key relative to the run's prefix."""
    return OBJECTS_DIR + relative_key


def check_name(name: str) -> str:
    """Refuse any member name that could escape the extraction root or is not ours.

    Allowed: ``manifest.json``, ``rows/<table>.jsonl`` and ``objects/<relative path>``
    with no empty, ``.`` or ``..`` component, no backslash, no NUL or control character.
    """
    if not name or len(name) > MAX_NAME:
        raise _refuse(f"archive member name of length {len(name)} refused", member=name[:200])
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise _refuse(f"archive member {name!r} has an absolute path", member=name)
    if "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise _refuse(f"archive member {name!r} has a backslash or a control character", member=name)
    parts = name.split("/")
    if ".." in parts:
        raise _refuse(f"archive member {name!r} escapes the archive root (..)", member=name)
    if any(p in ("", ".") for p in parts):
        raise _refuse(f"archive member {name!r} has an empty or '.' path component", member=name)
    if name == MANIFEST_NAME:
        return name
    if name.startswith(ROWS_DIR):
        table = name[len(ROWS_DIR):]
        if not (table.endswith(".jsonl") and _TABLE_RE.match(table[:-6])):
            raise _refuse(f"archive member {name!r} is not rows/<table>.jsonl", member=name)
        return name
    if name.startswith(OBJECTS_DIR) and len(parts) >= 2:
        return name
    raise _refuse(f"archive member {name!r} is not part of a swarm run export", member=name)


def check_member(name: str, kind: str, size: int, index: int, limits: Limits) -> str:
    """Refuse a member by name, type and size. ``kind`` is one of ``file``, ``dir``,
    ``symlink``, ``hardlink``, ``device``, ``fifo``, ``other``."""
    if index >= limits.max_members:
        raise _refuse(f"archive has more than {limits.max_members} members", limit=limits.max_members)
    check_name(name)
    if kind != "file":
        what = {"symlink": "a symbolic link", "hardlink": "a hard link", "device": "a device file",
                "fifo": "a FIFO", "dir": "a directory"}.get(kind, f"a {kind} entry")
        raise _refuse(f"archive member {name!r} is {what}; only regular files are accepted", member=name,
                      kind=kind)
    if index == 0 and name != MANIFEST_NAME:
        raise _refuse(f"the first archive member is {name!r}, expected {MANIFEST_NAME}", member=name)
    if index > 0 and name == MANIFEST_NAME:
        raise _refuse(f"archive has a second {MANIFEST_NAME}", member=name)
    cap = limits.max_manifest_bytes if name == MANIFEST_NAME else limits.max_member_bytes
    if size < 0 or size > cap:
        raise _refuse(f"archive member {name!r} declares {size} bytes, over the limit of {cap}", member=name,
                      size=size, limit=cap)
    return name


def check_ratio(decompressed: int, compressed: int, limits: Limits) -> None:
    """Refuse a decompression bomb: too much in total, or too much per compressed byte."""
    if decompressed > limits.max_total_bytes:
        raise _refuse(f"archive decompresses to more than {limits.max_total_bytes} bytes",
                      limit=limits.max_total_bytes)
    if decompressed >= limits.ratio_floor_bytes and decompressed > limits.max_ratio * max(compressed, 1):
        raise _refuse(f"archive decompresses {decompressed / max(compressed, 1):.0f}x (limit "
                      f"{limits.max_ratio:.0f}x): a decompression bomb?", decompressed=decompressed,
                      compressed=compressed, limit_ratio=limits.max_ratio)


@dataclass(frozen=True)
class Member:
    """One archive member other than the manifest."""

    name: str
    size: int
    sha256: str
    kind: str  # "rows" | "object"
    # objects only
    key: str = ""  # relative to the run's prefix
    content_type: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    treatment: str = ""  # "scrubbed" | "kept" (model) | "unscrubbed" (binary, --include-unscrubbed) | "raw"
    rows: int = 0  # rows only

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "size": self.size, "sha256": self.sha256, "kind": self.kind}
        if self.kind == "object":
            d.update(key=self.key, content_type=self.content_type, tags=dict(self.tags), treatment=self.treatment)
        else:
            d["rows"] = self.rows
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Member:
        if not isinstance(d, dict):
            raise IntegrityError("manifest member entry is not an object")
        try:
            name, size, sha, kind = str(d["name"]), int(d["size"]), str(d["sha256"]), str(d["kind"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"manifest member entry is incomplete: {exc}") from exc
        check_name(name)
        if not _SHA_RE.match(sha) or size < 0 or kind not in ("rows", "object"):
            raise IntegrityError(f"manifest entry for {name!r} is malformed")
        if kind == "object":
            key = str(d.get("key", ""))
            if object_member(key) != name:
                raise IntegrityError(f"manifest entry {name!r} names key {key!r}, which does not match")
            tags = d.get("tags") or {}
            if not isinstance(tags, dict):
                raise IntegrityError(f"manifest entry {name!r} has malformed tags")
            return cls(name, size, sha, kind, key=key, content_type=str(d.get("content_type", "")),
                       tags={str(k): str(v) for k, v in tags.items()}, treatment=str(d.get("treatment", "")))
        if not name.startswith(ROWS_DIR):
            raise IntegrityError(f"manifest rows entry {name!r} is not under {ROWS_DIR}")
        return cls(name, size, sha, kind, rows=int(d.get("rows", 0)))


@dataclass
class RunManifest:
    """What an export holds. Never holds a PII value: counts and paths only."""

    run_id: str
    pipeline_id: str
    schema_version: int
    created_at: str
    source: dict[str, Any]  # {"database": redacted URL, "bucket": ..., "endpoint": ...}
    scrubbed: bool
    contains_pii: bool
    scrub: dict[str, Any]  # scrubber version, report (counts per type and path), what was left out
    tables: dict[str, str]  # table -> the column referencing runs.id ("" for runs, "id" for pipelines)
    members: list[Member]
    counts: dict[str, int] = field(default_factory=dict)
    tool: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def body(self) -> dict[str, Any]:
        return {"format": self.format, "format_version": self.format_version, "tool": self.tool,
                "run_id": self.run_id, "pipeline_id": self.pipeline_id, "schema_version": self.schema_version,
                "created_at": self.created_at, "source": self.source, "scrubbed": self.scrubbed,
                "contains_pii": self.contains_pii, "scrub": self.scrub, "tables": self.tables,
                "counts": self.counts, "members": [m.to_dict() for m in self.members]}

    def to_bytes(self) -> bytes:
        body = self.body()
        body["manifest_sha256"] = _digest(body)
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()

    def member(self, name: str) -> Member | None:
        for m in self.members:
            if m.name == name:
                return m
        return None

    @classmethod
    def from_bytes(cls, data: bytes) -> RunManifest:
        try:
            d = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{MANIFEST_NAME} is not valid JSON: {exc}") from exc
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise IntegrityError(f"{MANIFEST_NAME} is not a {FORMAT} manifest")
        version = d.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise HostileArchive(f"archive format version {version} is newer than this swarm understands "
                               f"({FORMAT_VERSION})", hint="Import it with the swarm version that exported it, "
                                                           "or a newer one.")
        claimed = d.pop("manifest_sha256", None)
        if claimed != _digest(d):
            raise IntegrityError(f"{MANIFEST_NAME} checksum does not match its content (damaged or edited)")
        try:
            members = [Member.from_dict(m) for m in d["members"]]
            m = cls(run_id=check_run_id(str(d["run_id"])), pipeline_id=str(d["pipeline_id"]),
                    schema_version=int(d["schema_version"]), created_at=str(d["created_at"]),
                    source=dict(d["source"]), scrubbed=bool(d["scrubbed"]), contains_pii=bool(d["contains_pii"]),
                    scrub=dict(d["scrub"]), tables={str(k): str(v) for k, v in dict(d["tables"]).items()},
                    members=members, counts={str(k): int(v) for k, v in dict(d.get("counts", {})).items()},
                    tool=str(d.get("tool", "")), format_version=version)
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{MANIFEST_NAME} is incomplete: {exc}") from exc
        names = [x.name for x in members]
        if len(set(names)) != len(names):
            raise IntegrityError(f"{MANIFEST_NAME} lists a member twice")
        for table in m.tables:
            row_member(table)
            if m.member(row_member(table)) is None:
                raise IntegrityError(f"{MANIFEST_NAME} names table {table} but has no {row_member(table)}")
        if "runs" not in m.tables or "pipelines" not in m.tables:
            raise IntegrityError(f"{MANIFEST_NAME} has no runs or pipelines rows")
        return m


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def rekey(relative_or_full: str, old_run: str, new_run: str) -> str:
    """Rewrite ``pipeline_runs/<old>/...`` to ``pipeline_runs/<new>/...`` (other text unchanged)."""
    old, new = f"{RUN_PREFIX}{old_run}/", f"{RUN_PREFIX}{new_run}/"
    return new + relative_or_full[len(old):] if relative_or_full.startswith(old) else relative_or_full


# What happens to an object on export with --scrub, by extension (lower case).
TEXT_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "text", ".tsv": "text",
                ".txt": "text", ".log": "text", ".md": "text", ".markdown": "text", ".html": "text",
                ".htm": "text", ".xml": "text", ".yaml": "text", ".yml": "text"}
MODEL_EXTS = {".safetensors", ".pt", ".pth", ".bin", ".onnx", ".ckpt", ".gguf", ".h5", ".pb", ".tflite",
              ".joblib", ".pkl", ".npz", ".npy", ".msgpack"}


def classify(relative_key: str, tags: dict[str, str], content_type: str = "") -> tuple[str, str]:
    """(treatment, scrub format) for an object under ``--scrub``.

    ``("model", "")``: a model artefact, kept as it is (by tag ``swarm-class=model``, by
    ``models/`` prefix, or by a model file extension); ``("text", fmt)``: a text format the
    scrubber handles; ``("binary", "")``: cannot be scrubbed (PDF, images, unknown).
    """
    name = relative_key.rsplit("/", 1)[-1].lower()
    ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    cls = tags.get("swarm-class", "")
    if cls == "model" or relative_key.startswith("models/") or ext in MODEL_EXTS:
        return "model", ""
    if ext in TEXT_FORMATS:
        return "text", TEXT_FORMATS[ext]
    ct = content_type.split(";", maxsplit=1)[0].strip().lower()
    if ct in ("application/json",):
        return "text", "json"
    if ct in ("application/x-ndjson", "application/jsonl"):
        return "text", "jsonl"
    if ct.startswith("text/"):
        return "text", "text"
    return "binary", ""
