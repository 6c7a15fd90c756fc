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
