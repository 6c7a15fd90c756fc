"""``replication check`` never hides how many differences it did not list."""
from __future__ import annotations

import pytest
import typer

from swarm.services.objects.replicate import check_replication
from swarm.sources.objects import Bucket

from .conftest import env_for, put, run_cli

N = 63  # more than the 50 the human table lists


@pytest.fixture
def apart(src: Bucket, dr_remote: Bucket) -> tuple[Bucket, Bucket]:
    for i in range(N):
        put(src, f"runs/{i:03d}.json", b"{}")
    return src, dr_remote


def test_human_output_says_how_many_more(cli_app: typer.Typer, apart: tuple[Bucket, Bucket],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    env_for(monkeypatch, *apart)
    code, out, _ = run_cli(cli_app, "admin", "objects", "replication", "check")
    assert code == 1
    assert f"{N} difference(s)" in out
    assert f"and {N - 50} more" in out, out
    assert "None" not in out


def test_json_gives_the_total_and_a_truncated_flag(cli_app: typer.Typer, apart: tuple[Bucket, Bucket],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    env_for(monkeypatch, *apart)
    code, _, d = run_cli(cli_app, "admin", "objects", "replication", "check", "--json")
    assert code == 1
    assert d["difference_count"] == N and len(d["differences"]) == N and d["truncated"] is False
    res = check_replication(*apart, limit=10).to_dict()
    assert res["difference_count"] == N and len(res["differences"]) == 10 and res["truncated"] is True
