"""moto's server as a KMS for the dev stack (``swarm dev up --kms``) and the tests.

``MotoServer`` runs ``python -m moto.server`` as its own process on a free loopback port, its
pid and port kept in ``<base>/moto.json`` so a later command finds it (``is_running`` checks the
pid's command line, as for SeaweedFS) and ``stop`` ends only that process. boto3 reaches it over
HTTP exactly as it reaches AWS. moto keeps everything in memory and checks no credentials: a
stopped server has forgotten every key it held (``docs/keys.md``: the dev stack keeps its key
file as a second key for that reason). Never a production KMS.

``DEV_REGION`` and ``DEV_CREDENTIALS``: the region the dev key is made in and the (arbitrary)
credentials boto3 signs with; moto accepts any.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm.errors import UnavailableError
from swarm.sources.netutil import free_port, port_open

DEV_REGION = "us-east-1"
DEV_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "swarm-dev", "AWS_SECRET_ACCESS_KEY": "swarm-dev"}


@dataclass
class MotoServer:
    base: Path
    port: int = 0
    pid: int | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.base / "moto.json"

    @property
    def log_file(self) -> Path:
        return self.base / "moto.log"

    def save(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"port": self.port, "pid": self.pid}))
        tmp.replace(self.state_file)

    @classmethod
    def load(cls, base: Path) -> MotoServer:
        """The server recorded under ``base`` (running or not), or a new, unstarted one."""
        try:
            d = json.loads((base / "moto.json").read_text())
            return cls(base, int(d.get("port") or 0), d.get("pid"))
        except (OSError, ValueError):
            return cls(base)

    def is_running(self) -> bool:
        if not self.pid:
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"moto.server" in cmdline and f"\0{self.port}".encode() in cmdline

    def start(self, timeout: float = 30) -> None:
        """Start (or find running) and wait until it answers a KMS request. UnavailableError if it
        exits or does not answer in ``timeout`` seconds."""
        if self.is_running():
            return
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.port = free_port()
        log = open(self.log_file, "ab")
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.base,
                                start_new_session=True)
        log.close()
        self.pid = proc.pid
        self.save()
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise UnavailableError(f"moto's server exited with code {proc.returncode} during start-up",
                                       hint=f"Read {self.log_file}.", transient=False)
            if port_open("127.0.0.1", self.port):
                try:
                    self.client().list_keys(Limit=1)
                    return
                except Exception as exc:  # not ready yet: try again until the deadline
                    last = str(exc)
            time.sleep(0.1)
        self.stop()
        raise UnavailableError(f"moto's server did not answer within {timeout:.0f} s ({last})",
                               hint=f"Read {self.log_file}.")

    def client(self, region: str = DEV_REGION) -> Any:
        """A boto3 KMS client for this server (the dev credentials)."""
        import boto3

        return boto3.client("kms", region_name=region, endpoint_url=self.endpoint,
                            aws_access_key_id=DEV_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=DEV_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])

    def create_key(self, description: str = "swarm dev stack key-encryption key",
                   region: str = DEV_REGION) -> dict[str, Any]:
        """A new symmetric KMS key in ``region``: its ``KeyMetadata`` (``KeyId``, ``Arn``, ...)."""
        return dict(self.client(region).create_key(Description=description)["KeyMetadata"])

    def key_url(self, key_id: str, region: str = DEV_REGION) -> str:
        """The ``awskms:///`` key URL of ``key_id`` (a key id, never an alias) on this server."""
        return f"awskms:///{key_id}?region={region}&endpoint={self.endpoint}"

    def key_exists(self, key_id: str, region: str = DEV_REGION) -> bool:
        """Whether this server holds ``key_id`` (a restarted moto holds none of the earlier ones)."""
        if not self.is_running():
            return False
        try:
            self.client(region).describe_key(KeyId=key_id)
            return True
        except Exception:  # NotFoundException, or the server went away
            return False

    def stop(self, grace: float = 5) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; only the recorded process (and its group)."""
        if self.pid and self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.is_running():
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(self.pid, os.WNOHANG)
                time.sleep(0.1)
            if self.is_running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(self.pid, 0)
        self.pid = None
        if self.base.exists():
            self.save()
