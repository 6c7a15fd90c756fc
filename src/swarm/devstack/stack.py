"""``swarm dev up | down | status``: the embedded stack under ``$SWARM_HOME/dev``.

Layout::

    $SWARM_HOME/swarm.toml        config every later command reads (written by `up`)
    $SWARM_HOME/keys/repo.key     the repository's key-encryption key (0600)
    $SWARM_HOME/dev/stack.json    ports, credentials, pids of what `up` started (0600)
    $SWARM_HOME/dev/pg/           PostgreSQL cluster (data/, server.log, superuser.pass: 0600)
    $SWARM_HOME/dev/seaweed/      SeaweedFS primary (data/, logs/)
    $SWARM_HOME/dev/seaweed-dr/   SeaweedFS DR instance (the replication target)
    $SWARM_HOME/dev/state/        the swarm state directory (cron/jobs.json, batch/)
    $SWARM_HOME/dev/repo/         the backup repository (file://)
    $SWARM_HOME/dev/moto/         moto's server, the dev KMS (``up --kms`` only: moto.json, moto.log)
    $SWARM_HOME/wal-stream/       default spool of `swarm admin wal stream` (pg_receivewal)
    $SWARM_HOME/wal-stream.log    pg_receivewal's log next to it

``up`` is idempotent: what runs is left running, what is missing is created, and
``swarm.toml`` is rewritten to match.

``up(kms=True)`` also starts moto's server (``swarm.devstack.kms``) and makes a KMS key in
``us-east-1`` the repository's key: a new stack's repository is created with it; an existing
stack's repository is rotated to it from the key file (``swarm.repo.rotate``: the key file keeps
reading what it wrapped until ``swarm admin keys retire``). ``swarm.toml`` then names the key by
its key id (never an alias). moto keeps keys in memory only: after ``down`` the key is gone, and
a later ``up --kms`` refuses a repository sealed with it (ConfigError: purge and start again),
which is the revoked-key contract made visible.

WAL archiving: the cluster runs with ``wal_level = replica``, ``archive_mode = on``,
``archive_timeout = 60`` and ``archive_command`` = ``swarm admin wal push %p``. The server
runs that command as its own OS user; when we are root that is ``postgres``, who can read
nothing under ``/root``. So (see swarm.services.wal.server_access) the command runs a
launcher with the server user's own config and key copy (0600, owned by it, in
``/var/tmp/swarm-pg/access-<tag>``), and the repository lives where that user can write:
``dev/repo`` becomes a symlink to ``/var/tmp/swarm-pg/repo-<tag>`` owned by ``postgres``
(an existing repository is moved there once). A cluster created before these settings
existed gets them appended and is restarted.

Who can connect: the cluster authenticates every connection with ``scram-sha-256`` and a
random superuser password (``sources.postgres.cluster``), kept in ``dev/pg/superuser.pass``
and in the ``db_url`` that ``up`` returns and writes into ``swarm.toml`` (both 0600), as the
S3 credentials are. A stack created by a version that trusted every local user (its cluster
has no ``superuser.pass``) is not migrated: ``up`` refuses it (ConfigError), and
``swarm dev down --purge`` then ``swarm dev up`` make a new one. ``down`` stops only the processes recorded in
``stack.json`` whose command line still matches. Data stays until ``down --purge``, which
deletes everything in the layout above except the key (see ``down``).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from swarm.crypto.keys import create_key_file, load_key_file
from swarm.devstack.kms import MotoServer
from swarm.errors import ConfigError
from swarm.platform.schema import apply_migrations
from swarm.repo import Repository
from swarm.sources.netutil import port_open
from swarm.sources.postgres.cluster import (
    PASSWORD_FILE,
    RELOCATE_ROOT,
    LocalCluster,
    hand_to_server_user,
    running_as_root,
    server_user_can_reach,
)
from swarm.sources.postgres.conn import create_database, database_exists, with_dbname
from swarm.storage.factory import open_store
from swarm.storage.s3 import make_client

CONFIG_MARKER = "# written by `swarm dev up`"
DB_NAME = "swarm"
BUCKET = "swarm-artefacts"
DR_BUCKET = "swarm-artefacts-dr"
ARCHIVE_TIMEOUT_S = 60
# default spool of `swarm admin wal stream` under SWARM_HOME; its log is "<spool>.log" beside it
WAL_STREAM_SPOOL = "wal-stream"


@dataclass
class DevPaths:
    home: Path

    @property
    def dev(self) -> Path:
        return self.home / "dev"

    @property
    def config(self) -> Path:
        return self.home / "swarm.toml"

    @property
    def key(self) -> Path:
        return self.home / "keys" / "repo.key"

    @property
    def stack_file(self) -> Path:
        return self.dev / "stack.json"

    @property
    def pg(self) -> Path:
        return self.dev / "pg"

    @property
    def moto(self) -> Path:
        return self.dev / "moto"

    @property
    def seaweed(self) -> Path:
        return self.dev / "seaweed"

    @property
    def seaweed_dr(self) -> Path:
        return self.dev / "seaweed-dr"

    @property
    def state(self) -> Path:
        return self.dev / "state"

    @property
    def repo(self) -> Path:
        return self.dev / "repo"

    @property
    def wal_stream(self) -> Path:
        return self.home / WAL_STREAM_SPOOL

    @property
    def wal_stream_log(self) -> Path:
        return self.home / f"{WAL_STREAM_SPOOL}.log"


class DevStack:
    def __init__(self, home: Path) -> None:
        self.paths = DevPaths(home)

    def _load(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.paths.stack_file.read_text()))
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        self.paths.dev.mkdir(parents=True, exist_ok=True)
        tmp = self.paths.stack_file.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(state, indent=1))
        tmp.replace(self.paths.stack_file)

    def _cluster(self, state: dict[str, Any]) -> LocalCluster:
        return LocalCluster(self.paths.pg, port=int(state.get("pg_port") or 0))

    def _seaweed(self, state: dict[str, Any], *, dr: bool = False) -> Any:
        from swarm.devstack.seaweed import SeaweedServer

        base = self.paths.seaweed_dr if dr else self.paths.seaweed
        server = SeaweedServer.load(base)
        if server is None:
            server = SeaweedServer(base, ("swarmdr" if dr else "swarm") + secrets.token_hex(4), secrets.token_hex(16))
        return server

    @staticmethod
    def _start_seaweed(server: Any, bucket: str) -> None:
        """Start (or keep) a SeaweedFS instance and make sure its versioned bucket exists."""
        server.base.mkdir(parents=True, exist_ok=True)
        if not server.is_running() and server.ports and any(port_open("127.0.0.1", p) for p in server.ports.values()):
            server.ports = {}
        server.start()
        client = make_client(server.endpoint, server.access_key, server.secret_key)
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

    def up(self, *, kms: bool = False) -> dict[str, Any]:
        """Start (or keep) everything; return what a client needs (see ``info``). ``kms``: the
        repository's key is a KMS key on moto's server (module docstring); the result then has
        ``key_url`` (``awskms:///<key id>?region=us-east-1&endpoint=...``) and ``kms_endpoint``."""
        self._check_config_is_ours()
        state = self._load()
        self._check_cluster_authenticates(state)
        self.paths.dev.mkdir(parents=True, exist_ok=True)
        # key and repository first: archive_command pushes into it as soon as the server runs
        fresh = not self.paths.key.exists()
        kek = load_key_file(self.paths.key) if not fresh else create_key_file(self.paths.key)
        self._prepare_repo(fresh=fresh)
        store = open_store(self.repo_url)
        kms_url: str | None = None
        if kms or state.get("kms_key_id"):  # a stack made with --kms stays on its KMS key
            kek, kms_url = self._kms(state, store, kek)
        repo = Repository.open(store, kek, create=True)
        from swarm.services.wal.server_access import server_access_for

        # the server user gets the WAL push key only: it archives WAL and can decrypt nothing
        access = server_access_for(self.repo_url, repo.wal_key_file(read=False), self.paths.home)
        archive = {"wal_level": "replica", "archive_mode": "on", "archive_timeout": str(ARCHIVE_TIMEOUT_S),
                   "archive_command": "'" + access.archive_command.replace("'", "''") + "'"}
        # PostgreSQL
        cluster = self._cluster(state)
        if not cluster.exists():
            cluster.init(conf=archive)
        elif cluster.ensure_conf(archive) and cluster.is_running():
            cluster.restart()  # archive_mode needs a restart
        if not cluster.is_running() and port_open(cluster.host, cluster.port):
            from swarm.sources.netutil import free_port

            cluster.set_port(free_port())
        cluster.start()
        state["pg_port"] = cluster.port
        admin_url = cluster.url("postgres")
        if not database_exists(admin_url, DB_NAME):
            create_database(admin_url, DB_NAME)
        db_url = with_dbname(admin_url, DB_NAME)
        apply_migrations(db_url)
        # SeaweedFS: the primary and a DR instance (the replication target)
        server = self._seaweed(state)
        self._start_seaweed(server, BUCKET)
        dr = self._seaweed(state, dr=True)
        self._start_seaweed(dr, DR_BUCKET)
        # state directory, key, repository
        for sub in ("cron", "batch"):
            (self.paths.state / sub).mkdir(parents=True, exist_ok=True)
        self._save(state)
        info = self.info(db_url, server, dr)
        if kms_url is not None:
            info["key_url"] = kms_url
            info["kms_endpoint"] = MotoServer.load(self.paths.moto).endpoint
        self._write_config(info)
        return info

    def _kms(self, state: dict[str, Any], store: Any, file_kek: Any) -> tuple[Any, str]:
        """Start moto (or keep it), make (or keep) the stack's KMS key, and make it the repository's
        key (rotating an existing repository from the key file; a kill -9 during it leaves what
        ``swarm.repo.rotate`` describes, and the next ``up --kms`` finishes it). Returns the provider
        and its key URL. ConfigError when the repository is sealed with a KMS key moto no longer holds."""
        from swarm.config.urls import check_kms_url
        from swarm.crypto.providers.awskms import AwsKmsKey
        from swarm.repo.rotate import rotate

        moto = MotoServer.load(self.paths.moto)
        moto.start()
        try:
            primary: str | None = Repository.open(store, file_kek, check_key=False).config.kek_id
        except ConfigError:  # no repository yet: it is created with the KMS key
            primary = None
        key_id = state.get("kms_key_id")
        if not key_id or not moto.key_exists(str(key_id)):
            if primary is not None and primary.startswith("awskms:"):
                raise ConfigError(f"the dev stack's repository is sealed with {primary}, a key moto's server forgot "
                                  "when it stopped: its backups are unrecoverable",
                                  hint="Make a new stack: `swarm dev down --purge` then `swarm dev up --kms` (the dev "
                                       "KMS lives in memory only; docs/keys.md).")
            key_id = moto.create_key()["KeyId"]
        state["kms_key_id"] = key_id
        self._save(state)
        url = moto.key_url(str(key_id))
        provider = AwsKmsKey(check_kms_url(url), client=moto.client())
        if primary is not None and primary != provider.key_id:
            rotate(store, file_kek, provider)
        return provider, url

    def _check_cluster_authenticates(self, state: dict[str, Any]) -> None:
        """Refuse, before touching anything, a cluster made by a version that trusted every local
        user (it has no ``superuser.pass``): it is not migrated (module docstring)."""
        cluster = self._cluster(state)
        if cluster.exists() and not (self.paths.pg / PASSWORD_FILE).exists():
            raise ConfigError(f"the dev stack's PostgreSQL in {cluster.datadir} was created by an older swarm that "
                              "lets every local user connect as superuser without a password; it is not migrated",
                              hint="Recreate the stack: `swarm dev down --purge` then `swarm dev up` (this deletes "
                                   "the dev stack's data; the key file is kept).")

    def _prepare_repo(self, *, fresh: bool = False) -> None:
        """Make ``dev/repo`` writable by the server user (its archive_command writes WAL there).

        When the server user cannot reach ``dev/``, the repository lives in
        ``/var/tmp/swarm-pg/repo-<hash of the path>`` and ``dev/repo`` links to it. ``fresh`` (a new
        stack: its key was just created): a relocated directory of an earlier stack at the same path
        (left by a ``dev down`` that could not purge it) is sealed with a key that no longer exists,
        so it is removed rather than reused."""
        repo = self.paths.repo
        if not running_as_root():
            repo.mkdir(parents=True, exist_ok=True)
            return
        if repo.is_symlink():
            hand_to_server_user(repo.resolve(), recursive=True)
            return
        if not server_user_can_reach(self.paths.dev):
            real = RELOCATE_ROOT / ("repo-" + hashlib.sha256(str(repo.absolute()).encode()).hexdigest()[:12])
            if fresh and real.exists():
                shutil.rmtree(real)
            RELOCATE_ROOT.mkdir(mode=0o711, parents=True, exist_ok=True)
            real.mkdir(mode=0o700, exist_ok=True)
            if repo.is_dir():
                for child in repo.iterdir():
                    shutil.move(str(child), str(real / child.name))
                repo.rmdir()
            repo.symlink_to(real)
        else:
            repo.mkdir(parents=True, exist_ok=True)
        hand_to_server_user(repo.resolve(), recursive=True)

    @property
    def repo_url(self) -> str:
        return f"file://{self.paths.repo}"

    def info(self, db_url: str, server: Any, dr: Any) -> dict[str, Any]:
        return {
            "db_url": db_url,
            "objects_endpoint": server.endpoint,
            "objects_bucket": BUCKET,
            "objects_access_key": server.access_key,
            "objects_secret_key": server.secret_key,
            "dr_objects_endpoint": dr.endpoint,
            "dr_objects_bucket": DR_BUCKET,
            "dr_objects_access_key": dr.access_key,
            "dr_objects_secret_key": dr.secret_key,
            "state_dir": str(self.paths.state),
            "repo": self.repo_url,
            "key_url": f"file://{self.paths.key}",
            "config": str(self.paths.config),
            "pg_datadir": str(self._cluster(self._load()).datadir),
            "pg_log": str(self._cluster(self._load()).logfile),
        }

    def _check_config_is_ours(self) -> None:
        cfg = self.paths.config
        if cfg.exists() and CONFIG_MARKER not in cfg.read_text():
            raise ConfigError(f"{cfg} exists and was not written by `swarm dev up`; refusing to overwrite it",
                              hint="Use another SWARM_HOME for the dev stack, or move that file away.")

    def _write_config(self, info: dict[str, Any]) -> None:
        doc = {
            "database": {"url": info["db_url"]},
            "repository": {"url": info["repo"], "key": info["key_url"]},
            "state": {"dir": info["state_dir"]},
            "objects": {"endpoint": info["objects_endpoint"], "bucket": info["objects_bucket"],
                        "access_key": info["objects_access_key"], "secret_key": info["objects_secret_key"]},
            "dr": {"endpoint": info["dr_objects_endpoint"], "bucket": info["dr_objects_bucket"],
                   "access_key": info["dr_objects_access_key"], "secret_key": info["dr_objects_secret_key"]},
        }
        self.paths.config.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.paths.config.with_suffix(".tmp")
        tmp.write_text(CONFIG_MARKER + "; edit freely, `up` rewrites it\n" + tomli_w.dumps(doc))
        tmp.chmod(0o600)
        tmp.replace(self.paths.config)

    def status(self) -> dict[str, Any]:
        state = self._load()
        if not state:
            return {"exists": False, "postgres": {"running": False}, "seaweedfs": {"running": False}}
        cluster = self._cluster(state)
        server = self._seaweed(state)
        dr = self._seaweed(state, dr=True)
        return {
            "exists": True,
            "postgres": {"running": cluster.is_running(), "port": cluster.port, "datadir": str(cluster.datadir),
                         "pid": cluster.pid() if cluster.is_running() else None},
            "seaweedfs": {"running": server.is_running(), "endpoint": server.endpoint if server.ports else None,
                          "pid": server.pid if server.is_running() else None},
            "seaweedfs_dr": {"running": dr.is_running(), "endpoint": dr.endpoint if dr.ports else None,
                             "pid": dr.pid if dr.is_running() else None},
            "kms": {"running": (moto := MotoServer.load(self.paths.moto)).is_running(),
                    "endpoint": moto.endpoint if moto.port else None, "key_id": state.get("kms_key_id"),
                    "pid": moto.pid if moto.is_running() else None},
            "state_dir": str(self.paths.state),
            "repo": self.repo_url,
            "config": str(self.paths.config),
        }

    def down(self, *, purge: bool = False) -> dict[str, Any]:
        """Stop what ``up`` started. ``purge`` then deletes, in this order: the cluster, the
        repository (and its relocated directory), ``dev/``, the default WAL stream spool and its
        log, ``swarm.toml`` (only if ``up`` wrote it), and the server user's key copies. The key
        file is kept (it is the one thing that cannot be re-created). A kill -9 in between leaves
        a subset of these; running ``down --purge`` again removes the rest."""
        state = self._load()
        stopped = []
        if state:
            cluster = self._cluster(state)
            if cluster.is_running():
                cluster.stop()
                stopped.append("postgres")
            for name, srv in (("seaweedfs", self._seaweed(state)), ("seaweedfs-dr", self._seaweed(state, dr=True))):
                if srv.is_running():
                    srv.stop()
                    stopped.append(name)
            moto = MotoServer.load(self.paths.moto)
            if moto.is_running():
                moto.stop()
                stopped.append("kms")
        if purge:
            if state:
                self._cluster(state).destroy()
            if self.paths.repo.is_symlink():
                shutil.rmtree(self.paths.repo.resolve(), ignore_errors=True)
            shutil.rmtree(self.paths.dev, ignore_errors=True)
            shutil.rmtree(self.paths.wal_stream, ignore_errors=True)
            self.paths.wal_stream_log.unlink(missing_ok=True)
            if self.paths.config.exists() and CONFIG_MARKER in self.paths.config.read_text():
                self.paths.config.unlink()
            from swarm.services.wal.server_access import remove_server_access

            remove_server_access(self.paths.home)  # the server user's key copies go with the stack
        return {"stopped": stopped, "purged": purge}
