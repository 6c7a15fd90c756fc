"""State snapshots end to end against the real repository (file:// and SeaweedFS): a faithful
round trip, dedup against the parent, the change cache, secrets and swarm's own files left out."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.model.state import TOOL_ENTRIES
from swarm.repo import Repository
from swarm.services.state.backup import StateScope, backup_state, state_snapshots
from swarm.services.state.restore import execute_restore_state, plan_restore_state
from tests.state.conftest import make_state_dir, tree_of
from tests.state.test_rules import AWS_EXAMPLE_ID, AWS_EXAMPLE_SECRET, JWT


def test_round_trip_keeps_everything_but_secrets_and_specials(repo: Repository, tmp_path: Path) -> None:
    state = tmp_path / "state"
    make_state_dir(state)
    os.mkfifo(state / "batch" / "control.fifo")
    (state / "deploy.pem").write_text("cert")
    (state / "secrets").mkdir()
    (state / "secrets" / "token").write_text("t0ps3cret")
    (state / "notes.txt").write_text(f"aws_secret_access_key = {AWS_EXAMPLE_SECRET}\n")
    (state / "batch" / "run-0002" / "env.json").write_text(json.dumps({"AWS_ACCESS_KEY_ID": AWS_EXAMPLE_ID}))
    (state / "session.txt").write_text(JWT)
    expected = tree_of(state)

    res = backup_state(repo, StateScope(state))
    assert res.complete
    src = res.manifest.source
    excluded = {e["path"]: e["reason"] for e in src["excluded"]}
    assert set(excluded) == {"deploy.pem", "secrets", "notes.txt", "batch/run-0002/env.json", "session.txt"}
    assert "AWS secret access key" in excluded["notes.txt"] and "JWT" in excluded["session.txt"]
    assert src["skipped"] == [{"path": "batch/control.fifo", "type": "fifo"}]
    manifest_text = json.dumps(res.to_dict()) + res.manifest.to_json().decode()
    for value in (AWS_EXAMPLE_SECRET, AWS_EXAMPLE_ID, JWT, "t0ps3cret"):
        assert value not in manifest_text

    target = tmp_path / "restored"
    plan = plan_restore_state(repo, res.manifest.id, target, source_dir=state)
    out = execute_restore_state(repo, plan)
    got = tree_of(target)
    for gone in ("batch/control.fifo", "deploy.pem", "secrets", "secrets/token", "notes.txt",
                 "batch/run-0002/env.json", "session.txt"):
        expected.pop(gone)
    assert got == expected  # types, modes, mtimes, contents, link targets, empty dir, hard links
    assert got["<hardlinks>"] == ("links", [["batch/run-0000/log.txt", "batch/run-0001/log-copy.txt"]])
    assert out.checksums_verified == out.files and out.hardlinks == 1
    assert (target / "batch" / "dangling").is_symlink()  # stored as a link, never followed
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".restored.")]  # no staging left beside


def test_unchanged_rerun_reads_nothing_and_stores_no_data(repo: Repository, tmp_path: Path) -> None:
    state = tmp_path / "state"
    make_state_dir(state)
    first = backup_state(repo, StateScope(state), recent_s=0)
    second = backup_state(repo, StateScope(state), recent_s=0, rehash_share=0)
    s = second.manifest.source
    assert s["parent"] == first.manifest.id
    assert s["cache"]["reused"] == s["files"] and s["cache"]["read"] == 0
    assert s["new_blocks"] == 0 and s["stored_new_bytes"] == 0  # nodes unchanged too: no pack at all
    assert second.manifest.refs is not None and second.manifest.refs.packs  # it references its parent's packs


def test_recently_modified_files_are_always_read(repo: Repository, tmp_path: Path) -> None:
    state = tmp_path / "state"
    make_state_dir(state)
    backup_state(repo, StateScope(state))  # default window: files written just now
    again = backup_state(repo, StateScope(state), rehash_share=0)
    assert again.manifest.source["cache"]["reused"] == 0  # written within seconds of the parent's start


def test_rehash_share_reads_cached_files(repo: Repository, tmp_path: Path) -> None:
    state = tmp_path / "state"
    make_state_dir(state)
    backup_state(repo, StateScope(state), recent_s=0)
    res = backup_state(repo, StateScope(state), recent_s=0, rehash_share=1.0)
    c = res.manifest.source["cache"]
    assert c["reused"] == 0 and c["rehashed"] == c["read"] > 0 and c["mismatched"] == []


def test_small_edit_in_a_large_file_stores_few_chunks(repo: Repository, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    data = random.Random(5).randbytes(2_000_000)
    (state / "log.bin").write_bytes(data)
    backup_state(repo, StateScope(state), recent_s=0)
    (state / "log.bin").write_bytes(data[:1_000_000] + b"INSERTED" + data[1_000_000:])
    res = backup_state(repo, StateScope(state), recent_s=0)
    s = res.manifest.source
    # content-defined: the cuts after the insertion fall where they did. Two new chunks, or three when
    # the edited chunk ended at the 256 KiB maximum (a forced cut moves with the insertion up to the
    # next content-defined one); the chunker is keyed per repository, so which happens varies by run
    assert 1 <= s["new_blocks"] <= 3
    assert s["new_bytes"] <= 3 * (256 << 10)
    (state / "log.bin").write_bytes(b"HEAD" * 256 + data)  # 1 KiB inserted at the start
    s = backup_state(repo, StateScope(state), recent_s=0).manifest.source
    assert s["new_blocks"] <= 3


def test_swarm_home_as_state_dir_leaves_the_tools_files_out(repo: Repository, tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_state_dir(home)
    for name in TOOL_ENTRIES:
        if name.endswith((".toml", ".log")):
            (home / name).write_text("x")
        else:
            (home / name).mkdir()
            (home / name / "inside").write_text("x")
    (home / "backups").mkdir()
    (home / "backups" / "config").write_text("repository")
    res = backup_state(repo, StateScope(home, TOOL_ENTRIES, ("backups",)))
    excluded = {e["path"] for e in res.manifest.source["excluded"]}
    assert excluded == {*TOOL_ENTRIES, "backups"}
    target = tmp_path / "out"
    execute_restore_state(repo, plan_restore_state(repo, res.manifest.id, target))
    assert (target / "cron" / "jobs.json").exists()
    assert not any((target / n).exists() for n in (*TOOL_ENTRIES, "backups"))


def test_a_file_that_keeps_changing_is_listed_as_inconsistent(repo: Repository, tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "steady.json").write_text("{}")
    busy = state / "busy.log"
    busy.write_bytes(b"x" * 48_000_000)  # each read takes long enough for the writer to run, even on a busy machine
    # another process appends all the time (a thread would mostly wait for the GIL)
    writer = subprocess.Popen([sys.executable, "-c", "import sys\nwith open(sys.argv[1], 'ab', buffering=0) as f:\n"
                               "    f.write(b'y'); print(flush=True)\n    while True: f.write(b'y')", str(busy)],
                              stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None
        writer.stdout.readline()  # it writes
        res = backup_state(repo, StateScope(state))
    finally:
        writer.kill()
        writer.wait()
    src = res.manifest.source
    assert not res.complete
    assert [i["path"] for i in src["inconsistent"]] == ["busy.log"]
    assert src["files"] == 2  # kept as last read, but flagged; never silently torn


def test_snapshots_are_listed_oldest_first(repo: Repository, tmp_path: Path) -> None:
    state = tmp_path / "state"
    make_state_dir(state)
    a = backup_state(repo, StateScope(state)).manifest.id
    b = backup_state(repo, StateScope(state)).manifest.id
    assert [m.id for m in state_snapshots(repo)] == [a, b]


@pytest.mark.parametrize("repo", ["file"], indirect=True)
def test_force_replaces_a_non_empty_target(repo: Repository, tmp_path: Path) -> None:
    from swarm.errors import TargetNotEmpty

    state = tmp_path / "state"
    make_state_dir(state)
    mid = backup_state(repo, StateScope(state)).manifest.id
    target = tmp_path / "t"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(TargetNotEmpty):
        plan_restore_state(repo, mid, target)
    assert (target / "old.txt").exists()
    execute_restore_state(repo, plan_restore_state(repo, mid, target, force=True))
    assert not (target / "old.txt").exists() and (target / "cron" / "jobs.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".t.")]
