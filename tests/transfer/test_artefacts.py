"""run_artefacts travel with their run: an export carries them describing exactly the objects it
carries (scrubbed objects with their new size and checksum, left-out ones without a row), an
import keeps them inside the run's prefix (and moves them with --new-id), so a deployment that
imported a run still passes ``check stack``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from swarm.errors import HostileArchive
from swarm.services.check import check_stack
from swarm.services.transfer.export import export_run
from swarm.services.transfer.imports import import_run
from swarm.services.transfer.trust import ExportSigningKey, Trust
from swarm.sources.postgres.conn import connect

from .conftest import Stack, objects
from .test_signing import forge, refused

pytestmark = pytest.mark.integration


def artefact_rows(db_url: str, run_id: str) -> dict[str, tuple[int, str]]:
    with connect(db_url) as conn:
        return {r[0]: (int(r[1]), r[2]) for r in conn.execute(
            "SELECT key, size, sha256 FROM run_artefacts WHERE run_id = %s", (run_id,)).fetchall()}


def agrees(stack: Stack, tmp_path: Path) -> dict[str, Any]:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    res = check_stack(stack.db_url, stack.bucket.cfg, state, workers=2)
    d = res.to_dict()
    assert res.ok, d["findings"]
    return d


def test_an_unscrubbed_export_carries_the_rows_as_they_are(prod: Stack, dev: Stack, run_id: str,
                                                           prod_key: ExportSigningKey, dev_trust: Trust,
                                                           tmp_path: Path) -> None:
    src = artefact_rows(prod.db_url, run_id)
    assert len(src) == 5  # the seed recorded every object it wrote
    out = tmp_path / "raw.tar.gz"
    res = export_run(prod.db_url, prod.bucket, run_id, out, scrub=False, signing_key=prod_key)
    assert res.rows["run_artefacts"] == 5
    imp = import_run(out, dev.db_url, dev.bucket, trust=dev_trust)
    assert imp.rows_written["run_artefacts"] == 5
    assert artefact_rows(dev.db_url, run_id) == src
    d = agrees(dev, tmp_path)
    assert d["checked"]["artefacts_agreeing"] == 5 and d["summary"]["unrecorded_object"]["count"] == 0


def test_a_scrubbed_import_still_agrees(dev: Stack, scrubbed_archive: Path, run_id: str, prod: Stack,
                                        dev_trust: Trust, tmp_path: Path) -> None:
    """Scrubbing changes the bytes of text artefacts and leaves binary ones out: the rows that
    travel say so, so the target's rows and objects agree."""
    import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust)
    rows = artefact_rows(dev.db_url, run_id)
    src = artefact_rows(prod.db_url, run_id)
    got = objects(dev.bucket, f"pipeline_runs/{run_id}/")
    assert sorted(rows) == sorted(got) and len(rows) < len(src)  # the audit PDF was left out, with its row
    assert any(rows[k] != src[k] for k in rows)  # scrubbed objects have their new size / checksum
    agrees(dev, tmp_path)


def test_new_id_moves_the_rows_with_the_objects(dev: Stack, scrubbed_archive: Path, dev_trust: Trust,
                                                tmp_path: Path) -> None:
    res = import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=dev_trust, new_id=True,
                     fresh_id="run_fresh00001")
    rows = artefact_rows(dev.db_url, res.plan.run_id)
    assert rows and all(k.startswith("pipeline_runs/run_fresh00001/") for k in rows)
    agrees(dev, tmp_path)


@pytest.mark.parametrize("where", ["another run's prefix", "outside pipeline_runs", "the prefix itself",
                                   "another run's row"])
def test_artefact_rows_must_stay_inside_the_run(dev: Stack, scrubbed_archive: Path, run_id: str, other: str,
                                                prod_key: ExportSigningKey, dev_trust: Trust, tmp_path: Path,
                                                where: str) -> None:
    """Even validly signed, an archive whose run_artefacts rows name keys outside the run's own
    prefix (or another run) is refused, and nothing is written."""
    edit = {
        "another run's prefix": lambda r: {**r, "key": r["key"].replace(run_id, other)},
        "outside pipeline_runs": lambda r: {**r, "key": "models/" + r["key"]},
        "the prefix itself": lambda r: {**r, "key": f"pipeline_runs/{run_id}/"},
        "another run's row": lambda r: {**r, "run_id": other},
    }[where]
    path = forge(scrubbed_archive, tmp_path / "f.tar.gz",
                 rows={"run_artefacts": lambda rs: [edit(rs[0]), *rs[1:]]}, sign=prod_key)
    refused(dev, path, dev_trust, HostileArchive, r"run_artefacts|run")


@pytest.fixture
def other(prod: Stack, run_id: str) -> str:
    return next(r["id"] for r in prod.run_rows if r["id"] != run_id)
