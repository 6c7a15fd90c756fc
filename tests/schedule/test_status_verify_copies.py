"""`status` reads the last verify record and each off-site copy's lag (and the metric follows)."""
from __future__ import annotations

from pathlib import Path

from swarm.crypto.keys import create_key_file
from swarm.repo import Repository
from swarm.repo.copy import CopyTarget
from swarm.services.copies.copy import copy_lags, copy_once
from swarm.services.metrics.collector import families
from swarm.services.status.gather import deployment_status
from swarm.storage.factory import open_store
from swarm.storage.local import LocalStore


def _repo_with_a_backup(tmp: Path) -> tuple[Repository, str]:
    repo = Repository.init(LocalStore(tmp / "repo"), create_key_file(tmp / "k"))
    w = repo.begin_backup("pg-logical")
    w.put_object("pgdump/toc.dat", [b"toc"])
    return repo, w.commit({"engine": "postgresql", "database": "app", "row_counts": {}}).id


def test_a_failed_last_verify_is_critical_and_a_pass_clears_it(tmp_path: Path) -> None:
    repo, bid = _repo_with_a_backup(tmp_path)
    assert not [c for c in deployment_status(repo, {}).checks if c.name == "verify"]  # never verified: not judged
    repo.put_verification(bid, {"ok": False, "verified_at": "2026-11-27T01:00:00Z", "problems": 2})
    rep = deployment_status(repo, {})
    check = next(c for c in rep.checks if c.name == "verify")
    assert check.level == "CRITICAL" and bid in check.summary and rep.last_verify and not rep.last_verify["ok"]
    repo.put_verification(bid, {"ok": True, "verified_at": "2026-11-27T02:00:00Z", "problems": 0})
    assert next(c for c in deployment_status(repo, {}).checks if c.name == "verify").level == "OK"


def test_status_and_metrics_show_each_copy(tmp_path: Path) -> None:
    repo, _ = _repo_with_a_backup(tmp_path)
    target = CopyTarget("usb", open_store(f"file://{tmp_path / 'usb'}"), repo.kek)

    def lags() -> list:  # type: ignore[type-arg]
        return copy_lags(repo, [target])

    before = deployment_status(repo, {}, copies=lags)
    c = next(c for c in before.checks if c.name == "copy:usb")
    assert "1 backup(s) not copied yet" in c.summary
    copy_once(repo, [target])
    after = deployment_status(repo, {}, copies=lags)
    c = next(c for c in after.checks if c.name == "copy:usb")
    assert c.level == "OK" and "0 backup(s) not copied yet" in c.summary
    assert after.to_dict()["copies"][0]["name"] == "usb"
    lag = [m for m in families(after) if m.name == "swarm_repo_copy_lag_seconds"]
    assert lag and lag[0].samples[0].labels == {"copy": "usb"}


def test_status_and_metrics_read_the_last_drill(tmp_path: Path) -> None:
    repo, _ = _repo_with_a_backup(tmp_path)
    assert deployment_status(repo, {}).last_drill is None  # no drill yet: not judged, metrics absent
    assert not [m for m in families(deployment_status(repo, {})) if m.name.startswith("swarm_drill")]
    from datetime import UTC, datetime

    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    repo.put_drill("d20261127t010000-abcdef", {"id": "d20261127t010000-abcdef", "status": "finished",
                                               "verdict": "fail", "failed_check": "row_counts", "rto_s": 12.0,
                                               "rpo_s": 3.0, "tier": "enterprise", "finished_at": now})
    rep = deployment_status(repo, {})
    check = next(c for c in rep.checks if c.name == "drill")
    assert check.level == "CRITICAL" and "row_counts" in check.summary
    repo.put_drill("d20261127t020000-abcdef", {"id": "d20261127t020000-abcdef", "status": "finished",
                                               "verdict": "pass", "rto_s": 9.5, "rpo_s": 2.0, "tier": "enterprise",
                                               "finished_at": now})
    rep = deployment_status(repo, {})
    assert next(c for c in rep.checks if c.name == "drill").level == "OK"
    got = {m.name: m.samples[0].value for m in families(rep) if m.name.startswith("swarm_drill")}
    assert got["swarm_drill_rto_seconds"] == 9.5 and got["swarm_drill_rpo_seconds"] == 2.0
    assert "swarm_drill_last_success_timestamp_seconds" in got
