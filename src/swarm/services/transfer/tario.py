"""Reading and writing run export archives (tar + gzip) safely.

Writing: members are added from bytes or staged files; the archive is written under a
temporary name next to the target, flushed, fsynced and renamed over the target at the
end. A crash leaves at most a ``.<name>.tmp-*`` file, never a partial archive under the
target's name.

Reading is streamed (the archive is never extracted to disk) and every limit is checked
as bytes arrive, before the caller sees a member: the gzip layer counts compressed and
decompressed bytes (:func:`swarm.model.archive.check_ratio`), every tar header is checked
by :func:`swarm.model.archive.check_member` (name, type, size, count), and every member is
hashed while it is read. ``scan`` reads the whole archive once: a leading ``signature.json``
(:mod:`.trust`) and the exact bytes of ``manifest.json`` go to the signature check before the
manifest is parsed or any other member is read, then every checksum is checked against the
manifest; ``members`` reads it again for the import, re-checking each hash as the member ends
and the manifest against the checked one (so an archive changed between the two passes fails
the import, which then rolls back).

The tar headers are checked twice. Before :mod:`tarfile` parses a header, :class:`_TarGate`
looks at its raw 512 bytes in the stream: only regular files, the link/device/directory
types :func:`check_member` names in its refusal, and local PAX headers (``x``) pass; a PAX
header must be small (:data:`MAX_PAX_BYTES`), well formed (checked by a linear parser of ours,
never tarfile's regular expressions) and hold only the keys an export needs
(:data:`PAX_KEYS`); global PAX headers, GNU long names, sparse files and base-256 (possibly
negative) sizes are refused. This keeps CPython 3.11.7's tarfile away from the inputs of
CVE-2024-6232 (quadratic PAX parsing) and CVE-2025-8194 (negative offsets), whose fixes it
lacks. After tarfile parsed a header, the member passes :func:`check_member` and then
tarfile's own ``data`` extraction filter (:func:`tarfile.data_filter`), which is what
``extractall(filter="data")`` would apply; nothing is ever extracted to disk.
"""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import secrets
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from swarm.errors import HostileArchive, IntegrityError, NotFoundError, RefusedError, SwarmError
from swarm.model.archive import MANIFEST_NAME, Limits, Member, RunManifest, check_member, check_ratio

from .trust import MAX_SIGNATURE_BYTES, SIGNATURE_NAME, Provenance

CHUNK = 1 << 20
_IN_CHUNK = 64 << 10
BLOCK = 512
MAX_PAX_BYTES = 8192  # one path of up to MAX_NAME characters, a size and an mtime fit easily
PAX_KEYS = frozenset({"path", "size", "mtime"})  # what tarfile's PAX writer emits for our members
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE)
_NAMED_BY_CHECK_MEMBER = (tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.DIRTYPE,
                          tarfile.FIFOTYPE)  # no data follows; check_member refuses them by name
_FILTER_ROOT = "/nonexistent/swarm-import"  # data_filter checks names against a root; never created


# ---------------------------------------------------------------------------------- writing
class ArchiveWriter:
    """``with ArchiveWriter(path) as w: w.add_bytes(...); w.add_file(...)`` - atomic on success.

    The archive is owner-only (0600) whatever the umask: an export holds production rows, and
    even a scrubbed one names the run. The temporary file is created 0600 (and fchmod'ed, in
    case it was pre-created) before the first byte, so the bytes are never readable by others;
    a kill -9 leaves only the ``.<name>.tmp-*`` file, also 0600.
    """

    def __init__(self, path: Path, *, level: int = 6) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
        self.level = level
        self._raw: IO[bytes] | None = None
        self._gz: gzip.GzipFile | None = None
        self._tar: tarfile.TarFile | None = None

    def __enter__(self) -> ArchiveWriter:
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.fchmod(fd, 0o600)
        except BaseException:
            os.close(fd)
            raise
        self._raw = os.fdopen(fd, "wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, compresslevel=self.level, mtime=0)
        self._tar = tarfile.open(fileobj=self._gz, mode="w|", format=tarfile.PAX_FORMAT)
        return self

    def _info(self, name: str, size: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.size = size
        ti.mode = 0o644
        ti.type = tarfile.REGTYPE
        return ti

    def add_bytes(self, name: str, data: bytes) -> None:
        assert self._tar is not None
        self._tar.addfile(self._info(name, len(data)), io.BytesIO(data))

    def add_file(self, name: str, src: Path) -> None:
        assert self._tar is not None
        with open(src, "rb") as f:
            self._tar.addfile(self._info(name, os.fstat(f.fileno()).st_size), f)

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        ok = exc_type is None
        try:
            if self._tar is not None:
                self._tar.close()
            if self._gz is not None:
                self._gz.close()
            if self._raw is not None:
                self._raw.flush()
                if ok:
                    os.fsync(self._raw.fileno())
                self._raw.close()
        except BaseException:
            ok = False
            raise
        finally:
            if ok:
                os.replace(self.tmp, self.path)
                with contextlib.suppress(OSError):
                    fd = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            else:
                with contextlib.suppress(OSError):
                    self.tmp.unlink()


# ---------------------------------------------------------------------------------- reading
class _Inflater(io.RawIOBase):
    """gzip decompression that enforces the total and ratio limits while it streams."""

    def __init__(self, raw: IO[bytes], limits: Limits) -> None:
        self._raw = raw
        self._limits = limits
        self._z = zlib.decompressobj(wbits=31)
        self._pending = b""  # compressed input not yet consumed
        self._buf = bytearray()
        self.compressed = 0
        self.decompressed = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self, want: int) -> None:
        while len(self._buf) < want and not self._eof:
            if not self._pending:
                if self._z.eof:
                    self._eof = True
                    if self._z.unused_data or self._raw.read(1):
                        raise IntegrityError("archive has data after the end of its gzip stream")
                    break
                self._pending = self._raw.read(_IN_CHUNK)
                self.compressed += len(self._pending)
                if not self._pending:
                    raise IntegrityError("archive is truncated (the gzip stream ends early)",
                                         hint="The file was cut short in transfer; copy it again.")
            try:
                out = self._z.decompress(self._pending, CHUNK)
            except zlib.error as exc:
                raise IntegrityError(f"archive is not valid gzip data: {exc}") from exc
            self._pending = self._z.unconsumed_tail
            if self._z.eof and self._z.unused_data:
                raise IntegrityError("archive has data after the end of its gzip stream")
            self.decompressed += len(out)
            check_ratio(self.decompressed, self.compressed, self._limits)
            self._buf += out

    def readinto(self, b: Any) -> int:
        n = len(b)
        self._fill(n)
        k = min(n, len(self._buf))
        b[:k] = self._buf[:k]
        del self._buf[:k]
        return k


def _pax_records(payload: bytes) -> dict[str, str]:
    """Parse a PAX extended header (``"<len> <key>=<value>\\n"`` records) in linear time; refuse
    anything malformed or any key outside :data:`PAX_KEYS`."""
    out: dict[str, str] = {}
    pos = 0
    n = len(payload)
    while pos < n:
        if payload[pos] == 0:  # NUL padding after the records
            if payload[pos:].strip(b"\0"):
                raise HostileArchive("archive has data after the records of a PAX header")
            break
        sp = payload.find(b" ", pos, min(n, pos + 8))
        digits = payload[pos:sp] if sp > pos else b""
        if not digits or not digits.isdigit():
            raise HostileArchive("archive has a malformed PAX header (record length)")
        length = int(digits)
        end = pos + length
        if length < len(digits) + 4 or end > n or payload[end - 1:end] != b"\n":
            raise HostileArchive("archive has a malformed PAX header (record bounds)")
        key, eq, value = payload[sp + 1:end - 1].partition(b"=")
        if not eq:
            raise HostileArchive("archive has a malformed PAX header (no '=')")
        try:
            k, v = key.decode("ascii"), value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HostileArchive("archive has a PAX header that is not UTF-8") from exc
        if k not in PAX_KEYS:
            raise HostileArchive(f"archive has a PAX header with key {k[:40]!r}, which exports never use",
                                 details={"pax_key": k[:40]})
        if k in out:
            raise HostileArchive(f"archive has a PAX header that sets {k!r} twice")
        if k == "size" and not (v.isdigit() and len(v) <= 20):
            raise HostileArchive("archive has a PAX size that is not a decimal number")
        if k == "mtime" and not all(p.isdigit() and len(p) <= 20 for p in v.split(".", 1)):
            raise HostileArchive("archive has a PAX mtime that is not a decimal number")
        if "\0" in v:
            raise HostileArchive("archive has a PAX value with a NUL byte")
        out[k] = v
        pos = end
    return out


def _octal_size(header: bytes) -> int:
    field = header[124:136]
    if field[:1] and field[0] & 0x80:  # base-256: exports never need it, and it can be negative
        raise HostileArchive("archive has a member size in base-256 encoding; refused")
    text = field.rstrip(b"\0 ").lstrip(b" ")
    if text and not all(48 <= c <= 55 for c in text):
        raise HostileArchive("archive has a member size that is not octal")
    return int(text, 8) if text else 0


class _TarGate(io.RawIOBase):
    """Passes the decompressed tar stream to tarfile, inspecting each header block first.

    Only the header types named in the module docstring pass; a PAX header is parsed by
    :func:`_pax_records` before tarfile sees it. The gate follows the stream's block structure
    (header, then the member's data rounded up to 512 bytes).
    """

    def __init__(self, src: IO[bytes]) -> None:
        self._src = src
        self._pos = 0
        self._next_header = 0
        self._out = bytearray()  # inspected bytes not yet handed on
        self._after_pax = False
        self._zero_blocks = 0

    def readable(self) -> bool:
        return True

    def _read_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._src.read(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    def _header(self) -> None:
        header = self._read_exact(BLOCK)
        self._pos += len(header)
        self._out += header
        if len(header) < BLOCK:
            self._next_header = -1  # truncated: tarfile reports it
            return
        if not header.strip(b"\0"):
            self._zero_blocks += 1
            self._next_header = self._pos
            if self._zero_blocks >= 2:
                self._next_header = -1  # end of archive: tarfile stops reading here
            return
        self._zero_blocks = 0
        kind = header[156:157]
        size = _octal_size(header)
        if kind == tarfile.XHDTYPE:
            if self._after_pax:
                raise HostileArchive("archive has two PAX headers in a row")
            if size > MAX_PAX_BYTES:
                raise HostileArchive(f"archive has a PAX header of {size} bytes (limit {MAX_PAX_BYTES})",
                                     details={"size": size, "limit": MAX_PAX_BYTES})
            padded = -(-size // BLOCK) * BLOCK
            payload = self._read_exact(padded)
            self._pos += len(payload)
            self._out += payload
            if len(payload) < padded:
                self._next_header = -1
                return
            _pax_records(payload[:size])
            self._after_pax = True
            self._next_header = self._pos
            return
        self._after_pax = False
        if kind in _REGULAR:
            self._next_header = self._pos + -(-size // BLOCK) * BLOCK
        elif kind in _NAMED_BY_CHECK_MEMBER and size == 0:
            self._next_header = self._pos
        else:
            what = {tarfile.XGLTYPE: "a global PAX header", tarfile.GNUTYPE_LONGNAME: "a GNU long name",
                    tarfile.GNUTYPE_LONGLINK: "a GNU long link name", tarfile.GNUTYPE_SPARSE: "a sparse file",
                    }.get(kind, f"a member of tar type {kind!r} ({size} bytes)")
            raise HostileArchive(f"archive has {what}; exports contain only regular files",
                                 details={"tar_type": kind.decode("latin-1")})

    def readinto(self, b: Any) -> int:
        want = len(b)
        while not self._out:
            if self._next_header == self._pos:
                self._header()
                continue
            limit = want if self._next_header < 0 else min(want, self._next_header - self._pos)
            data = self._src.read(limit)
            if not data:
                return 0
            self._pos += len(data)
            self._out += data
        k = min(want, len(self._out))
        b[:k] = self._out[:k]
        del self._out[:k]
        return k


def _kind(ti: tarfile.TarInfo) -> str:
    if ti.issym():
        return "symlink"
    if ti.islnk():
        return "hardlink"
    if ti.ischr() or ti.isblk():
        return "device"
    if ti.isfifo():
        return "fifo"
    if ti.isdir():
        return "dir"
    if ti.issparse():
        return "sparse"
    return "file" if ti.isreg() else "other"


class _Hashing(io.RawIOBase):
    """Reads one member, hashing it; at its end the hash and size must match the manifest."""

    def __init__(self, src: IO[bytes], expected: Member) -> None:
        self._src = src
        self.expected = expected
        self._h = hashlib.sha256()
        self.size = 0
        self.checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self._src.read(len(b))
        if not data:
            self.check()
            return 0
        self._h.update(data)
        self.size += len(data)
        b[:len(data)] = data
        return len(data)

    def check(self) -> None:
        if self.checked:
            return
        if self.size != self.expected.size or self._h.hexdigest() != self.expected.sha256:
            raise IntegrityError(f"archive member {self.expected.name} does not match its checksum in the manifest",
                                 hint="The archive is damaged or was edited; nothing was imported. Export again.",
                                 details={"member": self.expected.name})
        self.checked = True

    def chunks(self) -> Iterator[bytes]:
        while True:
            data = self.read(CHUNK)
            if not data:
                return
            yield data

    def drain(self) -> None:
        for _ in self.chunks():
            pass


@contextlib.contextmanager
def _open(path: Path, limits: Limits) -> Iterator[tuple[tarfile.TarFile, _Inflater]]:
    try:
        raw = open(path, "rb")
    except FileNotFoundError as exc:
        raise NotFoundError(f"archive {path} does not exist") from exc
    except OSError as exc:
        raise RefusedError(f"cannot read archive {path}: {exc.strerror}") from exc
    try:
        inflater = _Inflater(raw, limits)
        stream = io.BufferedReader(_TarGate(io.BufferedReader(inflater, buffer_size=CHUNK)), buffer_size=CHUNK)
        try:
            tf = tarfile.open(fileobj=stream, mode="r|", ignore_zeros=False)
        except tarfile.TarError as exc:
            raise IntegrityError(f"archive {path} is not a tar.gz file: {exc}") from exc
        with tf:
            yield tf, inflater
    finally:
        raw.close()


SIGNATURE = -1  # the index _entries gives the signature member


def _check_signature_member(ti: tarfile.TarInfo) -> None:
    if _kind(ti) != "file":
        raise HostileArchive(f"archive member {SIGNATURE_NAME} is not a regular file", details={"member": ti.name})
    if ti.size > MAX_SIGNATURE_BYTES:
        raise HostileArchive(f"archive member {SIGNATURE_NAME} declares {ti.size} bytes, over the limit of "
                             f"{MAX_SIGNATURE_BYTES}", details={"member": ti.name, "size": ti.size})


def _entries(path: Path, limits: Limits) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, int]]:
    """Every checked header, in order; translating tar/gzip failures. The index counts from the
    manifest (0); a leading ``signature.json`` comes as :data:`SIGNATURE` and is allowed only
    first (anywhere else :func:`check_member` refuses its name)."""
    with _open(path, limits) as (tf, _):
        index = 0
        first = True
        while True:
            try:
                ti = tf.next()
            except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
                raise IntegrityError(f"archive {path} is damaged or truncated: {exc}",
                                     hint="Copy the archive again; nothing was imported.") from exc
            if ti is None:
                return
            if first and ti.name == SIGNATURE_NAME:
                first = False
                _check_signature_member(ti)
                try:
                    tarfile.data_filter(ti, _FILTER_ROOT)
                except tarfile.FilterError as exc:
                    raise HostileArchive(f"archive member {ti.name!r} is refused by tarfile's data filter: {exc}",
                                         details={"member": ti.name}) from exc
                yield tf, ti, SIGNATURE
                continue
            first = False
            check_member(ti.name, _kind(ti), ti.size, index, limits)
            try:  # what extractall(filter="data") would refuse, refused here too
                tarfile.data_filter(ti, _FILTER_ROOT)
            except tarfile.FilterError as exc:
                raise HostileArchive(f"archive member {ti.name!r} is refused by tarfile's data filter: {exc}",
                                     details={"member": ti.name}) from exc
            yield tf, ti, index
            index += 1


def _read_member(tf: tarfile.TarFile, ti: tarfile.TarInfo) -> IO[bytes]:
    f = tf.extractfile(ti)
    if f is None:  # only for non-regular members, already refused
        raise HostileArchive(f"archive member {ti.name!r} has no content")
    return f


def _whole(tf: tarfile.TarFile, ti: tarfile.TarInfo, what: str) -> bytes:
    data = _read_member(tf, ti).read()
    if len(data) != ti.size:
        raise IntegrityError(f"archive is truncated inside the {what}")
    return data


def _manifest_from(tf: tarfile.TarFile, ti: tarfile.TarInfo) -> RunManifest:
    return RunManifest.from_bytes(_whole(tf, ti, "manifest"))


@dataclass
class ScanResult:
    manifest: RunManifest
    members: int
    bytes: int
    compressed_bytes: int
    provenance: Provenance | None = None
    signed: bool = False


SignatureCheck = Callable[[bytes | None, bytes], Provenance]
"""Called with (the ``signature.json`` bytes or None, the exact ``manifest.json`` bytes) as soon
as the manifest has been read, before it is parsed and before any other member is read; raises
to refuse the archive."""
Inspect = Callable[[RunManifest, Member, IO[bytes]], SwarmError | None]
"""Called with the manifest and each member's stream while it is hashed; returns an error to raise once the
member's checksum has been found good (so damage is reported as damage, not as content)."""


def scan(path: Path, limits: Limits, *, check_signature: SignatureCheck | None = None,
         inspect: Inspect | None = None) -> ScanResult:
    """Read the whole archive once: the signature checked (``check_signature``) before anything
    else is trusted, every header checked, every member hashed against the manifest (and shown
    to ``inspect``), every manifest entry present, in the manifest's order. Writes nothing."""
    manifest: RunManifest | None = None
    signature: bytes | None = None
    provenance: Provenance | None = None
    seen = 0
    total = 0
    try:
        for tf, ti, index in _entries(path, limits):
            if index == SIGNATURE:
                signature = _whole(tf, ti, "signature")
                continue
            if index == 0:
                raw = _whole(tf, ti, "manifest")
                if check_signature is not None:
                    provenance = check_signature(signature, raw)
                manifest = RunManifest.from_bytes(raw)
                continue
            assert manifest is not None
            expected = _expected(manifest, ti.name, index)
            if ti.size != expected.size:
                raise IntegrityError(f"archive member {ti.name} is {ti.size} bytes, the manifest says {expected.size}")
            h = _Hashing(_read_member(tf, ti), expected)
            problem = inspect(manifest, expected, h) if inspect is not None else None
            h.drain()
            h.check()
            if problem is not None:
                raise problem
            seen += 1
            total += ti.size
    except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError) as exc:
        raise IntegrityError(f"archive {path} is damaged or truncated: {exc}",
                             hint="Copy the archive again; nothing was imported.") from exc
    if manifest is None:
        raise IntegrityError(f"archive {path} is empty (no {MANIFEST_NAME})")
    if seen != len(manifest.members):
        missing = [m.name for m in manifest.members[seen:]]
        raise IntegrityError(f"archive {path} lacks {len(missing)} member(s) its manifest lists, e.g. {missing[0]}",
                             hint="The archive is truncated; copy it again.")
    return ScanResult(manifest, seen, total, path.stat().st_size, provenance, signature is not None)


def _expected(manifest: RunManifest, name: str, index: int) -> Member:
    if index - 1 >= len(manifest.members):
        raise HostileArchive(f"archive member {name!r} is not listed in the manifest")
    expected = manifest.members[index - 1]
    if expected.name != name:
        if manifest.member(name) is None:
            raise HostileArchive(f"archive member {name!r} is not listed in the manifest")
        raise IntegrityError(f"archive member {name!r} is out of the manifest's order (expected {expected.name!r})")
    return expected


def members(path: Path, limits: Limits, manifest: RunManifest) -> Iterator[tuple[Member, _Hashing]]:
    """The members after the manifest, each as a stream the caller must read to the end (its
    checksum is checked when it ends; if the caller stops early, the rest is drained and checked)."""
    try:
        for tf, ti, index in _entries(path, limits):
            if index == SIGNATURE:
                continue  # checked by scan; the manifest is compared with the checked one below
            if index == 0:
                again = _manifest_from(tf, ti)
                if again.to_bytes() != manifest.to_bytes():
                    raise IntegrityError("the archive's manifest changed since it was checked")
                continue
            expected = _expected(manifest, ti.name, index)
            h = _Hashing(_read_member(tf, ti), expected)
            yield expected, h
            h.drain()
    except (EOFError, zlib.error, gzip.BadGzipFile, tarfile.TarError) as exc:
        raise IntegrityError(f"archive {path} is damaged or truncated: {exc}") from exc
