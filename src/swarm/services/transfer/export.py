"""``swarm admin export``: one run's rows and artefacts in one ``.tar.gz``, scrubbed on request.

Steps, and what a crash between them leaves:

1. open a REPEATABLE READ snapshot of the database; the run, its pipeline and every row
   referencing it are read from that one instant, streamed into a staging directory
   next to the output (``.swarm-export-*``, removed on exit, scrubbed on the way in with
   ``--scrub``);
2. the latest version of every object under ``pipeline_runs/<run_id>/`` is streamed from
   the bucket into the staging directory (scrubbed, kept or left out by its format); then
   the run's ``run_artefacts`` rows (read in step 1) are staged to describe the objects the
   archive carries: a scrubbed object's row gets its new size and SHA-256, a left-out
   object's row is left out (see ``_artefact_member``);
3. the manifest is signed with this deployment's export signing key (``.trust``); the
   archive is written under a temporary name (``signature.json`` first, then the manifest,
   then rows, then objects), fsynced and renamed over the output.

Secrets never travel (the one scanner of ``swarm.model.secrets``, as state snapshots use it):
every object is scanned as it is staged (after scrubbing, so what is scanned is what the archive
would carry); an object whose name is a secret by name (``*.key``, ``*.pem``, ``.env``,
``secrets/``, ``credentials*``) or whose content has a secret shape (a private key, an AWS
key, a JWT, an ``sk-`` API key) is left out, with its ``run_artefacts`` row, and listed in
``secrets_left_out`` with the reason; a row holding a secret shape has each shape replaced by
``[secret removed: <kind>]`` in its string values and is listed (table and count) in
``secrets_redacted``; a row whose shape spans its JSON structure (so no one string holds it)
refuses the export (``RefusedError``, naming the table and the kind). Neither list, nor the
manifest (``scrub.secrets``), holds a value.

A crash leaves no file under the output's name (at most a temporary archive or staging
directory, both dot-named, next to it); re-running converges. Nothing is written to the
source database or bucket.

Scrubbing uses a random key generated for this export and never stored, so tokens are
consistent within one export and cannot be linked across exports.

The signature covers the exact bytes of ``manifest.json``, which hold the run id, the
``scrubbed`` / ``contains_pii`` flags, the scrubber version and every member's name, size and
SHA-256: an importer that trusts this deployment's public key can rely on all of them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import swarm
from swarm.clock import Clock, SystemClock, utc_iso
from swarm.errors import ConfigError, NotFoundError, RefusedError
from swarm.model.archive import (
    MANIFEST_NAME,
    Member,
    RunManifest,
    check_run_id,
    classify,
    object_member,
    row_member,
    run_prefix,
)
from swarm.model.secrets import SecretScanner, redact_shapes, secret_kinds, secret_path_reason
from swarm.platform.runrows import ARTEFACTS, PIPELINES, RUNS, RunReader
from swarm.scrub import VERSION as scrub_version
from swarm.scrub import Scrubber
from swarm.sources.objects import Bucket
from swarm.sources.postgres.conn import redact

from .tario import CHUNK, ArchiveWriter
from .trust import SIGNATURE_NAME, ExportSigningKey

SCRUB_VERSION = f"{scrub_version} (swarm {swarm.__version__})"
JSON_IN_MEMORY = 64 << 20  # a JSON document up to this size is scrubbed whole; larger ones line by line
_TEXT_BLOCK = 1 << 20
# Columns that are identifiers, enums or times: never scrubbed (they carry no PII, and
# changing them would break references).
_STRUCTURAL = {"id", "run_id", "pipeline_id", "seq", "ts", "type", "status", "decision", "artefact_prefix",
               "enabled", "version", "rollout_percent", "name", "key", "size", "sha256"}


@dataclass
class ExportResult:
    run_id: str
    pipeline_id: str
    output: str
    bytes: int
    sha256: str
    schema_version: int
    scrubbed: bool
    contains_pii: bool
    rows: dict[str, int]
    objects: int
    object_bytes: int
    left_out: list[str] = field(default_factory=list)
    included_unscrubbed: list[str] = field(default_factory=list)
    kept_models: list[str] = field(default_factory=list)
    scrub_report: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    signer: str = ""  # fingerprint of the key that signed the archive
    # left out or redacted because they hold a secret (the module docstring); never a value
    secrets_left_out: list[dict[str, str]] = field(default_factory=list)
    secrets_redacted: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._buf:
            nxt = next(self._it, None)
            if nxt is None:
                return 0
            self._buf = nxt
        k = min(len(b), len(self._buf))
        b[:k] = self._buf[:k]
        self._buf = self._buf[k:]
        return k


class _HashingFile:
    """A staging file that hashes what is written."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f: IO[bytes] = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        self._h = hashlib.sha256()
        self.size = 0
        self.secrets = SecretScanner()  # the secret shapes in what is staged

    def write(self, data: bytes) -> None:
        self._h.update(data)
        self.size += len(data)
        self.secrets.feed(data)
        self._f.write(data)

    def close(self) -> str:
        self._f.close()
        return self._h.hexdigest()


class _TextSink(io.RawIOBase):
    """Text written through a TextIOWrapper, bytes into a _HashingFile."""

    def __init__(self, target: _HashingFile) -> None:
        self._t = target

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._t.write(bytes(b))
        return len(b)


def list_latest(bucket: Bucket, prefix: str) -> Iterator[tuple[str, int]]:
    """(key, size) of every live object under ``prefix`` (versioned or not)."""
    kw: dict[str, Any] = {"Bucket": bucket.name, "Prefix": prefix, "MaxKeys": 1000}
    while True:
        resp = bucket.call(f"list {prefix}", bucket.client.list_objects_v2, **kw)
        for item in resp.get("Contents", []):
            yield str(item["Key"]), int(item.get("Size") or 0)
        if not resp.get("IsTruncated") or not resp.get("NextContinuationToken"):
            return
        kw["ContinuationToken"] = resp["NextContinuationToken"]


def _redact_value(v: Any, kinds: list[str]) -> Any:
    """``v`` with every secret shape in its strings (keys too) replaced; the kinds replaced are added to ``kinds``."""
    if isinstance(v, str):
        out, found = redact_shapes(v)
        kinds.extend(k for k in found if k not in kinds)
        return out
    if isinstance(v, dict):
        return {_redact_value(k, kinds): _redact_value(x, kinds) for k, x in v.items()}
    if isinstance(v, list):
        return [_redact_value(x, kinds) for x in v]
    return v


def _row_line(table: str, row: dict[str, Any], redacted: dict[str, dict[str, Any]]) -> bytes:
    """One row as a JSON line, with secret shapes redacted (counted in ``redacted[table]``);
    RefusedError when a shape is still there (it spans the JSON structure)."""
    line = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()
    if not secret_kinds(line):
        return line + b"\n"
    kinds: list[str] = []
    line = json.dumps(_redact_value(row, kinds), ensure_ascii=False, separators=(",", ":")).encode()
    left = secret_kinds(line)
    if left:
        raise RefusedError(f"a row of {table} holds a secret ({', '.join(left)}) that cannot be redacted in place; "
                           "nothing was exported",
                           hint="Remove the secret from that row at its source (and rotate it), then export again.",
                           details={"table": table, "kinds": left})
    entry = redacted.setdefault(table, {"member": row_member(table), "rows": 0, "kinds": []})
    entry["rows"] += 1
    entry["kinds"].extend(k for k in kinds if k not in entry["kinds"])
    return line + b"\n"


def _scrub_row(s: Scrubber, table: str, row: dict[str, Any], ref_col: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for col, v in row.items():
        if col in _STRUCTURAL or col == ref_col or col.endswith("_at") or not isinstance(v, str | dict | list):
            out[col] = v
        else:
            out[col] = s.scrub_value(v, f"rows/{table}.{col}:$")
    return out


def _scrub_object(s: Scrubber, chunks: Iterable[bytes], fmt: str, size: int, sink: _HashingFile, base: str) -> None:
    text_in = io.TextIOWrapper(io.BufferedReader(_ChunkReader(chunks), CHUNK), encoding="utf-8",
                               errors="surrogateescape", newline="")
    text_out = io.TextIOWrapper(io.BufferedWriter(_TextSink(sink), CHUNK), encoding="utf-8",
                                errors="surrogateescape", newline="")
    if fmt == "json" and size <= JSON_IN_MEMORY:
        text_out.write(s.scrub_json(text_in.read(), base))
    elif fmt == "jsonl":  # batches of whole lines: lines without a candidate are copied through unparsed
        while batch := text_in.readlines(_TEXT_BLOCK):
            text_out.write(s.scrub_lines(batch, base))
    else:  # text, or a JSON document too big to hold: line blocks (detection never crosses a line)
        block: list[str] = []
        n = 0
        for line in text_in:
            block.append(line)
            n += len(line)
            if n >= _TEXT_BLOCK:
                text_out.write(s.scrub_text("".join(block), base))
                block, n = [], 0
        if block:
            text_out.write(s.scrub_text("".join(block), base))
    text_out.flush()


def _artefact_member(stage: Path, source_rows: list[dict[str, Any]], members: list[Member], prefix: str,
                     left_out: list[str], redacted: dict[str, dict[str, Any]]) -> Member:
    """The ``run_artefacts`` rows member, describing the objects this archive carries: a row
    whose object was scrubbed gets the scrubbed bytes' size and SHA-256, a row whose object was
    left out is left out too; the other rows travel as they are (so an unscrubbed export is
    faithful, also where the source's rows and objects disagree)."""
    carried = {m.key: m for m in members if m.kind == "object"}
    dropped = set(left_out)
    name = row_member(ARTEFACTS)
    sink = _HashingFile(stage / name)
    n = 0
    for raw in source_rows:
        row = dict(raw)
        rel = str(row.get("key") or "")[len(prefix):] if str(row.get("key") or "").startswith(prefix) else None
        if rel is not None and rel in dropped:
            continue
        obj = carried.get(rel) if rel is not None else None
        if obj is not None and obj.treatment == "scrubbed":
            row["size"], row["sha256"] = obj.size, obj.sha256
        sink.write(_row_line(ARTEFACTS, row, redacted))
        n += 1
    return Member(name, sink.size, sink.close(), "rows", rows=n)


def export_run(db_url: str, bucket: Bucket, run_id: str, output: Path, *, scrub: bool,
               signing_key: ExportSigningKey, include_unscrubbed: bool = False, force: bool = False,
               key: bytes | None = None, clock: Clock | None = None) -> ExportResult:
    """Export one run, signed with ``signing_key`` (``trust.load_signing_key(SWARM_HOME)``);
    see the module docstring for the steps and crash behaviour."""
    check_run_id(run_id)
    clock = clock or SystemClock()
    output = output.expanduser().absolute()
    if output.exists() and not force:
        raise RefusedError(f"{output} already exists", hint="Choose another --output, or pass --force to replace it.")
    if not output.parent.is_dir():
        raise ConfigError(f"directory {output.parent} does not exist", hint="Create it, or choose another --output.")
    if include_unscrubbed and not scrub:
        include_unscrubbed = False  # without --scrub everything is included as it is
    scrubber = Scrubber(key or secrets.token_bytes(32)) if scrub else None
    members: list[Member] = []
    rows: dict[str, int] = {}
    left_out: list[str] = []
    unscrubbed: list[str] = []
    kept: list[str] = []
    secret_left_out: list[dict[str, str]] = []
    redacted: dict[str, dict[str, Any]] = {}
    object_bytes = 0
    prefix = run_prefix(run_id)
    with tempfile.TemporaryDirectory(prefix=".swarm-export-", dir=output.parent) as tmp:
        stage = Path(tmp)
        with RunReader(db_url) as reader:
            schema_version = reader.schema_version()
            if schema_version is None:
                raise RefusedError(f"{redact(db_url)} has no swarm schema", hint="Is this a swarm database?")
            run = reader.run(run_id)
            if run is None:
                raise NotFoundError(f"run {run_id} does not exist in {redact(db_url)}",
                                    hint="Check the id (GET /api/v1/runs/{id}, or the runs table).")
            pipeline_id = str(run["pipeline_id"])
            tables: dict[str, str] = {PIPELINES: "id", RUNS: "id"}
            tables.update(sorted(reader.referencing_tables().items()))
            artefact_rows: list[dict[str, Any]] = []
            artefacts_at = -1
            for table, col in tables.items():
                value = pipeline_id if table == PIPELINES else run_id
                if table == ARTEFACTS:  # written once the objects are known (below)
                    artefact_rows = list(reader.rows(table, col, value))
                    artefacts_at = len(members)
                    continue
                name = row_member(table)
                sink = _HashingFile(stage / name)
                n = 0
                for raw in reader.rows(table, col, value):
                    row = _scrub_row(scrubber, table, raw, col) if scrubber is not None else raw
                    sink.write(_row_line(table, row, redacted))
                    n += 1
                members.append(Member(name, sink.size, sink.close(), "rows", rows=n))
                rows[table] = n
        for key_, size in list_latest(bucket, prefix):
            rel = key_[len(prefix):]
            by_name = secret_path_reason(rel)
            if by_name:
                secret_left_out.append({"path": rel, "reason": by_name})
                continue
            head = bucket.head(key_)
            ctype = str(head.get("ContentType") or "")
            tags = bucket.tags(key_)
            treatment, fmt = classify(rel, tags, ctype) if scrubber is not None else ("raw", "")
            if treatment == "binary":
                if not include_unscrubbed:
                    left_out.append(rel)
                    continue
                treatment = "unscrubbed"
                unscrubbed.append(rel)
            elif treatment == "model":
                treatment = "kept"
                kept.append(rel)
            name = object_member(rel)
            sink = _HashingFile(stage / name)
            chunks = bucket.iter_get(key_)
            if treatment == "text":
                assert scrubber is not None
                _scrub_object(scrubber, chunks, fmt, size, sink, f"objects/{rel}:$")
                treatment = "scrubbed"
            else:
                for chunk in chunks:
                    sink.write(chunk)
            sha = sink.close()
            found = sink.secrets.reason()
            if found:  # what the archive would carry holds a secret: left out, as a state snapshot leaves it
                (stage / name).unlink()
                secret_left_out.append({"path": rel, "reason": found})
                for lst in (unscrubbed, kept):
                    if rel in lst:
                        lst.remove(rel)
                continue
            members.append(Member(name, sink.size, sha, "object", key=rel, content_type=ctype, tags=tags,
                                  treatment=treatment))
            object_bytes += sink.size
        if artefacts_at >= 0:
            members.insert(artefacts_at, _artefact_member(stage, artefact_rows, members, prefix,
                                                          left_out + [d["path"] for d in secret_left_out], redacted))
            rows[ARTEFACTS] = members[artefacts_at].rows
        secrets_info = {"scanner": "swarm.model.secrets", "left_out": secret_left_out,
                        "redacted": list(redacted.values())}
        scrub_info: dict[str, Any] = {"scrubbed": scrubber is not None, "secrets": secrets_info}
        if scrubber is not None:
            scrub_info.update(scrubber_version=SCRUB_VERSION, key="random per export, not stored",
                              report=scrubber.report.to_dict(), fields="jsonb columns field by field, text columns "
                              "as text; identifiers, enums and times are not scrubbed",
                              objects={"scrubbed": sum(1 for m in members if m.treatment == "scrubbed"),
                                       "kept_models": kept, "left_out_unscrubbable": left_out,
                                       "included_unscrubbed": unscrubbed})
        contains_pii = scrubber is None or bool(unscrubbed)
        manifest = RunManifest(
            run_id=run_id, pipeline_id=pipeline_id, schema_version=schema_version, created_at=utc_iso(clock.now()),
            source={"database": redact(db_url), "bucket": bucket.name, "endpoint": bucket.cfg.endpoint or "AWS S3",
                    "prefix": prefix},
            scrubbed=scrubber is not None, contains_pii=contains_pii, scrub=scrub_info, tables=tables,
            members=members, counts={**{f"rows.{t}": n for t, n in rows.items()},
                                     "objects": sum(1 for m in members if m.kind == "object"),
                                     "objects_left_out": len(left_out) + len(secret_left_out)},
            tool=f"swarm {swarm.__version__}")
        manifest_bytes = manifest.to_bytes()
        with ArchiveWriter(output) as w:
            w.add_bytes(SIGNATURE_NAME, signing_key.sign_manifest(manifest_bytes))
            w.add_bytes(MANIFEST_NAME, manifest_bytes)
            for m in members:
                w.add_file(m.name, stage / m.name)
    digest = hashlib.sha256()
    with open(output, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    warnings = []
    if secret_left_out or redacted:
        warnings.append("secrets kept out of the archive: "
                        + "; ".join([f"{d['path']} left out ({d['reason']})" for d in secret_left_out[:5]]
                                    + [f"{r['rows']} row(s) of {t} redacted ({', '.join(r['kinds'])})"
                                       for t, r in redacted.items()]))
    if scrubber is None:
        warnings.append("this export is NOT scrubbed: it contains PII (emails, phone numbers, card numbers, ids) "
                        "from production; handle it as production data, or export again with --scrub")
    elif unscrubbed:
        warnings.append(f"{len(unscrubbed)} binary artefact(s) were included unscrubbed (--include-unscrubbed) and "
                        "may contain PII: " + ", ".join(unscrubbed[:5]))
    return ExportResult(run_id=run_id, pipeline_id=pipeline_id, output=str(output), bytes=output.stat().st_size,
                        sha256=digest.hexdigest(), schema_version=schema_version, scrubbed=scrubber is not None,
                        contains_pii=contains_pii, rows=rows, objects=sum(1 for m in members if m.kind == "object"),
                        object_bytes=object_bytes, left_out=left_out, included_unscrubbed=unscrubbed,
                        kept_models=kept, scrub_report=scrubber.report.to_dict() if scrubber else {},
                        warnings=warnings, signer=signing_key.fingerprint, secrets_left_out=secret_left_out,
                        secrets_redacted=list(redacted.values()))
