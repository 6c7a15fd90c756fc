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

Who can connect (issue 10, finding 3). A cluster we ``init`` listens on 127.0.0.1 only (no
unix socket) and authenticates every connection, replication included, with
``scram-sha-256``: ``pg_hba.conf`` holds no ``trust`` line. The superuser's password is random
(``secrets.token_urlsafe(24)``), made at ``init`` and kept in two 0600 files:

    base/superuser.pass               owned by us (the user running swarm)
    base/data/swarm_superuser.pass    owned by the server user, inside PGDATA

``url()`` carries it (``postgresql://swarm:<password>@127.0.0.1:<port>/<db>``), so every
caller keeps working unchanged: psycopg, the dev stack's ``SWARM_DB_URL``, the tests'
``pg_cluster.url()``, and the client tools, which get it as ``PGPASSWORD`` (never on their
command line: ``psql`` here, ``conninfo_without_password`` / ``libpq_env`` in ``basebackup``).
We chose a password over a unix socket in a 0700 directory because every one of those callers
speaks TCP to ``127.0.0.1:<port>`` today, socket paths are limited to 107 bytes (pytest's and
``/root`` paths run longer), and a URL with a password is what production clusters give us too.
The copy inside PGDATA travels with physical copies of the cluster (``pg_basebackup``, so
backups and PITR restores of a cluster we created): a restored copy keeps the same roles and
password, and ``LocalCluster(pgdata=...)`` finds it there. It grants nothing the server user
(who owns PGDATA and can rewrite ``pg_hba.conf``) or a reader of the decrypted backup (who has
every row) does not already have.

A cluster opened on an existing data directory (``pgdata=``) brings that directory's
``pg_hba.conf`` and roles. Who decides its access is whoever owns the directory's lifetime:

* a restore for real (``restore physical --datadir``, ``services.postgres.pitr``) keeps the
  operator's own ``pg_hba.conf``: it becomes their server;
* a throwaway copy swarm starts only to check it (``verify --restore-test`` of a physical
  backup, ``services.postgres.physical_verify``) gets ``lock_down_hba``: no TCP listener at
  all, one unix socket in a 0700 directory owned by the server user, and ``pg_hba.conf`` =
  ``local all all trust`` only. Only the server user and root (who can already read its
  files) can reach that socket; we do not know the production roles' passwords, so a socket
  only we can enter is the one way in that needs none. ``socket_dir=`` makes ``url()`` /
  ``psql`` use it.

Throwaway clusters are stopped on every exit path by their callers (``try``/``finally``;
the command line turns SIGTERM into an exception). A kill -9 of swarm leaves one running:
``init(owner=...)`` writes ``owner.json`` (the owning process) into the cluster's real
directory, and ``services.workdirs`` stops (``stop_orphan``) and removes leftovers whose owner
is gone, here and under ``/var/tmp/swarm-pg``, at the start of the next verify, backup or
restore.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from swarm.errors import ConfigError, SourceError, UnavailableError
from swarm.procs import pid_alive
from swarm.sources.netutil import free_port, port_open
from swarm.sources.postgres.binaries import find_bindir

SERVER_USER = "postgres"
RELOCATE_ROOT = Path("/var/tmp/swarm-pg")
PASSWORD_FILE = "superuser.pass"  # in base: ours, 0600
DATADIR_PASSWORD_FILE = "swarm_superuser.pass"  # in PGDATA: the server user's, 0600; travels with copies
OWNER_FILE = "owner.json"  # in a throwaway cluster's real directory: which process owns it
AUTH_METHOD = "scram-sha-256"


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
    password: str | None = None  # None: read from the password files (see the module docstring)
    socket_dir: Path | None = None  # connect through this unix socket directory instead of TCP

    def __post_init__(self) -> None:
        self.base = Path(self.base)
        if self.socket_dir is not None:
            self.socket_dir = Path(self.socket_dir)
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

    def _password(self) -> str | None:
        """The superuser's password: given, else from ``base/superuser.pass`` (a cluster we
        created) or ``PGDATA/swarm_superuser.pass`` (also a physical copy of one); None when
        neither exists (a restored copy of a cluster we did not create)."""
        if self.password is None:
            candidates = [] if self.pgdata is not None else [self.base / PASSWORD_FILE]
            candidates.append(self.datadir / DATADIR_PASSWORD_FILE)
            for f in candidates:
                text = _read_private(f)
                if text:
                    self.password = text
                    break
        return self.password

    def _connect_host(self) -> str:
        return str(self.socket_dir) if self.socket_dir is not None else self.host

    def url(self, dbname: str = "postgres") -> str:
        """A URL for ``dbname`` as the superuser, with its password when we know it (see the
        module docstring); through ``socket_dir`` when set."""
        pw = self._password()
        auth = quote(self.superuser, safe="") + (f":{quote(pw, safe='')}" if pw else "")
        if self.socket_dir is not None:
            return (f"postgresql://{auth}@/{quote(dbname, safe='')}?host={quote(str(self.socket_dir), safe='')}"
                    f"&port={self.port}")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """A libpq key=value connection string for ``dbname``, built by ``make_conninfo`` from
        this cluster's own parts only (host, port, superuser, password): nothing in it comes from
        a manifest or other outside text, so no text can add a ``port=`` or ``dbname=``."""
        from psycopg.conninfo import make_conninfo

        parts: dict[str, Any] = {"host": self._connect_host(), "port": str(self.port), "user": self.superuser,
                                 "dbname": dbname}
        pw = self._password()
        if pw:
            parts["password"] = pw
        return make_conninfo("", **parts)

    def client_env(self) -> dict[str, str]:
        """The environment for a client tool run against this cluster: no PG* of the caller's,
        the password as ``PGPASSWORD`` (an environment is private to us and root; argv is not)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        pw = self._password()
        if pw:
            env["PGPASSWORD"] = pw
        return env

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
            if real.exists():  # a leftover of an earlier cluster at this path: stop a server still serving it
                stop_orphan(real / "data")
                shutil.rmtree(real)
            real.mkdir(mode=0o700)
            os.chown(real, user.pw_uid, user.pw_gid)
            self.base.symlink_to(real)
            return
        self.base.mkdir(parents=True, exist_ok=True)
        os.chown(self.base, user.pw_uid, user.pw_gid)
        os.chmod(self.base, 0o700)

    def init(self, *, conf: dict[str, str] | None = None, fast: bool = False,
             owner: dict[str, Any] | None = None) -> None:
        """initdb a new cluster with ``scram-sha-256`` for every connection and a random
        superuser password (module docstring); ``fast`` turns fsync off (throwaway clusters
        only). ``owner`` (a throwaway cluster's owning process, ``services.workdirs``) is
        written as ``owner.json`` into the cluster's real directory first, so a leftover found
        later can be told from a live one.

        Steps: (1) the base directory (and ``owner.json``), (2) the password into
        ``base/superuser.pass`` (ours) and a temporary ``.initdb-pw-*`` copy for initdb (the
        server user's), (3) initdb, (4) that copy moved into PGDATA as ``swarm_superuser.pass``,
        (5) settings. A kill -9 before (3) leaves a base without a cluster, which a later ``init``
        reuses; during (3)-(5) a partial or unconfigured data directory that ``init`` refuses
        as existing: ``destroy`` removes either (a ``.initdb-pw-*`` file goes with the base).
        """
        if self.exists():
            raise ConfigError(f"a cluster already exists in {self.datadir}")
        self._prepare_base()
        real = self.base.resolve()
        if owner is not None:
            _write_private(real / OWNER_FILE, json.dumps(owner).encode())
        password = secrets.token_urlsafe(24)
        _write_private(real / PASSWORD_FILE, password.encode())
        pwfile = real / f".initdb-pw-{secrets.token_hex(4)}"
        write_for_server_user(pwfile, password.encode() + b"\n")
        try:
            self._run([self._bin("initdb"), "-D", str(self.datadir), "-U", self.superuser,
                       f"--auth-host={AUTH_METHOD}", f"--auth-local={AUTH_METHOD}", f"--pwfile={pwfile}",
                       "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"], timeout=300)
            os.replace(pwfile, self.datadir / DATADIR_PASSWORD_FILE)
        finally:
            pwfile.unlink(missing_ok=True)
        self.password = password
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
        if self.socket_dir is None and port_open(self.host, self.port):
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
            r = subprocess.run([self._bin("pg_isready"), "-h", self._connect_host(), "-p", str(self.port),
                                "-U", self.superuser,
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
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        parts = {k: v for k, v in conninfo_to_dict(self.conninfo(dbname)).items() if k != "password"}
        r = subprocess.run([self._bin("psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
                            make_conninfo("", **parts), "-c", sql],  # the password only in the environment
                           capture_output=True, text=True, check=False, env=self.client_env())
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
    _write_atomic(path, data, mode, to_server_user=True)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``path`` atomically, 0600, owned by us (the same care as ``write_for_server_user``:
    the directory may belong to the server user)."""
    _write_atomic(path, data, 0o600, to_server_user=False)


def _read_private(path: Path) -> str | None:
    """The stripped text of ``path``, never through a symlink; None if it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(4096).decode(errors="replace").strip() or None


def _write_atomic(path: Path, data: bytes, mode: int, *, to_server_user: bool) -> None:
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        tmp = f".tmp-{path.name}-{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                user = _server_user() if to_server_user else None
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
    way, or may not write there), with the fix; None when it can, or when we are not root.
    ``directory`` is resolved first, as the server user's archive_command is given the resolved
    path (``server_access_for``)."""
    user = _server_user()
    if user is None:
        return None
    directory = directory.resolve()
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


# ---- throwaway clusters: locked-down access, and leftovers of killed runs ----------------------
LOCKED_DOWN_HBA = ("# written by swarm for a throwaway copy: only through a unix socket in a 0700 directory\n"
                   "# that just the server user (and root) can enter; no TCP listener, no other line\n"
                   "local all all trust\n")


def lock_down_hba(datadir: Path, socket_dir: Path) -> dict[str, str]:
    """Make a restored data directory that swarm starts only to check it reachable by us alone.

    Creates ``socket_dir`` (0700, owned by the server user), overwrites ``pg_hba.conf`` with
    ``LOCKED_DOWN_HBA`` (the backup's own is kept as ``pg_hba.conf.from-backup``) and returns
    the settings to write into ``postgresql.conf``: ``listen_addresses = ''`` (no TCP at all),
    ``unix_socket_directories`` = ``socket_dir``, ``hba_file``. Open the cluster with
    ``LocalCluster(..., socket_dir=socket_dir)``. The socket's path (``socket_dir`` +
    ``/.s.PGSQL.<port>``) must stay under 107 bytes: pick a short ``socket_dir``.
    Never for an operator's restore: they keep their own ``pg_hba.conf``.
    """
    socket_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(socket_dir, 0o700)
    hand_to_server_user(socket_dir)
    hba = datadir / "pg_hba.conf"
    if hba.exists() and not hba.is_symlink() and not (datadir / "pg_hba.conf.from-backup").exists():
        hba.rename(datadir / "pg_hba.conf.from-backup")
    hba.unlink(missing_ok=True)
    hba.write_text(LOCKED_DOWN_HBA)
    return {"listen_addresses": "", "unix_socket_directories": str(socket_dir), "hba_file": str(hba)}


SOCKET_PATH_MAX = 100  # sun_path is 108 bytes with its NUL; keep a margin for ".s.PGSQL.<port>.lock"


def socket_dir_fits(socket_dir: Path) -> bool:
    return len(str(socket_dir)) + len("/.s.PGSQL.65535.lock") <= SOCKET_PATH_MAX


def _proc_cwd(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None


def _is_postgres(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        return False
    return exe.startswith("postgres") or comm.startswith("postgres")


def postgres_pids_in(datadir: Path) -> list[int]:
    """The PostgreSQL processes (postmaster and children) whose working directory is ``datadir``
    (the postmaster chdirs into its data directory and its children inherit it)."""
    want = str(Path(datadir).resolve())
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        cwd = _proc_cwd(int(entry.name))
        if cwd is not None and cwd.removesuffix(" (deleted)") == want and _is_postgres(int(entry.name)):
            out.append(int(entry.name))
    return out


def stop_orphan(datadir: Path, timeout: float = 30.0) -> bool:
    """Stop the server a killed run left serving ``datadir``; True if one was running.

    Sends SIGQUIT (PostgreSQL's immediate shutdown: no checkpoint, children told to quit) to the
    postmaster named in ``postmaster.pid``, only after checking that it is a postgres process
    whose working directory is ``datadir`` (a recycled pid is left alone), waits up to
    ``timeout`` for every postgres process in ``datadir`` to exit, then SIGKILLs what is left.
    Needs no ``pg_ctl`` and works as root or as the user the server runs as.
    """
    datadir = Path(datadir)
    try:
        lines = (datadir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        pid = None
    found = False
    if pid is not None and pid > 1 and _is_postgres(pid):
        cwd = _proc_cwd(pid)
        if cwd is not None and cwd.removesuffix(" (deleted)") == str(datadir.resolve()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
                found = True
    deadline = time.monotonic() + timeout
    while True:
        left = postgres_pids_in(datadir)
        if not left:
            return found
        found = True
        if time.monotonic() > deadline:
            for p in left:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, signal.SIGKILL)
            time.sleep(0.2)
            return found
        time.sleep(0.1)


def remove_throwaway(base: Path) -> None:
    """Stop a leftover throwaway cluster under ``base`` (``base/data``, or ``base`` itself when it
    is a data directory) and remove ``base``, and the relocated directory it points to (only one
    under ``RELOCATE_ROOT``)."""
    base = Path(base)
    real = None
    if base.is_symlink():
        target = base.resolve()
        if target.parent == RELOCATE_ROOT.resolve():
            real = target
    d = real or base
    for datadir in (d / "data", d):
        if (datadir / "PG_VERSION").exists() or (datadir / "postmaster.pid").exists():
            stop_orphan(datadir)
    if base.is_symlink():
        base.unlink()
    else:
        shutil.rmtree(base, ignore_errors=True)
    if real is not None:
        shutil.rmtree(real, ignore_errors=True)
