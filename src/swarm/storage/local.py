"""A store in a local directory.

``put`` writes ``.tmp-<random>`` beside the target, fsyncs it, then renames (or, with
``if_absent``, hard-links, which fails if the key exists) and fsyncs the directory. A crash
leaves at most a ``.tmp-*`` file, which ``list`` skips and ``sweep_temp`` removes.

Ownership: when we run as root and the repository root belongs to another user (the dev
stack hands it to ``postgres``, whose ``archive_command`` pushes WAL into it), every
directory and file we create is chowned to that owner, so both can keep writing. Modes
follow the process umask.
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from swarm.storage.base import (
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    StoreAccessDenied,
    StoreUnavailable,
    as_chunks,
    check_range,
    validate_key,
)

READ_CHUNK = 4 << 20
TMP_PREFIX = ".tmp-"


class LocalStore:
    def __init__(self, root: Path | str, *, create: bool = True) -> None:
        self.root = Path(root)
        if create:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except PermissionError as exc:
                raise StoreAccessDenied(f"cannot create repository directory {self.root}: {exc.strerror}",
                                        hint="Choose a directory you can write, or fix its permissions.") from exc
        if not self.root.is_dir():
            raise StoreUnavailable(f"repository directory {self.root} does not exist", transient=False,
                                   hint="Check SWARM_BACKUP_REPO / the repo URL; is the volume mounted?")
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            st = self.root.stat()
            if st.st_uid != 0:
                self._owner = (st.st_uid, st.st_gid)

    @property
    def url(self) -> str:
        return f"file://{self.root}"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _mkdirs(self, path: Path) -> None:
        if path.is_dir():
            return
        missing = []
        p = path
        while not p.exists() and p != self.root:
            missing.append(p)
            p = p.parent
        path.mkdir(parents=True, exist_ok=True)
        if self._owner:
            for d in missing:
                with contextlib.suppress(OSError):
                    os.chown(d, *self._owner)

    def put(self, key: str, data: bytes | Iterable[bytes], *, if_absent: bool = False) -> int:
        path = self._path(key)
        try:
            self._mkdirs(path.parent)
            tmp = path.parent / f"{TMP_PREFIX}{secrets.token_hex(8)}"
            written = 0
            try:
                with open(tmp, "wb") as fh:
                    if self._owner:
                        os.fchown(fh.fileno(), *self._owner)
                    for chunk in as_chunks(data):
                        fh.write(chunk)
                        written += len(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
                if if_absent:
                    try:
                        os.link(tmp, path)
                    except FileExistsError as exc:
                        raise ObjectExists(f"{key} already exists in {self.url}") from exc
                    finally:
                        tmp.unlink(missing_ok=True)
                else:
                    os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(path.parent)
            return written
        except PermissionError as exc:
            raise StoreAccessDenied(f"cannot write {path}: permission denied") from exc
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise StoreUnavailable(f"no space left writing {path}", transient=False,
                                       hint="Free space on the repository volume, then run the backup again; "
                                            "nothing partial was kept.") from exc
            raise StoreUnavailable(f"cannot write {path}: {exc.strerror}", transient=False) from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{key} not found in {self.url}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {key}: {exc.strerror}", transient=False) from exc

    def iter_get(self, key: str) -> Iterator[bytes]:
        try:
            fh = open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{key} not found in {self.url}") from exc
        return _iter_file(fh)

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        check_range(offset, length)
        try:
            with open(self._path(key), "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"{key} not found in {self.url}") from exc
        except OSError as exc:
            raise StoreUnavailable(f"cannot read {key}: {exc.strerror}", transient=False) from exc

    def stat(self, key: str) -> ObjectInfo | None:
        try:
            st = self._path(key).stat()
        except FileNotFoundError:
            return None
        return ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        # Walk only the directory the prefix names, then filter on the full key.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if not start.is_dir():
            return iter(())
        out: list[ObjectInfo] = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                full = Path(dirpath) / name
                key = full.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    try:
                        st = full.stat()
                    except FileNotFoundError:
                        continue
                    out.append(ObjectInfo(key, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
        return iter(sorted(out, key=lambda o: o.key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    def sweep_temp(self) -> int:
        """Remove ``.tmp-*`` files left by crashed writers; return how many."""
        n = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if name.startswith(TMP_PREFIX):
                    (Path(dirpath) / name).unlink(missing_ok=True)
                    n += 1
        return n


def _iter_file(fh: object) -> Iterator[bytes]:
    import io

    assert isinstance(fh, io.BufferedReader)
    with fh:
        while chunk := fh.read(READ_CHUNK):
            yield chunk


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
