"""`swarm admin status` asks the key provider: a disabled KMS key is CRITICAL (naming the key and
the backups unrecoverable while it stays so, `swarm_key_available 0`), an unreachable provider is
CRITICAL as "unreachable", and enabling the key again makes the status OK. Nothing is written."""
from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from swarm.cli.commands.status import NAGIOS
from swarm.cli.main import main
from swarm.crypto.keys import create_key_file
from swarm.crypto.providers import load_provider
from swarm.model.schedule import CRITICAL, OK
from swarm.repo import Repository
from swarm.services.metrics import registry_for
from swarm.services.status import StatusReport, deployment_status
from swarm.storage.factory import open_store
from tests.keys.conftest import REGION, KmsKey
from tests.keys.test_revoked_key_cli import make_repo, run, tree


def status_of(root: Path, url: str) -> StatusReport:
    """What `swarm admin status` gathers: a fresh provider, as a new command loads it, the repository
    opened without proving the key first (the status check asks the provider itself)."""
    repo = Repository.open(open_store(f"file://{root}"), load_provider(url), check_key=False)
    return deployment_status(repo, {})


def metric_lines(rep: StatusReport) -> list[str]:
    text = generate_latest(registry_for(lambda: rep)).decode()
    return [line for line in text.splitlines() if line.startswith("swarm_key_available")]


def test_disabled_kms_key_is_critical_then_ok_when_enabled(kms_key: KmsKey, tmp_path: Path) -> None:
    root, ids = make_repo(tmp_path, kms_key.url())
    rep = status_of(root, kms_key.url())
    key = next(c for c in rep.checks if c.name == "key")
    assert rep.level == OK and key.level == OK and kms_key.arn in key.summary, rep.to_dict()
    assert metric_lines(rep) == [f'swarm_key_available{{key_id="awskms:{kms_key.arn}"}} 1.0']

    before = tree(root)
    kms_key.disable()
    rep = status_of(root, kms_key.url())
    assert rep.level == CRITICAL and NAGIOS[rep.level] == 2
    key = next(c for c in rep.checks if c.name == "key")
    assert key.level == CRITICAL, key
    assert kms_key.arn in key.summary and "unrecoverable" in key.summary
    for backup_id in ids:
        assert backup_id in key.summary
    assert key.facts["unrecoverable_backups"] == sorted(ids)
    assert key.facts["error"] == "key-revoked" and key.facts["key_state"] == "Disabled"
    assert "enable-key" in (key.hint or "")
    assert rep.to_dict()["level"] == "CRITICAL"
    assert metric_lines(rep) == [f'swarm_key_available{{key_id="awskms:{kms_key.arn}"}} 0.0']
    assert tree(root) == before  # status writes nothing

    kms_key.enable()
    rep = status_of(root, kms_key.url())
    assert rep.level == OK, rep.to_dict()


def test_unreachable_kms_is_critical_unreachable(kms_key: KmsKey, tmp_path: Path) -> None:
    root, ids = make_repo(tmp_path, kms_key.url())
    with socket.socket() as s:  # a loopback port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rep = status_of(root, f"awskms:///{kms_key.key_id}?region={REGION}&endpoint=http://127.0.0.1:{port}")
    key = next(c for c in rep.checks if c.name == "key")
    assert rep.level == CRITICAL and key.level == CRITICAL
    assert "unreachable" in key.summary and key.facts["error"] == "key-provider-unreachable"
    assert key.facts["unrecoverable_backups"] == sorted(ids)
    assert metric_lines(rep) == []  # not known: absent, never a made-up 0


def test_key_file_replaced_is_critical(tmp_path: Path) -> None:
    path = tmp_path / "k" / "repo.key"
    create_key_file(path)
    root, ids = make_repo(tmp_path, f"file://{path}")
    repo = Repository.open(open_store(f"file://{root}"), load_provider(f"file://{path}"), check_key=False)
    assert deployment_status(repo, {}).level == OK
    path.unlink()
    create_key_file(path)  # another key under the same name, after the command loaded the first
    rep = deployment_status(repo, {})
    key = next(c for c in rep.checks if c.name == "key")
    assert key.level == CRITICAL and key.facts["error"] == "key-mismatch", key
    assert key.facts["unrecoverable_backups"] == sorted(ids)


def test_cli_status_reports_a_disabled_key_as_critical_not_as_an_error(
        kms_key: KmsKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the command: exit 1 with level CRITICAL (2 and a "SWARM CRITICAL" line under --nagios),
    not exit 4 from opening the repository; OK again once the key is enabled."""
    root, _ = make_repo(tmp_path, kms_key.url())
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(f'[repository]\nurl = "file://{root}"\nkey = "{kms_key.url()}"\n[schedule]\n')
    monkeypatch.setenv("SWARM_CONFIG", str(cfg))
    kms_key.disable()
    code, out = run(monkeypatch, capsys, "admin", "status", "--no-replication")
    assert code == 1 and out.get("level") == "CRITICAL", (code, out)
    monkeypatch.setattr(sys, "argv", ["swarm", "admin", "status", "--nagios", "--no-replication"])
    with pytest.raises(SystemExit) as e:
        main()
    line = capsys.readouterr().out
    assert e.value.code == 2 and line.startswith("SWARM CRITICAL"), line
    kms_key.enable()
    code, out = run(monkeypatch, capsys, "admin", "status", "--no-replication")
    assert next(c for c in out["checks"] if c["name"] == "key")["level"] == "OK", out
