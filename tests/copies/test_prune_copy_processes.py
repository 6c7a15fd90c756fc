"""Prune on a copy while `repo copy` runs, with real processes: `swarm admin repo copy` holds the
copy's shared lock while it writes (it is stopped with SIGSTOP while it holds it), so
`swarm --repo far admin prune` refuses at once (exit 6, naming the copy) and with --wait waits for
the copy to finish; the copy's own retention policy is the one applied."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import tomli_w

from swarm.config import load_settings
from swarm.crypto.keys import create_key_file
from swarm.repo import Repository
from swarm.services.context import open_repository
from swarm.storage.factory import open_store

SWARM = [sys.executable, "-m", "swarm.cli.main"]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(home)
    return env


def test_prune_on_the_copy_waits_for_a_running_copy_process(tmp_path: Path) -> None:
    key = create_key_file(tmp_path / "keys" / "repo.key")
    far_key = create_key_file(tmp_path / "keys" / "far.key")
    primary, far = tmp_path / "primary", tmp_path / "far"
    cfg = tmp_path / "swarm.toml"
    cfg.write_text(tomli_w.dumps({
        "repository": {"url": f"file://{primary}", "key": f"file://{key.path}",
                       "copies": [{"name": "far", "url": f"file://{far}", "key": f"file://{far_key.path}",
                                   "retention": {"pg-logical": {"keep_last": 1}}}]}}))
    repo = Repository.init(open_store(f"file://{primary}"), key)
    ids = []
    for n in range(3):  # the last one large enough that the copy writes for a while
        w = repo.begin_backup("pg-logical")
        w.put_object("pgdump/toc.dat", [b"toc %d" % n])
        if n == 2:
            w.put_object("tables/0000-p000.copy", [os.urandom(1 << 20) for _ in range(48)])
        ids.append(w.commit({"engine": "postgres"}).id)
    env = _env(tmp_path / "home")
    copier = subprocess.Popen([*SWARM, "--config", str(cfg), "admin", "repo", "copy", "--to", "far", "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    locks = far / "locks" / "repository"
    try:
        deadline = time.monotonic() + 120
        while not (locks.is_dir() and any(p.name.startswith("shared-") for p in locks.iterdir())):
            assert copier.poll() is None, f"the copy ended before it was seen holding the copy's lock: " \
                                          f"{copier.communicate()}"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        copier.send_signal(signal.SIGSTOP)  # the copy holds the copy's shared lock and is writing
        assert any(p.name.startswith("shared-") for p in locks.iterdir())
        # prune of the copy refuses at once, naming the running copy
        r = subprocess.run([*SWARM, "--config", str(cfg), "--repo", "far", "admin", "prune", "--json"],
                           capture_output=True, text=True, env=env, timeout=120, check=False)
        assert r.returncode == 6, r.stdout + r.stderr
        err = json.loads(r.stdout)
        assert err["error"] == "lock-held" and "repo copy" in json.dumps(err)
        # with --wait it waits for the copy, then prunes the copy with the copy's own policy
        pruner = subprocess.Popen([*SWARM, "--config", str(cfg), "--repo", "far", "admin", "prune", "--json",
                                   "--wait", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=env)
        time.sleep(3)
        assert pruner.poll() is None  # still waiting for the stopped copy
        copier.send_signal(signal.SIGCONT)
        out, err_text = copier.communicate(timeout=120)
        assert copier.returncode == 0, out + err_text
        assert set(json.loads(out)["copies"][0]["result"]["copied_backups"]) == set(ids)
        pout, perr = pruner.communicate(timeout=120)
        assert pruner.returncode == 0, pout + perr
    finally:
        if copier.poll() is None:
            copier.send_signal(signal.SIGCONT)
            copier.kill()
    pruned = json.loads(pout)
    assert pruned["policy"]["kinds"]["pg-logical"] == {"keep_last": 1}  # the copy's own policy
    assert sorted(pruned["removed_backups"]) == sorted(ids[:2])
    # what the copy keeps is whole; the primary keeps all three under its own (top-level) policy
    copy = open_repository(load_settings(cfg, copy="far"))
    assert [m.id for m in copy.list_backups()] == [ids[2]]
    for m in copy.list_backups():
        for e in m.objects:
            copy.check_object(m, e)
    assert [m.id for m in repo.list_backups()] == ids
