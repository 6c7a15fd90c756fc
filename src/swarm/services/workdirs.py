"""Private work directories of one run, and sweeping those a killed run left behind.

Logical backups (``swarm-dump-``), logical restores (``swarm-restore-``) and ``verify``
(``swarm-verify-``) stage files in ``work_directory``; each of them calls
``sweep_work_directories`` on the same parent first, so what a kill -9 left is removed by the
next run of any of them, and a live run's directory is never touched.
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

DUMP_DIR_PREFIX = "swarm-dump-"
RESTORE_DIR_PREFIX = "swarm-restore-"
VERIFY_DIR_PREFIX = "swarm-verify-"
WORK_DIR_PREFIXES = (DUMP_DIR_PREFIX, RESTORE_DIR_PREFIX, VERIFY_DIR_PREFIX)
OWNER_FILE = "owner.json"
LEGACY_IDLE_S = 3600.0  # a directory of a version that recorded no pid: swept after this long untouched
_NAME = re.compile(r"(?P<prefix>swarm-(?:dump|restore|verify)-)(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+")


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
    pid = pid or os.getpid()
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{pid}-", dir=parent))  # mkdtemp: mode 0700
    try:
        owner = {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "start_ticks": _start_ticks(pid)}
        (path / OWNER_FILE).write_text(json.dumps(owner))
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


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
    if owner.get("host", socket.gethostname()) != socket.gethostname():
        return False  # another machine's (a shared work dir): its processes are not ours to judge
    if owner.get("boot_id") and owner["boot_id"] != _boot_id():
        return True  # the machine rebooted since
    if not pid_alive(pid):
        return True
    ticks = owner.get("start_ticks")
    now_ticks = _start_ticks(pid)
    return ticks is not None and now_ticks is not None and ticks != now_ticks  # the pid was reused


def sweep_work_directories(parent: str | None) -> list[str]:
    """Remove the work directories of killed backups, restores and verifies under ``parent``
    (default the system temp dir) and return their paths.

    Only directories named by ``work_directory`` (or by older versions: ``swarm-dump-*`` /
    ``swarm-restore-*`` / ``swarm-verify-*`` without a pid, once untouched for an hour; never
    physical verify's ``swarm-verify-phys-*`` / ``swarm-verify-restore-*``, which clean up
    after themselves and are not named this way), owned by this user, and
    whose process is gone (``_abandoned``) are removed; a concurrent run's is kept. A kill
    during the sweep leaves a partly removed directory that the next sweep finishes.
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
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            swept.append(str(path))
    return swept


def swept_message(swept: list[str]) -> str:
    n = len(swept)
    return (f"removed {n} leftover work director{'y' if n == 1 else 'ies'} of killed runs: "
            + ", ".join(swept))


def sweep_and_report(work_dir: str | None, reporter: Reporter) -> list[str]:
    """``sweep_work_directories`` at the start of a run, saying what it removed as the run's first stage."""
    swept = sweep_work_directories(work_dir)
    if swept:
        reporter.stage(swept_message(swept))
    return swept
