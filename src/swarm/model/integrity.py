"""Do the three stores of a deployment agree? The pure half of ``swarm admin check stack``.

Given the facts gathered from a deployment (:class:`StackFacts`: the ids of its runs and
pipelines and its ``run_artefacts`` rows from PostgreSQL; the live objects under
``pipeline_runs/`` in the bucket, with their SHA-256 where it is known; the batch run
directories and cron jobs of the state directory), :func:`check` says where they disagree,
and by how much:

========================  =====================================================  ========
category                  what                                                   fails
========================  =====================================================  ========
``missing_object``        a ``run_artefacts`` row whose object is not there      yes
``size_mismatch``         the object is there at another size than recorded      yes
``checksum_mismatch``     same size, another SHA-256 than recorded               yes
``unverified``            same size, SHA-256 not known (sizes-only check)        no
``orphan_object``         an object under ``pipeline_runs/`` with no run          yes
``unrecorded_object``     an object of an existing run that no row records       no
``orphan_batch_dir``      ``batch/<name>/`` naming no run                        yes
``orphan_cron_job``       a cron job naming no pipeline (by name or id)          yes
``state_unreadable``      ``cron/jobs.json`` that cannot be read as jobs         yes
========================  =====================================================  ========

Unrecorded objects do not fail the check: the platform writes an object before the row
that records it, so a run still writing shows them, as do runs from before schema version 2
(which recorded nothing). They are listed and counted all the same.

An object belongs to the run its key names (``pipeline_runs/<run_id>/<rest>``, ``rest``
not empty); a key under ``pipeline_runs/`` of any other shape belongs to no run.

Nothing here does I/O; the gathering is ``swarm.services.check.stack``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

RUN_PREFIX = "pipeline_runs/"

MISSING_OBJECT = "missing_object"
SIZE_MISMATCH = "size_mismatch"
CHECKSUM_MISMATCH = "checksum_mismatch"
UNVERIFIED = "unverified"
ORPHAN_OBJECT = "orphan_object"
UNRECORDED_OBJECT = "unrecorded_object"
ORPHAN_BATCH_DIR = "orphan_batch_dir"
ORPHAN_CRON_JOB = "orphan_cron_job"
STATE_UNREADABLE = "state_unreadable"

#: Every category, in report order.
CATEGORIES = (MISSING_OBJECT, SIZE_MISMATCH, CHECKSUM_MISMATCH, UNVERIFIED, ORPHAN_OBJECT, UNRECORDED_OBJECT,
              ORPHAN_BATCH_DIR, ORPHAN_CRON_JOB, STATE_UNREADABLE)
#: The categories that mean the stores disagree (exit 1).
FAILING = frozenset({MISSING_OBJECT, SIZE_MISMATCH, CHECKSUM_MISMATCH, ORPHAN_OBJECT, ORPHAN_BATCH_DIR,
                     ORPHAN_CRON_JOB, STATE_UNREADABLE})
#: The categories that are about bytes in the bucket (their summary carries ``bytes``).
OBJECT_CATEGORIES = frozenset({MISSING_OBJECT, SIZE_MISMATCH, CHECKSUM_MISMATCH, UNVERIFIED, ORPHAN_OBJECT,
                               UNRECORDED_OBJECT})


@dataclass(frozen=True)
class Artefact:
    """A ``run_artefacts`` row: run ``run_id`` wrote ``key``, ``size`` bytes with SHA-256 ``sha256``."""

    run_id: str
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class StoredObject:
    """A live object in the bucket; ``sha256`` is None when it was not read (or cannot be known)."""

    key: str
    size: int
    sha256: str | None = None


@dataclass(frozen=True)
class CronJob:
    """An entry of ``cron/jobs.json``: its id and the pipeline it names (a name or an id)."""

    id: str
    pipeline: str


@dataclass(frozen=True)
class StackFacts:
    """What was read from the three stores. ``pipelines`` maps pipeline id to name."""

    runs: frozenset[str]
    pipelines: Mapping[str, str]
    artefacts: tuple[Artefact, ...]
    objects: tuple[StoredObject, ...]
    batch_dirs: tuple[str, ...] = ()
    cron_jobs: tuple[CronJob, ...] = ()
    # (path relative to the state directory, what is wrong): ("cron/jobs.json", "not valid JSON: ...")
    state_problems: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Finding:
    """One place where the stores disagree (or one fact worth listing: see the module table).

    ``subject`` is the object key (object categories), the batch directory name, the cron
    job id, or the unreadable file. ``bytes`` is what the summary counts for it: the recorded
    size of an artefact, the size of an orphan or unrecorded object, 0 otherwise."""

    category: str
    subject: str
    run_id: str | None = None
    pipeline: str | None = None
    expected_size: int | None = None
    actual_size: int | None = None
    expected_sha256: str | None = None
    actual_sha256: str | None = None
    detail: str = ""
    bytes: int = 0

    @property
    def failing(self) -> bool:
        return self.category in FAILING

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"category": self.category, "subject": self.subject}
        d.update({k: v for k, v in (("run_id", self.run_id), ("pipeline", self.pipeline),
                                     ("expected_size", self.expected_size), ("actual_size", self.actual_size),
                                     ("expected_sha256", self.expected_sha256),
                                     ("actual_sha256", self.actual_sha256)) if v is not None})
        if self.detail:
            d["detail"] = self.detail
        return d


@dataclass(frozen=True)
class IntegrityReport:
    """The verdict. ``checked`` counts what each store held; ``findings`` are sorted by
    category (in :data:`CATEGORIES` order), then subject."""

    findings: tuple[Finding, ...]
    checked: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True only when the three stores agree (no finding of a :data:`FAILING` category)."""
        return not any(f.failing for f in self.findings)

    @property
    def checksums_verified(self) -> bool:
        """False if some artefact's checksum could not be compared (``unverified``)."""
        return not any(f.category == UNVERIFIED for f in self.findings)

    def of(self, category: str) -> list[Finding]:
        return [f for f in self.findings if f.category == category]

    def subjects(self, category: str) -> list[str]:
        return [f.subject for f in self.findings if f.category == category]

    def summary(self) -> dict[str, dict[str, int]]:
        """By how much the stores disagree: ``{category: {"count": n[, "bytes": b]}}`` for every
        category (zeros included, so the shape never changes); object categories carry bytes."""
        out: dict[str, dict[str, int]] = {}
        for c in CATEGORIES:
            fs = self.of(c)
            out[c] = {"count": len(fs), "bytes": sum(f.bytes for f in fs)} if c in OBJECT_CATEGORIES else \
                {"count": len(fs)}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checksums_verified": self.checksums_verified, "checked": dict(self.checked),
                "summary": self.summary(), "findings": [f.to_dict() for f in self.findings]}


def run_of_key(key: str) -> str | None:
    """The run an object key belongs to (``pipeline_runs/<run_id>/<rest>``, rest not empty), or None."""
    if not key.startswith(RUN_PREFIX):
        return None
    run, sep, rest = key[len(RUN_PREFIX):].partition("/")
    return run if run and sep and rest else None


def _artefact_findings(artefacts: Iterable[Artefact], objects: Mapping[str, StoredObject]) -> Iterable[Finding]:
    for a in artefacts:
        o = objects.get(a.key)
        if o is None:
            yield Finding(MISSING_OBJECT, a.key, run_id=a.run_id, expected_size=a.size, expected_sha256=a.sha256,
                          detail=f"run {a.run_id} recorded {a.size} bytes; the bucket has no such object",
                          bytes=a.size)
        elif o.size != a.size:
            yield Finding(SIZE_MISMATCH, a.key, run_id=a.run_id, expected_size=a.size, actual_size=o.size,
                          expected_sha256=a.sha256,
                          detail=f"recorded {a.size} bytes, the object has {o.size}", bytes=a.size)
        elif o.sha256 is None:
            yield Finding(UNVERIFIED, a.key, run_id=a.run_id, expected_size=a.size, actual_size=o.size,
                          expected_sha256=a.sha256, detail="size matches; checksum not read", bytes=a.size)
        elif o.sha256.lower() != a.sha256.lower():
            yield Finding(CHECKSUM_MISMATCH, a.key, run_id=a.run_id, expected_size=a.size, actual_size=o.size,
                          expected_sha256=a.sha256, actual_sha256=o.sha256,
                          detail="same size, different content (SHA-256 differs)", bytes=a.size)


def _object_findings(objects: Iterable[StoredObject], runs: frozenset[str], recorded: set[str]) -> Iterable[Finding]:
    for o in objects:
        if o.key in recorded or not o.key.startswith(RUN_PREFIX):
            continue
        run = run_of_key(o.key)
        if run is None or run not in runs:
            why = f"run {run} does not exist" if run else "the key names no run (pipeline_runs/<run_id>/...)"
            yield Finding(ORPHAN_OBJECT, o.key, run_id=run, actual_size=o.size, detail=why, bytes=o.size)
        else:
            yield Finding(UNRECORDED_OBJECT, o.key, run_id=run, actual_size=o.size,
                          detail=f"run {run} exists but no run_artefacts row records this object", bytes=o.size)


def check(facts: StackFacts) -> IntegrityReport:
    """Compare the three stores (see the module docstring for the categories)."""
    objects = {o.key: o for o in facts.objects}
    recorded = {a.key for a in facts.artefacts}
    findings: list[Finding] = []
    findings += _artefact_findings(facts.artefacts, objects)
    findings += _object_findings(objects.values(), facts.runs, recorded)
    for name in facts.batch_dirs:
        if name not in facts.runs:
            findings.append(Finding(ORPHAN_BATCH_DIR, name, run_id=name,
                                    detail=f"batch/{name}/ names run {name}, which does not exist"))
    names = set(facts.pipelines.values())
    for job in facts.cron_jobs:
        if job.pipeline not in names and job.pipeline not in facts.pipelines:
            findings.append(Finding(ORPHAN_CRON_JOB, job.id, pipeline=job.pipeline,
                                    detail=f"cron job {job.id} names pipeline {job.pipeline!r}, which does not "
                                           "exist"))
    for path, problem in facts.state_problems:
        findings.append(Finding(STATE_UNREADABLE, path, detail=problem))
    order = {c: i for i, c in enumerate(CATEGORIES)}
    findings.sort(key=lambda f: (order[f.category], f.subject))
    checked = {"runs": len(facts.runs), "pipelines": len(facts.pipelines), "artefacts": len(facts.artefacts),
               "artefact_bytes": sum(a.size for a in facts.artefacts),
               "objects": sum(1 for o in objects.values() if o.key.startswith(RUN_PREFIX)),
               "object_bytes": sum(o.size for o in objects.values() if o.key.startswith(RUN_PREFIX)),
               "batch_dirs": len(facts.batch_dirs), "cron_jobs": len(facts.cron_jobs)}
    checked["artefacts_agreeing"] = checked["artefacts"] - sum(
        1 for f in findings if f.category in (MISSING_OBJECT, SIZE_MISMATCH, CHECKSUM_MISMATCH, UNVERIFIED))
    return IntegrityReport(tuple(findings), checked)
