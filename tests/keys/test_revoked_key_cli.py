"""The revoked-key contract through the CLI: with the repository's KMS key disabled, commands fail
closed with exit 4 and code ``key-revoked`` before writing anything, naming the key and listing the
backups that are unrecoverable while it stays so; enabling the key again makes them work."""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from swarm.cli.main import main
from swarm.crypto.providers import load_provider
from swarm.repo import Repository
from swarm.storage.factory import open_store
from tests.keys.conftest import KmsKey


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    monkeypatch.setattr(sys, "argv", ["swarm", *args, "--json"])
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    text = out.strip() or err.strip()
    try:
        return int(code or 0), json.loads(text) if text else {}
    except json.JSONDecodeError:
        return int(code or 0), {"raw": text}


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_repo(tmp_path: Path, url: str, n: int = 2) -> tuple[Path, list[str]]:
    root = tmp_path / "repo"
    repo = Repository.init(open_store(f"file://{root}"), load_provider(url))
    ids = []
    for i in range(n):
        w = repo.begin_backup("pg-logical")
        w.put_object("pgdump/toc.dat", [b"toc %d" % i])
        ids.append(w.commit({"engine": "postgresql", "database": "app", "row_counts": {}}).id)
    return root, ids


@pytest.mark.parametrize("command", [("admin", "backups", "list"), ("admin", "backups", "show", "{last}")])
def test_disabled_key_fails_closed_listing_backups_then_works_again(
        kms_key: KmsKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        command: tuple[str, ...]) -> None:
    root, ids = make_repo(tmp_path, kms_key.url())
    monkeypatch.setenv("SWARM_KEY_URL", kms_key.url())
    monkeypatch.setenv("SWARM_BACKUP_REPO", f"file://{root}")
    command = tuple(ids[-1] if a == "{last}" else a for a in command)
    assert run(monkeypatch, capsys, *command)[0] == 0
    before = tree(root)
    kms_key.disable()
    code, out = run(monkeypatch, capsys, *command)
    assert code == 4, out
    assert out["error"] == "key-revoked", out
    assert kms_key.arn in out["message"]
    for backup_id in ids:
        assert backup_id in out["message"]
    assert sorted(out["details"]["unrecoverable_backups"]) == sorted(ids)
    assert tree(root) == before  # nothing written
    kms_key.enable()
    assert run(monkeypatch, capsys, *command)[0] == 0
