"""Hostile and damaged archives: each refused with a clear error, and NOTHING written.

The archives here are unsigned and imported with ``allow_unsigned``: every structural check
below also guards what ``--allow-unsigned`` lets in. (Signatures: ``test_signing.py``.)"""
from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from swarm.errors import IntegrityError, RefusedError, SwarmError
from swarm.model.archive import MANIFEST_NAME, Limits, RunManifest
from swarm.platform.schema import latest_version
from swarm.services.transfer.imports import import_run
from swarm.services.transfer.trust import SIGNATURE_NAME, Trust

from .conftest import Stack, state

pytestmark = pytest.mark.integration

Entry = tuple[tarfile.TarInfo, bytes | None]


def entries_of(archive: Path) -> list[Entry]:
    out: list[Entry] = []
    with tarfile.open(archive) as tf:
        for ti in tf:
            f = tf.extractfile(ti)
            out.append((ti, f.read() if f else None))
    return out


def write(path: Path, entries: list[Entry]) -> Path:
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        for ti, data in entries:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return path


def info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.type, ti.linkname = size, kind, link
    return ti


def with_extra(archive: Path, out: Path, extra: Entry) -> Path:
    e = entries_of(archive)
    return write(out, [e[0], extra, *e[1:]])


def manifest_edit(archive: Path, out: Path, edit: Callable[[RunManifest], None]) -> Path:
    e = entries_of(archive)
    m = RunManifest.from_bytes(e[0][1] or b"")
    edit(m)
    data = m.to_bytes()  # a correctly self-checksummed manifest that lies
    return write(out, [(info(MANIFEST_NAME, len(data)), data), *e[1:]])


def bomb(path: Path, manifest_from: Path, size: int = 1 << 30) -> Path:
    """A tar.gz whose one listed member is ``size`` zero bytes: about 1 MB on disk."""
    import dataclasses

    from swarm.model.archive import Member

    m = RunManifest.from_bytes(entries_of(manifest_from)[0][1] or b"")
    m.members.insert(0, Member("objects/zeros.bin", size, "0" * 64, "object", key="zeros.bin"))
    m = dataclasses.replace(m)
    data = m.to_bytes()
    head = (info(MANIFEST_NAME, len(data)).tobuf(format=tarfile.PAX_FORMAT) + data + bytes(-len(data) % 512)
            + info("objects/zeros.bin", size).tobuf(format=tarfile.PAX_FORMAT))
    # raw deflate with full flushes: every 1 MiB block of zeros compresses to the same bytes,
    # so the gigabyte is written without compressing it (gzip header and trailer by hand)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(1 << 20)
    crc = zlib.crc32(head)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
        f.write(z.compress(head) + z.flush(zlib.Z_FULL_FLUSH))
        same = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
        crc = zlib.crc32(block, crc)
        f.write(same)
        for _ in range((size >> 20) - 1):
            f.write(same)
            crc = zlib.crc32(block, crc)
        f.write(z.flush())
        f.write(struct.pack("<II", crc, (len(head) + size) & 0xFFFFFFFF))
    return path


@pytest.fixture(scope="module")
def scrubbed_archive(scrubbed_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signed export without its signature: what an attacker (or an old swarm) hands over."""
    e = entries_of(scrubbed_archive)
    assert e[0][0].name == SIGNATURE_NAME
    return write(tmp_path_factory.mktemp("unsigned") / "unsigned.tar.gz", e[1:])


def assert_refused(dev: Stack, archive: Path, exc: type[SwarmError], match: str, limits: Limits | None = None) -> None:
    before = state(dev)
    with pytest.raises(exc, match=match):
        import_run(archive, dev.db_url, dev.bucket, trust=Trust([]), allow_unsigned=True, limits=limits)
    assert state(dev) == before


@pytest.mark.parametrize("extra,match", [
    ((info("../x", 3), b"abc"), r"escapes the archive root"),
    ((info("objects/../../etc/x", 3), b"abc"), r"escapes the archive root"),
    ((info("/tmp/evil", 3), b"abc"), r"absolute path"),
    ((info("objects/link", 0, tarfile.SYMTYPE, "/etc/passwd"), None), r"symbolic link"),
    ((info("objects/hard", 0, tarfile.LNKTYPE, MANIFEST_NAME), None), r"hard link"),
    ((info("objects/dev", 0, tarfile.CHRTYPE), None), r"device"),
    ((info("objects/fifo", 0, tarfile.FIFOTYPE), None), r"FIFO"),
    ((info("objects/dir", 0, tarfile.DIRTYPE), None), r"directory"),
    ((info("etc/passwd", 3), b"abc"), r"not part of a swarm run export"),
    ((info("objects/unlisted.txt", 3), b"abc"), r"not listed in the manifest"),
])
def test_hostile_members_refused(dev: Stack, scrubbed_archive: Path, tmp_path: Path, extra: Entry,
                                 match: str) -> None:
    assert_refused(dev, with_extra(scrubbed_archive, tmp_path / "evil.tar.gz", extra), RefusedError, match)


def test_bomb_refused_while_streaming(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    path = bomb(tmp_path / "bomb.tar.gz", scrubbed_archive)
    assert path.stat().st_size < 4 << 20
    assert_refused(dev, path, RefusedError, r"decompression bomb")
    # and the absolute limit, on an archive whose ratio is fine
    assert_refused(dev, path, RefusedError, r"decompresses to more than",
                   Limits(max_total_bytes=4 << 20, max_ratio=1e9))


def test_limits_members_and_sizes(dev: Stack, scrubbed_archive: Path) -> None:
    assert_refused(dev, scrubbed_archive, RefusedError, r"more than 3 members", Limits(max_members=3))
    assert_refused(dev, scrubbed_archive, RefusedError, r"over the limit", Limits(max_member_bytes=1000))


def test_truncated_and_damaged(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    data = scrubbed_archive.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        (tmp_path / "cut.tar.gz").write_bytes(data[:cut])
        assert_refused(dev, tmp_path / "cut.tar.gz", IntegrityError, r"truncated|damaged")
    (tmp_path / "junk.tar.gz").write_bytes(b"not an archive at all" * 10)
    assert_refused(dev, tmp_path / "junk.tar.gz", IntegrityError, r"not valid gzip")
    (tmp_path / "plain.tar.gz").write_bytes(gzip.compress(b"hello"))
    assert_refused(dev, tmp_path / "plain.tar.gz", IntegrityError, r"not a tar|damaged|empty")


def test_wrong_checksum(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    def lie(m: RunManifest) -> None:
        import dataclasses
        i = next(i for i, x in enumerate(m.members) if x.name.endswith(".jsonl") and x.kind == "object")
        m.members[i] = dataclasses.replace(m.members[i], sha256="0" * 64)

    assert_refused(dev, manifest_edit(scrubbed_archive, tmp_path / "sum.tar.gz", lie), IntegrityError,
                   r"does not match its checksum")
    # an edited member under an unchanged manifest
    e = entries_of(scrubbed_archive)
    i = next(i for i, (ti, _) in enumerate(e) if ti.name == "rows/runs.jsonl")
    body = (e[i][1] or b"").replace(b"succeeded", b"SUCCEEDED").replace(b"failed", b"FAILED") + b" "
    e[i] = (info(e[i][0].name, len(body)), body)
    assert_refused(dev, write(tmp_path / "edit.tar.gz", e), IntegrityError, r"does not match its checksum|bytes, the")
    # a manifest edited without fixing its own checksum
    raw = (e[0][1] or b"").replace(b'"scrubbed": true', b'"scrubbed": false')
    e2 = entries_of(scrubbed_archive)
    assert_refused(dev, write(tmp_path / "m.tar.gz", [(info(MANIFEST_NAME, len(raw)), raw), *e2[1:]]),
                   IntegrityError, r"manifest.json checksum")


def test_schema_from_the_future(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    def future(m: RunManifest) -> None:
        m.schema_version = 999

    path = manifest_edit(scrubbed_archive, tmp_path / "future.tar.gz", future)
    before = state(dev)
    with pytest.raises(RefusedError) as ei:
        import_run(path, dev.db_url, dev.bucket, trust=Trust([]), allow_unsigned=True)
    current = latest_version()  # the dev database is fully migrated
    assert "schema version 999" in ei.value.message and f"this database has schema version {current}" in \
        ei.value.message
    assert ei.value.details == {"archive_schema_version": 999, "database_schema_version": current}
    assert state(dev) == before


def test_manifest_must_come_first(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    e = entries_of(scrubbed_archive)
    assert_refused(dev, write(tmp_path / "order.tar.gz", [*e[1:], e[0]]), RefusedError, r"first archive member")
    assert_refused(dev, write(tmp_path / "missing.tar.gz", e[:-1]), IntegrityError, r"lacks 1 member")


def test_dry_run_writes_nothing(dev: Stack, scrubbed_archive: Path) -> None:
    before = state(dev)
    res = import_run(scrubbed_archive, dev.db_url, dev.bucket, trust=Trust([]), allow_unsigned=True, dry_run=True)
    assert res.dry_run and res.plan.mode == "new" and res.plan.objects == 4 and res.plan.rows["run_events"] > 0
    assert res.rows_written == {} and res.objects_written == 0
    assert state(dev) == before


# ---- PAX headers and tarfile's data filter (CPython 3.11.7 lacks the CVE-2024-6232 and CVE-2025-8194 fixes) ----

def with_pax(archive: Path, out: Path, index: int, pax: dict[str, str]) -> Path:
    e = entries_of(archive)
    ti, data = e[index]
    ti2 = info(ti.name, ti.size)
    ti2.pax_headers = dict(pax)
    e[index] = (ti2, data)
    return write(out, e)


@pytest.mark.parametrize("pax,match", [
    ({"comment": "harmless?"}, r"PAX header with key 'comment'"),
    ({"linkpath": "/etc/passwd"}, r"PAX header with key 'linkpath'"),
    ({"SCHILY.xattr.security.capability": "x"}, r"PAX header with key 'SCHILY"),
    ({"GNU.sparse.map": "0,1"}, r"PAX header with key 'GNU.sparse.map'"),
    ({"hdrcharset": "BINARY"}, r"PAX header with key 'hdrcharset'"),
    ({"path": "objects/" + "a" * 9000}, r"PAX header of \d+ bytes"),
])
def test_unneeded_pax_headers_refused(dev: Stack, scrubbed_archive: Path, tmp_path: Path, pax: dict[str, str],
                                      match: str) -> None:
    """Before, a PAX record exports never need went through tarfile's own parser and was accepted."""
    for index in (0, 1):
        assert_refused(dev, with_pax(scrubbed_archive, tmp_path / f"pax{index}.tar.gz", index, pax),
                       RefusedError, match)


def test_global_pax_header_refused(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    e = entries_of(scrubbed_archive)
    path = tmp_path / "global.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}) as tf:
        for ti, data in e:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    assert_refused(dev, path, RefusedError, r"global PAX header")


def _raw_archive(path: Path, blocks: bytes) -> Path:
    path.write_bytes(gzip.compress(blocks + bytes(1024)))
    return path


def _fix_checksum(header: bytearray) -> bytes:
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    return bytes(header)


def test_malformed_pax_records_refused(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    """A hand-made PAX payload (the CVE-2024-6232 shape: long digit runs, no record structure)
    is refused by our parser before tarfile's regular expressions ever see it."""
    for payload, match in [(b"9" * 4000, r"malformed PAX header"), (b"30 path=objects/x\n", r"malformed"),
                           (b"12 pathx\n\n\n\n", r"malformed|no '='")]:
        pax = tarfile.TarInfo("././@PaxHeader")
        pax.type, pax.size = tarfile.XHDTYPE, len(payload)
        blocks = pax.tobuf(format=tarfile.USTAR_FORMAT) + payload + bytes(-len(payload) % 512)
        e = entries_of(scrubbed_archive)
        man = e[0][0].tobuf(format=tarfile.USTAR_FORMAT) + (e[0][1] or b"") + bytes(-len(e[0][1] or b"") % 512)
        assert_refused(dev, _raw_archive(tmp_path / "raw.tar.gz", blocks + man), RefusedError, match)


@pytest.mark.timeout(120)
def test_negative_size_refused(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    """CVE-2025-8194: a base-256 negative size sends an unpatched tarfile backwards in the stream."""
    e = entries_of(scrubbed_archive)
    man = e[0][0].tobuf(format=tarfile.USTAR_FORMAT) + (e[0][1] or b"") + bytes(-len(e[0][1] or b"") % 512)
    evil = bytearray(info("objects/neg.bin", 0).tobuf(format=tarfile.USTAR_FORMAT))
    evil[124:136] = b"\xff" * 12
    assert_refused(dev, _raw_archive(tmp_path / "neg.tar.gz", man + _fix_checksum(evil)), RefusedError,
                   r"base-256")


def test_gnu_long_names_and_odd_types_refused(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    e = entries_of(scrubbed_archive)
    path = tmp_path / "gnu.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tf:
        for ti, data in [e[0], (info("objects/" + "b" * 150, 3), b"abc"), *e[1:]]:
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    assert_refused(dev, path, RefusedError, r"GNU long name")
    assert_refused(dev, with_extra(scrubbed_archive, tmp_path / "cont.tar.gz",
                                   (info("objects/c.bin", 3, tarfile.CONTTYPE), b"abc")), RefusedError,
                   r"tar type b'7'")


def test_long_object_names_still_import(dev: Stack, scrubbed_archive: Path, tmp_path: Path) -> None:
    """What exports do need passes: a PAX ``path`` for a long name (checked, then not in the manifest)."""
    assert_refused(dev, with_extra(scrubbed_archive, tmp_path / "long.tar.gz",
                                   (info("objects/" + "c" * 300, 3), b"abc")), RefusedError,
                   r"not listed in the manifest")


def test_data_filter_applies_to_every_member() -> None:
    """The second line of defence: tarfile's data filter, as extractall(filter="data") applies it."""
    from swarm.errors import HostileArchive
    from swarm.services.transfer import tario
    assert tario._pax_records(b"18 path=objects/x\n") == {"path": "objects/x"}
    ti = info("objects/x", 1, tarfile.FIFOTYPE)
    with pytest.raises(tarfile.FilterError):
        tarfile.data_filter(ti, tario._FILTER_ROOT)
    with pytest.raises(HostileArchive, match="comment"):
        tario._pax_records(b"15 comment=abc\n")
