"""``pg_basebackup`` as a stream: one tar (base directory + ``backup_manifest``) on stdout.

PostgreSQL 15 writes the whole backup as a single tar to stdout with ``-D - -Ft`` when
there are no extra tablespaces, and puts ``backup_manifest`` inside that tar (we checked:
it is the last member). ``-X none``: WAL comes from the repository's archive, and
pg_basebackup then waits until the backup's last WAL segment is archived (the server's
``pg_backup_stop`` waits for archive_command), so a finished base backup implies its WAL
reached the repository.

The process is bracketed: ``BaseBackupStream`` kills pg_basebackup if the reader fails
half-way (the server ends the backup when the replication connection drops).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from typing import IO, Any

from swarm.errors import SourceError, UnavailableError
from swarm.sources.postgres.binaries import tool


def libpq_env(db_url: str) -> dict[str, str]:
    """Environment for libpq tools: PG* variables of ours only, and the URL's password as
    ``PGPASSWORD`` (an environment is readable only by the same user and root; an argument
    list is readable by every local user through ``ps``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    password = _parts(db_url).get("password")
    if password:
        env["PGPASSWORD"] = password
    env["LC_ALL"] = "C.UTF-8"
    return env


def _parts(db_url: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(db_url).items() if v is not None}


def conninfo_without_password(db_url: str, **extra: str) -> str:
    """The whole connection string (host, port, user, dbname and every other setting: ``sslmode``,
    ``sslrootcert``, ``target_session_attrs``...) as libpq key=value text, without the password,
    for a tool's ``-d`` / ``--dbname``. Dropping settings here once sent physical backups over
    ``sslmode=prefer`` when the operator asked for ``verify-full``."""
    from psycopg.conninfo import make_conninfo

    parts = {k: v for k, v in _parts(db_url).items() if k != "password"}
    parts.update(extra)
    return make_conninfo("", **parts)


def conninfo_args(db_url: str) -> list[str]:
    """``-d <conninfo>`` for pg_basebackup / pg_receivewal (replication tools ignore the dbname)."""
    return ["-d", conninfo_without_password(db_url)]


PIPE_BYTES = 4 << 20  # pg_basebackup's stdout pipe: room for it to run ahead while we hash and compress
_F_SETPIPE_SZ = 1031  # Linux fcntl


def _widen_pipe(fd: int) -> None:
    """Grow the pipe behind ``fd`` to ``PIPE_BYTES`` (Linux; the default 64 KiB holds two blocks, so
    pg_basebackup and the reader take turns instead of overlapping). Best effort: a system that
    refuses (a lower ``/proc/sys/fs/pipe-max-size`` for a non-root user) keeps the default."""
    import fcntl

    for size in (PIPE_BYTES, 1 << 20):
        try:
            fcntl.fcntl(fd, _F_SETPIPE_SZ, size)
            return
        except OSError:
            continue


class BaseBackupStream:
    """``with BaseBackupStream(url) as s: for member in tarfile.open(fileobj=s.stdout, mode="r|")...``"""

    def __init__(self, db_url: str, *, bindir: str | None = None, fast_checkpoint: bool = True,
                 label: str = "swarm", application_name: str = "swarm-basebackup") -> None:
        self.db_url = db_url
        self.application_name = application_name  # how the server lists our walsender (pg_stat_activity)
        self.args = [tool("pg_basebackup", bindir), *conninfo_args(db_url), "-D", "-", "-Ft", "-X", "none",
                     "-l", label, "--no-password", "-v"]
        if fast_checkpoint:
            self.args += ["-c", "fast"]
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: list[bytes] = []
        self._thread: threading.Thread | None = None

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout

    def __enter__(self) -> BaseBackupStream:
        try:
            env = {**libpq_env(self.db_url), "PGAPPNAME": self.application_name}
            self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         env=env, bufsize=0)  # TarStream reads whole blocks itself
        except OSError as exc:
            raise SourceError(f"cannot run pg_basebackup: {exc}") from exc
        _widen_pipe(self.stdout.fileno())
        assert self.proc.stderr is not None
        err = self.proc.stderr

        def drain() -> None:
            for line in err:
                self._stderr.append(line)

        self._thread = threading.Thread(target=drain, daemon=True)
        self._thread.start()
        return self

    @property
    def stderr_text(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    def finish(self, timeout: float = 600) -> None:
        """Wait for pg_basebackup to exit; raise with its message if it failed."""
        assert self.proc is not None
        rc = self.proc.wait(timeout)
        if self._thread:
            self._thread.join(10)
        if rc != 0:
            msg = self.stderr_text.strip()[-1200:]
            if "could not connect" in msg or "Connection refused" in msg:
                raise UnavailableError(f"pg_basebackup cannot connect: {msg}",
                                       hint="Is the server running, and does pg_hba.conf allow replication "
                                            "connections for this user?")
            raise SourceError(f"pg_basebackup failed ({rc}): {msg}",
                              hint="Tablespaces other than the default are not supported by the streamed "
                                   "engine; check max_wal_senders and the replication privilege.")

    def kill(self) -> None:
        """Stop pg_basebackup now, and end its walsender (which, waiting for archiving, would not notice)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            self.proc.wait(30)
            from swarm.sources.postgres.wal import terminate_walsenders

            terminate_walsenders(self.db_url, self.application_name)

    def __exit__(self, *exc: Any) -> None:
        self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

