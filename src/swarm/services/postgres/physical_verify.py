"""Verify a physical backup (called by ``verify_backup`` for ``pg-physical`` manifests).

1. every pack this backup wrote: its stored bytes hash to the manifest's SHA-256, and every
   frame in it opens (AEAD under the backup's data key, bound to the block id) and its
   plaintext's keyed hash equals the block id; then the tree's structure (every node, and
   every pack of earlier backups it reads present and long enough: ``TreeReader.check``).
   Both through the tree store (``open_snapshot``: ``tree.json``, or ``index.json`` for a
   backup of the older block-index format); this module never sees a block id or offset;
2. the WAL the backup needs to become consistent (the segments from its start to its stop
   LSN) is in the repository and every such file decrypts;
3. every file is re-assembled into a temporary directory from its blocks (also those
   stored by earlier backups, read by byte range) and ``pg_verifybackup --no-parse-wal``
   checks each file's size and checksum against the backup's own ``backup_manifest``.

Problems are collected (the check goes on), each naming the pack, file or segment, and a
damaged pack is named once: one line per pack (the first few things wrong with it), and the
re-assembly failing on a pack already named adds no line.

``restore_test_physical`` (``verify --restore-test``) goes further and proves the backup
recovers: the files re-assembled for step 2 (then written where the server user can reach
them, so the backup is read once) become a throwaway data directory, PostgreSQL replays the
archived WAL (``restore_command`` = ``swarm admin wal fetch``) to the backup's consistency
point (``recovery_target = 'immediate'``, ``recovery_target_timeline = 'current'``,
``archive_mode = off``) and is promoted; then, in every database that accepts connections,
``amcheck``'s ``bt_index_check`` (with ``heapallindexed``: every heap tuple must have its index
entry) runs on every valid B-tree index (when the extension is
installed on this machine; ``CREATE EXTENSION`` happens in the throwaway copy only) and
every table and populated materialized view is read in full (``SELECT count(*),
sum(length(t::text))``, which also de-TOASTs every value), all in one psql session per
database, each check in its own sub-transaction so one failure does not hide the others.
The copy runs on a configuration of its own (the backup's is kept beside it as
``postgresql.conf.from-backup``, its ``pg_hba.conf`` as ``pg_hba.conf.from-backup``): no TCP
listener, one unix socket in a 0700 directory only the server user (and root) can enter, and
``local all all trust`` as the whole ``pg_hba.conf`` (``cluster.lock_down_hba``; the production
roles' passwords are unknown to us, so a socket only we can reach is the way in), no
archiving, no ``shared_preload_libraries``, ``hot_standby = off``.

The throwaway cluster is stopped and its directory (data, log, WAL spool, socket) removed on
every exit path, SIGTERM included (the command line raises it as an exception). A kill -9 of
swarm during the test leaves ``swarm-verify-restore-<pid>-*`` (with ``owner.json``) in the
work directory (or the system's temporary directory) with the server possibly still running:
the next ``verify`` (or logical backup / restore) stops that server and removes the directory
once the pid is gone (``services.workdirs``).
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from swarm.errors import ConfigError, NotFoundError, SwarmError
from swarm.model.manifest import Manifest
from swarm.repo import Repository
from swarm.repo.tree import open_snapshot, snapshot_index_name
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.wal.server_access import ServerAccess
from swarm.services.workdirs import VERIFY_PHYS_DIR_PREFIX, VERIFY_RESTORE_DIR_PREFIX, make_work_directory

Fail = Callable[[str, str], None]
PACK_DETAIL = 3  # things wrong with one pack named in its (single) problem line


def verify_physical(repo: Repository, manifest: Manifest, result: Any, *, work_dir: str | None = None,
                    reporter: Reporter | None = None, bindir: str | None = None,
                    restore_test: Callable[[Path, int, int], None] | None = None) -> None:
    """Run checks 1-3 (module docstring), adding problems to ``result``. With ``restore_test``,
    the re-assembled files are written where the server user can reach them and, if no check
    found a problem, ``restore_test(datadir, files, bytes)`` runs on them before they are
    removed (so the backup is read once for both)."""
    reporter = reporter or NullReporter()
    index = snapshot_index_name(manifest)
    try:
        src = manifest.physical
        reader = open_snapshot(repo, manifest)
    except SwarmError as exc:
        if index not in result.reported():  # else the listing named it already
            result.problem(index, exc.message)
        return
    result.objects_checked += 1
    packs = [o for o in manifest.objects if o.name.startswith("packs/")]
    damaged: set[str] = set(result.reported())  # packs the listing already found missing or resized
    reporter.stage(f"checking {len(packs)} packs")
    try:
        found = reader.check_packs(manifest.id, [p for p in packs if p.name not in damaged])
    except SwarmError as exc:  # a node of the tree cannot be read: the structure check names it
        found = {}
        result.problem(index, exc.message)
        damaged.add(index)
    for entry in packs:
        if entry.name in damaged:
            continue
        if entry.name in found:
            problems = found[entry.name]
            more = f" (and {len(problems) - PACK_DETAIL} more)" if len(problems) > PACK_DETAIL else ""
            result.problem(entry.name, "; ".join(problems[:PACK_DETAIL]) + more)
            damaged.add(entry.name)
            continue
        result.objects_checked += 1
        result.bytes_checked += entry.size
    if index not in damaged:
        for p in reader.check():  # the tree's nodes, and the packs of earlier backups it reads
            if not any(name in p.where or name in p.message for name in damaged):
                result.problem(p.where, p.message)
    reporter.stage("checking the backup's WAL is archived")
    for name in src.wal_segments:
        try:
            data = repo.get_wal(name)
            if len(data) != src.segment_size:
                result.problem(name, f"archived segment has {len(data)} bytes")
        except NotFoundError:
            result.problem(name, "WAL segment needed to make the backup consistent is missing from the repository")
        except SwarmError as exc:
            result.problem(name, exc.message)
    if index in damaged:
        return
    reporter.stage("re-assembling files and running pg_verifybackup")
    scratch = (_scratch_dir(work_dir) if restore_test is not None
               else make_work_directory(VERIFY_PHYS_DIR_PREFIX, work_dir))
    try:
        root = scratch / "data"
        root.mkdir(mode=0o700)
        try:
            from swarm.services.postgres.pitr import materialize_physical

            files, nbytes = materialize_physical(repo, manifest, root, reporter=reporter)
        except SwarmError as exc:
            # a block of a pack already named fails again here: that is the same damage
            if not any(name in exc.message for name in damaged | result.reported()):
                result.problem("files", exc.message)
            return
        from swarm.sources.postgres.binaries import tool

        r = subprocess.run([tool("pg_verifybackup", bindir), "--no-parse-wal", str(root)], capture_output=True,
                           text=True, check=False, timeout=3600)
        if r.returncode != 0:
            for line in (r.stderr or r.stdout).strip().splitlines()[:20]:
                result.problem("pg_verifybackup", line)
        if restore_test is not None and not result.problems:
            restore_test(root, files, nbytes)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ---- restore test --------------------------------------------------------------------------------
_DAMAGED_WAL = re.compile(r"object (wal/\S+): ([^\n]*)")
_SEGMENT = re.compile(r"\b([0-9A-F]{24})\b")
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] ")  # log_line_prefix '%m [%p] '



def restore_test_physical(manifest: Manifest, datadir: Path, access: ServerAccess, fail: Fail,
                          facts: dict[str, Any], *, reporter: Reporter | None = None, bindir: str | None = None,
                          timeout: float = 600.0) -> None:
    """Recover the backup's files, already written to ``datadir`` (in a directory of its own
    the server user can reach: ``verify_physical`` with ``restore_test``), in a throwaway
    cluster, and read it all (see the module docstring).

    What was tested goes into ``facts`` (``databases``, ``tables_read``, ``rows_read``,
    ``indexes_checked``, ``amcheck``, ``recovered_lsn``, ``recovery_seconds``, ``seconds``);
    what failed is passed to ``fail(where, message)``: the WAL file (else ``restore-test``)
    when recovery does not reach a promoted server, ``<db>: index <name>`` / ``<db>: table
    <name>`` for a check. The server is stopped and ``datadir``, its log and WAL spool removed
    on every exit path.
    """
    from swarm.services.wal.archive import spool_root
    from swarm.sources.netutil import free_port
    from swarm.sources.postgres.cluster import LocalCluster, hand_to_server_user

    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    spool = spool_root(datadir)
    cluster: LocalCluster | None = None
    sock_parent: Path | None = None
    try:
        spool.mkdir()
        hand_to_server_user(spool)
        port = free_port()
        socket_dir, sock_parent = _socket_dir(datadir)
        _prepare_datadir(datadir, port, access.restore_command, bindir, socket_dir)
        hand_to_server_user(datadir, recursive=True)
        cluster = LocalCluster(datadir.parent, port=port, pgdata=datadir, bindir=Path(bindir) if bindir else None,
                               socket_dir=socket_dir)
        reporter.stage(f"restore test: recovering to the consistency point (stop LSN "
                       f"{manifest.physical.stop_lsn}) on port {port}")
        try:
            cluster.start(timeout=timeout)
        except SwarmError:
            _recovery_failed(cluster.logfile, "did not start", fail)
            return
        superuser = _wait_promoted(cluster, manifest, timeout, fail)
        if superuser is None:
            return
        facts["recovery_seconds"] = round(time.monotonic() - t0, 3)
        reporter.stage("restore test: amcheck on every B-tree index, a full read of every table")
        try:
            _check_databases(cluster, superuser, fail, facts)
        except SwarmError as exc:
            fail("restore-test", f"the recovered cluster could not be checked: {exc.message}")
    finally:
        if cluster is not None:
            cluster.destroy()
        access.revoke()  # the server user's WAL read grant lasts this restore test only
        _wait_prefetcher(spool)
        shutil.rmtree(spool, ignore_errors=True)
        shutil.rmtree(datadir, ignore_errors=True)
        if sock_parent is not None:
            shutil.rmtree(sock_parent, ignore_errors=True)
        facts["seconds"] = round(time.monotonic() - t0, 3)


def _socket_dir(datadir: Path) -> tuple[Path, Path | None]:
    """Where the throwaway server's only socket goes: ``<scratch>/s`` beside ``datadir`` when
    the socket's path fits (107 bytes), else a ``swarm-verify-restore-<pid>-*`` directory of
    its own in ``/tmp`` (returned second, for the caller to remove; after a kill -9 it holds
    only a dead socket, and the next run whose work directory is the default removes it)."""
    from swarm.sources.postgres.cluster import socket_dir_fits

    near = datadir.parent / "s"
    if socket_dir_fits(near):
        return near, None
    parent = make_work_directory(VERIFY_RESTORE_DIR_PREFIX, "/tmp", mode=0o711)
    if not socket_dir_fits(parent / "s"):
        shutil.rmtree(parent, ignore_errors=True)
        raise ConfigError(f"no short enough path for the restore test's unix socket ({parent / 's'})",
                          hint="Set SWARM_WORK_DIR (backup.work_dir) to a short path, e.g. /var/tmp.")
    return parent / "s", parent


def _scratch_dir(work_dir: str | None) -> Path:
    """A new 0711 directory the server user can traverse: under ``work_dir`` if it can reach
    that, else under the system's temporary directory."""
    from swarm.sources.postgres.cluster import server_user_can_reach, server_user_name

    for parent in ([work_dir] if work_dir else []) + [tempfile.gettempdir()]:
        Path(parent).mkdir(parents=True, exist_ok=True)
        if not server_user_can_reach(Path(parent)):
            continue
        return make_work_directory(VERIFY_RESTORE_DIR_PREFIX, parent, mode=0o711)
    raise ConfigError(f"the PostgreSQL server user ({server_user_name()}) cannot reach the work directory "
                      f"{work_dir or tempfile.gettempdir()} for the restore test",
                      hint="Set SWARM_WORK_DIR (backup.work_dir) to a directory outside /root, e.g. /var/tmp.")


def _prepare_datadir(datadir: Path, port: int, restore_command: str, bindir: str | None,
                     socket_dir: Path) -> None:
    """Make the restored files a private scratch server recovering to the consistency point.

    Only we can connect to it (``cluster.lock_down_hba``): no TCP listener, one unix socket in
    ``socket_dir`` (0700, the server user's), ``pg_hba.conf`` = ``local all all trust``; the
    backup's own ``pg_hba.conf`` is kept as ``pg_hba.conf.from-backup``.

    The backup's own ``postgresql.conf`` and ``postgresql.auto.conf`` are moved aside
    (``*.from-backup``): they may point outside the copy (``data_directory``, ``include``,
    certificates), preload libraries this machine lacks, size memory for the production host
    or archive into the production repository. The new configuration is only what recovery
    needs; ``hot_standby = off``, so the primary's ``max_connections`` and friends need not
    be matched, except ``max_prepared_transactions`` / ``max_locks_per_transaction``, taken
    from the backup's ``pg_control`` (prepared transactions survive recovery).
    """
    for name in ("postmaster.pid", "postmaster.opts", "standby.signal"):
        (datadir / name).unlink(missing_ok=True)
    for name in ("postgresql.conf", "postgresql.auto.conf"):
        if (datadir / name).exists():
            (datadir / name).rename(datadir / f"{name}.from-backup")
    from swarm.sources.postgres.cluster import lock_down_hba

    access = lock_down_hba(datadir, socket_dir)
    control = _controldata(datadir, bindir)
    conf = {
        "restore_command": restore_command,
        "recovery_target": "immediate",
        "recovery_target_action": "promote",
        "recovery_target_timeline": "current",
        "hot_standby": "off",
        "archive_mode": "off",
        "port": str(port),
        **access,  # listen_addresses = '' (no TCP), unix_socket_directories, hba_file
        "ident_file": str(datadir / "pg_ident.conf"),
        "ssl": "off",
        "shared_preload_libraries": "",
        "shared_buffers": "128MB",
        "huge_pages": "try",
        "max_connections": "20",
        "max_wal_senders": "0",
        "max_prepared_transactions": control.get("max_prepared_xacts setting", "0"),
        "max_locks_per_transaction": control.get("max_locks_per_xact setting", "64"),
        "logging_collector": "off",
        "log_destination": "stderr",
        "log_line_prefix": "%m [%p] ",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "on",
        "timezone": "UTC",
    }
    if not (datadir / "pg_ident.conf").exists():
        (datadir / "pg_ident.conf").write_text("")
    with open(datadir / "postgresql.conf", "w") as fh:
        fh.write("# written by swarm verify --restore-test; the backup's own configuration is in "
                 "postgresql.conf.from-backup\n")
        for k, v in conf.items():
            fh.write(f"{k} = '{_quote(v)}'\n")
    (datadir / "recovery.signal").touch()


def _controldata(datadir: Path, bindir: str | None) -> dict[str, str]:
    """``pg_controldata``'s fields (name → value); empty if it cannot run."""
    from swarm.sources.postgres.binaries import tool

    try:
        r = subprocess.run([tool("pg_controldata", bindir), str(datadir)], capture_output=True, text=True,
                           check=False, timeout=60, env={**os.environ, "LC_ALL": "C"})
    except (OSError, SwarmError, subprocess.SubprocessError):
        return {}
    out: dict[str, str] = {}
    for line in r.stdout.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


def _quote(v: str) -> str:
    return v.replace("\\", "\\\\").replace("'", "''")


def _wait_promoted(cluster: Any, manifest: Manifest, timeout: float, fail: Fail) -> str | None:
    """Wait until recovery ended and the server was promoted; return a superuser to connect
    as, or None after reporting why recovery failed."""
    deadline = time.monotonic() + timeout
    superuser: str | None = None
    while time.monotonic() < deadline:
        if not cluster.is_running():
            _recovery_failed(cluster.logfile, "stopped during recovery", fail)
            return None
        if superuser is None:
            superuser = _find_superuser(cluster, manifest)
        if superuser is not None:
            with contextlib.suppress(SwarmError):
                if _query(cluster, superuser, "SELECT pg_is_in_recovery()") == "f":
                    return superuser
        time.sleep(0.3)
    fail("restore-test", f"recovery did not reach the backup's consistency point in {timeout:.0f} s: "
                         f"{_log_errors(cluster.logfile)}")
    return None


def _find_superuser(cluster: Any, manifest: Manifest) -> str | None:
    """The bootstrap superuser's name (the role with oid 10), found by connecting as a role
    that is likely to exist: the one that took the backup, ``postgres``, the server's OS user."""
    from urllib.parse import urlparse

    from swarm.sources.postgres.cluster import server_user_name

    candidates = [urlparse(manifest.physical.db_url or "").username, "postgres", server_user_name(),
                  cluster.superuser]
    for user in dict.fromkeys(c for c in candidates if c):
        with contextlib.suppress(SwarmError):
            name = _query(cluster, user, "SELECT rolname FROM pg_roles WHERE oid = 10")
            if name:
                return str(name)
    return None


def _query(cluster: Any, user: str, query: str) -> str:
    """``query``'s output as ``user`` on the throwaway cluster (SwarmError if that fails)."""
    cluster.superuser = user
    return str(cluster.psql(query))


def _recovery_failed(logfile: Path, what: str, fail: Fail) -> None:
    text = ""
    with contextlib.suppress(OSError):
        text = logfile.read_text(errors="replace")
    damaged = _DAMAGED_WAL.search(text)
    errors = _log_errors(logfile)
    if damaged:
        fail(damaged.group(1).removeprefix("wal/"),
             f"recovery {what}: archived WAL cannot be read ({damaged.group(2).strip()}); {errors}")
        return
    seg = _SEGMENT.search(errors)
    fail(seg.group(1) if seg else "restore-test",
         f"recovery of the backup {what}: {errors}")


def _log_errors(logfile: Path) -> str:
    try:
        lines = [_LOG_PREFIX.sub("", ln).strip() for ln in logfile.read_text(errors="replace").splitlines()
                 if any(w in ln for w in ("FATAL", "PANIC", "ERROR", "invalid", "could not"))]
    except OSError:
        return "(no server log)"
    return "; ".join(lines[-4:]) or "(no error in the server log)"


def _wait_prefetcher(spool: Path, wait_s: float = 10.0) -> None:
    """Let a WAL prefetcher the server's restore_command started finish before its spool goes."""
    pidfile = spool / "fetch" / "prefetch.pid"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(int(pidfile.read_text()), 0)
        except (OSError, ValueError):
            return
        time.sleep(0.1)


# One psql session per database runs every check inside the server, each in its own
# sub-transaction, and prints one line per index or table: kind, name, error (empty: held), rows.
_CHECK_FUNCTION = r"""
CREATE FUNCTION pg_temp.swarm_verify(check_indexes boolean)
RETURNS TABLE(kind text, name text, err text, n bigint) LANGUAGE plpgsql AS $swarm$
DECLARE r record; amschema text; width bigint;
BEGIN
  IF check_indexes THEN
    SELECT extnamespace::regnamespace::text INTO amschema FROM pg_extension WHERE extname = 'amcheck';
    FOR r IN SELECT c.oid, format('%I.%I', ns.nspname, c.relname) AS nm FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace ns ON ns.oid = c.relnamespace
             JOIN pg_am am ON am.oid = c.relam
             WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisvalid AND i.indisready
             ORDER BY 2 LOOP
      kind := 'index'; name := r.nm; err := ''; n := 0;
      BEGIN
        EXECUTE format('SELECT %s.bt_index_check($1::regclass, true)', amschema) USING r.oid;
      EXCEPTION WHEN OTHERS THEN err := SQLERRM;
      END;
      RETURN NEXT;
    END LOOP;
  END IF;
  FOR r IN SELECT format('%I.%I', ns.nspname, c.relname) AS nm FROM pg_class c
           JOIN pg_namespace ns ON ns.oid = c.relnamespace
           WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated)) AND c.relpersistence <> 't'
           ORDER BY 1 LOOP
    kind := 'table'; name := r.nm; err := ''; n := 0;
    BEGIN
      EXECUTE format('SELECT count(*), coalesce(sum(length(t::text)), 0) FROM ONLY %s t', r.nm) INTO n, width;
    EXCEPTION WHEN OTHERS THEN err := SQLERRM;
    END;
    RETURN NEXT;
  END LOOP;
END
$swarm$;
SELECT concat_ws(chr(31), 'swarm', kind, replace(name, E'\n', ' '), replace(err, E'\n', ' '), n::text)
FROM pg_temp.swarm_verify(%(indexes)s);
"""


def _check_databases(cluster: Any, superuser: str, fail: Fail, facts: dict[str, Any]) -> None:
    cluster.superuser = superuser
    dbs = [d for d in cluster.psql("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
                                   "ORDER BY datname").splitlines() if d]
    amcheck = cluster.psql("SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'") != "0"
    facts["recovered_lsn"] = cluster.psql("SELECT pg_current_wal_lsn()")
    facts.update(databases=dbs, amcheck=amcheck, tables_read=0, rows_read=0, indexes_checked=0)
    if not amcheck:
        facts["note"] = "amcheck is not installed on this machine: indexes were not checked"
    for db in dbs:
        indexes = amcheck
        if amcheck:
            try:
                cluster.psql("CREATE EXTENSION IF NOT EXISTS amcheck", dbname=db)
            except SwarmError as exc:
                fail(f"{db}: amcheck", f"cannot create the amcheck extension: {exc.message}")
                indexes = False
        try:
            out = cluster.psql(_CHECK_FUNCTION.replace("%(indexes)s", "true" if indexes else "false"), dbname=db)
        except SwarmError as exc:
            fail(f"{db}", f"the checks could not run: {exc.message}")
            continue
        for line in out.splitlines():
            parts = line.split("\x1f")
            if len(parts) != 5 or parts[0] != "swarm":
                continue  # psql's command tags
            _, kind, name, err, rows = parts
            if kind == "index":
                if err:
                    fail(f"{db}: index {name}", f"amcheck: {err}")
                else:
                    facts["indexes_checked"] += 1
            elif err:
                fail(f"{db}: table {name}", f"full read failed: {err}")
            else:
                facts["tables_read"] += 1
                facts["rows_read"] += int(rows or 0)
