"""Private work directories of one run, and sweeping those a killed run left behind.

Logical backups (``swarm-dump-``), logical restores (``swarm-restore-``) and ``verify``
(``swarm-verify-``; a physical verify's ``swarm-verify-phys-`` and its restore test's
``swarm-verify-restore-``, made by ``make_work_directory``) stage files in ``work_directory``;
each of them calls ``sweep_and_report`` on the same parent first, so what a kill -9 left is
removed by the next run of any of them, and a live run's directory is never touched.

A killed ``verify --restore-test`` may leave its throwaway PostgreSQL server running, serving
the restored rows. Sweeping a directory therefore first stops every cluster found in it
(``cluster.remove_throwaway``: SIGQUIT to the postmaster after checking it is a postgres
process of that data directory), and ``sweep_relocated_clusters`` does the same for the
throwaway clusters relocated to ``/var/tmp/swarm-pg/<hash>`` (when we run as root), which carry
their owner in ``owner.json``; clusters without an owner record there (the dev stack's, the
tests' fixtures) are never touched.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from swarm.procs import pid_alive
from swarm.services.reporting import Reporter
from swarm.sources.postgres.cluster import OWNER_FILE as CLUSTER_OWNER_FILE
from swarm.sources.postgres.cluster import RELOCATE_ROOT, remove_throwaway

DUMP_DIR_PREFIX = "swarm-dump-"
RESTORE_DIR_PREFIX = "swarm-restore-"
VERIFY_DIR_PREFIX = "swarm-verify-"
VERIFY_PHYS_DIR_PREFIX = "swarm-verify-phys-"  # a physical verify's scratch (services.postgres.physical_verify)
VERIFY_RESTORE_DIR_PREFIX = "swarm-verify-restore-"  # a physical restore test's data directory and socket
WORK_DIR_PREFIXES = (DUMP_DIR_PREFIX, RESTORE_DIR_PREFIX, VERIFY_DIR_PREFIX)
OWNER_FILE = "owner.json"
LEGACY_IDLE_S = 3600.0  # a directory of a version that recorded no pid: swept after this long untouched
_NAME = re.compile(r"(?P<prefix>swarm-(?:dump|restore|verify)-(?:(?:phys|restore)-)?)(?:(?P<pid>\d+)-)?"
                   r"[A-Za-z0-9_]+")
_RELOCATED = re.compile(r"[0-9a-f]{16}")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, /proc/<pid>/stat field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None



@contextlib.contextmanager
def work_directory(prefix: str, parent: str | None, *, pid: int | None = None) -> Iterator[Path]:
    """A private work directory ``<parent>/<prefix><pid>-<random>`` (mode 0700; ``parent``
    defaults to the system temp dir), removed with everything in it on exit.

    Its name carries the owning pid from the moment it exists, and ``owner.json`` adds the
    host, boot and process start time, so ``sweep_work_directories`` can tell a killed run's
    directory (swept) from a live one's (never touched), pid reuse included. A kill -9 leaves
    the directory; the next backup or restore with the same parent removes it.
    """
    path = make_work_directory(prefix, parent, pid=pid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def owner_record(pid: int | None = None) -> dict[str, object]:
    """Who owns a work directory or throwaway cluster: pid, host, boot and the process's start
    time (``_owner_gone`` tells a killed owner from a live one, pid reuse included)."""
    pid = pid or os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "start_ticks": _start_ticks(pid)}


def make_work_directory(prefix: str, parent: str | None, *, pid: int | None = None, mode: int = 0o700) -> Path:
    """``<parent>/<prefix><pid>-<random>`` with ``owner.json``, chmod ``mode``; the caller removes
    it (``work_directory`` does so on exit). A kill -9 before ``owner.json`` is written leaves a
    directory that the pid in its name identifies."""
    pid = pid or os.getpid()
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{pid}-", dir=parent))  # mkdtemp: mode 0700
    (path / OWNER_FILE).write_text(json.dumps(owner_record(pid)))
    if mode != 0o700:
        os.chmod(path, mode)
    return path


def _newest_mtime(path: Path) -> float:
    newest = path.lstat().st_mtime
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                newest = max(newest, os.lstat(os.path.join(root, name)).st_mtime)
    return newest


def _abandoned(path: Path) -> bool:
    """True if the run that created ``path`` is certainly gone."""
    m = _NAME.fullmatch(path.name)
    if not m:
        return False
    if m.group("pid") is None:  # written by a version that recorded no owner
        return time.time() - _newest_mtime(path) > LEGACY_IDLE_S
    pid = int(m.group("pid"))
    try:
        owner = json.loads((path / OWNER_FILE).read_text())
    except (OSError, ValueError):
        owner = {}  # killed before it was written: the pid in the name decides
    return _owner_gone(owner, pid)


def _owner_gone(owner: dict[str, object], pid: int) -> bool:
    """Is the process of this owner record (``owner_record``) certainly gone?"""
    if owner.get("host", socket.gethostname()) != socket.gethostname():
        return False  # another machine's (a shared work dir): its processes are not ours to judge
    if owner.get("boot_id") and owner["boot_id"] != _boot_id():
        return True  # the machine rebooted since
    if not pid_alive(pid):
        return True
    ticks = owner.get("start_ticks")
    ticks = ticks if isinstance(ticks, int) else None
    now_ticks = _start_ticks(pid)
    return ticks is not None and now_ticks is not None and ticks != now_ticks  # the pid was reused


def sweep_work_directories(parent: str | None) -> list[str]:
    """Remove the work directories of killed backups, restores and verifies under ``parent``
    (default the system temp dir) and return their paths.

    Only directories named by ``work_directory`` / ``make_work_directory`` (physical verify's
    ``swarm-verify-phys-<pid>-*`` / ``swarm-verify-restore-<pid>-*`` included; or by older
    versions: these names without a pid, once untouched for an hour), owned by this user, and
    whose process is gone (``_abandoned``) are removed; a concurrent run's is kept. A
    throwaway cluster left in one (the restore test's ``cluster`` / ``data``, with its
    relocated directory under ``/var/tmp/swarm-pg``) is stopped first
    (``cluster.remove_throwaway``). A kill during the sweep leaves a partly removed directory
    (or a stopped server) that the next sweep finishes.
    """
    base = Path(parent) if parent else Path(tempfile.gettempdir())
    try:
        entries = sorted(base.iterdir())
    except OSError:
        return []
    swept = []
    for path in entries:
        try:
            if (not path.name.startswith(WORK_DIR_PREFIXES) or path.is_symlink() or not path.is_dir()
                    or path.lstat().st_uid != os.getuid() or not _abandoned(path)):
                continue
        except OSError:
            continue
        _remove_clusters_in(path)
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            swept.append(str(path))
    return swept


def _remove_clusters_in(path: Path) -> None:
    """Stop and remove the throwaway clusters in an abandoned work directory: its entries that
    are a cluster base (``<x>/data``), a data directory, or a symlink to a relocated base."""
    try:
        children = list(path.iterdir())
    except OSError:
        return
    for child in children:
        try:
            if child.is_symlink():
                if child.resolve().parent == RELOCATE_ROOT.resolve():
                    remove_throwaway(child)
            elif child.is_dir() and ((child / "PG_VERSION").exists() or (child / "data" / "PG_VERSION").exists()):
                remove_throwaway(child)
        except OSError:
            continue


def sweep_relocated_clusters(root: Path = RELOCATE_ROOT) -> list[str]:
    """Stop and remove the throwaway clusters under ``root`` (``/var/tmp/swarm-pg/<hash>``, where
    clusters live when we run as root and the server user cannot reach their base) whose
    ``owner.json`` names a process that is gone; return their paths. Directories without an owner
    record (the dev stack's cluster, long-lived ones) or of another host are never touched."""
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    swept = []
    for path in entries:
        try:
            if not _RELOCATED.fullmatch(path.name) or path.is_symlink() or not path.is_dir():
                continue
            owner = json.loads((path / CLUSTER_OWNER_FILE).read_text())
            pid = int(owner["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not _owner_gone(owner, pid):
            continue
        remove_throwaway(path)
        if not path.exists():
            swept.append(str(path))
    return swept


def swept_message(swept: list[str]) -> str:
    n = len(swept)
    return (f"removed {n} leftover work director{'y' if n == 1 else 'ies'} of killed runs: "
            + ", ".join(swept))


def sweep_and_report(work_dir: str | None, reporter: Reporter) -> list[str]:
    """``sweep_work_directories`` and ``sweep_relocated_clusters`` at the start of a run, saying
    what they removed as the run's first stage."""
    swept = sweep_work_directories(work_dir) + sweep_relocated_clusters()
    if swept:
        reporter.stage(swept_message(swept))
    return swept
