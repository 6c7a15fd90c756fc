"""Walking and reading the state directory; linking in a restored one.

``walk(root, exclude)`` yields every entry under ``root`` (``root`` itself first, as ``""``),
each directory before its contents, names sorted, using ``lstat`` only: a symlink is yielded
as a symlink (its target as read), never followed; sockets, FIFOs and devices are yielded as
``special``; an entry ``exclude(path, is_dir)`` names a reason for is yielded as ``excluded``
and, for a directory, not entered; what cannot be listed or stat'ed (permissions) is yielded
as ``unreadable`` with the system's words. An entry that disappears while walking is left out
(it no longer exists).

``FileRead(path)`` opens a regular file without following a symlink and without blocking
on a FIFO swapped in since the walk (``O_NOFOLLOW | O_NONBLOCK``; anything but a regular
file raises ``NotRegular``), reads it in pieces, and gives its ``fstat`` facts before and
after, so the caller can tell whether it changed while read.
"""
from __future__ import annotations

import os
import stat as stat_mod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from swarm.model.state import FileFacts

READ_SIZE = 1 << 20
DIR, FILE, SYMLINK, SPECIAL, EXCLUDED, UNREADABLE = "dir", "file", "symlink", "special", "excluded", "unreadable"


@dataclass(frozen=True)
class Item:
    """One entry of the walk. ``reason``: why excluded, the special type, or the read error."""

    path: str
    kind: str
    st: os.stat_result | None = None
    target: str = ""
    reason: str = ""


def facts_of(st: os.stat_result) -> FileFacts:
    return FileFacts(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _special_type(mode: int) -> str:
    if stat_mod.S_ISSOCK(mode):
        return "socket"
    if stat_mod.S_ISFIFO(mode):
        return "fifo"
    if stat_mod.S_ISCHR(mode):
        return "character device"
    if stat_mod.S_ISBLK(mode):
        return "block device"
    return "unknown type"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def walk(root: Path, exclude: Callable[[str, bool], str | None]) -> Iterator[Item]:
    """Every entry under ``root`` (see the module docstring). ``root`` must be a directory."""
    st = os.stat(root)  # the root itself may be reached through a symlink: it is what we were told to snapshot
    yield Item("", DIR, st)
    yield from _walk_dir(os.fspath(root), "", exclude)


def _walk_dir(full: str, rel: str, exclude: Callable[[str, bool], str | None]) -> Iterator[Item]:
    try:
        with os.scandir(full) as it:
            entries = sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return
    except OSError as exc:
        yield Item(rel, UNREADABLE, reason=f"cannot list the directory: {_why(exc)}")
        return
    for e in entries:
        path = f"{rel}/{e.name}" if rel else e.name
        try:
            st = e.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as exc:
            yield Item(path, UNREADABLE, reason=f"cannot stat: {_why(exc)}")
            continue
        mode = st.st_mode
        is_dir = stat_mod.S_ISDIR(mode)
        reason = exclude(path, is_dir)
        if reason is not None:
            yield Item(path, EXCLUDED, st, reason=reason)
            continue
        if is_dir:
            yield Item(path, DIR, st)
            yield from _walk_dir(e.path, path, exclude)
        elif stat_mod.S_ISREG(mode):
            yield Item(path, FILE, st)
        elif stat_mod.S_ISLNK(mode):
            try:
                target = os.readlink(e.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                yield Item(path, UNREADABLE, st, reason=f"cannot read the link: {_why(exc)}")
                continue
            yield Item(path, SYMLINK, st, target=target)
        else:
            yield Item(path, SPECIAL, st, reason=_special_type(mode))


class NotRegular(OSError):
    """The path is no longer a regular file (replaced since the walk)."""


class FileRead:
    """``with FileRead(path) as f: f.before; for piece in f.pieces(): ...; f.now()``."""

    def __init__(self, path: Path | str) -> None:
        self.path = os.fspath(path)
        self._fd = -1

    def __enter__(self) -> FileRead:
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        st = os.fstat(self._fd)
        if not stat_mod.S_ISREG(st.st_mode):
            os.close(self._fd)
            self._fd = -1
            raise NotRegular(f"{self.path} is no longer a regular file")
        self.st = st
        self.before = facts_of(st)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def pieces(self, size: int = READ_SIZE) -> Iterator[bytes]:
        os.lseek(self._fd, 0, os.SEEK_SET)
        while True:
            piece = os.read(self._fd, size)
            if not piece:
                return
            yield piece

    def now(self) -> FileFacts:
        return facts_of(os.fstat(self._fd))


def _open_dir_nofollow(root_fd: int, rel: str) -> int:
    fd = os.dup(root_fd)
    try:
        for part in [p for p in rel.split("/") if p]:
            if part in (".", ".."):
                raise OSError(f"unsafe path component {part!r}")
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def link_in(root: Path, existing: str, new: str) -> None:
    """Create ``root/new`` as a hard link to ``root/existing`` (both relative, ``/``-separated).

    Every directory on both paths is opened with ``O_NOFOLLOW`` from a descriptor of ``root``,
    and the link is made with ``follow_symlinks=False``: a symlink in the way raises OSError,
    nothing outside ``root`` is ever linked or written.
    """
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        src_dir, src_name = existing.rsplit("/", 1) if "/" in existing else ("", existing)
        dst_dir, dst_name = new.rsplit("/", 1) if "/" in new else ("", new)
        sfd = _open_dir_nofollow(root_fd, src_dir)
        try:
            dfd = _open_dir_nofollow(root_fd, dst_dir)
            try:
                os.link(src_name, dst_name, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)
    finally:
        os.close(root_fd)


def read_back(root: Path, rel: str) -> Iterator[bytes]:
    """The bytes of regular file ``root/rel`` (no symlink followed on the way), in pieces."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        d, name = rel.rsplit("/", 1) if "/" in rel else ("", rel)
        dfd = _open_dir_nofollow(root_fd, d)
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
        finally:
            os.close(dfd)
    finally:
        os.close(root_fd)
    try:
        while True:
            piece = os.read(fd, READ_SIZE)
            if not piece:
                return
            yield piece
    finally:
        os.close(fd)
