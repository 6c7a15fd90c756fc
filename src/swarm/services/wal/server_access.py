"""Let the PostgreSQL server run swarm: ``archive_command`` and ``restore_command``.

The server runs those commands as its own OS user. When swarm runs as root (CI, the dev
container) that user (``postgres``) can read neither ``/root/...`` (our config, our key,
often the Python interpreter itself) nor root-owned 0600 files. So we give it its own
copies, explicitly:

* a directory it owns and can reach (``server_user_dir``: ``/var/tmp/swarm-pg/access-<tag>``, 0700);
* in it, ``repo.key`` (a copy of the key-encryption key, 0600, owned by the server user),
  ``swarm.toml`` (the repository URL and that key; S3 credentials if any) and ``swarm``, a
  launcher running the same swarm code with a Python interpreter the server user may
  execute (ours if it can reach it, else the system's of the same version) and our
  site-packages added;
* the commands are ``<dir>/swarm --config <dir>/swarm.toml admin wal push %p`` (and ``fetch %f %p``).

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

    def command(self, *args: str) -> str:
        """A shell command line for postgresql.conf (``%p``/``%f`` stay unquoted placeholders)."""
        return " ".join([shlex.quote(str(self.launcher)), "--config", shlex.quote(str(self.config)), "admin",
                         *[a if a in ("%p", "%f") else shlex.quote(a) for a in args]])

    @property
    def archive_command(self) -> str:
        return self.command("wal", "push", "%p")

    @property
    def restore_command(self) -> str:
        return self.command("wal", "fetch", "%f", "%p")


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


def server_access_for(url: str, key_src: Path, home: Path, *, extra: dict[str, str] | None = None,
                      pg_bindir: str | None = None) -> ServerAccess:
    try:
        key_bytes = key_src.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {key_src}: {exc.strerror}") from exc
    parsed = urlparse(url)
    if parsed.scheme in ("file", ""):
        real = Path(parsed.path if parsed.scheme else url).resolve()
        url = f"file://{real}"
    tag = hashlib.sha256(f"{url}\0{key_src.resolve()}".encode()).hexdigest()[:12]
    d = server_user_dir(tag, home)
    key = d / "repo.key"
    write_for_server_user(key, key_bytes)
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
