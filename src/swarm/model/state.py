"""State-directory snapshots: the pure decisions (no I/O).

What ``swarm admin backup state`` leaves out, which secrets it recognises, and which files it
trusts its change cache for, as functions of names, bytes and ``stat`` facts, so each rule is
tested on its own (tests/state/test_rules.py, property tests included):

* ``exclude_reason(path, is_dir, tool_paths)``: why an entry is left out, or None. Two lists:
  swarm's own files when the state directory is ``SWARM_HOME`` (``TOOL_ENTRIES``, plus a local
  repository or key file that lies under the state directory, always), and secrets by name
  (``SECRET_NAMES``: ``*.key``, ``*.pem``, ``.env``, ``secrets/``, ``credentials*``). There is no
  way to include secrets.
* ``SecretScanner``: a content scan for high-confidence secret shapes (PEM private keys, AWS
  access key ids and ``aws_secret_access_key = <40 characters>`` lines, JWT-looking tokens,
  ``sk-...`` API keys). It reports the *kinds* found, never the values; it is fed the file in
  any pieces and finds a shape that straddles two of them. It and the names rule live in
  ``swarm.model.secrets`` (the one scanner ``admin export`` and ``admin secrets check`` use too)
  and are re-exported here.
* ``cache_decision(now, cached, ...)``: whether a file may be taken from the parent snapshot
  without reading it (same size, mtime, ctime and inode, not modified within ``window_ns``
  of the parent snapshot's start, and not drawn for a re-hash).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# the one secret scanner (shared with ``admin export`` and ``admin secrets check``), re-exported here
from swarm.model.secrets import (  # noqa: F401
    OVERLAP,
    SECRET_NAMES,
    SECRET_SHAPES,
    SecretScanner,
    secret_kinds,
    secret_name_reason,
)

# ---- exclusions ------------------------------------------------------------------------------------
# swarm's own files and directories directly under SWARM_HOME (devstack/stack.py's layout): left out
# when the state directory is SWARM_HOME itself
TOOL_ENTRIES: tuple[str, ...] = ("swarm.toml", "keys", "dev", "wal-stream", "wal-stream.log", "server-access",
                                 "drills", "security", "scratch")

REASON_TOOL = "swarm's own file (the state directory is SWARM_HOME)"
REASON_REPO = "the backup repository or its key lies here"


def exclude_reason(path: str, is_dir: bool, tool_paths: Iterable[str] = (), repo_paths: Iterable[str] = ()) -> \
        str | None:
    """Why the entry at ``path`` (relative, ``/``-separated) is left out of a snapshot, or None.

    ``tool_paths``: swarm's own entries (``TOOL_ENTRIES`` when the state directory is
    ``SWARM_HOME``, else nothing); ``repo_paths``: a local repository and key file under the
    state directory. Either excludes the path itself and everything below it. Names are
    matched per component: a file is never excluded for what its parent is called, only for
    being under an excluded path (which the walk never enters anyway).
    """
    for roots, reason in ((repo_paths, REASON_REPO), (tool_paths, REASON_TOOL)):
        for root in roots:
            if path == root or path.startswith(root + "/"):
                return reason
    return secret_name_reason(path.rsplit("/", 1)[-1], is_dir)


def tool_paths_for(state_is_home: bool) -> tuple[str, ...]:
    return TOOL_ENTRIES if state_is_home else ()


# ---- the change cache ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileFacts:
    """What the change cache compares: a file's size, mtime, ctime (ns) and inode."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int


READ, REUSE = "read", "reuse"


@dataclass(frozen=True)
class CacheDecision:
    action: str  # READ or REUSE
    reason: str  # new, changed, recent, rehash, no-parent-checksum, unchanged


def cache_decision(now: FileFacts, cached: FileFacts | None, *, parent_start_ns: int | None, window_ns: int,
                   draw: float, rehash_share: float, has_checksum: bool = True) -> CacheDecision:
    """Read the file, or take its entry from the parent snapshot without reading it?

    Reused only when the parent has the file with the same size, mtime_ns, ctime_ns and inode,
    and neither its mtime nor its ctime is within ``window_ns`` of the parent snapshot's start
    (or later): a file written in the same clock tick as the parent read it could have changed
    again without changing its stat (borg's rule). Of the rest, a share ``rehash_share`` (a
    ``draw`` in [0, 1) below it) is read anyway, to catch a lying cache.
    """
    if cached is None:
        return CacheDecision(READ, "new")
    if now != cached:
        return CacheDecision(READ, "changed")
    if not has_checksum:
        return CacheDecision(READ, "no-parent-checksum")
    if parent_start_ns is None or max(now.mtime_ns, now.ctime_ns) >= parent_start_ns - window_ns:
        return CacheDecision(READ, "recent")
    if draw < rehash_share:
        return CacheDecision(READ, "rehash")
    return CacheDecision(REUSE, "unchanged")


def same_read(before: FileFacts, after: FileFacts) -> bool:
    """Did a file keep still while it was read (size, mtime and ctime unchanged, same inode)?"""
    return before == after
