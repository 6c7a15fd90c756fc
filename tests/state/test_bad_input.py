"""Bad input for `backup state` / `restore state`, through the real command (issue 11): unreadable
files as an unprivileged user, a missing state directory, unsafe restore targets, a damaged pack,
and kill -9 in the middle of a backup and of a restore."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from swarm.services.state.backup import StateScope, backup_state, state_snapshots
from tests.state.conftest import StateEnv, tree_of


def _backup(senv: StateEnv) -> str:
    rc, _, err, data = senv.cli("admin", "backup", "state", "--json")
    assert rc == 0, err
    return str(data["id"])


def test_backup_and_restore_through_the_command(senv: StateEnv) -> None:
    before = tree_of(senv.state)
    mid = _backup(senv)
    target = senv.root / "restored"
    rc, out, err, _ = senv.cli("admin", "restore", "state", mid, "--target-state", str(target), "--dry-run")
    assert rc == 0, err
    assert "batch/run-0001/log-copy.txt (hard link to batch/run-0000/log.txt)" in out and not target.exists()
    rc, out, err, data = senv.cli("admin", "restore", "state", mid, "--target-state", str(target), "--json")
    assert rc == 0, err
    assert data["point_swarm_at_it"] == f"export SWARM_STATE_DIR={target}"
    assert tree_of(target) == before
    rc, out, err, _ = senv.cli("admin", "restore", "state", mid, "--target-state", str(target))
    assert rc == 8 and "not empty" in err
    rc, out, err, _ = senv.cli("admin", "restore", "state", mid, "--target-state", str(target), "--force")
    assert rc == 0 and f"export SWARM_STATE_DIR={target}" in out


def test_missing_state_directory(senv: StateEnv) -> None:
    import shutil

    shutil.rmtree(senv.state)
    rc, _, err, data = senv.cli("admin", "backup", "state", "--json")
    assert rc == 9 and data["error"] == "state-dir-missing" and str(senv.state) in data["message"]
    assert "SWARM_STATE_DIR" in err


@pytest.mark.parametrize("where", ["file", "inside", "contains", "symlink"])
def test_unsafe_restore_targets_are_refused(senv: StateEnv, where: str) -> None:
    mid = _backup(senv)
    target = {"file": senv.state / "cron" / "jobs.json", "inside": senv.state / "restored",
              "contains": senv.root, "symlink": senv.root / "link"}[where]
    if where == "symlink":
        (senv.root / "elsewhere").mkdir()
        target.symlink_to(senv.root / "elsewhere")
    before = tree_of(senv.root)
    rc, _, _, data = senv.cli("admin", "restore", "state", mid, "--target-state", str(target), "--json", "--force")
    assert rc == 8 and data["error"] == "unsafe-target", data
    assert tree_of(senv.root) == before  # nothing written


def test_damaged_pack_fails_naming_the_file_and_writes_nothing(senv: StateEnv) -> None:
    mid = _backup(senv)
    packs = sorted((senv.repo_dir / "data" / mid / "packs").glob("*.pack"))
    assert packs
    data_pack = packs[0]  # file data comes first; nodes are in the packs after it
    raw = bytearray(data_pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data_pack.write_bytes(bytes(raw))
    target = senv.root / "restored"
    rc, _, err, data = senv.cli("admin", "restore", "state", mid, "--target-state", str(target), "--json")
    assert rc == 5, err
    assert data_pack.name in data["message"] and ("big.bin" in data["message"] or "batch/" in data["message"])
    assert not target.exists()
    assert not [p for p in senv.root.iterdir() if p.name.startswith(".restored.")]


def _progress_then_kill(proc: subprocess.Popen[str], stage_word: str) -> None:
    """Kill -9 ``proc`` once its JSON progress shows ``stage_word`` with bytes done."""
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    for line in proc.stderr:
        if time.monotonic() > deadline:
            break
        try:
            p = json.loads(line).get("progress") or {}
        except ValueError:
            continue
        if stage_word in str(p.get("stage")) and (p.get("done_bytes") or 0) > 0:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return
    proc.kill()
    raise AssertionError(f"never saw the {stage_word!r} stage with progress (rc {proc.wait()})")


def test_kill_during_backup_leaves_no_snapshot(senv: StateEnv) -> None:
    for i in range(4):
        (senv.state / f"large-{i}.bin").write_bytes(os.urandom(8 << 20))  # ~2 s of chunking each
    proc = senv.popen("admin", "backup", "state", "--json", SWARM_PROGRESS_INTERVAL="0.05")
    _progress_then_kill(proc, "reading")
    assert proc.returncode == -signal.SIGKILL
    repo = senv.repo()
    assert state_snapshots(repo) == []  # nothing listed
    assert list((senv.repo_dir / "keys").glob("dek-*"))  # but it had begun writing (its data key)
    res = backup_state(repo, StateScope(senv.state))  # and a re-run works
    assert res.complete and [m.id for m in state_snapshots(repo)] == [res.manifest.id]


def test_kill_during_restore_leaves_no_half_restored_directory(senv: StateEnv) -> None:
    for i in range(12):
        (senv.state / f"large-{i}.bin").write_bytes(os.urandom(3 << 20))
    repo = senv.repo()
    mid = backup_state(repo, StateScope(senv.state)).manifest.id
    target = senv.root / "restored"
    proc = senv.popen("admin", "restore", "state", mid, "--target-state", str(target), "--json", "--jobs", "1",
                      SWARM_PROGRESS_INTERVAL="0.02")
    _progress_then_kill(proc, "restoring")
    assert not target.exists()  # never half-restored
    staging = [p for p in senv.root.iterdir() if p.name.startswith(".restored.swarm-restore-")]
    assert staging  # what it wrote is beside it, hidden
    rc, _, err, data = senv.cli("admin", "restore", "state", mid, "--target-state", str(target), "--json")
    assert rc == 0, err
    assert sorted(data["swept"]) == sorted(str(p) for p in staging)
    assert tree_of(target) == tree_of(senv.state)


def test_unreadable_files_as_an_unprivileged_user(services_dir: Path) -> None:
    """Run as the server user (root reads everything): unreadable files and directories are
    reported, the rest backed up, the snapshot committed but marked incomplete, exit 1."""
    import pwd

    from swarm.crypto.keys import create_key_file
    from swarm.services.wal.server_access import server_access_for
    from swarm.sources.postgres.cluster import hand_to_server_user, server_user_name

    assert os.geteuid() == 0, "this test drops privileges to the server user; it runs as root in CI"
    user = pwd.getpwnam(server_user_name())
    base = Path(tempfile.mkdtemp(prefix="state-unpriv-", dir=services_dir))
    base.chmod(0o755)
    key = base / "root-keys" / "repo.key"
    create_key_file(key)
    repo_root = base / "repo-root"
    repo_root.mkdir()
    hand_to_server_user(repo_root)
    home = base / "home"
    home.mkdir()
    hand_to_server_user(home)
    state = base / "state"
    (state / "cron").mkdir(parents=True)
    (state / "cron" / "jobs.json").write_text('{"jobs": []}')
    (state / "batch" / "run-1").mkdir(parents=True)
    (state / "batch" / "run-1" / "status.json").write_text('{"status": "done"}')
    (state / "batch" / "run-1" / "private.json").write_text('{"x": 1}')
    (state / "batch" / "closed").mkdir()
    (state / "batch" / "closed" / "inside.json").write_text("{}")
    for p in [state, *state.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    (state / "batch" / "run-1" / "private.json").chmod(0o600)  # root's; the server user cannot read it
    (state / "batch" / "closed").chmod(0o700)
    # the launcher the server user runs swarm with; this user plays an operator, so it gets its own key copy
    from swarm.sources.postgres.cluster import write_for_server_user

    repo_url = f"file://{repo_root / 'repo'}"
    access = server_access_for(repo_url, b"{}", home)  # (no WAL here: the push key is not used)
    write_for_server_user(home / "operator.key", key.read_bytes())
    write_for_server_user(access.config, f'[repository]\nurl = "{repo_url}"\nkey = "file://{home / "operator.key"}"\n'
                          .encode())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "SWARM_HOME": str(home),
           "SWARM_STATE_DIR": str(state)}
    r = subprocess.run([str(access.launcher), "--config", str(access.config), "admin", "backup", "state", "--json"],
                       capture_output=True, text=True, env=env, user=user.pw_uid, group=user.pw_gid,
                       extra_groups=[], cwd="/", timeout=120, check=False)
    assert r.returncode == 1, r.stderr
    d = json.loads(r.stdout)
    assert d["complete"] is False
    unreadable = {u["path"]: u["error"] for u in d["unreadable"]}
    assert set(unreadable) == {"batch/run-1/private.json", "batch/closed"}
    assert all("ermission" in e for e in unreadable.values())
    assert d["files"] == 2  # the rest is backed up
    assert "incomplete" in r.stderr



def test_verify_reads_the_blocks_a_snapshot_shares_with_an_earlier_one(senv: StateEnv) -> None:
    """A second snapshot stores almost nothing: it reads the first's blocks. Damage in those is the
    second's damage too, and `verify` of the second reads them (it used to check only its own packs)."""
    first = _backup(senv)
    second = _backup(senv)
    for snapshot in (first, second):  # undamaged: both verify
        rc, _, _, data = senv.cli("admin", "verify", snapshot, "--json")
        assert rc == 0 and data["ok"], data
    pack = sorted((senv.repo_dir / "data" / first / "packs").glob("*.pack"))[0]
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))
    rc, _, _, data = senv.cli("admin", "verify", second, "--json")
    assert rc == 1 and not data["ok"], data
    assert any(pack.name in p["where"] + p["problem"] or "big.bin" in p["where"] or "batch/" in p["where"]
               for p in data["problems"]), data["problems"]
