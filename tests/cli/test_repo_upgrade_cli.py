"""`swarm admin repo upgrade` through the CLI: a version-1 repository is refused by other
commands with exit 5 and a hint naming the upgrade; the upgrade brings it to version 2 once,
after which the same commands work; a second run says there is nothing to do."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from swarm.cli.main import main
from swarm.crypto.keys import create_key_file
from swarm.repo import Repository
from swarm.repo.format import CONFIG_KEY
from swarm.repo.repository import RepoConfig
from swarm.storage.factory import open_store
from tests.unit.test_repo_upgrade import commit_v1


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    monkeypatch.setattr(sys, "argv", ["swarm", *args, "--json"])
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return int(code or 0), json.loads(out) if out.strip() else {}


def test_version_1_refused_then_upgraded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k" / "repo.key"
    store = open_store(f"file://{tmp_path / 'repo'}")
    repo = Repository.init(store, create_key_file(key))
    w = repo.begin_backup("pg-logical")
    w.put_object("pgdump/toc.dat", [b"toc"])
    backup_id = commit_v1(repo, w, {"engine": "postgresql", "database": "app", "row_counts": {}}).id
    c = repo.config
    store.put(CONFIG_KEY, RepoConfig(c.repo_id, 1, c.created_at, c.kek_id, c.key_check, c.features).to_json())
    monkeypatch.setenv("SWARM_KEY_URL", f"file://{key}")
    monkeypatch.setenv("SWARM_BACKUP_REPO", f"file://{tmp_path / 'repo'}")

    code, out = run(monkeypatch, capsys, "admin", "backups", "list")
    assert code == 5 and out["exit_code"] == 5 and out["error"] == "format-unsupported"
    assert "format version 1" in out["message"] and "swarm admin repo upgrade" in out["hint"]

    code, out = run(monkeypatch, capsys, "admin", "repo", "upgrade")
    assert code == 0 and out["changed"] is True and out["upgraded"] == [backup_id]
    assert out["from_version"] == 1 and out["to_version"] == 2

    code, out = run(monkeypatch, capsys, "admin", "backups", "show", backup_id)
    assert code == 0 and out["refs"]["deks"] == [w.dek_id]

    code, out = run(monkeypatch, capsys, "admin", "repo", "upgrade")
    assert code == 0 and out["changed"] is False and out["upgraded"] == []
