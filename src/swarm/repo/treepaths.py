"""Paths inside a restored tree: checked names, and directories opened without following a symlink.

Every write of a restore goes through ``parent_fd``: the path is walked component by component
from a descriptor of the destination with ``O_NOFOLLOW``, so a symlink (or a file) in the way
fails the restore instead of sending a write outside the destination. Shared by the
thread-based writer (``TreeReader.materialize``) and the worker processes of
``swarm.repo.rebuild``.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from swarm.errors import IntegrityError


def check_path(path: str) -> str:
    """``path`` if it is a safe relative tree path (``""`` = root); ValueError otherwise."""
    if path == "":
        return path
    for part in path.split("/"):
        check_name(part)
    return path


def check_name(name: str) -> str:
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise ValueError(f"unsafe name in a tree path: {name!r}")
    return name


def parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def open_dir(root_fd: int, path: str) -> int:
    """A descriptor of directory ``path`` under ``root_fd``, following no symlink on the way."""
    fd = os.dup(root_fd)
    if not path:
        return fd
    try:
        for part in path.split("/"):
            nxt = os.open(check_name(part), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError as exc:
        os.close(fd)
        raise IntegrityError(f"cannot enter {path} in the restore target: {exc.strerror}",
                             hint="A symlink or file is in the way; restore into an empty directory.") from exc
    return fd


@contextmanager
def parent_fd(root_fd: int, path: str) -> Iterator[int]:
    """A descriptor of ``path``'s parent directory under ``root_fd`` (closed on exit)."""
    check_path(path)
    fd = open_dir(root_fd, parent(path))
    try:
        yield fd
    finally:
        os.close(fd)


def finish_file(fd: int, path: str, written: int, size: int, mode: int, mtime_ns: int, *, sync: bool) -> None:
    """Close out a restored file through its descriptor: ``written`` must be the snapshot's
    ``size`` (else IntegrityError naming ``path``), then its mode and mtime, and with ``sync``
    an fsync. The thread path (``TreeReader``) and the worker path (``rebuild``) both end here."""
    if written != size:
        raise IntegrityError(f"restored {path} has {written} bytes, the snapshot says {size}")
    os.fchmod(fd, mode)
    os.utime(fd, ns=(mtime_ns, mtime_ns))
    if sync:
        os.fsync(fd)
