"""A drill's scratch deployment: what it creates, the record that finds it again, and tearing it down.

Every drill owns a directory ``$SWARM_HOME/drills/swarm-drill-<id>/`` holding ``owner.json``
(the owning process, as ``services.workdirs.owner_record``, plus what the drill creates: the
scratch cluster, database, bucket, state directory and API process), the scratch cluster's
base ``pg/`` (on the dev stack) and the scratch state directory ``state/`` (unless the operator
gave ``--target-state``). Every name carries the drill id (``swarm.model.drill``): bucket
``swarm-drill-<id>``, database ``swarm_drill_<id>``, directory ``swarm-drill-<id>``, so nothing a
drill creates can be mistaken for production.

Provisioning, in this order, each step recorded in ``owner.json`` *before* it is taken:
(1) the drill directory and ``owner.json``; (2) the scratch cluster (initdb, start; dev stack)
(3) the scratch bucket (created; or the operator's, checked empty); (4) the state directory;
the database itself is created by the logical restore (``--create``) and the API process is
added when it starts. A kill -9 between any two steps leaves the drill directory with an
``owner.json`` naming everything that may exist; ``sweep_drills`` (run at the start of every
drill and by ``swarm admin drill cleanup``) tears down the drills whose owner is gone.

Teardown runs the other way: API process, database (dropped) or cluster (stopped, removed),
bucket (every version and delete marker removed, then the bucket unless it is the operator's),
state directory, and the drill directory with ``owner.json`` last, so a kill -9 during teardown
leaves a record the next sweep finishes from. Every step is idempotent.

``owner.json`` holds the operator's ``--target-db`` URL (with its password, the file is 0600 in
``$SWARM_HOME``, as the config file is) so a sweep can drop the scratch database there; bucket
credentials are never written (the sweep takes them from the configuration).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import SwarmError
from swarm.model.drill import dir_name, drill_id_of
from swarm.procs import pid_alive
from swarm.services.workdirs import _owner_gone, owner_record
from swarm.sources.objects import Bucket, BucketConfig
from swarm.sources.postgres.cluster import remove_throwaway
from swarm.sources.postgres.conn import connect, dbname_of, redact, with_dbname

OWNER_FILE = "owner.json"
DRILLS_DIR = "drills"


def drills_root(home: Path) -> Path:
    return Path(home).expanduser() / DRILLS_DIR


@dataclass
class ScratchRecord:
    """What one drill created (or may have: each field is set before the step is taken)."""

    drill_id: str
    directory: Path
    owner: dict[str, Any] = field(default_factory=dict)
    kept: bool = False
    cluster_base: str | None = None  # a local scratch cluster's base directory
    database_url: str | None = None  # the scratch database (password included: see the module docstring)
    bucket: str | None = None
    bucket_endpoint: str | None = None
    bucket_created: bool = False  # False: the operator's bucket (emptied, never deleted)
    state_dir: str | None = None
    api_pid: int | None = None
    api_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"drill_id": self.drill_id, "owner": self.owner, "kept": self.kept, "cluster_base": self.cluster_base,
                "database_url": self.database_url, "bucket": self.bucket, "bucket_endpoint": self.bucket_endpoint,
                "bucket_created": self.bucket_created, "state_dir": self.state_dir, "api_pid": self.api_pid,
                "api_url": self.api_url}

    def save(self) -> None:
        """Write ``owner.json`` atomically (temporary name, fsync, rename), mode 0600."""
        path = self.directory / OWNER_FILE
        tmp = path.with_name(f".{OWNER_FILE}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(self.to_json(), indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path) -> ScratchRecord:
        """The record in ``directory``; a directory killed before its record was written gets an
        empty one (its drill id from its name)."""
        drill_id = drill_id_of(directory.name) or directory.name
        try:
            d = json.loads((directory / OWNER_FILE).read_text())
        except (OSError, ValueError):
            return cls(drill_id, directory)
        return cls(drill_id, directory, owner=dict(d.get("owner") or {}), kept=bool(d.get("kept")),
                   cluster_base=d.get("cluster_base"), database_url=d.get("database_url"), bucket=d.get("bucket"),
                   bucket_endpoint=d.get("bucket_endpoint"), bucket_created=bool(d.get("bucket_created")),
                   state_dir=d.get("state_dir"), api_pid=d.get("api_pid"), api_url=d.get("api_url"))

    def public(self) -> dict[str, Any]:
        """What to show an operator (no password)."""
        return {"id": self.drill_id, "directory": str(self.directory), "kept": self.kept,
                "database": redact(self.database_url) if self.database_url else None, "bucket": self.bucket,
                "state_dir": self.state_dir, "api_url": self.api_url, "api_pid": self.api_pid,
                "cluster": self.cluster_base}


def new_record(home: Path, drill_id: str) -> ScratchRecord:
    """Create the drill directory (0700) and its ``owner.json`` (step 1 of provisioning)."""
    root = drills_root(home)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory = root / dir_name(drill_id)
    directory.mkdir(mode=0o700)
    rec = ScratchRecord(drill_id, directory, owner=owner_record())
    rec.save()
    return rec


# ---- teardown -----------------------------------------------------------------------------------

def _stop_api(pid: int) -> None:
    """Stop the drill's API process: only if it is still a ``swarm ... api serve`` (pid reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    if b"api" not in cmdline or b"serve" not in cmdline:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and pid_alive(pid):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def drop_database(url: str) -> None:
    """``DROP DATABASE ... WITH (FORCE)`` of ``url``'s database; only a drill's own (by its name)."""
    name = dbname_of(url)
    if drill_id_of(name) is None:
        raise ValueError(f"refusing to drop {name}: not a drill's database")
    with connect(with_dbname(url, "postgres")) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def empty_bucket(bucket: Bucket) -> int:
    """Delete every version and delete marker in ``bucket``; the number deleted."""
    n = 0
    client = bucket.client
    kw: dict[str, Any] = {"Bucket": bucket.name}
    while True:
        resp = bucket.call("list versions", client.list_object_versions, **kw)
        items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in resp.get("Versions", []) + resp.get("DeleteMarkers", [])]
        for i in range(0, len(items), 1000):
            bucket.call("delete versions", client.delete_objects, Bucket=bucket.name,
                        Delete={"Objects": items[i:i + 1000], "Quiet": True})
        n += len(items)
        if not resp.get("IsTruncated"):
            return n
        kw = {"Bucket": bucket.name, "KeyMarker": resp.get("NextKeyMarker"),
              "VersionIdMarker": resp.get("NextVersionIdMarker")}


def teardown(rec: ScratchRecord, bucket_config: Callable[[str], BucketConfig] | None) -> list[str]:
    """Remove everything ``rec`` names (see the module docstring for the order); the problems met
    (each step is attempted whatever failed before; a problem leaves ``owner.json`` in place so a
    later sweep tries again). ``bucket_config(name)``: how to reach a bucket (from the wiring)."""
    problems: list[str] = []
    if rec.api_pid:
        _stop_api(rec.api_pid)
    if rec.cluster_base:
        try:
            remove_throwaway(Path(rec.cluster_base))
        except OSError as exc:
            problems.append(f"scratch cluster {rec.cluster_base}: {exc}")
    elif rec.database_url:
        try:
            drop_database(rec.database_url)
        except (SwarmError, ValueError, Exception) as exc:
            problems.append(f"scratch database {redact(rec.database_url)}: {getattr(exc, 'message', exc)}")
    if rec.bucket and bucket_config is not None:
        try:
            b = Bucket(bucket_config(rec.bucket))
            exists = True
            try:
                b.client.head_bucket(Bucket=b.name)
            except Exception:
                exists = False
            if exists:
                _empty_and_delete(b, delete=rec.bucket_created)
        except SwarmError as exc:
            problems.append(f"scratch bucket {rec.bucket}: {exc.message}")
    if rec.state_dir and drill_id_of(Path(rec.state_dir).name) == rec.drill_id:
        # a --target-state drill's directory lies outside ours and carries the id; ours goes last
        shutil.rmtree(rec.state_dir, ignore_errors=True)
    if not problems:
        shutil.rmtree(rec.directory, ignore_errors=True)
    return problems


def _empty_and_delete(b: Bucket, *, delete: bool, attempts: int = 5, pause_s: float = 1.0) -> None:
    """Empty the scratch bucket and (``delete``) remove it. An interrupted drill's object restore
    may still have uploads in flight for a moment after the interrupt (its worker threads finish
    the object they hold): an object that lands after the emptying makes the delete fail, so the
    bucket is emptied and the delete tried again, ``attempts`` times ``pause_s`` apart."""
    for attempt in range(1, attempts + 1):
        empty_bucket(b)
        if not delete:
            return
        try:
            b.call("delete bucket", b.client.delete_bucket, Bucket=b.name)
            return
        except SwarmError:
            if attempt == attempts:
                raise
            time.sleep(pause_s)


# ---- leftovers of killed drills ---------------------------------------------------------------

def _abandoned(rec: ScratchRecord) -> bool:
    pid = rec.owner.get("pid")
    if not isinstance(pid, int):
        # killed before owner.json was written: the directory is seconds old at most when live
        try:
            return time.time() - rec.directory.stat().st_mtime > 60
        except OSError:
            return False
    return _owner_gone(rec.owner, pid)


def leftover_drills(home: Path) -> list[ScratchRecord]:
    """The drill directories under ``$SWARM_HOME/drills`` whose drill is no longer running
    (kept ones included: ``kept`` tells them apart)."""
    root = drills_root(home)
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    out = []
    for path in entries:
        if drill_id_of(path.name) is None or path.is_symlink() or not path.is_dir():
            continue
        rec = ScratchRecord.load(path)
        if _abandoned(rec):
            out.append(rec)
    return out


def sweep_drills(home: Path, bucket_config: Callable[[str], BucketConfig] | None, *, kept: bool = False,
                 only: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Tear down the leftovers of killed drills (and, with ``kept``, of drills run with ``--keep``;
    with ``only``, just that drill, kept or not); a live drill's resources are never touched.
    Returns (what was removed, problems)."""
    removed: list[dict[str, Any]] = []
    problems: list[str] = []
    for rec in leftover_drills(home):
        if only is not None and rec.drill_id != only:
            continue
        if rec.kept and not kept and only is None:
            continue
        p = teardown(rec, bucket_config)
        problems += [f"drill {rec.drill_id}: {x}" for x in p]
        if not p:
            removed.append(rec.public())
    return removed, problems
