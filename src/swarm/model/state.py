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
  any pieces and finds a shape that straddles two of them.
* ``cache_decision(now, cached, ...)``: whether a file may be taken from the parent snapshot
  without reading it (same size, mtime, ctime and inode, not modified within ``window_ns``
  of the parent snapshot's start, and not drawn for a re-hash).
"""
from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

# ---- exclusions ------------------------------------------------------------------------------------
# swarm's own files and directories directly under SWARM_HOME (devstack/stack.py's layout): left out
# when the state directory is SWARM_HOME itself
TOOL_ENTRIES: tuple[str, ...] = ("swarm.toml", "keys", "dev", "wal-stream", "wal-stream.log", "server-access",
                                 "drills", "security", "scratch")

# secrets by name: (pattern, applies to directories, applies to files)
SECRET_NAMES: tuple[tuple[str, bool, bool], ...] = (
    ("*.key", False, True),
    ("*.pem", False, True),
    (".env", False, True),
    ("secrets", True, False),
    ("credentials*", True, True),
)

REASON_TOOL = "swarm's own file (the state directory is SWARM_HOME)"
REASON_REPO = "the backup repository or its key lies here"


def secret_name_reason(name: str, is_dir: bool) -> str | None:
    """``secret name (<pattern>)`` if ``name`` (one path component) is a secret by name, else None."""
    for pattern, dirs, files in SECRET_NAMES:
        if (dirs if is_dir else files) and fnmatch.fnmatchcase(name, pattern):
            return f"secret by name ({pattern}{'/' if is_dir else ''})"
    return None


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


# ---- secret shapes ---------------------------------------------------------------------------------
SECRET_SHAPES: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("private key", re.compile(rb"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    # the literal first, then a lookbehind: the regex engine jumps to candidates instead of trying
    # every position (about 8x faster; the same matches)
    ("AWS access key id", re.compile(rb"A(?<![A-Z0-9]A)(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[A-Z0-9]{16}"
                                     rb"(?![A-Z0-9])")),
    ("AWS secret access key", re.compile(rb"(?i:aws_?secret_?access_?key)[\"']?\s*[:=]\s*[\"']?"
                                         rb"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+])")),
    ("JWT", re.compile(rb"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")),
    ("API key (sk-...)", re.compile(rb"sk-(?<![A-Za-z0-9_-]sk-)(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])"
                                    rb"[A-Za-z0-9_-]{20,}")),
)
OVERLAP = 4096  # bytes of the previous piece kept, so a shape across two pieces is found (longest shape < this)


def secret_kinds(data: bytes) -> list[str]:
    """The kinds of secret shape found in ``data`` (in ``SECRET_SHAPES`` order), never the values."""
    return [kind for kind, rx in SECRET_SHAPES if rx.search(data)]


class SecretScanner:
    """Feed a file's bytes in any pieces; ``found`` lists the kinds of secret seen so far.

    Pure (no I/O): holds the last ``OVERLAP`` bytes so a shape across two pieces is found.
    """

    def __init__(self) -> None:
        self._tail = b""
        self.found: list[str] = []

    def feed(self, piece: bytes) -> None:
        if not piece:
            return
        window = self._tail + piece
        for kind in secret_kinds(window):
            if kind not in self.found:
                self.found.append(kind)
        self._tail = window[-OVERLAP:]

    def reason(self) -> str | None:
        return f"secret content ({', '.join(self.found)})" if self.found else None


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
