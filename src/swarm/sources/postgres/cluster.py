"""Local PostgreSQL clusters from the system binaries: initdb, start, stop, destroy.

Used by the embedded stack, by ``verify --restore-test`` (a throwaway cluster) and by the
tests. Layout of a cluster directory ``base``::

    base/data/        PGDATA
    base/server.log   the server log

PostgreSQL refuses to run as root. When we run as root the server runs as the ``postgres``
OS user (Debian's package creates it): ``base`` is then owned by that user. If ``postgres``
cannot reach ``base`` (``/root`` is mode 0700), the cluster lives in
``/var/tmp/swarm-pg/<hash>`` and ``base`` is a symlink to it; ``destroy`` removes both.

A cluster may also be opened on an existing data directory anywhere (``pgdata=``, e.g. one
a physical restore wrote); its log is then ``<pgdata>.log`` beside it.

Files the server user must read (the key and config its ``archive_command`` /
``restore_command`` use) go into ``server_user_dir(tag)``: a 0700 directory owned by that
user under ``/var/tmp/swarm-pg`` when we are root, or under ``$SWARM_HOME`` otherwise.

The server listens on 127.0.0.1 only (no unix socket), trusts local connections (a dev and
scratch setup; production clusters are reached by URL, not started by us).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from swarm.errors import ConfigError, SourceError, UnavailableError
from swarm.procs import pid_alive
from swarm.sources.netutil import free_port, port_open
from swarm.sources.postgres.binaries import find_bindir

SERVER_USER = "postgres"
RELOCATE_ROOT = Path("/var/tmp/swarm-pg")


def running_as_root() -> bool:
    return os.geteuid() == 0


def _server_user() -> pwd.struct_passwd | None:
    if not running_as_root():
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise ConfigError("running as root, and there is no 'postgres' user to run PostgreSQL as",
                          hint="Install Debian's postgresql-15 (it creates the user), or run swarm as a "
                               "normal user.") from exc


def _reachable_by(user: pwd.struct_passwd, path: Path) -> bool:
    r = subprocess.run(["test", "-x", str(path)], user=user.pw_uid, group=user.pw_gid, check=False,
                       capture_output=True)
    return r.returncode == 0


@dataclass
class LocalCluster:
    base: Path
    port: int = 0
    bindir: Path | None = None
    superuser: str = "swarm"
    host: str = "127.0.0.1"
    pgdata: Path | None = None

    def __post_init__(self) -> None:
        self.base = Path(self.base)
        if self.bindir is None:
            self.bindir = find_bindir(need="initdb")
        if not self.port:
            self.port = free_port()

    # ---- paths and processes ---------------------------------------------------------------
    @property
    def datadir(self) -> Path:
        """PGDATA, with symlinks resolved (the server user may not be able to follow ``base``)."""
        if self.pgdata is not None:
            return Path(self.pgdata).resolve()
        return self.base.resolve() / "data"

    @property
    def logfile(self) -> Path:
        if self.pgdata is not None:
            d = Path(self.pgdata).resolve()
            return d.parent / f"{d.name}.log"
        return self.base.resolve() / "server.log"

    def _bin(self, name: str) -> str:
        assert self.bindir is not None
        return str(self.bindir / name)

    def _run(self, args: list[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        user = _server_user()
        kw: dict[str, object] = {}
        if user is not None:
            kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C.UTF-8"
        r = subprocess.run(args, capture_output=True, text=True, check=False, timeout=timeout, env=env,
                           cwd="/", start_new_session=True, **kw)  # type: ignore[call-overload]
        if check and r.returncode != 0:
            raise SourceError(f"{Path(args[0]).name} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}",
                              hint=f"See {self.logfile} for the server log.")
        return r  # type: ignore[no-any-return]

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.superuser}@{self.host}:{self.port}/{dbname}"

    # ---- lifecycle -------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def _prepare_base(self) -> None:
        user = _server_user()
        self.base.parent.mkdir(parents=True, exist_ok=True)
        if user is None:
            self.base.mkdir(parents=True, exist_ok=True)
            return
        if not self.base.exists() and not _reachable_by(user, self.base.parent):
            RELOCATE_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
            os.chmod(RELOCATE_ROOT, 0o711)
            real = RELOCATE_ROOT / hashlib.sha256(str(self.base.absolute()).encode()).hexdigest()[:16]
            if real.exists():
                shutil.rmtree(real)
            real.mkdir(mode=0o700)
            os.chown(real, user.pw_uid, user.pw_gid)
            self.base.symlink_to(real)
            return
        self.base.mkdir(parents=True, exist_ok=True)
        os.chown(self.base, user.pw_uid, user.pw_gid)
        os.chmod(self.base, 0o700)

    def init(self, *, conf: dict[str, str] | None = None, fast: bool = False) -> None:
        """initdb a new cluster; ``fast`` turns fsync off (throwaway clusters only)."""
        if self.exists():
            raise ConfigError(f"a cluster already exists in {self.datadir}")
        self._prepare_base()
        self._run([self._bin("initdb"), "-D", str(self.datadir), "-U", self.superuser, "--auth=trust",
                   "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"], timeout=300)
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port), "unix_socket_directories": "''",
            "wal_level": "replica", "max_wal_senders": "10", "max_replication_slots": "10",
            "shared_buffers": "128MB", "max_connections": "100",
        }
        if fast:
            settings.update({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
        settings.update(conf or {})
        self.write_conf(settings)

    def write_conf(self, settings: dict[str, str]) -> None:
        """Append settings to postgresql.conf (the last occurrence wins)."""
        conf = self.datadir / "postgresql.conf"
        with open(conf, "a") as fh:
            fh.write("\n# written by swarm\n")
            for k, v in settings.items():
                fh.write(f"{k} = {v}\n")

    def current_conf(self) -> dict[str, str]:
        """Settings in postgresql.conf as written (last occurrence wins; no include files)."""
        out: dict[str, str] = {}
        with contextlib.suppress(OSError):
            for raw in (self.datadir / "postgresql.conf").read_text().splitlines():
                line = raw.strip()
                if line.startswith("#") or "=" not in line:
                    continue
                k, v = line.split("=", 1)
                v = v.strip()
                if not v.startswith("'"):
                    v = v.split("#", 1)[0].strip()
                out[k.strip()] = v
        return out

    def ensure_conf(self, settings: dict[str, str]) -> bool:
        """Append the settings that differ from postgresql.conf; True if any did (a restart may be due)."""
        cur = self.current_conf()
        diff = {k: v for k, v in settings.items() if cur.get(k) != v}
        if diff:
            self.write_conf(diff)
        return bool(diff)

    def restart(self, timeout: float = 60) -> None:
        self.stop(timeout=timeout)
        self.start(timeout=timeout)

    def set_port(self, port: int) -> None:
        self.port = port
        self.write_conf({"port": str(port)})

    def is_running(self) -> bool:
        if not self.exists():
            return False
        return self._run([self._bin("pg_ctl"), "-D", str(self.datadir), "status"], check=False).returncode == 0

    def start(self, timeout: float = 60) -> None:
        if self.is_running():
            return
        if port_open(self.host, self.port):
            raise UnavailableError(f"port {self.port} is already in use; cannot start PostgreSQL there",
                                   hint="Stop what listens there, or remove the cluster's port setting.",
                                   transient=False)
        if self.pgdata is not None:
            self.logfile.touch()
            hand_to_server_user(self.logfile)
        r = self._run([self._bin("pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                       "-t", str(int(timeout)), "-o", f"-p {self.port}", "start"], check=False, timeout=timeout + 10)
        if r.returncode != 0:
            tail = ""
            with contextlib.suppress(OSError):
                tail = self.logfile.read_text()[-1500:]
            raise UnavailableError(f"PostgreSQL in {self.datadir} did not start: {r.stderr.strip()}\n{tail}",
                                   hint=f"Read {self.logfile}.", transient=False)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the server accepts connections; fail at once (SourceError, with the log's
        errors) if its postmaster is gone, instead of polling a dead server until ``timeout``."""
        deadline = time.monotonic() + timeout
        pid = self.pid()
        while time.monotonic() < deadline:
            r = subprocess.run([self._bin("pg_isready"), "-h", self.host, "-p", str(self.port), "-U", self.superuser,
                                "-d", "postgres", "-q"],
                               check=False, capture_output=True)
            if r.returncode == 0:
                return
            if not self._alive(pid):
                raise SourceError(f"PostgreSQL in {self.datadir} stopped while starting: {self.log_errors()}",
                                  hint=f"Read {self.logfile}.")
            time.sleep(0.1)
        raise UnavailableError(f"PostgreSQL on port {self.port} did not accept connections in {timeout:.0f} s",
                               hint=f"Read {self.logfile}.")

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        if not self.is_running():
            return
        self._run([self._bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", str(int(timeout)),
                   "stop"], check=False, timeout=timeout + 10)

    def _alive(self, pid: int | None) -> bool:
        """Is the postmaster ``pid`` (read when waiting began) still running here?"""
        pid = pid or self.pid()
        if pid is None:
            return (self.datadir / "postmaster.pid").exists()
        return pid_alive(pid)

    def log_errors(self, n: int = 3) -> str:
        """The last FATAL / ERROR / PANIC lines of the server log, or a note that there are none."""
        try:
            lines = [ln for ln in self.logfile.read_text(errors="replace").splitlines()
                     if any(w in ln for w in ("FATAL", "ERROR", "PANIC"))]
        except OSError:
            return "(no server log)"
        return "; ".join(lines[-n:]) or "(no error in the server log)"

    def pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def destroy(self) -> None:
        """Stop (immediately) and delete the cluster and, if relocated, its real directory."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        if self.pgdata is not None:  # a cluster opened on its data directory: remove only that and its log
            shutil.rmtree(self.datadir, ignore_errors=True)
            self.logfile.unlink(missing_ok=True)
            return
        real = self.base.resolve() if self.base.is_symlink() else None
        if self.base.is_symlink():
            self.base.unlink()
        else:
            shutil.rmtree(self.base, ignore_errors=True)
        if real is not None:
            shutil.rmtree(real, ignore_errors=True)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run SQL with psql (used for set-up; services use psycopg)."""
        r = subprocess.run([self._bin("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", self.url(dbname),
                            "-c", sql], capture_output=True, text=True, check=False)
        if r.returncode != 0:
            raise SourceError(f"psql failed: {r.stderr.strip()}")
        return r.stdout.strip()


def server_user_name() -> str:
    """The OS user the PostgreSQL servers we start run as."""
    user = _server_user()
    return user.pw_name if user else pwd.getpwuid(os.geteuid()).pw_name


def hand_to_server_user(path: Path, *, recursive: bool = False) -> None:
    """chown ``path`` (and, if ``recursive``, all below it) to the server user when we are root."""
    user = _server_user()
    if user is None:
        return
    os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    if recursive and path.is_dir() and not path.is_symlink():
        for dirpath, dirs, files in os.walk(path):
            for n in dirs + files:
                os.chown(os.path.join(dirpath, n), user.pw_uid, user.pw_gid, follow_symlinks=False)


def server_user_can_reach(path: Path) -> bool:
    """Can the server user traverse ``path`` (a directory)? Always true when we are not root."""
    user = _server_user()
    return True if user is None else _reachable_by(user, path)


def first_unreachable_by_server_user(path: Path) -> Path | None:
    """The first directory on the way to ``path`` (``/`` first) that the server user may not
    enter, or None when it reaches ``path``. Always None when we are not root."""
    user = _server_user()
    if user is None or _reachable_by(user, path):
        return None
    path = Path(path).absolute()
    for d in [*reversed(path.parents), path]:
        if not _reachable_by(user, d):
            return d
    return path


def server_user_dir(tag: str, home: Path) -> Path:
    """A 0700 directory owned by the server user that it can reach, for its own config and key copy.

    As root: ``/var/tmp/swarm-pg/access-<tag>`` (``/root`` is closed to other users). Otherwise
    ``<home>/server-access/<tag>`` (the server runs as us and reads our files).
    """
    user = _server_user()
    if user is None:
        d = home / "server-access" / tag
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d
    RELOCATE_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
    os.chmod(RELOCATE_ROOT, 0o711)
    d = RELOCATE_ROOT / f"access-{tag}"
    d.mkdir(mode=0o700, exist_ok=True)
    os.chmod(d, 0o700)
    os.chown(d, user.pw_uid, user.pw_gid)
    return d


def write_for_server_user(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``path`` atomically with ``mode``, owned by the server user.

    The directory usually belongs to the server user, so it may hold anything that user put
    there (a symlink named like our temporary file, or like ``path`` itself, pointing at a file
    of root's). So every step works on the directory's handle and never follows a link: a fresh
    random temporary name created with ``O_EXCL | O_NOFOLLOW``, ownership and mode set on the open
    file, then ``rename`` (which replaces a link at ``path`` instead of writing through it). A
    crash leaves at most a ``.tmp-*`` file in that directory.
    """
    import secrets

    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        tmp = f".tmp-{path.name}-{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                user = _server_user()
                if user is not None:
                    os.fchown(fh.fileno(), user.pw_uid, user.pw_gid)
                os.fsync(fh.fileno())
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
    finally:
        os.close(dfd)


def run_as_server_user_check(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a short command as the server user (used to prove archive/restore commands work for it)."""
    user = _server_user()
    kw: dict[str, object] = {}
    if user is not None:
        kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False, timeout=60,  # type: ignore[call-overload, no-any-return]
                              cwd="/", **kw)
    except OSError as exc:  # not executable for that user
        return subprocess.CompletedProcess(args, 126, "", str(exc))


def server_user_write_problem(directory: Path) -> str | None:
    """Why the server user could not write into ``directory`` (it cannot enter a directory on the
    way, or may not write there), with the fix; None when it can, or when we are not root."""
    user = _server_user()
    if user is None:
        return None
    blocked = first_unreachable_by_server_user(directory)
    if blocked is not None:
        return (f"the {user.pw_name} user cannot enter {blocked} (on the way to {directory}): "
                f"`chmod o+x {blocked}`, or put the repository where it can")
    r = subprocess.run(["test", "-w", str(directory)], user=user.pw_uid, group=user.pw_gid, check=False,
                       capture_output=True)
    if r.returncode != 0:
        return (f"the {user.pw_name} user cannot write {directory}: `chown -R {user.pw_name} {directory}` "
                f"(or give it group write access)")
    return None
