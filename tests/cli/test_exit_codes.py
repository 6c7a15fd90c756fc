"""Exit codes agree across commands and with docs/exit-codes.md: a missing backup, bucket or
database is 9 (NOT_FOUND) everywhere; a backup of the wrong kind for the command is 8
(REFUSED) everywhere; a bug is 70 (INTERNAL).

The commands run in-process through ``swarm.cli.main.main``, the one place errors become
exit codes. Manifests of each kind are committed directly (a manifest is what a restore
reads first), against the real PostgreSQL and SeaweedFS where a server is involved.
"""
from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

import pytest

from swarm.cli.main import main
from swarm.crypto.keys import create_key_file
from swarm.devstack.seaweed import SeaweedServer
from swarm.errors import ExitCode
from swarm.repo import Repository
from swarm.sources.postgres.cluster import LocalCluster
from swarm.storage.factory import open_store

UNKNOWN_ID = "20250101T000000Z-pg-logical-0123456789ab"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    key = tmp_path / "k" / "repo.key"
    r = Repository.init(open_store(f"file://{tmp_path / 'repo'}"), create_key_file(key))
    monkeypatch.setenv("SWARM_KEY_URL", f"file://{key}")
    monkeypatch.setenv("SWARM_BACKUP_REPO", f"file://{tmp_path / 'repo'}")
    return r


def committed(repo: Repository, kind: str, **source: object) -> str:
    """A backup of ``kind`` with no data: enough for every check that runs before data is read."""
    return repo.begin_backup(kind).commit(dict(source)).id


def swarm(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    monkeypatch.setattr(sys, "argv", ["swarm", *args, "--json"])
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return int(code or 0), json.loads(out) if out.strip() else {}


def use_objects(monkeypatch: pytest.MonkeyPatch, server: SeaweedServer | None, bucket: str) -> None:
    monkeypatch.setenv("SWARM_OBJECTS_ENDPOINT", server.endpoint if server else "http://127.0.0.1:1")
    monkeypatch.setenv("SWARM_OBJECTS_ACCESS_KEY", server.access_key if server else "k")
    monkeypatch.setenv("SWARM_OBJECTS_SECRET_KEY", server.secret_key if server else "s")
    monkeypatch.setenv("SWARM_OBJECTS_BUCKET", bucket)


# ---- a backup of the wrong kind: 8 in every restore ---------------------------------------------

def test_restore_objects_of_a_logical_backup_is_refused(repo: Repository, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    use_objects(monkeypatch, None, "artefacts")
    backup_id = committed(repo, "pg-logical")
    code, doc = swarm(monkeypatch, capsys, "admin", "restore", "objects", backup_id)
    assert code == ExitCode.REFUSED, doc
    assert doc["error"] == "wrong-kind" and "not an objects backup" in doc["message"]


def test_restore_postgres_of_an_objects_backup_is_refused(repo: Repository, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    backup_id = committed(repo, "objects", bucket="artefacts")
    code, doc = swarm(monkeypatch, capsys, "admin", "restore", "postgres", backup_id,
                      "--target-db", "postgresql://swarm@127.0.0.1:1/copy")
    assert code == ExitCode.REFUSED, doc
    assert "not a logical PostgreSQL backup" in doc["message"]


# ---- a missing backup: 9 everywhere ---------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["admin", "backups", "show", UNKNOWN_ID],
    ["admin", "verify", UNKNOWN_ID],
    ["admin", "restore", "objects", UNKNOWN_ID],
    ["admin", "restore", "postgres", UNKNOWN_ID, "--target-db", "postgresql://swarm@127.0.0.1:1/copy"],
], ids=["backups-show", "verify", "restore-objects", "restore-postgres"])
def test_a_missing_backup_is_not_found(repo: Repository, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    use_objects(monkeypatch, None, "artefacts")
    code, doc = swarm(monkeypatch, capsys, *args)
    assert code == ExitCode.NOT_FOUND, doc
    assert UNKNOWN_ID in doc["message"]


# ---- a missing database: 9 -------------------------------------------------------------------------

def test_backup_of_a_missing_database_is_not_found(repo: Repository, pg_cluster: LocalCluster,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = swarm(monkeypatch, capsys, "admin", "backup", "postgres",
                      "--db-url", pg_cluster.url("no_such_db_" + secrets.token_hex(3)))
    assert code == ExitCode.NOT_FOUND, doc


def test_restore_into_a_missing_database_is_not_found(repo: Repository, pg_cluster: LocalCluster,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    backup_id = committed(repo, "pg-logical")
    code, doc = swarm(monkeypatch, capsys, "admin", "restore", "postgres", backup_id,
                      "--target-db", pg_cluster.url("no_such_db_" + secrets.token_hex(3)))
    assert code == ExitCode.NOT_FOUND, doc
    assert "--create" in doc["hint"]


# ---- a missing bucket: 9 ---------------------------------------------------------------------------

def test_restore_objects_into_a_missing_bucket_is_not_found(repo: Repository, seaweed: SeaweedServer, bucket: str,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    use_objects(monkeypatch, seaweed, bucket)
    backup_id = committed(repo, "objects", bucket=bucket, prefix="")
    code, doc = swarm(monkeypatch, capsys, "admin", "restore", "objects", backup_id,
                      "--to-bucket", "no-such-bucket-" + secrets.token_hex(4))
    assert code == ExitCode.NOT_FOUND, doc


def test_restore_objects_of_a_missing_bucket_is_not_found(repo: Repository, seaweed: SeaweedServer,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    gone = "gone-" + secrets.token_hex(4)
    use_objects(monkeypatch, seaweed, gone)
    backup_id = committed(repo, "objects", bucket=gone, prefix="")
    code, doc = swarm(monkeypatch, capsys, "admin", "restore", "objects", backup_id)
    assert code == ExitCode.NOT_FOUND, doc


# ---- a bug: 70 -------------------------------------------------------------------------------------

def test_a_bug_exits_internal(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import swarm.cli.main as cli_main

    def boom() -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli_main, "app", boom)
    monkeypatch.setattr(sys, "argv", ["swarm", "admin", "backups", "list"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == ExitCode.INTERNAL == 70
    assert "this is a bug in swarm" in capsys.readouterr().err
