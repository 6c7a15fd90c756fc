from __future__ import annotations

from pathlib import Path

import pytest

from swarm.config import load_settings
from swarm.errors import ConfigError


def test_precedence_flag_env_file_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text('[database]\nurl = "postgresql://file/db"\n[repository]\nurl = "file:///from-file"\n')
    s = load_settings(cfg)
    assert s.db_url == "postgresql://file/db" and s.sources["db_url"] == "file"
    monkeypatch.setenv("SWARM_DB_URL", "postgresql://env/db")
    s = load_settings(cfg)
    assert s.db_url == "postgresql://env/db" and s.sources["db_url"] == "env:SWARM_DB_URL"
    s = load_settings(cfg, db_url="postgresql://flag/db")
    assert s.db_url == "postgresql://flag/db" and s.sources["db_url"] == "flag"
    assert s.repo == "file:///from-file"
    assert s.state_dir == str(s.home)


def test_missing_setting_says_how_to_set_it(tmp_path: Path) -> None:
    s = load_settings()
    with pytest.raises(ConfigError) as err:
        s.require("repo", "the backup repository")
    assert "SWARM_BACKUP_REPO" in (err.value.hint or "")


def test_explicit_missing_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://u:hunter2@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u@h/db?password=hunter2&sslmode=require", "postgresql://u@h/db?password=***&sslmode=require"),
    ("postgresql://u@h/db?sslpassword=hunter2", "postgresql://u@h/db?sslpassword=***"),
    ("postgresql://u:hunter2@[::1", "postgresql://u:***@[::1"),
    ("postgresql://u:hun/ter2@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:hun@ter2@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:hun?ter2@h/db", "postgresql://u:***@h/db"),
    ("host=h password=hunter2 user=u", "host=h password=*** user=u"),
    ("host=h password = 'hun ter2'", "host=h password = ***"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("bareword", "bareword"),
])
def test_redact_hides_every_password(url: str, shown: str) -> None:
    from swarm.config.urls import redact
    from swarm.sources.postgres.conn import redact as conn_redact

    assert redact(url) == shown
    assert conn_redact(url) == shown


def test_a_malformed_url_in_the_file_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text('[repository]\nurl = "file://backups"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert err.value.message.startswith(f"[repository] url (in {cfg}) is not a valid repository URL: it names a host")
    assert err.value.details["source"] == "file"


def test_open_store_uses_the_same_parser() -> None:
    from swarm.storage.factory import open_store

    with pytest.raises(ConfigError, match="not a valid repository URL: it has no bucket"):
        open_store("s3://")
    with pytest.raises(ConfigError, match="names a host"):
        open_store("file://relative/dir")
