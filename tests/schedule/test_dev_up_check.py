"""`swarm dev up` ends with `check config`: a fresh embedded stack proves its archiving at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SWARM = [sys.executable, "-m", "swarm.cli.main"]


def test_dev_up_ends_with_a_passing_check_config(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG"))}
    env["SWARM_HOME"] = str(tmp_path / "home")
    try:
        r = subprocess.run([*SWARM, "dev", "up", "--json"], capture_output=True, text=True, env=env, timeout=300,
                           check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        checked = json.loads(r.stdout)["check_config"]
        assert checked["ok"] is True
        steps = {s["name"]: s["status"] for s in checked["steps"]}
        assert steps["repository"] == steps["archive-command"] == steps["wal-switch"] == steps["dr-bucket"] == "ok"
    finally:
        subprocess.run([*SWARM, "dev", "down", "--purge"], capture_output=True, env=env, timeout=120, check=False)
