"""``[[repository.copies]]`` and the global ``--repo NAME``: which repository, key and endpoint a
command uses, and the memory of rollbacks kept per (repository, copy)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.config import load_settings
from swarm.crypto.keys import create_key_file
from swarm.errors import ConfigError
from swarm.model.catalogue import CatalogueState
from swarm.repo import CatalogueWatch, Repository
from swarm.storage.factory import open_store

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


def _swarm(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "swarm.cli.main", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


def test_cli_repo_option_and_copy_dry_run(tmp_path: Path) -> None:
    key = create_key_file(tmp_path / "repo.key")
    own = create_key_file(tmp_path / "far.key")
    repo = Repository.init(open_store(f"file://{tmp_path / 'primary'}"), key)
    w = repo.begin_backup("pg-logical")
    w.put_object("pgdump/toc.dat", [b"toc"])
    b = w.commit({"engine": "postgres"})
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(f'[repository]\nurl = "file://{tmp_path / "primary"}"\nkey = "file://{key.path}"\n'
                   f'[[repository.copies]]\nname = "far"\nurl = "file://{tmp_path / "far"}"\nkey = "file://{own.path}"\n')
    home = tmp_path / "home"
    r = _swarm("--config", str(cfg), "--repo", "nope", "admin", "backups", "list", "--json", home=home)
    assert r.returncode == 3 and "no copy of that name" in json.loads(r.stdout)["message"]
    r = _swarm("--config", str(cfg), "--repo", "far", "admin", "backups", "list", "--json", home=home)
    # a copy is never created by opening it: the hint says how it is made
    assert r.returncode == 7 and "repo copy --to far" in json.loads(r.stdout)["hint"]
    assert not (tmp_path / "far").exists()
    r = _swarm("--config", str(cfg), "admin", "repo", "copy", "--dry-run", "--json", home=home)
    assert r.returncode == 0, r.stderr
    plan = json.loads(r.stdout)["copies"][0]["result"]
    assert plan["dry_run"] and plan["backups"] == [b.id] and plan["rewrap"]
    assert not (tmp_path / "far" / "swarm-repo.json").exists()
    r = _swarm("--config", str(cfg), "--repo", "far", "admin", "repo", "copy", home=home)
    assert r.returncode == 3  # the source is the primary
    r = _swarm("--config", str(cfg), "admin", "repo", "copy", "--to", "far", home=home)
    assert r.returncode == 0 and b.id in r.stdout, r.stderr
    r = _swarm("--config", str(cfg), "--repo", "far", "admin", "backups", "list", "--json", home=home)
    assert r.returncode == 0 and b.id in r.stdout
    assert (home / "security" / f"{repo.config.repo_id}@far.json").exists()


RETENTION_TOML = """
[repository]
url = "file:///srv/primary"

[retention]
keep_tags = ["legal-hold"]

[retention.pg-logical]
keep_within = "90d"

[retention.wal]
window = "14d"

[[repository.copies]]
name = "offsite"
url = "file:///mnt/offsite"

[repository.copies.retention.pg-logical]
keep_last = 2

[repository.copies.retention.wal]
window = "2d"

[[repository.copies]]
name = "usb"
url = "file:///mnt/usb/swarm"
"""


def test_a_copy_with_its_own_retention_uses_it_and_inherits_the_rest(tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(RETENTION_TOML)
    primary = load_settings(cfg)
    assert str(primary.retention.kinds["pg-logical"].keep_within) == "90d"
    assert str(primary.retention.wal_window) == "14d"
    offsite = load_settings(cfg, copy="offsite")
    pol = offsite.retention
    assert pol.kinds["pg-logical"].keep_last == 2 and pol.kinds["pg-logical"].keep_within is None
    assert str(pol.wal_window) == "2d"  # the copy's own WAL window
    assert pol.keep_tags == frozenset({"legal-hold"})  # inherited from the top-level [retention]
    assert pol.kinds["pg-physical"] == primary.retention.kinds["pg-physical"]
    assert offsite.copies["offsite"].public()["retention"] == pol.to_dict()
    # a copy without a retention table follows the top-level policy
    usb = load_settings(cfg, copy="usb")
    assert usb.copies["usb"].retention is None and usb.retention == primary.retention
    # SWARM_BACKUP_REPO pointed at the copy's URL chooses its policy too
    os.environ["SWARM_BACKUP_REPO"] = "file:///mnt/offsite"
    try:
        assert load_settings(cfg).retention == pol
    finally:
        del os.environ["SWARM_BACKUP_REPO"]


def test_a_copy_retention_that_keeps_nothing_is_a_config_error_naming_the_copy(tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(RETENTION_TOML.replace("keep_last = 2", "keep_last = 0"))
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg)
    assert ei.value.exit_code == 3
    assert "offsite" in ei.value.message and "retention.pg-logical" in ei.value.message
    cfg.write_text(RETENTION_TOML.replace("keep_last = 2", "keep_soon = 2"))
    with pytest.raises(ConfigError) as ei:
        load_settings(cfg)
    assert "retention.pg-logical.keep_soon" in ei.value.message
