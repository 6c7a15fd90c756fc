"""Fixtures for ``swarm admin secrets check``: a configured deployment (key, file:// repository,
state directory, the secrets in the environment and in a file) driven through the real CLI as a
subprocess, so what is asserted absent from stdout and stderr is everything the command printed.
Secrets Manager is moto's server (tests/objects/conftest.py), reached over HTTP by boto3."""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from swarm.crypto.keys import create_key_file
from tests.objects.conftest import moto_endpoint  # noqa: F401  (the session's moto server)

SWARM = [sys.executable, "-m", "swarm.cli.main"]
REGION = "us-east-1"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}


def strong() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class Deployment:
    root: Path
    state: Path
    repo_dir: Path
    key: Path
    values: dict[str, str]  # the secrets' values, by environment variable (or "file")
    secret_file: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    repository: bool = True  # False: no SWARM_BACKUP_REPO (the newest snapshot is then not scanned)

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def config(self) -> Path:
        return self.home / "swarm.toml"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "PG", "AWS_"))}
        env.update(SWARM_HOME=str(self.home), SWARM_KEY_URL=f"file://{self.key}", SWARM_STATE_DIR=str(self.state),
                   SWARM_PROGRESS_INTERVAL="0")
        if self.repository:
            env["SWARM_BACKUP_REPO"] = f"file://{self.repo_dir}"
        env.update({k: v for k, v in self.values.items() if k.startswith("SWARM_")})
        env.update(self.extra_env)
        return env

    def write_config(self, secrets_table: str) -> None:
        self.config.write_text(secrets_table)

    def cli(self, *args: str, timeout: float = 120) -> tuple[int, str, str, Any]:
        r = subprocess.run([*SWARM, *args], capture_output=True, text=True, env=self.env, timeout=timeout,
                           check=False)
        data = json.loads(r.stdout) if "--json" in args and r.stdout.strip() else None
        return r.returncode, r.stdout, r.stderr, data

    def check(self, *args: str) -> tuple[int, str, str, Any]:
        """``secrets check --json``, asserting no secret value appears in anything it printed."""
        code, out, err, data = self.cli("admin", "secrets", "check", "--json", *args)
        for value in self.values.values():
            if len(value.strip()) < 8:
                continue  # "" and "   " are in any output
            assert value not in out and value not in err, "a secret value was printed"
        return code, out, err, data


def make_state(d: Path) -> None:
    (d / "cron").mkdir(parents=True)
    (d / "cron" / "jobs.json").write_text(json.dumps({"version": 1, "jobs": [
        {"id": f"job-{i:03d}", "pipeline": f"p{i}", "schedule": "0 * * * *"} for i in range(10)]}))
    for r in range(3):
        run = d / "batch" / f"run-{r:04d}"
        run.mkdir(parents=True)
        (run / "status.json").write_text(json.dumps({"run_id": r, "status": "done", "digest": secrets.token_hex(32)}))
        (run / "input.jsonl").write_text("".join(json.dumps({"i": i, "prompt": f"item {i}"}) + "\n"
                                                 for i in range(300)))


@pytest.fixture
def bare(tmp_path: Path) -> Deployment:
    """A deployment with no backup repository configured (for the checks of the secrets alone)."""
    root = tmp_path / "dep"
    state = root / "state"
    make_state(state)
    (root / "home").mkdir(parents=True)
    key = root / "keys" / "repo.key"
    create_key_file(key)
    secret_file = root / "run-secrets" / "oidc"
    secret_file.parent.mkdir()
    oidc = strong()
    secret_file.write_text(oidc + "\n")
    secret_file.chmod(0o600)
    values = {"SWARM_JWT_SECRET": strong(), "SWARM_LLM_API_KEY": strong(), "file": oidc}
    dep = Deployment(root, state, root / "repo", key, values, secret_file, repository=False)
    dep.write_config(f'[secrets]\noidc_client_secret = "file:{secret_file}"\n')
    return dep


@pytest.fixture
def deployment(bare: Deployment) -> Deployment:
    """A deployment with a file:// repository holding one clean state snapshot."""
    bare.repository = True
    code, _, err, _ = bare.cli("admin", "backup", "state")
    assert code == 0, err
    return bare


def sm_client(endpoint: str) -> Any:
    return boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing")
