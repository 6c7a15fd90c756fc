"""References in manifests (format version 2) and ``needed``: what a set of kept backups needs.

Property tests: refs survive the manifest round trip; ``needed`` is monotone; removing a
backup never removes what another kept backup names; a physical backup's refs cover every
block its tree names (also blocks it reuses from the previous backup)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swarm.crypto.keys import create_key_file
from swarm.errors import IntegrityError
from swarm.model.manifest import Manifest, ObjectEntry
from swarm.model.refs import DataRef, Refs, WalRange, needed, own_needs
from swarm.model.sources import Kind, PhysicalSource
from swarm.repo import Repository
from swarm.repo.chunker import FixedChunker
from swarm.repo.tree import Meta, TreeReader, TreeWriter
from swarm.services.postgres.physical_backup import physical_refs
from swarm.storage.memory import MemoryStore

BACKUPS = [f"20261124T00000{i}Z-pg-physical-00000{i}" for i in range(6)]
names = st.sampled_from(["packs/000000.pack", "packs/000001.pack", "versions/ab", "tree.json"])
data_refs = st.builds(DataRef, st.sampled_from(BACKUPS), names)
deks = st.sampled_from([f"dek-{i:016x}" for i in range(6)])


@st.composite
def wal_ranges(draw: st.DrawFn) -> WalRange:
    tli = draw(st.integers(1, 3))
    a, b = sorted(draw(st.lists(st.integers(0, 40), min_size=2, max_size=2)))
    return WalRange(tli, f"{tli:08X}{0:08X}{a:08X}", f"{tli:08X}{0:08X}{b:08X}")


refs_st = st.builds(Refs.of, packs=st.lists(data_refs, max_size=6), objects=st.lists(data_refs, max_size=4),
                    deks=st.lists(deks, max_size=4), wal=st.lists(wal_ranges(), max_size=3))


@st.composite
def manifests(draw: st.DrawFn, backup_id: str | None = None) -> Manifest:
    bid = backup_id or draw(st.sampled_from(BACKUPS))
    objs = tuple(ObjectEntry(n, 1, 1, "0" * 64, "") for n in draw(st.sets(names, max_size=3)))
    return Manifest(id=bid, kind="pg-physical", started_at="s", finished_at="f", dek_id=draw(deks), objects=objs,
                    refs=draw(refs_st))


kept_sets = st.lists(manifests(), max_size=6, unique_by=lambda m: m.id)


@given(refs_st)
def test_refs_survive_the_manifest_round_trip(refs: Refs) -> None:
    m = Manifest(id=BACKUPS[0], kind="pg-logical", started_at="s", finished_at="f", dek_id="dek-0", objects=(),
                 refs=refs)
    back = Manifest.from_json(m.to_json(), where="m")
    assert back.refs == refs and back.version == 2
    assert Refs.from_dict(json.loads(json.dumps(refs.to_dict()))) == refs


@given(kept_sets, kept_sets)
def test_needed_is_monotone(a: list[Manifest], b: list[Manifest]) -> None:
    ids = {m.id for m in a}
    union = a + [m for m in b if m.id not in ids]
    assert needed(a).issubset(needed(union))


@given(kept_sets, st.data())
def test_removing_a_backup_never_removes_what_another_kept_backup_names(kept: list[Manifest],
                                                                       data: st.DataObject) -> None:
    if not kept:
        return
    gone = data.draw(st.sampled_from(kept))
    rest = [m for m in kept if m is not gone]
    need = needed(rest)
    for m in rest:
        d, k, w = own_needs(m)
        assert d <= need.data and k <= need.deks and w <= need.wal
        assert m.refs is not None
        for r in (*m.refs.packs, *m.refs.objects):
            assert need.needs_data(r.backup_id, r.name)
        for rng in m.refs.wal:
            assert need.needs_wal(rng.first) and need.needs_wal(rng.last)
    assert gone.id not in need.manifests


def test_a_version_1_manifest_is_listed_as_unreferenced() -> None:
    old = Manifest(id=BACKUPS[1], kind="pg-logical", started_at="s", finished_at="f", dek_id="dek-1", objects=(),
                   version=1)
    assert old.refs is None
    back = Manifest.from_json(old.to_json(), where="m")
    assert back.refs is None and back.version == 1
    assert BACKUPS[1] in needed([old]).unreferenced


@pytest.mark.parametrize("bad", [
    {"packs": [["b", "../x"]]}, {"packs": [["a/b", "x"]]}, {"deks": ["key-1"]}, {"surprise": []},
    {"wal": [{"timeline": 1, "first": "000000010000000000000005", "last": "000000010000000000000004"}]},
    {"wal": [{"timeline": 2, "first": "000000010000000000000005", "last": "000000010000000000000005"}]},
])
def test_malformed_refs_make_the_manifest_damaged(bad: dict[str, object]) -> None:
    m = Manifest(id=BACKUPS[0], kind="pg-logical", started_at="s", finished_at="f", dek_id="dek-0", objects=())
    body = m.body()
    body["refs"] = bad
    from swarm.model.manifest import _checksum

    body["checksum"] = _checksum({k: v for k, v in body.items() if k != "checksum"})
    with pytest.raises(IntegrityError, match="refs"):
        Manifest.from_json(json.dumps(body).encode(), where="m")


def test_a_version_2_manifest_without_refs_is_damaged() -> None:
    m = Manifest(id=BACKUPS[0], kind="pg-logical", started_at="s", finished_at="f", dek_id="dek-0", objects=())
    body = m.body()
    del body["refs"]
    from swarm.model.manifest import _checksum

    body["checksum"] = _checksum(body)
    with pytest.raises(IntegrityError, match="refs"):
        Manifest.from_json(json.dumps(body).encode(), where="m")


def test_typed_sources_parse_once_and_name_a_missing_field() -> None:
    src = {"system_identifier": "7311", "timeline": 1, "start_lsn": "0/2", "stop_lsn": "0/3",
           "start_wal": "000000010000000000000002", "stop_wal": "000000010000000000000002",
           "wal_segments": ["000000010000000000000002"], "segment_size": 16 << 20, "stop_time": "t",
           "format": "tree"}
    m = Manifest(id=BACKUPS[0], kind=Kind.PG_PHYSICAL, started_at="s", finished_at="f", dek_id="dek-0",
                 objects=(), source=src)
    assert isinstance(m.typed_source(), PhysicalSource) and m.physical.timeline == 1 and m.physical.is_tree
    assert Kind("pg-physical") is Kind.PG_PHYSICAL and Kind.PG_PHYSICAL == "pg-physical"
    assert json.loads(m.to_json())["kind"] == "pg-physical"
    with pytest.raises(ValueError):
        _ = m.logical
    broken = Manifest(id=BACKUPS[0], kind="pg-physical", started_at="s", finished_at="f", dek_id="dek-0",
                      objects=(), source={k: v for k, v in src.items() if k != "timeline"})
    with pytest.raises(IntegrityError, match="timeline"):
        _ = broken.physical


# ---- a physical backup's refs cover every block its tree names --------------------------------------
files_st = st.dictionaries(st.sampled_from(["a", "b", "d/c", "d/e/f", "g"]),
                           st.sampled_from([b"", b"x" * 5000, b"y" * 70000]) | st.binary(max_size=3000),
                           min_size=1, max_size=5)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=files_st, second=files_st)
def test_physical_refs_cover_every_block_the_tree_names(tmp_path: Path, first: dict[str, bytes],
                                                       second: dict[str, bytes]) -> None:
    kek_path = tmp_path / f"k{os.urandom(4).hex()}"
    repo = Repository.init(MemoryStore(), create_key_file(kek_path))
    repo.bind_cluster("7311", segment_size=16 << 20)
    chunker = FixedChunker(4096)
    parent: Manifest | None = None
    for files in (first, {**first, **second}):
        w = repo.begin_backup("pg-physical")
        known = TreeReader(repo, parent).referenced_blocks() if parent is not None else None
        tw = TreeWriter(repo, w, chunker=chunker, known=known)
        for path, data in sorted(files.items()):
            tw.add_file(path, Meta(0o600, 0), chunker.chunks([data]))
        root = tw.finish()
        m = w.commit({}, physical_refs(repo, root, 1, "000000010000000000000002", "000000010000000000000003"))
        m = repo.load_manifest(m.id)
        assert m.refs is not None
        for loc in TreeReader(repo, m).referenced_blocks().values():
            assert DataRef(loc.backup_id, loc.pack_name()) in m.refs.packs
            assert loc.dek_id in m.refs.deks
        assert m.dek_id in m.refs.deks  # WAL needs no data key of its own (sealed to the WAL public key)
        assert repo.missing_refs(m)[:1] == [("000000010000000000000002", "WAL segment referenced by this "
                                                                         "backup is missing from the repository")]
        if parent is not None:  # kept alone, the second still keeps the first's packs it reuses
            need = needed([m])
            reused = {DataRef(loc.backup_id, loc.pack_name()) for loc in TreeReader(repo, m).referenced_blocks()
                      .values() if loc.backup_id == parent.id}
            assert reused <= need.data
        parent = m
