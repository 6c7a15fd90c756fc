"""``swarm admin import``: one exported run into a (dev) deployment.

Plan (:func:`plan_import`, no side effects):

1. the archive is read once, streamed: first its signature (``signature.json``, see
   :mod:`.trust`) is checked against the exact bytes of ``manifest.json`` before anything
   else is trusted: a broken signature is refused (``signature-invalid``, always); an
   unsigned archive or one signed by a key not trusted here is refused
   (``unsigned-archive`` / ``untrusted-signer``) unless ``allow_unsigned``, which records a
   loud warning of what nothing vouches for. Then every header is checked (names, types,
   sizes, member count), the gzip stream is watched for bombs (total and ratio), every
   member is hashed and compared with the manifest, the manifest's own checksum is checked,
   and every row is checked to belong to the run (:class:`RowRules`: exactly one ``runs``
   row, with the declared id; exactly one ``pipelines`` row, the run's; every child row
   references that run and no other);
2. the target database must have the same schema version as the export, and every table
   the export carries must reference ``runs(id)`` there too, through exactly one column;
3. the run id must not exist in the target unless ``--replace`` (delete it and import
   again) or ``--new-id`` (import under a fresh id, rewriting ``run_id`` references,
   ``artefact_prefix``, object keys and the keys of ``run_artefacts`` rows);
4. the bucket must be reachable.

Execute (:func:`import_run`):

1. one transaction on the target: take an advisory lock on the run id, delete the old run
   (``--replace``), insert the pipeline if the target lacks it, the run, and every child
   row (sequence / identity columns are left to the target's sequences); every row is
   checked against :class:`RowRules` again as it streams (a failure rolls back);
2. with that transaction still open, upload every object (each checked against its
   checksum while it streams); on any failure, delete the versions this import wrote and
   roll the transaction back, so the database is unchanged and the bucket is as before
   (except on an unversioned bucket with ``--replace``, where an overwritten object's
   old content is gone);
3. commit; then, with ``--replace``, delete the objects under the run's prefix that the
   archive does not have.

A crash (kill -9) in step 2 leaves no rows (the server rolls the transaction back) and the
objects uploaded so far under ``pipeline_runs/<run_id>/``; running the same import again
overwrites them and converges. With ``--new-id`` the crashed import's prefix is a fresh id
nothing references; the result lists ``objects_written`` to clean up if needed.
A crash in step 3 leaves stale objects that a re-run with ``--replace`` deletes.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import HostileArchive, IntegrityError, RefusedError, SwarmError
from swarm.model.archive import ROWS_DIR, Limits, Member, RunManifest, new_run_id, rekey, run_prefix
from swarm.platform.runrows import ARTEFACTS, PIPELINES, RUNS, RunWriter
from swarm.sources.objects import Bucket
from swarm.sources.postgres.conn import redact

from .export import list_latest
from .tario import ScanResult, members, scan
from .trust import Provenance, Trust, check_signature, refuse_unvouched, warn_unvouched


@dataclass
class ImportPlan:
    archive: str
    source_run_id: str
    run_id: str  # the id the run gets in the target
    mode: str  # "new" | "replace" | "new-id"
    exists: bool
    schema_version: int
    pipeline_id: str
    pipeline_exists: bool
    rows: dict[str, int]
    objects: int
    object_bytes: int
    scrubbed: bool
    contains_pii: bool
    target: dict[str, str]
    stale_objects: list[str] = field(default_factory=list)  # --replace: under the prefix, not in the archive
    archive_bytes: int = 0
    members: int = 0
    signature: dict[str, Any] = field(default_factory=dict)  # Provenance.to_dict()
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ImportResult:
    plan: ImportPlan
    dry_run: bool
    rows_written: dict[str, int] = field(default_factory=dict)
    rows_deleted: dict[str, int] = field(default_factory=dict)
    objects_written: int = 0
    stale_deleted: int = 0
    pipeline: str = ""  # "inserted" | "existing" | "renamed:<name>"

    def to_dict(self) -> dict[str, Any]:
        d = self.plan.to_dict()
        d.update(dry_run=self.dry_run, rows_written=self.rows_written, rows_deleted=self.rows_deleted,
                 objects_written=self.objects_written, stale_deleted=self.stale_deleted, pipeline=self.pipeline,
                 api_path=f"/api/v1/runs/{self.plan.run_id}")
        return d


def _foreign(message: str, **details: object) -> HostileArchive:
    return HostileArchive(message, hint="The archive carries rows that do not belong to the run it declares (a "
                                        "forged or broken export); nothing was written.", details=dict(details))


class RowRules:
    """Which rows an archive of run ``m.run_id`` may carry, and nothing else.

    ``runs``: exactly one row, whose ``id`` is the declared run id, whose ``pipeline_id`` is
    the declared pipeline and whose ``artefact_prefix`` names the run's own prefix;
    ``pipelines``: exactly one row, the declared pipeline; every other table: each row's
    column referencing ``runs(id)`` (``m.tables``) holds the declared run id; ``run_artefacts``
    rows also name a key strictly under the run's own prefix (``pipeline_runs/<run_id>/``).
    Refusals are ``HostileArchive`` (exit 8).
    """

    def __init__(self, m: RunManifest) -> None:
        self.m = m
        for table in (RUNS, PIPELINES):
            if m.tables.get(table) != "id":
                raise _foreign(f"the manifest says {table} rows are keyed by {m.tables.get(table)!r}, not 'id'",
                               table=table)

    def row(self, table: str, row: dict[str, Any], n: int) -> None:
        """Check the ``n``-th (from 0) row of ``table``."""
        m = self.m
        if table == RUNS:
            if n > 0:
                raise _foreign(f"the archive has more than one runs row (run {m.run_id} declared)", table=table)
            if row.get("id") != m.run_id:
                raise _foreign(f"the archive's runs row is run {str(row.get('id'))[:80]!r}, not the declared run "
                               f"{m.run_id}", table=table)
            if row.get("pipeline_id") != m.pipeline_id:
                raise _foreign(f"run {m.run_id} belongs to pipeline {str(row.get('pipeline_id'))[:80]!r} in its "
                               f"row, to {m.pipeline_id} in the manifest", table=table)
            prefix, ap = run_prefix(m.run_id), row.get("artefact_prefix")
            if ap is not None and not (isinstance(ap, str) and (ap == prefix or ap.endswith("/" + prefix))):
                raise _foreign(f"run {m.run_id}'s artefact_prefix {str(ap)[:120]!r} is not its own ({prefix})",
                               table=table)
        elif table == PIPELINES:
            if n > 0 or row.get("id") != m.pipeline_id:
                raise _foreign(f"the archive carries pipeline {str(row.get('id'))[:80]!r}; only the run's pipeline "
                               f"{m.pipeline_id} may travel with it", table=table)
        else:
            col = m.tables[table]
            if row.get(col) != m.run_id:
                raise _foreign(f"a {table} row references run {str(row.get(col))[:80]!r} through {col}; every row "
                               f"must belong to the declared run {m.run_id}", table=table, column=col)
            if table == ARTEFACTS:
                prefix, key = run_prefix(m.run_id), row.get("key")
                if not (isinstance(key, str) and key.startswith(prefix) and len(key) > len(prefix)):
                    raise _foreign(f"a {table} row names object {str(key)[:120]!r}, which is not under run "
                                   f"{m.run_id}'s own prefix {prefix}", table=table)

    def count(self, table: str, n: int) -> None:
        """After the last row of ``table``: the run and its pipeline are there exactly once."""
        if table in (RUNS, PIPELINES) and n != 1:
            raise _foreign(f"the archive has {n} {table} rows; exactly one is required", table=table, rows=n)

    def checked(self, table: str, rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        n = 0
        for row in rows:
            self.row(table, row, n)
            n += 1
            yield row
        self.count(table, n)

    def inspect(self, member: Member, stream: Any) -> SwarmError | None:
        """``tario.scan``'s hook: read a rows member through the rules; the first violation is
        returned (raised by scan once the member's checksum is found good)."""
        if member.kind != "rows":
            return None
        table = member.name[len(ROWS_DIR):-len(".jsonl")]
        n = 0
        try:
            for _ in self.checked(table, _lines(stream)):
                n += 1
        except (RefusedError, ValueError) as exc:
            return exc if isinstance(exc, SwarmError) else IntegrityError(
                f"archive member {member.name} holds a line that is not JSON: {exc}")
        if n != member.rows:
            return IntegrityError(f"archive member {member.name} holds {n} rows, the manifest says {member.rows}")
        return None


def plan_import(archive: Path, db_url: str, bucket: Bucket, *, trust: Trust, allow_unsigned: bool = False,
                replace: bool = False, new_id: bool = False, limits: Limits | None = None,
                fresh_id: str | None = None) -> tuple[ImportPlan, RunManifest]:
    """Check everything an import needs; write nothing. See the module docstring.

    ``trust``: the exporters whose signatures are accepted (``trust.load_trust(SWARM_HOME)``);
    ``allow_unsigned``: import an unsigned archive or an untrusted signer's anyway (the plan
    then carries the warning); a broken signature is refused regardless.
    """
    if replace and new_id:
        raise RefusedError("--replace and --new-id cannot be used together",
                           hint="--replace overwrites the existing run; --new-id imports beside it.")
    limits = limits or Limits()
    rules: dict[int, RowRules] = {}

    def signature(envelope: bytes | None, manifest: bytes) -> Provenance:
        return refuse_unvouched(check_signature(envelope, manifest, trust), allow_unsigned=allow_unsigned)

    def inspect(manifest: RunManifest, member: Member, stream: Any) -> SwarmError | None:
        if id(manifest) not in rules:
            rules[id(manifest)] = RowRules(manifest)
        return rules[id(manifest)].inspect(member, stream)

    scanned: ScanResult = scan(archive, limits, check_signature=signature, inspect=inspect)
    m = scanned.manifest
    assert scanned.provenance is not None
    provenance = warn_unvouched(scanned.provenance, run_id=m.run_id, scrubbed=m.scrubbed,
                                contains_pii=m.contains_pii)
    with RunWriter(db_url) as w:
        version = w.schema_version()
        if version is None:
            raise RefusedError(f"{redact(db_url)} has no swarm schema",
                               hint="Create it first (`swarm dev up` applies the migrations).")
        if version != m.schema_version:
            newer = "newer" if m.schema_version > version else "older"
            raise RefusedError(
                f"the archive has schema version {m.schema_version}, this database has schema version {version}",
                hint=(f"The export comes from a {newer} swarm schema. Import it into a database at version "
                      f"{m.schema_version}" + (" (upgrade this one first)." if newer == "newer" else
                                               ", or export it again from an upgraded source.")),
                details={"archive_schema_version": m.schema_version, "database_schema_version": version})
        referencing = w.referencing_tables()
        ref_columns = w.run_reference_columns()
        for table, col in m.tables.items():
            if table in (PIPELINES, RUNS):
                continue
            if referencing.get(table) != col:
                raise RefusedError(f"table {table}.{col} in the archive does not reference runs(id) in "
                                   f"{redact(db_url)}", hint="The schemas differ; nothing was written.")
            if len(ref_columns.get(table, [])) > 1:
                raise RefusedError(f"table {table} references runs(id) through several columns in "
                                   f"{redact(db_url)} ({', '.join(ref_columns[table])}); an import can tie only "
                                   "one of them to the run", hint="Such tables cannot travel with a run yet; "
                                                                  "nothing was written.")
        exists = w.run_exists(m.run_id)
        if exists and not (replace or new_id):
            raise RefusedError(f"run {m.run_id} already exists in {redact(db_url)}",
                               hint="Pass --replace to delete it and import again, or --new-id to import beside "
                                    "it under a fresh run id. Nothing was written.",
                               details={"run_id": m.run_id})
        target = m.run_id
        if new_id:
            target = fresh_id or new_run_id()
            while w.run_exists(target):
                target = new_run_id()
        pipeline_exists = w.pipeline(m.pipeline_id) is not None
    bucket.check_access()
    stale: list[str] = []
    if replace and exists:
        keep = {run_prefix(target) + x.key for x in m.members if x.kind == "object"}
        stale = [k for k, _ in list_latest(bucket, run_prefix(target)) if k not in keep]
    mode = "new-id" if new_id else ("replace" if replace and exists else "new")
    objs = [x for x in m.members if x.kind == "object"]
    plan = ImportPlan(archive=str(archive), source_run_id=m.run_id, run_id=target, mode=mode, exists=exists,
                      schema_version=m.schema_version, pipeline_id=m.pipeline_id, pipeline_exists=pipeline_exists,
                      rows={t: (x.rows if (x := m.member(f"{ROWS_DIR}{t}.jsonl")) else 0) for t in m.tables},
                      objects=len(objs), object_bytes=sum(x.size for x in objs), scrubbed=m.scrubbed,
                      contains_pii=m.contains_pii,
                      target={"database": redact(db_url), "bucket": bucket.name,
                              "endpoint": bucket.cfg.endpoint or "AWS S3"},
                      stale_objects=stale, archive_bytes=scanned.compressed_bytes,
                      members=scanned.members + 1 + int(scanned.signed), signature=provenance.to_dict(),
                      warnings=[provenance.warning] if provenance.warning else [])
    return plan, m


def _lines(stream: Any) -> Iterator[dict[str, Any]]:
    reader = io.BufferedReader(stream, 1 << 20)
    for line in reader:
        if line.strip():
            row = json.loads(line)
            if not isinstance(row, dict):
                raise HostileArchive("a row in the archive is not a JSON object")
            yield row
    reader.detach()  # the member stream stays open for tario's final drain and check


def import_run(archive: Path, db_url: str, bucket: Bucket, *, trust: Trust, allow_unsigned: bool = False,
               replace: bool = False, new_id: bool = False, dry_run: bool = False, limits: Limits | None = None,
               fresh_id: str | None = None) -> ImportResult:
    """Plan, then (unless ``dry_run``) execute; see the module docstring for the order of steps
    and :func:`plan_import` for ``trust`` and ``allow_unsigned``."""
    limits = limits or Limits()
    plan, m = plan_import(archive, db_url, bucket, trust=trust, allow_unsigned=allow_unsigned, replace=replace,
                          new_id=new_id, limits=limits, fresh_id=fresh_id)
    rules = RowRules(m)
    res = ImportResult(plan, dry_run)
    if dry_run:
        return res
    old, new = m.run_id, plan.run_id
    prefix = run_prefix(new)
    written: list[tuple[str, str | None]] = []
    with RunWriter(db_url) as w:
        try:
            w.lock_run(new)
            exists = w.run_exists(new)
            if exists and plan.mode != "replace":
                raise RefusedError(f"run {new} was created in {redact(db_url)} while this import was being "
                                   "checked", hint="Run the import again.")
            if exists:
                res.rows_deleted = w.delete_run(new, w.referencing_tables())
            for member, stream in members(archive, limits, m):
                if member.kind == "rows":
                    table = member.name[len(ROWS_DIR):-len(".jsonl")]
                    col = m.tables[table]
                    if table == PIPELINES:
                        res.pipeline = _pipeline(w, rules.checked(table, _lines(stream)))
                        continue
                    rows = rules.checked(table, _lines(stream))
                    if new != old:
                        rows = (_rewrite(r, table, col, old, new) for r in rows)
                    res.rows_written[table] = w.insert_rows(table, rows)
                    continue
                key = prefix + member.key
                bucket.put_stream(key, stream.chunks(), content_type=member.content_type or None,
                                  tags=member.tags or None, metadata={"swarm-imported-from": old})
                stream.check()
                vid = bucket.head(key).get("VersionId")
                written.append((key, str(vid) if vid and vid != "null" else None))
                res.objects_written += 1
            w.commit()
        except BaseException as exc:
            left = _undo_objects(bucket, written)
            if isinstance(exc, SwarmError):
                exc.details.setdefault("rolled_back", True)
                if left:
                    exc.details["objects_left"] = left
            raise
    for key in plan.stale_objects:
        bucket.add_delete_marker(key)
        res.stale_deleted += 1
    return res


def _rewrite(row: dict[str, Any], table: str, col: str, old: str, new: str) -> dict[str, Any]:
    row = dict(row)
    if table == RUNS:
        row["id"] = new
        if isinstance(row.get("artefact_prefix"), str):
            row["artefact_prefix"] = rekey(row["artefact_prefix"], old, new)
    elif row.get(col) == old:
        row[col] = new
    if table == ARTEFACTS and isinstance(row.get("key"), str):
        row["key"] = rekey(row["key"], old, new)
    return row


def _pipeline(w: RunWriter, rows: Iterator[dict[str, Any]]) -> str:
    """Insert the run's pipeline unless the target has that id; rename it if its name is taken."""
    outcome = "existing"
    for original in rows:
        row = dict(original)
        if w.pipeline(str(row["id"])) is not None:
            continue
        outcome = "inserted"
        if w.name_taken(str(row["name"])):
            row = {**row, "name": f"{row['name']}-imported-{row['id']}"}
            outcome = f"renamed:{row['name']}"
        w.insert_rows(PIPELINES, [row])
    return outcome


def _undo_objects(bucket: Bucket, written: list[tuple[str, str | None]]) -> list[str]:
    """Delete what this import uploaded; returns the keys that could not be deleted."""
    left = []
    for key, vid in reversed(written):
        try:
            if vid:
                bucket.delete_version(key, vid)
            else:
                bucket.add_delete_marker(key)
        except SwarmError:
            left.append(key)
    return left
