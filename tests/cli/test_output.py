"""Operator-facing text output: `backups list` / `show` for every kind of backup, sizes
labelled and counted the same way by `backup`, `list` and `show`, and plans rendered without
Python literals. Real PostgreSQL (with WAL archiving), real SeaweedFS, the CLI as a subprocess."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from swarm.devstack.seaweed import SeaweedServer
from swarm.storage.s3 import make_client
from swarm.ui import render

from ..conftest import new_database
from ..physical.conftest import PhysEnv, make_env

pytestmark = pytest.mark.integration
PY_LITERAL = re.compile(r"\bNone\b|\{'|\['|\bTrue\b|\bFalse\b")


@pytest.fixture(scope="module")
def env(services_dir: Path, seaweed: SeaweedServer) -> Iterator[tuple[PhysEnv, Path, str]]:
    e = make_env(services_dir / "output")
    db_url = new_database(e.cluster, runs=6, size_mb=0.3)
    client = make_client(seaweed.endpoint, seaweed.access_key, seaweed.secret_key)
    bucket = "out-artefacts"
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    for i in range(7):
        client.put_object(Bucket=bucket, Key=f"models/{i}.bin", Body=bytes([i]) * (1000 + i))
    doc = {"repository": {"url": f"file://{e.repo_dir}", "key": f"file://{e.root / 'keys' / 'repo.key'}"},
           "database": {"url": db_url},
           "objects": {"endpoint": seaweed.endpoint, "bucket": bucket, "access_key": seaweed.access_key,
                       "secret_key": seaweed.secret_key}}
    config = e.root / "with-objects.toml"
    config.write_text(tomli_w.dumps(doc))
    yield e, config, db_url
    e.cluster.destroy()


def cli(e: PhysEnv, config: Path, *args: str) -> str:
    return e.cli(*args, config=config).stdout


def cli_json(e: PhysEnv, config: Path, *args: str) -> Any:
    return json.loads(cli(e, config, *args, "--json"))


@pytest.fixture(scope="module")
def backups(env: tuple[PhysEnv, Path, str]) -> dict[str, dict[str, Any]]:
    e, config, _ = env
    return {"logical": cli_json(e, config, "admin", "backup", "postgres"),
            "physical": cli_json(e, config, "admin", "backup", "postgres", "--physical", "--db-url", e.url),
            "objects": cli_json(e, config, "admin", "backup", "objects")}


def test_show_gives_every_kind_its_own_fields_and_never_none(env: tuple[PhysEnv, Path, str],
                                                              backups: dict[str, dict[str, Any]]) -> None:
    e, config, _ = env
    phys = backups["physical"]
    text = cli(e, config, "admin", "backups", "show", phys["id"])
    assert not PY_LITERAL.search(text), text
    for field in ("start_lsn", "stop_lsn", "start_wal", "stop_wal"):
        assert str(phys[field]) in text, (field, text)
    assert re.search(rf"^timeline\s+{phys['timeline']}$", text, re.M), text
    objs = backups["objects"]
    text = cli(e, config, "admin", "backups", "show", objs["id"])
    assert not PY_LITERAL.search(text), text
    assert re.search(r"^bucket\s+out-artefacts\b", text, re.M), text
    assert re.search(r"^keys\s+7$", text, re.M), text
    text = cli(e, config, "admin", "backups", "show", backups["logical"]["id"])
    assert not PY_LITERAL.search(text), text
    assert "row counts" in text and "public.runs" in text


def test_one_definition_of_size_in_backup_list_and_show(env: tuple[PhysEnv, Path, str],
                                                        backups: dict[str, dict[str, Any]]) -> None:
    e, config, _ = env
    listed = {r["id"]: r for r in cli_json(e, config, "admin", "backups", "list")}
    shown = {k: cli_json(e, config, "admin", "backups", "show", b["id"]) for k, b in backups.items()}
    # what `backup` said is what list and show say
    expected = {"logical": (backups["logical"]["size"], backups["logical"]["stored_size"]),
                "physical": (backups["physical"]["size"], backups["physical"]["stored_size"]),
                "objects": (backups["objects"]["bytes"], backups["objects"]["stored_size"])}
    for kind, (size, stored) in expected.items():
        bid = backups[kind]["id"]
        assert (listed[bid]["size"], listed[bid]["stored_size"]) == (size, stored), kind
        assert (shown[kind]["size"], shown[kind]["stored_size"]) == (size, stored), kind
    assert expected["objects"][0] == sum(1000 + i for i in range(7))
    # and the text labels them the same way everywhere
    table = cli(e, config, "admin", "backups", "list")
    assert not PY_LITERAL.search(table), table
    for kind, (size, stored) in expected.items():
        row = next(line for line in table.splitlines() if backups[kind]["id"] in line)
        assert render.human_bytes(size) in row and render.human_bytes(stored) in row, (kind, row)
        text = cli(e, config, "admin", "backups", "show", backups[kind]["id"])
        assert re.search(rf"^size\s+{re.escape(render.sizes(size, stored))}$", text, re.M), (kind, text)
    logical = cli(e, config, "admin", "backup", "postgres")
    assert re.search(r"^size\s+\S+ \S+ \(\S+ \S+ stored\)$", logical, re.M), logical
    objects = cli(e, config, "admin", "backup", "objects")
    assert re.search(rf"^size\s+{re.escape(render.human_bytes(expected['objects'][0]))} \(", objects, re.M), objects


def test_dry_run_plan_renders_nested_values_readably(capsys: pytest.CaptureFixture[str]) -> None:
    plan = {"backup_id": "20260101T000000Z-pg-physical-000001", "port": None, "start": False,
            "target": {"kind": "time", "time": "2026-01-01T00:00:00Z", "inclusive": True},
            "timelines": [1, 2], "newest_reachable": {"lsn": "0/5000060", "time": None}, "size": 2_500_000}
    render.dry_run_plan(plan, as_json=False)
    text = capsys.readouterr().out
    assert not PY_LITERAL.search(text), text
    assert re.search(r"^  kind\s+time$", text, re.M) and re.search(r"^timelines\s+1, 2$", text, re.M), text
    assert re.search(r"^port\s+-$", text, re.M) and "2.5 MB" in text, text
