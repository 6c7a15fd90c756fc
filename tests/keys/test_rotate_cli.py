"""`swarm admin keys rotate / status / retire` through the CLI: file → KMS, then the old key
retired; and a file key rotated to a new key file made beside it."""
from __future__ import annotations

from pathlib import Path

import pytest

from swarm.crypto.keys import create_key_file
from swarm.crypto.providers import load_provider
from tests.keys.conftest import KmsKey
from tests.keys.test_revoked_key_cli import make_repo, run


def test_file_to_kms_rotate_status_retire(kms_key: KmsKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k" / "repo.key"
    old = create_key_file(key)
    root, ids = make_repo(tmp_path, f"file://{key}")
    monkeypatch.setenv("SWARM_KEY_URL", f"file://{key}")
    monkeypatch.setenv("SWARM_BACKUP_REPO", f"file://{root}")
    code, dry = run(monkeypatch, capsys, "admin", "keys", "rotate", "--to", kms_key.url(), "--dry-run")
    assert code == 0 and dry["dry_run"] and dry["rewrapped"] == dry["files"] > 0
    code, out = run(monkeypatch, capsys, "admin", "keys", "rotate", "--to", kms_key.url())
    assert code == 0 and out["to_key"] == "awskms:" + kms_key.arn and out["config_updated"]
    code, st = run(monkeypatch, capsys, "admin", "keys", "status")
    assert code == 0 and st["primary"] == out["to_key"] and st["rotation_complete"]
    assert sorted(st["backups"]) == sorted(ids)
    assert run(monkeypatch, capsys, "admin", "backups", "list")[0] == 0  # the old key still reads
    monkeypatch.setenv("SWARM_KEY_URL", kms_key.url())
    assert run(monkeypatch, capsys, "admin", "backups", "show", ids[0])[0] == 0
    code, ret = run(monkeypatch, capsys, "admin", "keys", "retire", old.key_id)
    assert code == 0 and ret["retired_key"] == old.key_id
    monkeypatch.setenv("SWARM_KEY_URL", f"file://{key}")
    code, err = run(monkeypatch, capsys, "admin", "backups", "list")
    assert code == 4 and err["error"] == "key-mismatch"


def test_file_key_rotated_to_a_new_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k" / "repo.key"
    create_key_file(key)
    root, ids = make_repo(tmp_path, f"file://{key}")
    monkeypatch.setenv("SWARM_KEY_URL", f"file://{key}")
    monkeypatch.setenv("SWARM_BACKUP_REPO", f"file://{root}")
    code, out = run(monkeypatch, capsys, "admin", "keys", "rotate")
    assert code == 0 and out["created_key_file"] and out["to_url"].startswith(f"file://{key.parent}/repo-")
    assert load_provider(out["to_url"]).key_id == out["to_key"]
    monkeypatch.setenv("SWARM_KEY_URL", out["to_url"])
    assert run(monkeypatch, capsys, "admin", "backups", "show", ids[-1])[0] == 0
    code, err = run(monkeypatch, capsys, "admin", "keys", "rotate", "--to", out["to_url"])
    assert code == 8 and err["error"] == "refused"
