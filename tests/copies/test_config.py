"""``[[repository.copies]]`` and the global ``--repo NAME``: which repository, key and endpoint a
command uses, and the memory of rollbacks kept per (repository, copy)."""
from __future__ import annotations

from pathlib import Path

import pytest

from swarm.config import load_settings
from swarm.errors import ConfigError
from swarm.model.catalogue import CatalogueState
from swarm.repo import CatalogueWatch

TOML = """
[repository]
url = "file:///srv/primary"
key = "file:///keys/primary.key"
s3_endpoint = "http://primary:8333"

[[repository.copies]]
name = "offsite"
url = "s3://other-region/backups"
key = "file:///keys/offsite.key"
s3_endpoint = "http://far:8333"
s3_access_key = "far-ak"
s3_secret_key = "far-sk"

[[repository.copies]]
name = "usb"
url = "file:///mnt/usb/swarm"
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    p = tmp_path / "swarm.toml"
    p.write_text(TOML)
    return p


def test_copies_are_read_and_primary_stays_the_default(cfg: Path) -> None:
    s = load_settings(cfg)
    assert sorted(s.copies) == ["offsite", "usb"] and s.copy is None
    assert s.repo == "file:///srv/primary" and s.key_url == "file:///keys/primary.key"
    assert s.copies["offsite"].key_url == "file:///keys/offsite.key"
    assert s.copies["usb"].key_url is None
    assert s.public()["copies"]["offsite"]["s3_secret_key"] == "***"


def test_repo_name_selects_the_copy_its_key_and_endpoint(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_KEY_URL", "file:///keys/from-env.key")  # the primary's key, from the environment
    s = load_settings(cfg, copy="offsite")
    assert s.copy == "offsite" and s.repo == "s3://other-region/backups"
    assert s.key_url == "file:///keys/offsite.key"  # the copy's own key wins
    assert (s.repo_s3_endpoint, s.repo_s3_access_key, s.repo_s3_secret_key) == ("http://far:8333", "far-ak", "far-sk")
    assert s.primary is not None and s.primary.url == "file:///srv/primary"
    u = load_settings(cfg, copy="usb")  # no key of its own: the primary's
    assert u.repo == "file:///mnt/usb/swarm" and u.key_url == "file:///keys/from-env.key"


def test_backup_repo_env_pointed_at_a_copy_is_that_copy(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_BACKUP_REPO", "s3://other-region/backups/")
    s = load_settings(cfg)
    assert s.copy == "offsite" and s.key_url == "file:///keys/offsite.key"


def test_unknown_copy_and_bad_tables_are_config_errors(cfg: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no copy of that name.*offsite, usb"):
        load_settings(cfg, copy="nope")
    bad = tmp_path / "bad.toml"
    for body, problem in [
        ('[[repository.copies]]\nname = "a"\n', "has no url"),
        ('[[repository.copies]]\nname = "a"\nurl = "ftp://x"\n', "url"),
        ('[[repository.copies]]\nname = "a"\nurl = "file:///a"\nkey_provider = "x"\n', "unknown key"),
        ('[[repository.copies]]\nname = "a"\nurl = "file:///a"\n[[repository.copies]]\nname = "a"\nurl = "file:///b"\n',
         "already configured"),
        ('[repository]\nurl = "file:///a"\n[[repository.copies]]\nname = "a"\nurl = "file:///a/"\n', "primary"),
        ('[[repository.copies]]\nname = "A b"\nurl = "file:///a"\n', "name"),
    ]:
        bad.write_text(body)
        with pytest.raises(ConfigError, match=problem):
            load_settings(bad)


def test_rollback_memory_is_kept_per_repository_and_copy(tmp_path: Path) -> None:
    primary, offsite = CatalogueWatch(tmp_path), CatalogueWatch(tmp_path, copy="offsite")
    primary.update("rid", lambda seen: CatalogueState(backups=frozenset({"a", "b"})))
    assert offsite.load("rid") == CatalogueState()
    offsite.update("rid", lambda seen: CatalogueState(backups=frozenset({"a"})))
    assert primary.load("rid").backups == frozenset({"a", "b"})
    assert offsite.path("rid").name == "rid@offsite.json" and primary.path("rid").name == "rid.json"
