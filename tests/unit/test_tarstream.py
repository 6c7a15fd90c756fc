"""The reader of pg_basebackup's tar stream (``sources.postgres.tarstream``), on tars written
by :mod:`tarfile` in the ustar format PostgreSQL writes, and on damaged ones."""
from __future__ import annotations

import io
import os
import tarfile

import pytest

from swarm.errors import SourceError
from swarm.sources.postgres.tarstream import TarStream


class Trickle(io.RawIOBase):
    """A pipe that hands out at most ``step`` bytes per read, as a slow writer's pipe does."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self._step, len(self._data) - self._pos)
        b[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def _tar(members: list[tuple[str, bytes | None, str]], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    """``(name, data, kind)`` with kind ``f`` (file), ``d`` (directory) or ``l`` (symlink to data)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, data, kind in members:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.mode = 1_700_000_000, 0o600
            if kind == "d":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            elif kind == "l":
                ti.type, ti.linkname = tarfile.SYMTYPE, (data or b"").decode()
                tar.addfile(ti)
            else:
                ti.size = len(data or b"")
                tar.addfile(ti, io.BytesIO(data or b""))
    return out.getvalue()


def _read_all(raw: io.RawIOBase, block: int = 32768, *, skip: tuple[str, ...] = ()) -> list[tuple[str, str, bytes]]:
    stream = TarStream(raw)  # type: ignore[arg-type]
    seen = []
    for m in stream:
        data = b"" if m.name in skip else b"".join(stream.data(m, block))
        seen.append((m.name, m.type.decode(), data))
    assert stream.ended
    return seen


@pytest.mark.parametrize("step", [1 << 20, 32768, 4096, 509])
def test_members_and_their_data_come_back_whole_whatever_the_pipe_hands_out(step: int) -> None:
    big = os.urandom(3 * 32768 + 1000)  # three whole blocks and a short one
    raw = _tar([("base", None, "d"), ("base/1/16384", big, "f"), ("empty", b"", "f"),
                ("pg_tblspc/x", b"/elsewhere", "l"), ("backup_manifest", b"{}", "f")])
    got = _read_all(Trickle(raw, step))
    assert [(n, t) for n, t, _ in got] == [("base", "5"), ("base/1/16384", "0"), ("empty", "0"),
                                           ("pg_tblspc/x", "2"), ("backup_manifest", "0")]
    assert got[1][2] == big and got[2][2] == b"" and got[4][2] == b"{}"


def test_pieces_are_whole_blocks_but_the_last() -> None:
    data = os.urandom(2 * 32768 + 7)
    stream = TarStream(Trickle(_tar([("f", data, "f")]), 1000))  # type: ignore[arg-type]
    member = next(iter(stream))
    assert [len(p) for p in stream.data(member, 32768)] == [32768, 32768, 7]


def test_data_left_unread_is_skipped() -> None:
    raw = _tar([("a", os.urandom(100_000), "f"), ("b", b"second", "f")])
    got = _read_all(Trickle(raw, 3000), skip=("a",))
    assert got[1] == ("b", "0", b"second")


def test_a_stream_cut_in_a_file_is_an_error() -> None:
    raw = _tar([("a", os.urandom(100_000), "f")])
    with pytest.raises(SourceError, match="ended in the middle of a file"):
        _read_all(Trickle(raw[:60_000], 4096))


def test_a_stream_without_its_end_blocks_is_an_error() -> None:
    raw = _tar([("a", b"x" * 10, "f")])
    with pytest.raises(SourceError, match="without its end-of-archive"):
        _read_all(Trickle(raw[:1024], 4096))  # the header and the padded data, nothing after


def test_a_damaged_header_is_named() -> None:
    raw = bytearray(_tar([("a", b"x" * 10, "f")]))
    raw[0] ^= 0xFF  # the name changes, the checksum no longer matches
    with pytest.raises(SourceError, match="damaged header"):
        _read_all(Trickle(bytes(raw), 4096))


def test_extended_headers_are_refused_not_misread() -> None:
    raw = _tar([("x" * 150, b"long name", "f")], fmt=tarfile.PAX_FORMAT)
    with pytest.raises(SourceError, match="unexpected tar member type"):
        _read_all(Trickle(raw, 4096))


def test_padding_after_the_end_is_drained() -> None:
    raw = _tar([("a", b"x", "f")]) + bytes(100_000)
    src = Trickle(raw, 4096)
    _read_all(src)
    assert src.read(1) == b""  # the writer of the pipe is never left blocked
