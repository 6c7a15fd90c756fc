"""The pure cross-store check (swarm.model.integrity): property tests over generated deployments.

A consistent deployment always agrees; one perturbation of one store is always found, named,
in its own category, and counted with its bytes; every row and every object lands in exactly
one place of the report."""
from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from swarm.model.integrity import (
    CATEGORIES,
    CHECKSUM_MISMATCH,
    FAILING,
    MISSING_OBJECT,
    ORPHAN_BATCH_DIR,
    ORPHAN_CRON_JOB,
    ORPHAN_OBJECT,
    SIZE_MISMATCH,
    STATE_UNREADABLE,
    UNRECORDED_OBJECT,
    UNVERIFIED,
    Artefact,
    CronJob,
    StackFacts,
    StoredObject,
    check,
    run_of_key,
)

ids = st.text("abcdef0123456789", min_size=4, max_size=10)
names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
rel = st.text("abcdefghij/._-", min_size=1, max_size=20).filter(lambda s: not s.startswith("/"))


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


@st.composite
def deployments(draw: st.DrawFn) -> StackFacts:
    """A deployment whose stores agree."""
    runs = draw(st.lists(ids.map(lambda s: "run_" + s), min_size=1, max_size=8, unique=True))
    pipes = draw(st.dictionaries(ids.map(lambda s: "pl_" + s), names, min_size=1, max_size=5))
    artefacts: list[Artefact] = []
    objects: list[StoredObject] = []
    for r in runs:
        for path, body in draw(st.dictionaries(rel, st.binary(max_size=40), max_size=4)).items():
            key = f"pipeline_runs/{r}/{path}"
            artefacts.append(Artefact(r, key, len(body), sha(body)))
            objects.append(StoredObject(key, len(body), sha(body)))
    batch = draw(st.lists(st.sampled_from(runs), unique=True))
    jobs = [CronJob(f"job-{i}", draw(st.sampled_from(sorted(pipes.values()) + sorted(pipes))))
            for i in range(draw(st.integers(0, 4)))]
    return StackFacts(frozenset(runs), pipes, tuple(artefacts), tuple(objects), tuple(batch), tuple(jobs))


def partition_holds(facts: StackFacts) -> None:
    """Every row is agreeing or in exactly one artefact category; every object under
    pipeline_runs/ is recorded or in exactly one object category; bytes add up."""
    rep = check(facts)
    by_cat = {c: rep.subjects(c) for c in CATEGORIES}
    row_cats = (MISSING_OBJECT, SIZE_MISMATCH, CHECKSUM_MISMATCH, UNVERIFIED)
    for a in facts.artefacts:
        assert sum(by_cat[c].count(a.key) for c in row_cats) <= 1
    bad_rows = sum(len(by_cat[c]) for c in row_cats)
    assert rep.checked["artefacts_agreeing"] == len(facts.artefacts) - bad_rows
    recorded = {a.key for a in facts.artefacts}
    for o in facts.objects:
        n = by_cat[ORPHAN_OBJECT].count(o.key) + by_cat[UNRECORDED_OBJECT].count(o.key)
        assert n == (0 if o.key in recorded else 1)
    summary = rep.summary()
    for c in CATEGORIES:
        assert summary[c]["count"] == len(by_cat[c])
    assert rep.ok == (not any(summary[c]["count"] for c in FAILING))
    assert list(rep.findings) == sorted(rep.findings, key=lambda f: (CATEGORIES.index(f.category), f.subject))


@given(deployments())
def test_agreeing_stores_pass(facts: StackFacts) -> None:
    rep = check(facts)
    assert rep.ok and rep.checksums_verified and rep.findings == ()
    assert all(v["count"] == 0 for v in rep.summary().values())
    assert rep.checked["artefacts_agreeing"] == len(facts.artefacts)
    assert rep.checked["artefact_bytes"] == sum(a.size for a in facts.artefacts)
    partition_holds(facts)


@given(deployments(), st.data())
def test_a_lost_object_is_named(facts: StackFacts, data: st.DataObject) -> None:
    if not facts.objects:
        return
    gone = data.draw(st.sampled_from(facts.objects))
    broken = StackFacts(facts.runs, facts.pipelines, facts.artefacts,
                        tuple(o for o in facts.objects if o.key != gone.key), facts.batch_dirs, facts.cron_jobs)
    rep = check(broken)
    assert not rep.ok
    assert rep.subjects(MISSING_OBJECT) == [gone.key]
    assert rep.summary()[MISSING_OBJECT] == {"count": 1, "bytes": gone.size}
    partition_holds(broken)


@given(deployments(), st.data())
def test_changed_bytes_are_named(facts: StackFacts, data: st.DataObject) -> None:
    if not facts.objects:
        return
    victim = data.draw(st.sampled_from(facts.objects))
    same_size = data.draw(st.booleans())
    changed = StoredObject(victim.key, victim.size if same_size else victim.size + 1,
                           sha(b"other" + victim.key.encode()))
    broken = StackFacts(facts.runs, facts.pipelines, facts.artefacts,
                        tuple(changed if o.key == victim.key else o for o in facts.objects), facts.batch_dirs,
                        facts.cron_jobs)
    rep = check(broken)
    assert not rep.ok
    category = CHECKSUM_MISMATCH if same_size else SIZE_MISMATCH
    assert rep.subjects(category) == [victim.key]
    f = rep.of(category)[0]
    assert f.expected_size == victim.size and f.actual_size == changed.size
    assert [x.subject for x in rep.findings] == [victim.key]
    partition_holds(broken)


@given(deployments())
def test_unknown_checksums_are_unverified_not_failing(facts: StackFacts) -> None:
    sized = StackFacts(facts.runs, facts.pipelines, facts.artefacts,
                       tuple(StoredObject(o.key, o.size) for o in facts.objects), facts.batch_dirs, facts.cron_jobs)
    rep = check(sized)
    assert rep.ok
    assert rep.checksums_verified == (not facts.artefacts)
    assert sorted(rep.subjects(UNVERIFIED)) == sorted(a.key for a in facts.artefacts)
    partition_holds(sized)


@given(deployments(), ids, rel, st.integers(0, 10**9), st.booleans())
def test_objects_without_a_run_are_orphans(facts: StackFacts, run: str, path: str, size: int,
                                           of_existing_run: bool) -> None:
    owner = sorted(facts.runs)[0] if of_existing_run else "gone_" + run
    key = f"pipeline_runs/{owner}/{path}"
    if any(a.key == key for a in facts.artefacts):
        return
    extra = StackFacts(facts.runs, facts.pipelines, facts.artefacts, (*facts.objects, StoredObject(key, size)),
                       facts.batch_dirs, facts.cron_jobs)
    rep = check(extra)
    if of_existing_run:  # written by a run, not (yet) recorded: listed, not failing
        assert rep.ok and rep.subjects(UNRECORDED_OBJECT) == [key]
        assert rep.summary()[UNRECORDED_OBJECT] == {"count": 1, "bytes": size}
    else:
        assert not rep.ok and rep.subjects(ORPHAN_OBJECT) == [key]
        assert rep.of(ORPHAN_OBJECT)[0].run_id == owner
        assert rep.summary()[ORPHAN_OBJECT] == {"count": 1, "bytes": size}
    partition_holds(extra)


@given(deployments(), ids, names)
def test_state_naming_nothing_is_named(facts: StackFacts, run: str, pipeline: str) -> None:
    d, p = "gone_" + run, "gone-" + pipeline
    broken = StackFacts(facts.runs, facts.pipelines, facts.artefacts, facts.objects, (*facts.batch_dirs, d),
                        (*facts.cron_jobs, CronJob("job-x", p)))
    rep = check(broken)
    assert not rep.ok
    assert rep.subjects(ORPHAN_BATCH_DIR) == [d]
    assert rep.subjects(ORPHAN_CRON_JOB) == ["job-x"] and rep.of(ORPHAN_CRON_JOB)[0].pipeline == p
    assert rep.summary()[ORPHAN_BATCH_DIR] == {"count": 1}
    partition_holds(broken)


def test_unreadable_state_fails() -> None:
    rep = check(StackFacts(frozenset(), {}, (), (), state_problems=(("cron/jobs.json", "not valid JSON"),)))
    assert not rep.ok and rep.subjects(STATE_UNREADABLE) == ["cron/jobs.json"]


def test_keys_of_no_run() -> None:
    assert run_of_key("pipeline_runs/run_1/a/b") == "run_1"
    for k in ("pipeline_runs/run_1/", "pipeline_runs/run_1", "pipeline_runs//x", "other/run_1/x"):
        assert run_of_key(k) is None
    rep = check(StackFacts(frozenset({"run_1"}), {}, (), (StoredObject("pipeline_runs/stray.txt", 3),
                                                          StoredObject("elsewhere/x", 5))))
    assert rep.subjects(ORPHAN_OBJECT) == ["pipeline_runs/stray.txt"]
    assert rep.checked["objects"] == 1  # only what lies under pipeline_runs/ is the check's business


def test_report_json_shape() -> None:
    a = Artefact("run_1", "pipeline_runs/run_1/m.bin", 4, sha(b"abcd"))
    rep = check(StackFacts(frozenset({"run_1"}), {"pl_1": "p"}, (a,), ()))
    d = rep.to_dict()
    assert d["ok"] is False and set(d["summary"]) == set(CATEGORIES)
    assert d["findings"] == [{"category": MISSING_OBJECT, "subject": a.key, "run_id": "run_1", "expected_size": 4,
                              "expected_sha256": a.sha256, "detail": d["findings"][0]["detail"]}]
