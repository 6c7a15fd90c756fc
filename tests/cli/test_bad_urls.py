"""Malformed URLs, as an operator types them, at every entry point that takes one: exit 3,
no traceback, the setting named as it was given, the password never printed; with --json
the error is the documented object on stdout.

The commands run in-process through ``swarm.cli.main.main`` (the one funnel from errors to
exit codes), so the matrix stays fast; no service is needed because nothing is contacted.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from swarm.cli.main import main
from swarm.crypto.keys import create_key_file
from swarm.repo import Repository
from swarm.storage.factory import open_store

PASSWORD = "hunter2"

BAD_PG = [
    f"postgresql://u:{PASSWORD}@host:notaport/db",
    "postgres://[::1",
    f"postgresql://u:{PASSWORD}@[::1",
    "http://x",
    f"postgresql://u:{PASSWORD}@/db?sslmode=bogus",
    "bareword",
    f"postgresql://u:{PASSWORD}@host:99999/db",
    f"postgresql://u:{PASSWORD}@ho st/db",
    f"postgresql://u@h/db?password={PASSWORD}&foo=bar",
    f"host=h password={PASSWORD}",
    "postgresql://u:hun/ter2@h/db",  # an unencoded "/" in the password
    f"postgresql://u:{PASSWORD}@h/d%zz",
    f"postgresql://u:{PASSWORD}@h/db?connect_timeout=soon",
    "   ",
]
BAD_REPO = ["file://relative", "s3://", "ftp://x", "bareword", "file:relative", "s3://[x", "s3://b",
            f"s3://u:{PASSWORD}@bucket/x", "file://", " /tmp/x"]
BAD_ENDPOINT = ["http://h:99999", "http://h:abc", "ftp://x", "bareword", "http://[::1",
                f"http://u:{PASSWORD}@h:9000", "http://h st:9000", "http://"]
BAD_KEY = ["file://keys/repo.key", "kms://arn:aws:kms:eu-west-1:1:key/x", "file:///", "ftp://x"]


def _secret_free(text: str) -> bool:
    return PASSWORD not in text and "ter2" not in text


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A key and an empty file repository, so that nothing but the URL under test is wrong."""
    kek = create_key_file(tmp_path / "k" / "repo.key")
    Repository.init(open_store(f"file://{tmp_path / 'repo'}"), kek)
    monkeypatch.setenv("SWARM_KEY_URL", f"file://{tmp_path / 'k' / 'repo.key'}")
    monkeypatch.setenv("SWARM_BACKUP_REPO", f"file://{tmp_path / 'repo'}")
    monkeypatch.setenv("SWARM_OBJECTS_BUCKET", "artefacts")
    monkeypatch.setenv("SWARM_DR_OBJECTS_BUCKET", "artefacts-dr")
    (tmp_path / "run.tar.gz").write_bytes(b"not read")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def swarm(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["swarm", *args])
    code: int | str | None = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return int(code or 0), out, err


def check(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str],
          setting: str) -> None:
    code, out, err = swarm(monkeypatch, capsys, *args)
    assert code == 3, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err and "internal error" not in err, err
    assert setting in err, err
    assert "hint:" in err, err
    assert _secret_free(out + err), out + err
    code, out, err = swarm(monkeypatch, capsys, *args, "--json")
    assert code == 3, f"exit {code}\nstdout: {out}\nstderr: {err}"
    doc = json.loads(out)
    assert {"error", "message", "hint", "exit_code"} <= set(doc), doc
    assert doc["error"] == "invalid-url" and doc["exit_code"] == 3, doc
    assert setting in doc["message"], doc
    assert "Traceback" not in err
    assert _secret_free(out + err), out + err


PG_FLAG_COMMANDS = {
    "backup": ["admin", "backup", "postgres", "--db-url"],
    "backup-physical": ["admin", "backup", "postgres", "--physical", "--db-url"],
    "wal-status": ["admin", "wal", "status", "--db-url"],
    "wal-stream": ["admin", "wal", "stream", "--db-url"],
    "restore-point": ["admin", "restore-point", "before-upgrade", "--db-url"],
}
PG_ENV_COMMANDS = {
    "backup": ["admin", "backup", "postgres"],
    "backup-physical": ["admin", "backup", "postgres", "--physical"],
    "restore-point": ["admin", "restore-point", "before-upgrade"],
    "export": ["admin", "export", "--run-id", "r1", "--output", "out.tar.gz"],
    "import": ["admin", "import", "run.tar.gz"],
    "dev-scratch": ["dev", "scratch", "swarm_copy"],
    "dev-seed": ["dev", "seed"],
}


@pytest.mark.parametrize("value", BAD_PG)
@pytest.mark.parametrize("command", sorted(PG_FLAG_COMMANDS))
def test_bad_db_url_flag(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         command: str, value: str) -> None:
    check(monkeypatch, capsys, [*PG_FLAG_COMMANDS[command], value], "--db-url")


@pytest.mark.parametrize("value", BAD_PG)
@pytest.mark.parametrize("command", sorted(PG_ENV_COMMANDS))
def test_bad_db_url_env(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                        command: str, value: str) -> None:
    monkeypatch.setenv("SWARM_DB_URL", value)
    check(monkeypatch, capsys, PG_ENV_COMMANDS[command], "SWARM_DB_URL")


@pytest.mark.parametrize("value", BAD_PG)
def test_bad_target_db(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                       value: str) -> None:
    check(monkeypatch, capsys, ["admin", "restore", "postgres", "20250101T000000Z-abc", "--target-db", value],
          "--target-db")


@pytest.mark.parametrize("value", BAD_PG[:4])
def test_bad_db_url_in_config_file(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                   value: str) -> None:
    cfg = env / "swarm.toml"
    cfg.write_text(f"[database]\nurl = {json.dumps(value)}\n")
    check(monkeypatch, capsys, ["--config", str(cfg), "admin", "backup", "postgres"], "[database] url")
    _, _, err = swarm(monkeypatch, capsys, "--config", str(cfg), "admin", "backup", "postgres")
    assert str(cfg) in err


@pytest.mark.parametrize("value", BAD_REPO)
@pytest.mark.parametrize("command", [["admin", "backups", "list"], ["admin", "verify", "some-id"],
                                     ["admin", "backup", "postgres", "--db-url", "postgresql://u@h/db"]],
                         ids=["backups-list", "verify", "backup"])
def test_bad_backup_repo(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         command: list[str], value: str) -> None:
    monkeypatch.setenv("SWARM_BACKUP_REPO", value)
    check(monkeypatch, capsys, command, "SWARM_BACKUP_REPO")


@pytest.mark.parametrize("value", BAD_KEY)
def test_bad_key_url(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                     value: str) -> None:
    monkeypatch.setenv("SWARM_KEY_URL", value)
    check(monkeypatch, capsys, ["admin", "backups", "list"], "SWARM_KEY_URL")


ENDPOINT_COMMANDS = {
    "SWARM_OBJECTS_ENDPOINT": ["admin", "objects", "versions", "models/a.bin"],
    "SWARM_DR_OBJECTS_ENDPOINT": ["admin", "objects", "replication", "check"],
    "SWARM_REPO_S3_ENDPOINT": ["admin", "backups", "list"],
}


@pytest.mark.parametrize("value", BAD_ENDPOINT)
@pytest.mark.parametrize("variable", sorted(ENDPOINT_COMMANDS))
def test_bad_endpoint(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                      variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    check(monkeypatch, capsys, ENDPOINT_COMMANDS[variable], variable)


def test_an_empty_db_url_is_not_configured(env: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = swarm(monkeypatch, capsys, "admin", "backup", "postgres", "--db-url", "")
    assert code == 3 and "SWARM_DB_URL" in err and "not configured" in err, err


def test_the_error_says_which_setting_where_what_and_how(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SWARM_DB_URL", f"postgresql://swarm:{PASSWORD}@db.internal:54x2/swarm")
    code, out, _ = swarm(monkeypatch, capsys, "admin", "backup", "postgres", "--json")
    doc = json.loads(out)
    assert code == 3
    assert doc["message"] == ("SWARM_DB_URL (in the environment) is not a valid PostgreSQL URL: port '54x2' "
                              "is not a number: 'postgresql://swarm:***@db.internal:54x2/swarm'")
    assert doc["hint"].startswith("Write it as postgresql://USER:PASSWORD@HOST:5432/DBNAME")
    assert doc["details"] == {"setting": "SWARM_DB_URL", "source": "env",
                              "value": "postgresql://swarm:***@db.internal:54x2/swarm",
                              "problem": "port '54x2' is not a number"}


def test_valid_urls_still_load(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from swarm.config import load_settings

    for url in ("postgresql://swarm@127.0.0.1:5432/postgres", "postgres://u:p%40ss@[::1]:5433/db?sslmode=require",
                "postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write", "postgresql:///db",
                "postgresql://%2Fvar%2Frun%2Fpostgresql/db", "postgresql://u@h/db?ssl=true&connect_timeout=5"):
        assert load_settings(db_url=url).db_url == url
    for repo in ("file:///var/backups/swarm", "/var/backups/swarm", "s3://my-bucket", "s3://my-bucket/a/b/",
                 "file://localhost/var/b"):
        assert load_settings(repo=repo).repo == repo
    monkeypatch.setenv("SWARM_OBJECTS_ENDPOINT", "http://127.0.0.1:8333")
    monkeypatch.setenv("SWARM_REPO_S3_ENDPOINT", "https://s3.eu-west-1.amazonaws.com")
    monkeypatch.setenv("SWARM_KEY_URL", "~/keys/repo.key")
    load_settings()
