"""`swarm dev up --kms`: moto's server started, a KMS key made in us-east-1 and used as the
repository's key (`--json` gives `key_url` holding the key id, not an alias, and `kms_endpoint`);
a second `up` keeps the key; `dev down` stops the server; moto forgot the key, so a later
`up --kms` refuses the repository sealed with it and says how to start again."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from swarm.devstack.kms import DEV_CREDENTIALS, MotoServer

SWARM = [sys.executable, "-m", "swarm.cli.main"]


def swarm(home: Path, *args: str, aws: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG", "AWS_"))}
    env["SWARM_HOME"] = str(home)
    if aws:
        env.update(DEV_CREDENTIALS)
    return subprocess.run([*SWARM, *args], capture_output=True, text=True, env=env, timeout=300, check=False)


def test_dev_up_kms_uses_a_kms_key_and_down_stops_it(tmp_path: Path) -> None:
    home = tmp_path / ".swarm"
    try:
        r = swarm(home, "dev", "up", "--kms", "--json", aws=False)  # up needs no AWS_* of its own
        assert r.returncode == 0, r.stdout + r.stderr
        info = json.loads(r.stdout)
        assert info["check_config"]["ok"], info["check_config"]
        endpoint = info["kms_endpoint"]
        m = re.fullmatch(r"awskms:///([0-9a-f-]{36})\?region=us-east-1&endpoint=(.+)", info["key_url"])
        assert m and m.group(2) == endpoint, info["key_url"]
        key_id = m.group(1)
        moto = MotoServer.load(home / "dev" / "moto")
        assert moto.is_running() and moto.endpoint == endpoint
        arn = moto.client().describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
        assert "us-east-1" in arn

        st = json.loads(swarm(home, "admin", "keys", "status", "--json").stdout)
        assert st["primary"] == "awskms:" + arn and st["configured_key_url"] == info["key_url"]
        r = swarm(home, "admin", "backup", "postgres", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        backup_id = json.loads(r.stdout)["id"]
        assert swarm(home, "admin", "verify", backup_id).returncode == 0

        again = json.loads(swarm(home, "dev", "up", "--json").stdout)  # the stack stays on its KMS key
        assert again["key_url"] == info["key_url"] and again["kms_endpoint"] == endpoint
        dev = json.loads(swarm(home, "dev", "status", "--json").stdout)
        assert dev["kms"]["running"] and dev["kms"]["key_id"] == key_id

        down = json.loads(swarm(home, "dev", "down", "--json").stdout)
        assert "kms" in down["stopped"]
        assert not moto.is_running()
        assert not json.loads(swarm(home, "dev", "status", "--json").stdout)["kms"]["running"]

        r = swarm(home, "dev", "up", "--kms", "--json")  # moto forgot the key: refused, with the way out
        assert r.returncode == 3, r.stdout + r.stderr
        err = json.loads(r.stdout or r.stderr)
        assert err["error"] == "config" and arn in err["message"]
        assert "swarm dev down --purge" in err["hint"]
    finally:
        swarm(home, "dev", "down", "--purge")
    assert not MotoServer.load(home / "dev" / "moto").is_running()
