"""Let the PostgreSQL server run swarm: ``archive_command`` and ``restore_command``.

The server runs those commands as its own OS user. When swarm runs as root (CI, the dev
container) that user (``postgres``) can read neither ``/root/...`` (our config, our key,
often the Python interpreter itself) nor root-owned 0600 files. So we give it its own
copies, explicitly:

* a directory it owns and can reach (``server_user_dir``: ``/var/tmp/swarm-pg/access-<tag>``, 0700);
* in it, ``wal-push.key`` (0600, owned by the server user): the repository's WAL *public* key and
  WAL MAC key (``swarm.crypto.walbox``), never the key-encryption key: the server user can archive
  WAL but decrypt nothing; ``swarm.toml`` (the repository URL and that key; S3 credentials if
  any) and ``swarm``, a launcher running the same swarm code with a Python interpreter the
  server user may execute (ours if it can reach it, else the system's of the same version) and
  our site-packages added;
* ``archive_command`` is ``<dir>/swarm --config <dir>/swarm.toml admin wal push %p``;
* for a restore only (``grant_read``): ``wal-read-<id>.key`` (the WAL private key too: it can read
  WAL, nothing else) and ``swarm-fetch-<id>.toml`` naming it, used by ``restore_command`` =
  ``... --config <dir>/swarm-fetch-<id>.toml admin wal fetch %f %p``. Both are removed by the
  restored server itself at the end of recovery (``recovery_end_command``), and by swarm when
  the restore or verify it runs ends (``revoke``), whichever comes first. A kill -9 of swarm
  before the server finishes recovery leaves them until the server promotes; a recovery that
  never ends leaves them until ``dev down --purge`` or removing the directory by hand.

S3 credentials in ``swarm.toml`` are the repository's: give the server user its own access key
whose policy allows ``s3:PutObject``, ``s3:GetObject`` and ``s3:ListBucket`` on the repository
prefix and no ``s3:DeleteObject`` (docs/security.md).

A file:// repository must also be writable by the server user for ``wal push``: the dev
stack hands its repository root to that user, and LocalStore (as root) then chowns what
it creates to the root's owner, so both keep writing. Not running as root, all of this
collapses to the same files under ``$SWARM_HOME/server-access/<tag>`` for our own user.
"""
from __future__ import annotations

import hashlib
import shlex
import site
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import tomli_w

from swarm.errors import ConfigError
from swarm.sources.postgres.cluster import (
    run_as_server_user_check,
    running_as_root,
    server_user_can_reach,
    server_user_dir,
    server_user_name,
    write_for_server_user,
)


@dataclass(frozen=True)
class ServerAccess:
    directory: Path
    config: Path
    launcher: Path
    fetch_config: Path | None = None  # with a read grant (a restore): the config naming the WAL read key
    read_key: Path | None = None

    def command(self, *args: str, config: Path | None = None) -> str:
        """A shell command line for postgresql.conf (``%p``/``%f`` stay unquoted placeholders)."""
        return " ".join([shlex.quote(str(self.launcher)), "--config", shlex.quote(str(config or self.config)),
                         "admin", *[a if a in ("%p", "%f") else shlex.quote(a) for a in args]])

    @property
    def archive_command(self) -> str:
        return self.command("wal", "push", "%p")

    @property
    def restore_command(self) -> str:
        if self.fetch_config is None:
            raise ConfigError("this server access grants no WAL reading (internal: call grant_read first)")
        return self.command("wal", "fetch", "%f", "%p", config=self.fetch_config)

    @property
    def recovery_end_command(self) -> str:
        """Removes the read grant once recovery has ended (run by the restored server as its own user)."""
        files = [p for p in (self.read_key, self.fetch_config) if p is not None]
        return "rm -f " + " ".join(shlex.quote(str(p)) for p in files) if files else ""

    def grant_read(self, read_key: bytes) -> ServerAccess:
        """A copy of this access that can also read WAL: the WAL read key and a fetch config of its own
        (fresh names, so concurrent restores never remove each other's)."""
        import secrets

        grant = secrets.token_hex(6)
        key = self.directory / f"wal-read-{grant}.key"
        write_for_server_user(key, read_key)
        doc = tomllib.loads(self.config.read_text())
        doc["repository"]["key"] = f"file://{key}"
        fetch = self.directory / f"swarm-fetch-{grant}.toml"
        write_for_server_user(fetch, ("# written by swarm for one restore; removed when it ends\n"
                                      + tomli_w.dumps(doc)).encode())
        return ServerAccess(self.directory, self.config, self.launcher, fetch, key)

    def revoke(self) -> None:
        """Remove the read grant (idempotent; the server may have removed it already)."""
        for p in (self.read_key, self.fetch_config):
            if p is not None:
                p.unlink(missing_ok=True)


def _interpreter() -> str:
    exe = Path(sys.executable)
    if not running_as_root():
        return str(exe)
    for cand in (exe, exe.resolve(), Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")):
        if cand.exists() and run_as_server_user_check([str(cand), "-c", "pass"]).returncode == 0:
            return str(cand)
    raise ConfigError(
        f"the {server_user_name()} user cannot run a Python {sys.version_info.major}.{sys.version_info.minor} "
        f"interpreter ({exe} is not reachable for it)",
        hint=f"Install python{sys.version_info.major}.{sys.version_info.minor} system-wide, or run swarm from a "
             "virtualenv outside /root.")


def _site_dirs() -> list[str]:
    dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    if running_as_root():
        for d in dirs:
            if not server_user_can_reach(Path(d)):
                raise ConfigError(f"the {server_user_name()} user cannot read swarm's packages in {d}",
                                  hint="Install swarm outside /root (e.g. a virtualenv under /opt or /work).")
    return dirs


OWNER_FILE = "owner"  # the SWARM_HOME the directory was made for, so it can be removed with it


def remove_server_access(home: Path | None = None, *, under: Path | None = None) -> list[Path]:
    """Remove the server user's key copies made for ``home``, or for any home below ``under``,
    or (neither given) for homes that no longer exist; return what was removed. Called by
    ``dev down --purge`` and the tests' teardown, so key copies never outlive their stack."""
    import shutil

    from swarm.sources.postgres.cluster import RELOCATE_ROOT

    removed: list[Path] = []
    roots = [RELOCATE_ROOT] + ([home / "server-access"] if home is not None else [])
    for root in roots:
        if not root.is_dir():
            continue
        for d in root.iterdir():
            if not (d.name.startswith("access-") or root.name == "server-access"):
                continue
            try:
                owner = Path((d / OWNER_FILE).read_text().strip())
            except OSError:
                continue
            if home is not None:
                hit = owner == home.absolute()
            elif under is not None:
                hit = owner.is_relative_to(under.absolute())
            else:
                hit = not owner.exists()
            if hit:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
    return removed


def server_access_for(url: str, push_key: bytes, home: Path, *, extra: dict[str, str] | None = None,
                      pg_bindir: str | None = None) -> ServerAccess:
    """Write (or refresh) the server user's directory for the repository at ``url``: ``push_key`` is
    the WAL push key file (``Repository.wal_key_file(read=False)``), never the key-encryption key."""
    parsed = urlparse(url)
    if parsed.scheme in ("file", ""):
        real = Path(parsed.path if parsed.scheme else url).resolve()
        url = f"file://{real}"
    tag = hashlib.sha256(f"{url}\0{home.absolute()}".encode()).hexdigest()[:12]
    d = server_user_dir(tag, home)
    (d / "repo.key").unlink(missing_ok=True)  # a key-encryption key copy written by an older swarm
    key = d / "wal-push.key"
    write_for_server_user(key, push_key)
    write_for_server_user(d / OWNER_FILE, str(home.absolute()).encode())
    repo_doc: dict[str, str] = {"url": url, "key": f"file://{key}", **(extra or {})}
    doc: dict[str, object] = {"repository": repo_doc}
    if pg_bindir:
        doc["postgres"] = {"bindir": pg_bindir}
    config = d / "swarm.toml"
    write_for_server_user(config, ("# written by swarm for the PostgreSQL server user; rewritten on use\n"
                                   + tomli_w.dumps(doc)).encode())
    launcher = d / "swarm"
    lines = [f"#!{_interpreter()} -s", "import os", "import site", "import sys",
             "os.environ['SWARM_SELF'] = __file__"]
    lines += [f"site.addsitedir({p!r})" for p in _site_dirs()]
    lines += ["from swarm.services.wal.fastpath import fast_main", "rc = fast_main(sys.argv[1:])",
              "if rc is not None:", "    sys.exit(rc)",
              "from swarm.cli.main import main", "sys.argv[0] = 'swarm'", "main()", ""]
    write_for_server_user(launcher, "\n".join(lines).encode(), mode=0o700)
    return ServerAccess(d, config, launcher)
