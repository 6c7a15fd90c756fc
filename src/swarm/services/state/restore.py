"""Restore a state snapshot: ``swarm admin restore state ID --target-state DIR``.

``plan_restore_state`` checks, changing nothing: the backup exists and is a state snapshot
(else ``backup-not-found`` / ``wrong-kind``); ``DIR`` is not a file or a symlink, does not lie
inside the state directory being protected and does not contain it (``unsafe-target``); ``DIR``
is absent or empty, or ``force`` was given (``target-not-empty``). ``entries`` lists what would
be restored (``--dry-run``).

``execute_restore_state`` writes the snapshot into a fresh directory *beside* ``DIR``
(``.<name>.swarm-restore-<pid>-<random>``, same parent, so the final rename is atomic),
through the tree store's ``materialize`` (every path opened component by component with
``O_NOFOLLOW`` from the staging directory: no ``..``, no write through a restored symlink,
symlinks created last; each block proven to be its id, each file's size checked), then
creates hard links (``link`` extras) the same way, then reads every restored file back and
compares it with the SHA-256 the snapshot recorded, then renames the staging directory into
place.

Order of steps, and what a kill -9 between them leaves:

1. leftovers of killed restores beside ``DIR`` (their pid no longer runs) are removed;
2. the staging directory is created and filled (materialize, links, checksums);
3. ``DIR`` absent: staging renamed to ``DIR``. ``DIR`` empty: ``DIR`` removed, then staging
   renamed to it. ``DIR`` non-empty (``--force``): ``DIR`` renamed to
   ``.<name>.swarm-old-<pid>-<random>``, staging renamed to ``DIR``, the old tree removed.

Killed during 1 or 2: ``DIR`` is untouched (absent, empty or the old tree), a hidden staging
directory stays beside it and the next restore into ``DIR`` removes it. Killed inside 3: ``DIR``
is absent (its old tree, with ``--force``, is beside it as ``.<name>.swarm-old-...``, kept
until a later restore into ``DIR`` removes it) or complete; never half-restored. On any error
the staging directory is removed and ``DIR`` is left as it was.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from swarm.errors import IntegrityError, TargetNotEmpty, UnsafeTarget, WrongKind
from swarm.model.manifest import Manifest
from swarm.procs import pid_alive
from swarm.repo import Repository
from swarm.repo.tree import DIR, FILE, SYMLINK, Entry, TreeReader
from swarm.services.reporting import NullReporter, Reporter
from swarm.services.state.backup import KIND, X_LINK, X_SHA256
from swarm.sources.state import link_in, read_back

STAGING, OLD = "swarm-restore", "swarm-old"


@dataclass
class StateRestorePlan:
    manifest: Manifest
    target: Path
    force: bool
    replaces: bool  # DIR exists and is not empty (only with force)
    entries: list[Entry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        files = [e for e in self.entries if e.type == FILE]
        return {"backup_id": self.manifest.id, "target": str(self.target), "force": self.force,
                "replaces_existing": self.replaces, "complete_snapshot": bool(self.manifest.source.get("complete")),
                "files": len(files), "dirs": sum(1 for e in self.entries if e.type == DIR and e.path),
                "symlinks": sum(1 for e in self.entries if e.type == SYMLINK),
                "hardlinks": sum(1 for e in files if dict(e.meta.extra).get(X_LINK)),
                "size": sum(e.size for e in files if not dict(e.meta.extra).get(X_LINK)),
                "entries": [_entry_dict(e) for e in self.entries if e.path]}


def _entry_dict(e: Entry) -> dict[str, Any]:
    d: dict[str, Any] = {"path": e.path, "type": {DIR: "dir", FILE: "file", SYMLINK: "symlink"}[e.type],
                         "mode": oct(e.meta.mode)}
    if e.type == FILE:
        d["size"] = e.size
        link = dict(e.meta.extra).get(X_LINK)
        if link:
            d["hardlink_to"] = link
    elif e.type == SYMLINK:
        d["target"] = e.target
    return d


@dataclass
class StateRestoreResult:
    plan: StateRestorePlan
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    bytes: int = 0
    checksums_verified: int = 0
    swept: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"backup_id": self.plan.manifest.id, "target": str(self.plan.target),
                "complete_snapshot": bool(self.plan.manifest.source.get("complete")), "files": self.files,
                "dirs": self.dirs, "symlinks": self.symlinks, "hardlinks": self.hardlinks, "bytes": self.bytes,
                "checksums_verified": self.checksums_verified, "swept": self.swept,
                "seconds": round(self.seconds, 3), "swarm_state_dir": str(self.plan.target),
                "point_swarm_at_it": f"export SWARM_STATE_DIR={_shell_quote(str(self.plan.target))}"}


def _shell_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def _inside(a: Path, b: Path) -> bool:
    """Is ``a`` equal to or below ``b`` (both resolved)?"""
    return a == b or b in a.parents


def check_target(target: Path, source_dir: Path | None) -> Path:
    """``target`` made absolute, or ``UnsafeTarget``: a file or symlink, or inside/containing ``source_dir``."""
    target = Path(os.path.abspath(target))
    if target.is_symlink():
        raise UnsafeTarget(f"the restore target {target} is a symlink",
                           hint="Give the real directory (a restore never writes through a symlink).")
    if target.exists() and not target.is_dir():
        raise UnsafeTarget(f"the restore target {target} is a file, not a directory",
                           hint="Give a new or empty directory for --target-state.")
    if source_dir is not None:
        real_t = Path(os.path.realpath(target))
        real_s = Path(os.path.realpath(source_dir))
        if _inside(real_t, real_s):
            raise UnsafeTarget(f"the restore target {target} is inside the state directory {source_dir}",
                               hint="Restore beside it (e.g. a sibling directory), then point SWARM_STATE_DIR "
                                    "at the result.")
        if _inside(real_s, real_t):
            raise UnsafeTarget(f"the restore target {target} contains the state directory {source_dir}",
                               hint="Restore into a directory of its own.")
    return target


def plan_restore_state(repo: Repository, backup_id: str, target: Path, *, force: bool = False,
                       source_dir: Path | None = None) -> StateRestorePlan:
    """Check the restore (see the module docstring); nothing is written."""
    manifest = repo.load_manifest(backup_id)
    if manifest.kind != KIND:
        raise WrongKind(f"backup {backup_id} is a {manifest.kind} backup, not a state snapshot",
                        hint="List state snapshots with `swarm admin backups list`; restore PostgreSQL and "
                             "objects with their own restore commands.")
    manifest.typed_source()  # IntegrityError naming a damaged field
    target = check_target(target, source_dir)
    replaces = target.is_dir() and any(target.iterdir())
    if replaces and not force:
        raise TargetNotEmpty(f"the restore target {target} is not empty",
                             hint="Give a new or empty directory, or --force to replace its contents (the old "
                                  "tree is removed only after the new one is complete).")
    entries = list(TreeReader(repo, manifest).walk())
    return StateRestorePlan(manifest, target, force, replaces, entries)


def sweep_leftovers(target: Path) -> list[str]:
    """Remove staging and old directories beside ``target`` left by restores that no longer run."""
    out: list[str] = []
    parent = target.parent
    if not parent.is_dir():
        return out
    for tag in (STAGING, OLD):
        prefix = f".{target.name}.{tag}-"
        for p in parent.iterdir():
            if not p.name.startswith(prefix):
                continue
            try:
                pid = int(p.name[len(prefix):].split("-", 1)[0])
            except ValueError:
                continue
            if pid != os.getpid() and pid_alive(pid):
                continue
            shutil.rmtree(p, ignore_errors=True)
            out.append(str(p))
    return out


def execute_restore_state(repo: Repository, plan: StateRestorePlan, *, jobs: int = 4,
                          reporter: Reporter | None = None) -> StateRestoreResult:
    """Restore ``plan`` (see the module docstring for the order of steps and what a kill leaves)."""
    reporter = reporter or NullReporter()
    t0 = time.monotonic()
    target = plan.target
    res = StateRestoreResult(plan)
    target.parent.mkdir(parents=True, exist_ok=True)
    res.swept = sweep_leftovers(target)
    staging = target.parent / f".{target.name}.{STAGING}-{os.getpid()}-{secrets.token_hex(3)}"
    staging.mkdir(mode=0o700)
    try:
        reader = TreeReader(repo, plan.manifest)
        followers = {e.path: str(dict(e.meta.extra)[X_LINK]) for e in plan.entries
                     if e.type == FILE and dict(e.meta.extra).get(X_LINK)}
        files = [e for e in plan.entries if e.type == FILE and e.path not in followers]
        reporter.stage(f"restoring {plan.manifest.id} beside {target}")
        reporter.total(sum(e.size for e in files))
        st = reader.materialize(staging, jobs=jobs, only=lambda p: p not in followers, progress=reporter.advance)
        res.files, res.dirs, res.symlinks, res.bytes = st.files, st.dirs, st.symlinks, st.bytes
        for path, first in sorted(followers.items()):
            try:
                link_in(staging, first, path)
            except OSError as exc:
                raise IntegrityError(f"cannot restore {path} as a hard link to {first}: {exc.strerror or exc}",
                                     hint="The snapshot names a link whose first path is not a restored file.") \
                    from exc
            res.hardlinks += 1
        dir_meta = {e.path: e.meta for e in plan.entries if e.type == DIR and e.path}
        for d in sorted({p.rsplit("/", 1)[0] for p in followers if "/" in p}, key=lambda p: -p.count("/")):
            m = dir_meta.get(d)
            if m is not None:  # a link made in it changed its mtime: put the snapshot's back
                os.utime(staging / d, ns=(m.mtime_ns, m.mtime_ns), follow_symlinks=False)
        reporter.stage("checking every restored file's checksum")
        reporter.total(res.bytes)
        for e in files:
            want = dict(e.meta.extra).get(X_SHA256)
            if not isinstance(want, str):
                continue
            h = hashlib.sha256()
            for piece in read_back(staging, e.path):
                h.update(piece)
                reporter.advance(len(piece))
            if h.hexdigest() != want:
                raise IntegrityError(f"restored {e.path} does not match the checksum the snapshot recorded",
                                     hint="The repository may be damaged: run `swarm admin verify`.")
            res.checksums_verified += 1
        root = reader.root.root_meta
        os.chmod(staging, root.mode or 0o700)
        os.utime(staging, ns=(root.mtime_ns, root.mtime_ns))
        reporter.stage(f"moving the restored tree into {target}")
        _place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    res.seconds = time.monotonic() - t0
    return res


def _place(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    if not any(target.iterdir()):
        target.rmdir()
        os.rename(staging, target)
        return
    old = target.parent / f".{target.name}.{OLD}-{os.getpid()}-{secrets.token_hex(3)}"
    os.rename(target, old)
    os.rename(staging, target)
    with contextlib.suppress(OSError):
        shutil.rmtree(old)
